"""A product maker's OpenPGP key for pre-disclosure alerts (keys.inspect.inspect_registration_key):
each bad upload is refused with a one-line message that says what to fix; good keys from gpg and
Sequoia are accepted, armored or binary, and stored as a minimal export.

Whether the fingerprint is already another registrant's is the registry's rule (the database);
it is tested there, not here."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from keys.inspect import CertificateError, inspect_registration_key
from tests import keyfactory as kf
from tests.mailcorpus import corrupt_armor, run, scratch_dir

EMAIL = "psirt@maker.example"
NOW = datetime.now(UTC)


def refused(data: bytes | str, email: str = EMAIL, at: datetime = NOW, **options) -> str:
    """The message of the CertificateError the upload gets; it must be one line."""
    with pytest.raises(CertificateError) as caught:
        inspect_registration_key(data, email, at, **options)
    message = str(caught.value)
    assert "\n" not in message and "gpg:" not in message
    return message


def signature_issuers(armored: bytes | str) -> list[str]:
    """The issuer key id of every signature packet, as `gpg --list-packets` shows them."""
    data = armored.encode() if isinstance(armored, str) else armored
    with scratch_dir() as home:
        packets = run("gpg", "--homedir", str(home), "--batch", "--list-packets", input=data)
    return re.findall(r":signature packet: algo \d+, keyid ([0-9A-F]{16})", packets.decode())


def sqop_round_trip(certificate: str, secret: bytes) -> bytes:
    """Encrypt to the certificate with Sequoia, decrypt with the key's secret: it works."""
    with scratch_dir() as folder:
        (folder / "cert").write_text(certificate)
        (folder / "key").write_bytes(secret)
        message = run("sqop", "encrypt", str(folder / "cert"), input=b"alert\n")
        return run("sqop", "decrypt", str(folder / "key"), input=message)


@pytest.fixture(scope="module")
def good():
    return kf.ed25519_cv25519()


# -- bad uploads, one each ----------------------------------------------------------------------


def test_truncated_armor_is_refused_as_cut_off(good):
    message = refused(kf.truncated_armor(good.public))

    assert message.startswith("the ASCII armor is cut off (no END PGP PUBLIC KEY BLOCK line)")
    assert "upload the whole file" in message


def test_damaged_armor_and_cut_off_binary_are_refused(good):
    assert refused(corrupt_armor(good.public)).startswith("the ASCII armor is damaged")
    assert refused(good.binary[:-40]).startswith("the key data is cut off or damaged")


@pytest.mark.parametrize("form", ["gpg armored", "gpg binary", "sqop"])
def test_a_secret_key_is_refused_and_never_sent(good, form):
    secret = {
        "gpg armored": lambda: good.secret,
        "gpg binary": lambda: run("gpg", "--dearmor", input=good.secret),
        "sqop": lambda: kf.sqop_key()[0],
    }[form]()

    message = refused(secret)

    assert message.startswith("this is a SECRET key: never send it")
    assert "export the public key with gpg --armor --export" in message


@pytest.mark.parametrize("builder", [kf.two_keys_concatenated, kf.two_keys_in_one_block])
def test_two_keys_in_one_upload_are_refused(builder):
    assert refused(builder()).startswith("the upload holds 2 keys; upload exactly one")


def test_an_expired_key_is_refused_with_how_to_extend_it():
    key = kf.expired()

    message = refused(key.public)

    assert message.startswith(f"the key {key.fingerprint} expired on 2020-12-31: extend it")
    assert f"gpg --quick-set-expire {key.fingerprint} 2y" in message


def test_an_expired_encryption_subkey_is_refused_with_how_to_extend_it():
    key = kf.expired_encryption_subkey()

    message = refused(key.public)

    assert message.startswith(f"the encryption subkey of {key.fingerprint} expired on 2020-12-31")
    assert re.search(rf"gpg --quick-set-expire {key.fingerprint} 2y [0-9A-F]{{40}},", message)


def test_a_revoked_key_is_refused():
    key = kf.revoked()

    assert refused(key.public) == f"the key {key.fingerprint} is revoked: upload a current key"


