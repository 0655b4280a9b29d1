"""Inbound mail, from stored bytes to decrypted, verified text: real gpg and Sequoia make the
messages (tests/mailcorpus.py), the service keyring opens them."""

import hashlib
import logging
from datetime import UTC, datetime

import pytest

from keys import verify
from keys.inspect import CertificateError, inspect_certificate
from keys.keyring import KeyringError
from mail.parse import ParsedMessage, Unreadable, parse
from tests import mailcorpus as mc

REPORT = "The CAN driver overflows rx_buf with a 70-byte frame.\nPoC below.\n"


@pytest.fixture(scope="module")
def reporter():
    return mc.make_reporter()


@pytest.fixture
def service_cert(keyring):
    return keyring.export_public()


def known(reporter):
    return [reporter.cert.decode()]


def readable(parsed: ParsedMessage) -> None:
    """Everything the worker stores is valid UTF-8 without NULs (PostgreSQL refuses both)."""
    for value in (parsed.subject, parsed.text, parsed.from_name, parsed.from_address):
        if value is not None:
            value.encode("utf-8")
            assert "\x00" not in value


# -- plain mail and its headers ------------------------------------------------------------------


def test_plain_message_gives_text_headers_and_a_not_encrypted_problem(keyring):
    raw = mc.plain(
        REPORT,
        subject="=?utf-8?q?L=C3=BCcke_im_CAN-Treiber?=",
        headers=[
            ("In-Reply-To", "<ack-7@forewarn.example>"),
            ("References", "<first@example.org>\r\n <ack-7@forewarn.example>"),
            ("Auto-Submitted", "auto-replied"),
            ("Precedence", "bulk"),
            ("List-Id", "Zephyr devel <devel.lists.example.org>"),
        ],
    )

    parsed = parse(raw, keyring)

    assert parsed.text == REPORT.rstrip("\n")
    assert parsed.subject == "Lücke im CAN-Treiber"
    assert (parsed.from_name, parsed.from_address) == ("Rita Reporter", "rita@example.org")
    assert parsed.message_id == "<report-1@example.org>"
    assert parsed.in_reply_to == "<ack-7@forewarn.example>"
    assert parsed.references == ["<first@example.org>", "<ack-7@forewarn.example>"]
    assert (parsed.auto_submitted, parsed.precedence) == ("auto-replied", "bulk")
    assert parsed.list_id == "Zephyr devel <devel.lists.example.org>"
    assert parsed.encrypted is False
    assert parsed.signature.status == "unsigned"
    assert parsed.problems == ["the message was not encrypted"]
    assert parsed.is_bounce is False


def test_html_only_message_becomes_text_without_markup_or_scripts(keyring):
    html = "<html><style>p{}</style><p>Overflow in <b>net</b> &amp; can</p><script>x()</script>"
    raw = mc.message(mc.entity([("Content-Type", "text/html; charset=utf-8")], html))

    parsed = parse(raw, keyring)

    assert parsed.text == "Overflow in net & can"


def test_plain_attachments_keep_name_type_size_and_digest(keyring):
    poc = bytes(range(256)) * 4
    raw = mc.message(
        mc.multipart("mixed", [mc.text_part(REPORT), mc.attachment_part("poc.bin", poc)], "mx")
    )

    parsed = parse(raw, keyring)

    (attachment,) = parsed.attachments
    assert (attachment.filename, attachment.content_type) == ("poc.bin", "application/octet-stream")
    assert attachment.data == poc and attachment.size == len(poc)
    assert attachment.sha256 == hashlib.sha256(poc).hexdigest()
    assert attachment.decrypted is False
    assert "parts of the message were not encrypted" not in parsed.problems  # not encrypted at all


def test_bounce_from_mailer_daemon_is_recognised(keyring):
    raw = mc.plain("Undeliverable", sender="Mail Delivery System <MAILER-DAEMON@mx.example.org>")

    assert parse(raw, keyring).is_bounce is True


