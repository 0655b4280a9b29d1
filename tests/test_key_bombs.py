"""Compression bombs in key material: a key holding compressed data (or any packet a public key
never has) is refused in Python before gpg sees it, wherever keys arrive: sign-up, key
replacement and the admin's form (inspect_registration_key), keys attached to mail and Autocrypt
headers (inspect_certificate). gpg inflates compressed packets wherever it finds them: a 5 KB
"key" of gigabytes of zeros cost ~10 s of CPU per sign-up or mail.

The bombs here inflate to 8 MiB (cheap to build); tests that must show gpg never ran take gpg
off PATH: a refusal that still comes is the packet check's."""

import base64
import re
from datetime import UTC, datetime

import pytest

from app.models import Registrant
from keys import packets
from keys.inspect import CertificateError, inspect_certificate, inspect_registration_key
from mail.parse import parse
from tests import keyfactory as kf
from tests import mailcorpus as mc
from tests.test_web_registry import apply, one_line, text

EMAIL = "psirt@maker.example"  # kf.UID's address, MAKER in test_web_registry
NOW = datetime.now(UTC)
REPORT = "The CAN driver overflows rx_buf with a 70-byte frame.\n"
COMPRESSED = "compressed data (OpenPGP packet type 8), which a public key never has"
BOMBS = [
    ("appended", "bzip2"),
    ("appended", "zip"),
    ("partial", "zlib"),
    ("markers", "bzip2"),
    ("wrapped", "zlib"),
]


@pytest.fixture(scope="module")
def good():
    return kf.ed25519_cv25519()


@pytest.fixture
def no_gpg(monkeypatch, tmp_path):
    """No gpg (nor gpgconf) on PATH: whatever still answers here never ran it."""
    monkeypatch.setenv("PATH", str(tmp_path))


def test_the_bombs_are_small_and_gpg_would_import_the_wrapped_one(good):
    """What the refusals below stop: a few KB that inflate to 8 MiB, and gpg 2.2 inflates the
    ones of markers and imports the key (as it accepted the probe's bombs)."""
    for how, algorithm in BOMBS:
        assert len(kf.bomb_key(good, algorithm=algorithm, how=how)) < 20_000
    for how in ("markers", "wrapped"):
        with mc.scratch_dir() as home:
            bomb = kf.bomb_key(good, how=how)
            said = mc.gpg_in(home, "--import", "--status-fd", "1", input=bomb)
        assert f"IMPORT_OK 1 {good.fingerprint}".encode() in said


@pytest.mark.parametrize(("how", "algorithm"), BOMBS)
def test_a_bomb_key_is_refused_for_registration_without_running_gpg(good, no_gpg, how, algorithm):
    bomb = kf.bomb_key(good, algorithm=algorithm, how=how)

    with pytest.raises(CertificateError) as caught:
        inspect_registration_key(bomb, EMAIL, NOW)

    assert str(caught.value) == (
        f"this holds {COMPRESSED}: export only your public key (gpg --armor --export FINGERPRINT)"
    )


@pytest.mark.parametrize(("how", "algorithm"), BOMBS)
def test_a_bomb_key_is_refused_as_a_certificate_without_running_gpg(good, no_gpg, how, algorithm):
    bomb = kf.bomb_key(good, algorithm=algorithm, how=how)

    for form in (bomb, packets.dearmor(bomb)):  # attached (armored), Autocrypt (binary)
        with pytest.raises(CertificateError) as caught:
            inspect_certificate(form, NOW)
        assert str(caught.value) == f"it holds {COMPRESSED}"


@pytest.mark.parametrize(
    ("tag", "what"),
    [
        (11, "literal data (a message)"),
        (18, "encrypted data"),
        (1, "an encrypted session key"),
        (60, "a packet of an unknown kind"),
    ],
)
def test_any_packet_a_public_key_never_has_is_refused_by_its_kind(good, no_gpg, tag, what):
    key = kf.armor(good.binary + kf.packet(tag, b"\x04" + bytes(64)))

    with pytest.raises(CertificateError) as caught:
        inspect_certificate(key, NOW)

    assert (
        str(caught.value)
        == f"it holds {what} (OpenPGP packet type {tag}), which a public key never has"
    )


def test_a_key_of_more_than_2000_packets_is_refused_before_gpg(good, no_gpg):
    flooded = kf.armor(good.binary + kf.MARKER * packets.MAX_KEY_PACKETS)

    with pytest.raises(CertificateError, match="it has more than 2000 packets"):
        inspect_certificate(flooded, NOW)
    with pytest.raises(CertificateError, match="export-minimal"):
        inspect_registration_key(flooded, EMAIL, NOW)


