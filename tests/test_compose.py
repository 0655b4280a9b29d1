"""Outgoing PGP/MIME, composed with real GnuPG and read back by other implementations.

Sequoia's `sqop` and RNP (what Thunderbird uses) play the reporter's and the product maker's
mail clients. Parts are cut out of the raw bytes as sent, never regenerated from a parsed
message, because that is what a receiving client verifies.
"""

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys.keyring import KeyringError
from mail.compose import Outgoing, signed, signed_and_encrypted
from tests.openpgp import (
    body_of,
    encrypted_payload,
    make_sqop_key,
    parse,
    parts_as_sent,
    run,
    sqop_verifies,
    text_of,
)

REAL_SUBJECT = "[SEC-2026-0001] Heap overflow in the Bluetooth mesh provisioner"
OUTER_SUBJECT = "Security report SEC-2026-0001"
BODY = (
    "Hello Jürgen,\n"
    "\n"
    "thank you for your report; we track it as SEC-2026-0001.\n"
    "From now on, please keep this tracking id in the subject.\n"
    "A line with trailing spaces  \n"
    "\n"
    "Grüße, CVE-2026-1234\n"
    "-- \n"
    "Forewarn security team\n"
)
UNSUBSCRIBE = "<https://security.example.org/portal/unsubscribe/" + "a1b2c3d4" * 12 + ">"


def outgoing(**changes) -> Outgoing:
    message = Outgoing(
        sender="Forewarn security team <security@example.org>",
        recipient="Jürgen Reporter <r@example.org>",
        subject=REAL_SUBJECT,
        outer_subject=REAL_SUBJECT,
        body=BODY,
        message_id="<delivery-42.0f3c9a7e@security.example.org>",
        in_reply_to="<report-1@reporter.example.org>",
        references=["<report-1@reporter.example.org>"],
        auto_submitted="auto-replied",
        date=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    )
    return replace(message, **changes)


@pytest.fixture(scope="module")
def reporter(tmp_path_factory):
    return make_sqop_key(tmp_path_factory.mktemp("reporter") / "r", "Reporter <r@example.org>")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    return make_sqop_key(tmp_path_factory.mktemp("stranger") / "s", "Other <o@example.org>")


@pytest.fixture
def service_cert(keyring, tmp_path) -> Path:
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    return cert


def rnp_home(tmp_path: Path, *keys: Path) -> Path:
    home = tmp_path / "rnp"
    home.mkdir(mode=0o700)
    for key in keys:
        run("rnpkeys", "--homedir", str(home), "--import", str(key))
    return home


def assert_sendable(raw: bytes) -> None:
    assert raw.isascii()
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    assert not [line for line in lines if b"\r" in line or b"\n" in line], "bare CR or LF"
    assert max(len(line) for line in lines) <= 998


# -- signed ----------------------------------------------------------------------------------


def test_signed_part_verifies_with_sequoia_over_the_bytes_as_sent(keyring, service_cert, tmp_path):
    raw = signed(keyring, outgoing())

    text, signature_part = parts_as_sent(raw)

    assert sqop_verifies(text, body_of(signature_part), service_cert, tmp_path)
    assert not sqop_verifies(text + b" ", body_of(signature_part), service_cert, tmp_path)


def test_signed_part_verifies_with_rnp(keyring, service_cert, tmp_path):
    text, signature_part = parts_as_sent(signed(keyring, outgoing()))
    (tmp_path / "part").write_bytes(text)
    (tmp_path / "part.asc").write_bytes(body_of(signature_part))
    home = rnp_home(tmp_path, service_cert)

    verified = run(
        *("rnp", "--homedir", str(home), "--verify", str(tmp_path / "part.asc")),
        *("--source", str(tmp_path / "part")),
    )

    assert keyring.fingerprint().lower() in (verified.stdout + verified.stderr).decode()


def test_signed_message_is_rfc3156_multipart_signed_with_micalg_of_the_hash_used(keyring, tmp_path):
    raw = signed(keyring, outgoing())
    message = parse(raw)
    _, signature_part = parts_as_sent(raw)
    (tmp_path / "sig.asc").write_bytes(body_of(signature_part))

    packets = json.loads(run("rnp", "--list-packets", "--json", str(tmp_path / "sig.asc")).stdout)

    assert message.get_content_type() == "multipart/signed"
    assert message.get_param("protocol") == "application/pgp-signature"
    assert [p["hash algorithm.str"].lower() for p in packets] == [message.get_param("micalg")[4:]]
    assert message.get_param("micalg").startswith("pgp-")
    signature = message.get_payload()[1]
    assert signature.get_content_type() == "application/pgp-signature"
    assert signature.get_param("name") == "signature.asc"
    assert signature.get("Content-Transfer-Encoding") is None  # 7-bit armor, not base64
    assert body_of(signature_part).startswith(b"-----BEGIN PGP SIGNATURE-----\r\n")