def test_delivery_status_report_is_a_bounce_whoever_sends_it(keyring):
    status = mc.entity([("Content-Type", "message/delivery-status")], "Action: failed\n")
    parts = [mc.text_part("Undeliverable"), status]
    body = mc.multipart("report", parts, "rp", "; report-type=delivery-status")

    assert parse(mc.message(body, sender="postmaster@mx.example.org"), keyring).is_bounce is True


def test_message_without_from_is_kept_with_a_problem(keyring):
    parsed = parse(mc.plain(REPORT, sender=None), keyring)

    assert parsed.from_address is None
    assert "the message has no usable From address" in parsed.problems
    assert parsed.text.startswith("The CAN driver")


# -- PGP/MIME encrypted ----------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["gpg", "sqop"])
def test_pgp_mime_encrypted_report_is_decrypted(keyring, service_cert, tool):
    inner = mc.text_part(REPORT)
    encrypt = mc.gpg_encrypt if tool == "gpg" else mc.sqop_encrypt
    raw = mc.pgp_mime_encrypted(encrypt(service_cert, inner))

    parsed = parse(raw, keyring)

    assert parsed.encrypted is True
    assert parsed.text == REPORT.rstrip("\n")
    assert parsed.signature.status == "unsigned"
    assert parsed.problems == []
    assert parsed.subject == "..."


@pytest.mark.parametrize("tool", ["gpg", "sqop"])
def test_signature_inside_encryption_is_valid_when_the_reporter_is_known(
    keyring, service_cert, reporter, tool
):
    inner = mc.text_part(REPORT)
    if tool == "gpg":  # gpg compresses what it signs: the signature hides in a compressed packet
        ciphertext = mc.gpg_encrypt(service_cert, inner, signer_secret=reporter.secret)
    else:
        ciphertext = mc.sqop_encrypt(service_cert, inner, signer=reporter)
    raw = mc.pgp_mime_encrypted(ciphertext)

    known_result = parse(raw, keyring, known(reporter))
    unknown_result = parse(raw, keyring)

    assert known_result.signature.status == "valid"
    assert known_result.signature.fingerprint == reporter.fingerprint
    assert unknown_result.signature.status == "unknown-key"
    assert unknown_result.signature.fingerprint is None
    assert unknown_result.signature.key_id
    assert unknown_result.text == known_result.text == REPORT.rstrip("\n")


def test_protected_subject_replaces_the_outer_one(keyring, service_cert, reporter):
    inner = mc.text_part(REPORT, protected_subject="Heap overflow in the CAN driver")
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(service_cert, inner, signer=reporter))

    parsed = parse(raw, keyring)

    assert parsed.subject == "Heap overflow in the CAN driver"
    assert parsed.text == REPORT.rstrip("\n")


def test_multipart_signed_inside_encryption_is_verified(keyring, service_cert, reporter):
    signed = mc.signed_entity(mc.text_part(REPORT), reporter)
    raw = mc.pgp_mime_encrypted(mc.gpg_encrypt(service_cert, signed))

    parsed = parse(raw, keyring, known(reporter))

    assert parsed.encrypted is True
    assert parsed.signature.status == "valid"
    assert parsed.signature.fingerprint == reporter.fingerprint
    assert parsed.text == REPORT.rstrip("\n")


def test_key_attached_inside_the_encryption_verifies_and_becomes_the_reporter_key(
    keyring, service_cert, reporter
):
    inner = mc.multipart("mixed", [mc.text_part(REPORT), mc.key_part(reporter.cert)], "in")
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(service_cert, inner, signer=reporter))

    parsed = parse(raw, keyring)

    assert parsed.signature.status == "valid"
    assert parsed.signature.fingerprint == reporter.fingerprint
    assert inspect_certificate(parsed.reporter_certificate, datetime.now(UTC)).fingerprint == (
        reporter.fingerprint
    )
    assert parsed.problems == []


def test_autocrypt_header_gives_the_reporter_key(keyring, service_cert, reporter):
    ciphertext = mc.sqop_encrypt(service_cert, mc.text_part(REPORT), signer=reporter)
    raw = mc.pgp_mime_encrypted(
        ciphertext, sender=reporter.sender, headers=[mc.autocrypt_header(reporter)]
    )

    parsed = parse(raw, keyring)

    assert parsed.reporter_certificate is not None
    assert "BEGIN PGP PUBLIC KEY BLOCK" in parsed.reporter_certificate
    assert parsed.signature.status == "valid"