def test_a_revoked_encryption_subkey_is_refused_with_how_to_add_one():
    key = kf.revoked_encryption_subkey()

    message = refused(key.public)

    assert message.startswith(f"the encryption subkey of {key.fingerprint} is revoked")
    assert f"gpg --quick-add-key {key.fingerprint} cv25519 encr" in message


def test_a_sign_only_key_is_refused_with_how_to_add_an_encryption_subkey():
    key = kf.ed25519_sign_only()

    assert refused(key.public) == (
        f"the key {key.fingerprint} has no encryption subkey: add one with "
        f"gpg --quick-add-key {key.fingerprint} cv25519 encr, then upload it again"
    )


def test_rsa_1024_is_refused_as_too_weak():
    key = kf.rsa1024()

    assert refused(key.public) == (
        f"the key {key.fingerprint} is RSA-1024, which is too weak: "
        "use RSA 3072+ or an elliptic-curve key (ed25519/cv25519)"
    )


def test_a_weak_primary_with_a_strong_encryption_subkey_is_refused():
    key = kf.rsa1024_primary_cv25519()

    assert refused(key.public).startswith(f"the key {key.fingerprint} is RSA-1024, which is too")


def test_a_weak_encryption_subkey_under_a_strong_primary_is_refused():
    key = kf.rsa(3072, sub_bits=1024)

    message = refused(key.public)

    assert re.match(
        rf"the encryption subkey [0-9A-F]{{40}} of {key.fingerprint} is RSA-1024", message
    )
    assert message.endswith("use RSA 3072+ or an elliptic-curve key (ed25519/cv25519)")


def test_a_user_id_without_the_sign_up_email_is_refused_with_how_to_add_one(good):
    message = refused(good.public, email="alerts@maker.example")

    assert message == (
        f"no user id of the key {good.fingerprint} holds alerts@maker.example "
        f"(it has: {kf.UID}): add one with gpg --quick-add-uid {good.fingerprint} "
        "'Name <alerts@maker.example>', then upload it again"
    )


def test_the_email_must_be_the_whole_address_not_part_of_one():
    key = kf.ed25519_cv25519("Maker <not-psirt@maker.example.org>")

    assert refused(key.public).startswith("no user id of the key")


def test_a_revoked_user_id_does_not_count():
    key = kf.revoked_user_id()

    message = refused(key.public)

    assert "(it has: Sales <sales@maker.example>)" in message
    assert inspect_registration_key(key.public, "sales@maker.example", NOW).notes == ()


def test_the_same_key_is_accepted_twice_here_because_reuse_is_the_registrys_rule(good):
    """ "Fingerprint already used by another registrant" needs the database: keys/ keeps no
    state between inspections, and the registry refuses the second registration."""
    first = inspect_registration_key(good.public, EMAIL, NOW)
    second = inspect_registration_key(good.binary, EMAIL, NOW)

    assert first.fingerprint == second.fingerprint == good.fingerprint


def test_a_5_mb_blob_is_refused_as_too_large():
    assert refused(kf.big_blob()) == (
        "the upload is 5.0 MB; a public key is a few KB: "
        "export only your public key (gpg --armor --export FINGERPRINT)"
    )


def test_the_size_limit_is_a_parameter(good):
    size = f"{len(good.public) / 1024:.1f} KB"
    assert refused(good.public, max_bytes=200).startswith(f"the upload is {size}; a public")
    assert inspect_registration_key(good.public, EMAIL, NOW, max_bytes=len(good.public))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (kf.garbage(), "this is not an OpenPGP public key"),
        (b"my key is on the keyserver", "this is not an OpenPGP public key"),
        (b"\x00", "this is not an OpenPGP public key"),
        # A public-key packet header (old format, tag 6) claiming 65 KB, then garbage.
        (b"\x99\xff\xff" + kf.garbage(64), "the key data is cut off or damaged"),
    ],
    ids=["binary", "text", "nul", "binary-like-a-key"],
)
def test_garbage_is_refused_as_not_a_key(data, reason):
    message = refused(data)

    assert message.startswith(reason)
    assert "gpg --armor --export FINGERPRINT" in message


def test_an_empty_upload_and_an_armored_message_are_refused():
    assert refused(b"  \n").startswith("the upload is empty: export only your public key")
    assert refused(kf.armored_message()).startswith(
        "this is an OpenPGP message, not a public key: export only your public key"
    )