def test_real_headers_are_protected_inside_the_signed_part(keyring):
    text, _ = parts_as_sent(signed(keyring, outgoing(outer_subject=OUTER_SUBJECT)))

    inner = parse(text)

    assert inner.get_content_type() == "text/plain"
    assert inner.get_param("protected-headers") == "v1"
    assert inner["Subject"] == REAL_SUBJECT
    assert inner["From"] == "Forewarn security team <security@example.org>"
    assert inner["To"] == "Jürgen Reporter <r@example.org>"
    assert inner["Message-ID"] == "<delivery-42.0f3c9a7e@security.example.org>"
    assert inner["In-Reply-To"] == "<report-1@reporter.example.org>"
    assert inner["Date"] == "Wed, 25 Nov 2026 12:00:00 +0000"


def test_non_ascii_body_survives_as_quoted_printable(keyring):
    raw = signed(keyring, outgoing())
    text, _ = parts_as_sent(raw)

    inner = parse(text)

    assert inner["Content-Transfer-Encoding"] == "quoted-printable"
    assert inner.get_content_charset() == "utf-8"
    assert text_of(text) == BODY
    assert "Grüße, CVE-2026-1234" in text_of(text)
    assert_sendable(raw)


def test_from_lines_and_trailing_spaces_are_encoded_so_relays_cannot_alter_them(keyring):
    text, _ = parts_as_sent(signed(keyring, outgoing()))

    assert b"\r\nFrom now on" not in text
    assert b"\r\n=46rom now on" in text
    assert not [line for line in text.split(b"\r\n") if line != line.rstrip(b" \t")]
    assert text_of(text) == BODY


def test_plain_ascii_body_is_sent_as_7bit(keyring):
    body = "Your report SEC-2026-0001 was received.\n"

    text, _ = parts_as_sent(signed(keyring, outgoing(body=body)))

    assert parse(text)["Content-Transfer-Encoding"] == "7bit"
    assert body_of(text) == b"Your report SEC-2026-0001 was received.\r\n"


def test_long_lines_ids_and_urls_stay_within_998_octets_and_unencoded(keyring):
    message_id = "<delivery-" + "9" * 90 + "@security.example.org>"
    long_line = "https://example.org/" + "x" * 2500
    raw = signed(
        keyring,
        outgoing(
            subject="Grüße " + "long subject words " * 20,
            message_id=message_id,
            in_reply_to=message_id,
            references=[f"<id-{n}-{'z' * 60}@example.org>" for n in range(30)],
            body=f"See\n{long_line}\n",
            extra_headers={"List-Unsubscribe": UNSUBSCRIBE},
        ),
    )
    message = parse(raw)
    text, _ = parts_as_sent(raw)

    assert_sendable(raw)
    assert f"Message-ID: {message_id}\r\n".encode() in raw
    assert f"List-Unsubscribe: {UNSUBSCRIBE}\r\n".encode() in raw
    assert message["List-Unsubscribe"] == UNSUBSCRIBE
    assert message["Auto-Submitted"] == "auto-replied"
    assert len(message["References"].split()) == 30
    assert text_of(text) == f"See\n{long_line}\n"


def test_a_subject_with_a_line_break_is_sent_on_one_line(keyring):
    # A title kept from before titles were checked must not stop its mails (nor add headers).
    hostile = "hello\r\nBcc: everyone@example.org\x1b\u2028again"
    raw = signed(keyring, outgoing(subject=hostile, outer_subject=hostile))
    message = parse(raw)
    expected = "hello Bcc: everyone@example.org again"
    assert message["Subject"] == expected and "Bcc" not in message
    text, _ = parts_as_sent(raw)
    assert parse(text)["Subject"] == expected and "Bcc" not in parse(text)


def test_any_other_header_with_a_line_break_is_refused(keyring):
    with pytest.raises(ValueError, match="line break"):
        signed(keyring, outgoing(in_reply_to="<a@b>\r\nBcc: everyone@example.org"))


def test_extra_header_cannot_replace_one_compose_writes(keyring):
    with pytest.raises(ValueError, match="Subject"):
        signed(keyring, outgoing(extra_headers={"Subject": REAL_SUBJECT}))


def test_naive_date_is_refused(keyring):
    with pytest.raises(ValueError, match="timezone-aware"):
        signed(keyring, outgoing(date=datetime(2026, 11, 25, 12, 0)))


def test_date_defaults_to_now_the_same_inside_and_outside(keyring):
    # mail/ has no clock of its own (the application passes its own as `date`): now, then.
    before = datetime.now(UTC).replace(microsecond=0)
    raw = signed(keyring, outgoing(date=None))
    after = datetime.now(UTC)
    text, _ = parts_as_sent(raw)

    outer, inner = parse(raw)["Date"].datetime, parse(text)["Date"].datetime
    assert outer == inner
    assert before <= outer <= after