def test_autocrypt_header_for_another_address_is_ignored(keyring, reporter):
    raw = mc.plain(
        REPORT, sender="Mallory <mallory@example.net>", headers=[mc.autocrypt_header(reporter)]
    )

    parsed = parse(raw, keyring)

    assert parsed.reporter_certificate is None
    assert "Autocrypt key unusable: its addr is not the From address" in parsed.problems


def test_attached_secret_key_is_noted_not_used(keyring, reporter):
    raw = mc.message(
        mc.multipart("mixed", [mc.text_part(REPORT), mc.key_part(reporter.secret)], "mx")
    )

    parsed = parse(raw, keyring)

    assert parsed.reporter_certificate is None
    assert any(p.startswith("attached key unusable: it holds secret key") for p in parsed.problems)
    assert parsed.text == REPORT.rstrip("\n")


def test_attached_key_is_judged_at_the_instant_given(keyring):
    _, expired = mc.gpg_key("Old <old@example.org>", faked_time="20200101T000000", expire="1y")
    raw = mc.message(mc.multipart("mixed", [mc.text_part(REPORT), mc.key_part(expired)], "mx"))

    now = parse(raw, keyring, at=datetime(2026, 11, 25, tzinfo=UTC))
    then = parse(raw, keyring, at=datetime(2020, 6, 1, tzinfo=UTC))

    assert now.reporter_certificate is None
    assert "attached key unusable: it has no valid encryption key" in now.problems
    assert then.reporter_certificate is not None


# -- PGP/MIME signed, unencrypted ----------------------------------------------------------------


def test_pgp_mime_signed_message_is_valid_and_tampering_is_bad(keyring, reporter):
    raw = mc.message(mc.signed_entity(mc.text_part(REPORT), reporter))
    tampered = raw.replace(b"70-byte", b"71-byte")

    good = parse(raw, keyring, known(reporter))
    bad = parse(tampered, keyring, known(reporter))

    assert good.signature.status == "valid"
    assert good.signature.fingerprint == reporter.fingerprint
    assert bad.signature.status == "bad"
    assert "71-byte" in bad.text
    assert good.problems == bad.problems == ["the message was not encrypted"]


def test_signed_message_stored_with_bare_line_feeds_still_verifies(keyring, reporter):
    raw = mc.message(mc.signed_entity(mc.text_part(REPORT), reporter)).replace(b"\r\n", b"\n")

    assert parse(raw, keyring, known(reporter)).signature.status == "valid"


# -- inline PGP ------------------------------------------------------------------------------------


def test_inline_pgp_message_is_decrypted_with_the_text_around_it(keyring, service_cert, reporter):
    armored = mc.sqop_encrypt(service_cert, REPORT.encode(), signer=reporter)
    raw = mc.inline_pgp("Hello security team,", armored, "Regards, Rita")

    parsed = parse(raw, keyring, known(reporter))

    assert parsed.encrypted is True
    assert parsed.text.startswith("Hello security team,")
    assert "The CAN driver overflows rx_buf" in parsed.text
    assert parsed.text.endswith("Regards, Rita")
    assert "BEGIN PGP" not in parsed.text
    assert parsed.signature.status == "valid"
    assert "parts of the message were not encrypted" in parsed.problems


def test_inline_clearsigned_text_is_verified(keyring, reporter):
    clearsigned = mc.sqop_clearsign(reporter, REPORT.encode())
    raw = mc.message(mc.entity([("Content-Type", "text/plain; charset=utf-8")], clearsigned))

    parsed = parse(raw, keyring, known(reporter))
    tampered = parse(raw.replace(b"70-byte", b"71-byte"), keyring, known(reporter))

    assert parsed.signature.status == "valid"
    assert parsed.text == REPORT.rstrip("\n")
    assert tampered.signature.status == "bad"
    assert parsed.encrypted is False