def test_a_certificate_over_1_mib_is_refused_before_gpg(no_gpg):
    with pytest.raises(CertificateError, match=r"^it is 5\.0 MB; a public key is a few KB$"):
        inspect_certificate(kf.big_blob(), NOW)


# -- keys from gpg and Sequoia still pass --------------------------------------------------------


@pytest.fixture(scope="module")
def several_user_ids():
    """An RSA-3072 key from gpg with three user ids, a signing and an encryption subkey."""
    with mc.scratch_dir() as home:
        fingerprint = kf._generate(
            home, kf.UID, primary="rsa3072", subkeys=(("rsa3072", "sign"), ("rsa3072", "encr"))
        )
        for uid in ("Sales <sales@maker.example>", "Maker Support <support@maker.example>"):
            mc.gpg_in(home, "--quick-add-uid", fingerprint, uid)
        return kf._export(home, kf.UID, fingerprint)


def test_real_keys_with_subkeys_and_several_user_ids_still_pass(good, several_user_ids):
    """Not a regression test of a defect: the packet check lets every real key through."""
    _, sqop_cert = kf.sqop_key(kf.UID)
    for key in (good.public, good.binary, several_user_ids.public, sqop_cert):
        assert inspect_registration_key(key, EMAIL, NOW).can_encrypt
        assert inspect_certificate(key, NOW).can_encrypt
    listed = inspect_certificate(several_user_ids.public, NOW)
    assert len(listed.user_ids) == 3 and listed.fingerprint == several_user_ids.fingerprint


# -- where keys arrive -------------------------------------------------------------------------


def test_a_report_with_bomb_keys_attached_is_read_and_the_keys_noted_unusable(keyring, good):
    reporter = mc.make_reporter()
    bombs = [kf.bomb_key(good, algorithm=algorithm, how=how) for how, algorithm in BOMBS[:4]]
    keys = [mc.key_part(bomb, f"bomb{number}.asc") for number, bomb in enumerate(bombs)]
    keys.append(mc.key_part(reporter.cert))  # the fifth key, a real one, is still taken
    raw = mc.message(mc.multipart("mixed", [mc.text_part(REPORT), *keys], "mx"))

    parsed = parse(raw, keyring)

    assert parsed.text == REPORT.rstrip("\n")
    unusable = [problem for problem in parsed.problems if "unusable" in problem]
    assert unusable == [f"attached key unusable: it holds {COMPRESSED}"] * 4
    assert parsed.reporter_certificate is not None
    assert inspect_certificate(parsed.reporter_certificate, NOW).fingerprint == reporter.fingerprint


def test_an_autocrypt_header_with_a_bomb_key_is_noted_unusable(keyring, good):
    binary = packets.dearmor(kf.bomb_key(good, how="wrapped"))
    keydata = base64.b64encode(binary).decode()
    header = ("Autocrypt", f"addr=rita@example.org; prefer-encrypt=mutual; keydata={keydata}")
    raw = mc.plain(REPORT, headers=[header])

    parsed = parse(raw, keyring)

    assert parsed.reporter_certificate is None
    assert f"Autocrypt key unusable: it holds {COMPRESSED}" in parsed.problems


def test_a_sign_up_with_a_bomb_key_is_refused_at_the_key_field(client, db, clock, good):
    response = apply(client, kf.bomb_key(good, how="markers"))  # gpg 2.2 would take it

    assert response.status_code == 400
    error = re.search(r'<p class="error" id="key_text-error">([^<]*)</p>', text(response))
    assert error, one_line(text(response))
    assert f"The key was not accepted: this holds {COMPRESSED}" in error.group(1)
    assert Registrant.select().count() == 0


@pytest.mark.db
def test_registrants_add_with_a_bomb_key_fails_in_one_line_and_adds_nothing(
    forewarn, good, tmp_path
):
    assert forewarn("init").returncode == 0
    (tmp_path / "bomb.asc").write_bytes(kf.bomb_key(good, how="markers"))

    added = forewarn(
        "registrants",
        "add",
        "--email",
        EMAIL,
        "--org",
        "Maker",
        "--key",
        str(tmp_path / "bomb.asc"),
    )

    assert added.returncode == 1 and added.stderr.count("\n") == 1
    assert f"this holds {COMPRESSED}" in added.stderr
    assert forewarn("registrants", "list", "--json").stdout.strip() == "[]"