# -- signed and encrypted ------------------------------------------------------------------------


def test_encrypted_message_decrypts_with_sequoia_to_a_signed_entity_that_verifies(
    keyring, reporter, service_cert, tmp_path
):
    raw = signed_and_encrypted(
        keyring,
        outgoing(outer_subject=OUTER_SUBJECT),
        reporter.cert.read_text(),
        reporter.fingerprint,
    )

    entity = run("sqop", "decrypt", str(reporter.secret), input=encrypted_payload(raw)).stdout
    text, signature_part = parts_as_sent(entity)

    assert parse(entity).get_content_type() == "multipart/signed"
    assert sqop_verifies(text, body_of(signature_part), service_cert, tmp_path)
    assert parse(text)["Subject"] == REAL_SUBJECT
    assert text_of(text) == BODY


def test_encrypted_message_decrypts_with_rnp_to_the_same_entity(keyring, reporter, tmp_path):
    raw = signed_and_encrypted(
        keyring,
        outgoing(outer_subject=OUTER_SUBJECT),
        reporter.cert.read_text(),
        reporter.fingerprint,
    )
    (tmp_path / "encrypted.asc").write_bytes(encrypted_payload(raw))
    home = rnp_home(tmp_path, reporter.secret)

    by_rnp = run(
        *("rnp", "--homedir", str(home), "--decrypt", str(tmp_path / "encrypted.asc")),
        *("--output", "-"),
    ).stdout
    by_sqop = run("sqop", "decrypt", str(reporter.secret), input=encrypted_payload(raw)).stdout

    assert by_rnp == by_sqop
    assert by_rnp.startswith(b"Content-Type: multipart/signed;")


def test_encrypted_message_structure_is_rfc3156_multipart_encrypted(keyring, reporter):
    raw = signed_and_encrypted(keyring, outgoing(), reporter.cert.read_text(), reporter.fingerprint)

    message = parse(raw)
    version, encrypted = message.get_payload()

    assert message.get_content_type() == "multipart/encrypted"
    assert message.get_param("protocol") == "application/pgp-encrypted"
    assert version.get_content_type() == "application/pgp-encrypted"
    assert encrypted.get_content_type() == "application/octet-stream"
    assert encrypted.get_param("name") == "encrypted.asc"
    assert encrypted.get("Content-Transfer-Encoding") is None  # 7-bit armor, not base64
    assert encrypted_payload(raw).startswith(b"-----BEGIN PGP MESSAGE-----\r\n")
    assert_sendable(raw)


def test_outer_headers_of_encrypted_message_reveal_nothing_of_the_content(keyring, reporter):
    raw = signed_and_encrypted(
        keyring,
        outgoing(outer_subject=OUTER_SUBJECT, extra_headers={"List-Unsubscribe": UNSUBSCRIBE}),
        reporter.cert.read_text(),
        reporter.fingerprint,
    )

    message = parse(raw)

    assert message["Subject"] == OUTER_SUBJECT
    assert b"Heap overflow" not in raw
    assert b"Bluetooth" not in raw
    assert b"tracking id" not in raw
    assert {name.lower() for name in message} == {
        "date",
        "from",
        "to",
        "subject",
        "message-id",
        "in-reply-to",
        "references",
        "auto-submitted",
        "list-unsubscribe",
        "mime-version",
        "content-type",
    }


def test_encrypting_to_a_certificate_that_is_not_the_pinned_one_is_refused(
    keyring, reporter, stranger
):
    with pytest.raises(KeyringError, match=reporter.fingerprint):
        keyring.encrypt_to(stranger.cert.read_text(), reporter.fingerprint, b"embargoed")
    with pytest.raises(KeyringError):
        signed_and_encrypted(keyring, outgoing(), stranger.cert.read_text(), reporter.fingerprint)


def test_encrypting_to_a_certificate_holding_two_keys_is_refused(keyring, reporter, stranger):
    both = reporter.cert.read_text() + stranger.cert.read_text()

    with pytest.raises(KeyringError):
        keyring.encrypt_to(both, reporter.fingerprint, b"embargoed")


def test_encrypt_to_does_not_import_the_recipient_into_the_service_keyring(keyring, reporter):
    service = keyring.fingerprint()

    armored = keyring.encrypt_to(reporter.cert.read_text(), reporter.fingerprint, b"embargoed")

    assert [key["fingerprint"] for key in keyring.gpg.list_keys()] == [service]
    assert [key["fingerprint"] for key in keyring.gpg.list_keys(secret=True)] == [service]
    decrypted = run("sqop", "decrypt", str(reporter.secret), input=armored.encode()).stdout
    assert decrypted == b"embargoed"