def test_inline_signed_but_not_encrypted_message_is_verified(keyring):
    secret, public = mc.gpg_key("Gus <gus@example.org>")
    signed = mc.gpg_sign(secret, REPORT.encode())

    parsed = parse(mc.inline_pgp("Signed only:", signed, ""), keyring, [public.decode()])

    assert parsed.signature.status == "valid"
    assert parsed.encrypted is False
    assert parsed.text == "Signed only:\n\n" + REPORT.rstrip("\n")


# -- encrypted attachments -------------------------------------------------------------------------


def test_encrypted_attachments_are_decrypted_and_renamed(keyring, service_cert):
    poc = b"int main(void) { can_rx(buf, 70); }\n"
    log_text = b"[00:00:01] rx_buf overflow\n"
    raw = mc.message(
        mc.multipart(
            "mixed",
            [
                mc.text_part("See the attachments."),
                mc.attachment_part("poc.c.gpg", mc.gpg_encrypt(service_cert, poc, armor=False)),
                mc.attachment_part(
                    "crash.log.asc",
                    mc.sqop_encrypt(service_cert, log_text),
                    "application/pgp-encrypted",
                ),
            ],
            "mx",
        )
    )

    parsed = parse(raw, keyring)

    by_name = {attachment.filename: attachment for attachment in parsed.attachments}
    assert set(by_name) == {"poc.c", "crash.log"}
    assert by_name["poc.c"].data == poc and by_name["poc.c"].decrypted is True
    assert by_name["crash.log"].data == log_text and by_name["crash.log"].decrypted is True
    assert by_name["poc.c"].sha256 == hashlib.sha256(poc).hexdigest()
    # Content arrived encrypted (the issue: this said "not encrypted"); the cover note did not.
    assert parsed.encrypted is True
    assert parsed.unencrypted_parts == ["the text"]
    assert "parts of the message were not encrypted" in parsed.problems


def test_plain_attachments_beside_encrypted_text_are_named_as_unencrypted(keyring, service_cert):
    inner = mc.multipart("mixed", [mc.text_part("Details inside.")], "in")
    encrypted = mc.multipart(
        "encrypted",
        [
            mc.entity([("Content-Type", "application/pgp-encrypted")], "Version: 1\n"),
            mc.entity(
                [("Content-Type", "application/octet-stream")],
                mc.gpg_encrypt(service_cert, inner),
            ),
        ],
        "enc",
        '; protocol="application/pgp-encrypted"',
    )
    raw = mc.message(
        mc.multipart("mixed", [encrypted, mc.attachment_part("dump.bin", b"\x00\x01")], "ox")
    )

    parsed = parse(raw, keyring)

    assert parsed.encrypted is True
    assert "Details inside." in parsed.text
    assert parsed.unencrypted_parts == ["the attachment dump.bin"]


def test_attachment_encrypted_to_another_key_is_kept_and_noted(keyring, reporter):
    sealed = mc.sqop_encrypt(reporter.cert, b"not for the desk")
    raw = mc.message(
        mc.multipart("mixed", [mc.text_part(REPORT), mc.attachment_part("x.asc", sealed)], "mx")
    )

    parsed = parse(raw, keyring)

    (attachment,) = parsed.attachments
    assert attachment.filename == "x.asc" and attachment.data == sealed
    assert attachment.decrypted is False
    expected = "the attachment x.asc could not be decrypted: it is not encrypted to the service key"
    assert any(problem.startswith(expected) for problem in parsed.problems)


def test_huge_attachment_is_dropped_but_its_digest_kept(keyring):
    blob = b"A" * 5000
    raw = mc.message(
        mc.multipart("mixed", [mc.text_part(REPORT), mc.attachment_part("dump.bin", blob)], "mx")
    )

    parsed = parse(raw, keyring, max_attachment_bytes=1000)

    (attachment,) = parsed.attachments
    assert attachment.data is None
    assert attachment.size == 5000
    assert attachment.sha256 == hashlib.sha256(blob).hexdigest()
    expected = "attachment dump.bin is larger than 1000 bytes"
    assert any(problem.startswith(expected) for problem in parsed.problems)


# -- what cannot be read ---------------------------------------------------------------------------