# -- good keys ---------------------------------------------------------------------------------


def test_an_ed25519_cv25519_key_from_gpg_is_accepted_armored_binary_or_pasted(good):
    pasted = good.public.decode().replace("\n", "\r\n")  # a web form's text area
    for upload in (good.public, good.binary, pasted):
        certificate = inspect_registration_key(upload, EMAIL, NOW)

        assert certificate.fingerprint == good.fingerprint
        assert certificate.user_ids == (kf.UID,)
        assert certificate.can_encrypt is True and certificate.notes == ()
        assert certificate.armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert "PRIVATE" not in certificate.armored
        expected = NOW + timedelta(days=2 * 365)
        assert abs(certificate.encryption_expires - expected) < timedelta(days=2)
        assert certificate.expires == certificate.encryption_expires
    assert sqop_round_trip(certificate.armored, good.secret) == b"alert\n"


@pytest.mark.parametrize("bits", [3072, 2048])
def test_rsa_keys_of_2048_bits_and_more_are_accepted(bits):
    key = kf.rsa(bits)

    certificate = inspect_registration_key(key.public, EMAIL, NOW)

    assert certificate.fingerprint == key.fingerprint
    assert sqop_round_trip(certificate.armored, key.secret) == b"alert\n"


def test_a_key_from_sqop_generate_key_is_accepted():
    secret, cert = kf.sqop_key("Maker PSIRT <PSIRT@Maker.Example>")

    certificate = inspect_registration_key(cert, EMAIL, NOW)  # addresses match in any case

    assert certificate.user_ids == ("Maker PSIRT <PSIRT@Maker.Example>",)
    assert certificate.encryption_expires is not None and certificate.encryption_expires > NOW
    assert sqop_round_trip(certificate.armored, secret) == b"alert\n"


def test_a_bare_address_user_id_and_a_non_ascii_name_are_read():
    assert inspect_registration_key(kf.ed25519_cv25519(EMAIL).public, EMAIL, NOW)
    key = kf.ed25519_cv25519("Jörg Müller <psirt@maker.example>")

    assert inspect_registration_key(key.public, EMAIL, NOW).user_ids == (key.uid,)


def test_third_party_signatures_are_dropped_from_the_stored_certificate():
    key, signer = kf.third_party_signed()
    assert signer in signature_issuers(key.public)

    certificate = inspect_registration_key(key.public, EMAIL, NOW)

    issuers = signature_issuers(certificate.armored)
    assert signer not in issuers
    assert issuers and set(issuers) == {key.keyid}  # the self-signatures stay


def test_allow_other_uid_accepts_the_key_and_notes_the_mismatch(good):
    certificate = inspect_registration_key(
        good.public, "alerts@maker.example", NOW, allow_other_uid=True
    )

    assert certificate.fingerprint == good.fingerprint
    (note,) = certificate.notes
    assert "no user id holds alerts@maker.example" in note and kf.UID in note
    assert "administrator" in note


# -- expiry is judged at the instant given -----------------------------------------------------


def test_a_key_valid_now_is_refused_as_expired_at_a_later_instant(good):
    later = NOW + timedelta(days=3 * 365)

    message = refused(good.public, at=later)

    ends = inspect_registration_key(good.public, EMAIL, NOW).expires
    assert message.startswith(f"the key {good.fingerprint} expired on {ends:%Y-%m-%d}")


def test_an_expired_key_is_accepted_at_an_instant_before_its_expiry():
    key = kf.expired()

    certificate = inspect_registration_key(key.public, EMAIL, datetime(2020, 6, 1, tzinfo=UTC))

    assert certificate.encryption_expires.date().isoformat() == "2020-12-31"
    assert refused(key.public, at=datetime(2021, 1, 2, tzinfo=UTC)).endswith("upload it again")


def test_encryption_expiry_is_capped_by_the_primary_keys():
    key = kf.subkey_outlives_primary()

    certificate = inspect_registration_key(key.public, EMAIL, NOW)

    assert certificate.expires is not None
    assert certificate.encryption_expires == certificate.expires


def test_a_naive_instant_is_a_programming_error(good):
    with pytest.raises(ValueError, match="aware"):
        inspect_registration_key(good.public, EMAIL, datetime(2026, 1, 1))