def test_message_encrypted_to_another_key_is_unreadable(keyring, reporter):
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(reporter.cert, mc.text_part(REPORT)))

    with pytest.raises(Unreadable, match="not encrypted to the service key"):
        parse(raw, keyring)


def test_password_encrypted_message_is_unreadable_not_stuck(keyring):
    raw = mc.pgp_mime_encrypted(mc.password_encrypt(mc.text_part(REPORT)))

    with pytest.raises(Unreadable, match="could not be decrypted"):
        parse(raw, keyring)


@pytest.mark.parametrize("kind", ["pgp-mime", "inline"])
def test_corrupted_armor_is_unreadable(keyring, service_cert, kind):
    armored = mc.corrupt_armor(mc.sqop_encrypt(service_cert, mc.text_part(REPORT * 20)))
    raw = mc.pgp_mime_encrypted(armored) if kind == "pgp-mime" else mc.inline_pgp("hi", armored, "")

    with pytest.raises(Unreadable, match="could not be decrypted: .*(armor|damaged)"):
        parse(raw, keyring)


def test_compression_bomb_is_stopped_by_the_plaintext_cap(keyring, service_cert):
    bomb = mc.compression_bomb(service_cert, 50_000_000)
    assert len(bomb) < 200_000  # 50 MB of zeros in a small message
    raw = mc.pgp_mime_encrypted(bomb)

    # "would be": Python found it out, bounded, before gpg (which would inflate it all).
    with pytest.raises(Unreadable, match="would be larger than 1000000 bytes"):
        parse(raw, keyring, max_plaintext_bytes=1_000_000)


def test_unwrap_does_not_inflate_and_verify_with_stops_at_the_cap(keyring, service_cert):
    bomb = mc.compression_bomb(service_cert, 50_000_000)

    unwrapped = keyring.unwrap(bomb, limit=1_000_000)

    assert unwrapped.signed is False
    assert len(unwrapped.data) < len(bomb)  # still compressed
    with pytest.raises(KeyringError, match="would be larger than 1000000 bytes"):
        verify.verify_with([], unwrapped.data, limit=1_000_000)


def test_bzip2_bomb_in_a_signed_only_message_is_stopped_before_gpg(keyring):
    bomb = mc.stored_bzip2_bomb(50_000_000)
    assert len(bomb) < 10_000

    with pytest.raises(Unreadable, match="would be larger than 1000000 bytes"):
        parse(mc.inline_pgp("see below", bomb, ""), keyring, max_plaintext_bytes=1_000_000)


def test_bomb_as_an_attachment_is_noted_and_the_text_kept(keyring, service_cert):
    attachment = mc.attachment_part("core.gpg", mc.compression_bomb(service_cert, 5_000_000))
    raw = mc.message(mc.multipart("mixed", [mc.text_part(REPORT), attachment], "mx"))

    parsed = parse(raw, keyring, max_plaintext_bytes=1_000_000)

    assert parsed.text == REPORT.rstrip("\n")
    assert any("core.gpg could not be decrypted" in p and "larger" in p for p in parsed.problems)


def test_broken_mime_with_nothing_readable_is_unreadable(keyring):
    with pytest.raises(Unreadable, match="MIME structure is broken"):
        parse(mc.broken_multipart(), keyring)


def test_multipart_nested_100_deep_is_refused_without_recursing_100_times(keyring):
    with pytest.raises(Unreadable, match="more than 20 levels deep"):
        parse(mc.nested_multipart(100), keyring)
    assert parse(mc.nested_multipart(15), keyring).text == "deep inside"


def test_too_many_parts_are_refused(keyring):
    parts = [mc.text_part(f"part {n}") for n in range(1001)]

    with pytest.raises(Unreadable, match="more than 1000 parts"):
        parse(mc.message(mc.multipart("mixed", parts, "many")), keyring)


def test_8bit_garbage_headers_and_body_are_read_with_replacement_characters(keyring):
    parsed = parse(mc.garbage_8bit(), keyring)

    readable(parsed)
    assert parsed.subject.startswith("Sicherheitsl\ufffdcke")
    assert parsed.from_address == "joerg@example.org"
    assert parsed.text.startswith("Der Puffer \ufffdberl\ufffduft")
    assert parsed.message_id == "<garbage@example.org>"


def test_empty_message_is_unreadable(keyring):
    with pytest.raises(Unreadable, match="the message is empty"):
        parse(b"\r\n\r\n", keyring)


def test_binary_garbage_is_unreadable(keyring):
    with pytest.raises(Unreadable, match="nothing readable"):
        parse(mc.binary_blob(), keyring)


def test_truncated_and_mangled_messages_raise_only_unreadable(keyring, service_cert, reporter):
    raw = mc.pgp_mime_encrypted(
        mc.sqop_encrypt(service_cert, mc.text_part(REPORT), signer=reporter)
    )
    outcomes = []
    for cut in range(200, len(raw), max(len(raw) // 12, 1)):
        for variant in (raw[:cut], raw[:cut] + b"\xff\x00" + raw[cut + 2 :]):
            try:
                outcomes.append(parse(variant, keyring))
            except Unreadable as error:
                outcomes.append(str(error))
                assert "\n" not in str(error) and "gpg:" not in str(error)
    assert any(isinstance(outcome, str) for outcome in outcomes)
    for outcome in outcomes:
        if isinstance(outcome, ParsedMessage):
            readable(outcome)


def test_an_internal_error_becomes_unreadable_and_logs_no_content(keyring, service_cert, caplog):
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(service_cert, mc.text_part("very secret detail")))
    caplog.set_level(logging.WARNING, logger="forewarn.mail.parse")

    with pytest.raises(Unreadable, match=r"could not be processed \(internal error\)"):
        parse(raw, keyring=None)  # not a keyring: the decryption step fails unexpectedly

    (record,) = [r for r in caplog.records if r.name == "forewarn.mail.parse"]
    assert record.levelno == logging.WARNING
    assert "AttributeError" in record.getMessage()
    assert "very secret" not in caplog.text and "PGP MESSAGE" not in caplog.text


# -- signatures and certificates on their own ------------------------------------------------------


def test_signature_by_an_expired_key_is_expired_key():
    secret, public = mc.gpg_key("Old <old@example.org>", faked_time="20200101T000000")
    signed = mc.gpg_sign(secret, b"written in 2020\n", faked_time="20200601T000000")

    content, check = verify.verify_with([public.decode()], signed)

    assert content == b"written in 2020\n"
    assert check.status == "expired-key"


def test_signature_by_a_revoked_key_is_revoked_key():
    public, signed = mc.gpg_revoked_signer(b"signed before the revocation\n")

    assert verify.verify_with([public.decode()], signed)[1].status == "revoked-key"
    assert verify.verify_with([], signed)[1].status == "unknown-key"


def test_certificate_expiry_is_judged_at_the_instant_given():
    _, public = mc.gpg_key("Old <old@example.org>", faked_time="20200101T000000", expire="1y")

    then = inspect_certificate(public, datetime(2020, 6, 1, tzinfo=UTC))
    now = inspect_certificate(public, datetime(2026, 11, 25, tzinfo=UTC))

    assert then.can_encrypt is True and now.can_encrypt is False
    assert then.expires == now.expires and now.expires.year == 2020 and now.expires.tzinfo
    assert then.user_ids == ("Old <old@example.org>",)
    assert "PRIVATE" not in now.armored


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"no key here", "holds no OpenPGP key"),
        (
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----",
            "armor",
        ),
    ],
)
def test_certificate_errors_are_one_line(data, reason):
    with pytest.raises(CertificateError, match=reason) as caught:
        inspect_certificate(data, datetime.now(UTC))
    assert "\n" not in str(caught.value)


def test_two_keys_or_a_secret_key_are_refused_as_certificates(reporter):
    other = mc.make_reporter("other@example.org")

    with pytest.raises(CertificateError, match="2 keys"):
        inspect_certificate(reporter.cert + other.cert, datetime.now(UTC))
    with pytest.raises(CertificateError, match="secret key material"):
        inspect_certificate(reporter.secret, datetime.now(UTC))
