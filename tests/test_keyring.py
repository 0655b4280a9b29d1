"""The service keyring against real GnuPG, checked by other OpenPGP implementations.

Sequoia's `sqop` and RNP stand in for the reporters and product makers on the other end: what
they accept is what the world will accept.
"""

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys.errors import KeySetupError
from keys.keyring import KeyringError, ServiceKeyring, primary_fingerprints
from tests.conftest import short_tempdir, wait_for
from tests.openpgp import decrypted, run

MESSAGE = "Bericht über CVE-2026-0001\r\nline two\n".encode() + bytes(range(256))


def agent_pids(home: Path) -> list[int]:
    """The gpg-agent processes serving this GnuPG home, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(os.fsdecode(argv[0])).name == "gpg-agent" and os.fsencode(home) in argv:
            pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class PlainKey:
    fingerprint: str
    secret: bytes
    public: bytes


def make_plain_gpg_key(email: str) -> PlainKey:
    """A key made by plain gpg in a throwaway home, as an operator would bring one."""
    home = short_tempdir("fwk")
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    gpg += ["--passphrase", ""]
    try:
        run(*gpg, "--quick-gen-key", f"Other desk <{email}>", "ed25519", "sign", "1y")
        listing = run(*gpg, "--with-colons", "--list-secret-keys").stdout.decode()
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        run(*gpg, "--quick-add-key", fingerprint, "cv25519", "encr", "1y")
        secret = run(*gpg, "--armor", "--export-secret-keys", fingerprint).stdout
        public = run(*gpg, "--armor", "--export", fingerprint).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)
    return PlainKey(fingerprint, secret, public)


@pytest.fixture(scope="module")
def plain_key():
    return make_plain_gpg_key("other@example.org")


@pytest.fixture
def fresh_home():
    """A GnuPG home of its own (no key yet), its agent stopped afterwards."""
    folder = short_tempdir("fwh")
    yield folder / "gpg"
    ServiceKeyring(folder / "gpg").stop_agent()
    shutil.rmtree(folder, ignore_errors=True)


# -- the generated key ---------------------------------------------------------------------------


def test_generated_key_is_ed25519_signing_with_cv25519_encryption_subkey(keyring, settings):
    key = keyring.describe()

    assert key["fingerprint"] == keyring.fingerprint()
    assert key["algo"] == "22"  # EdDSA
    assert key["curve"] == "ed25519"
    assert "s" in key["cap"]
    assert "e" not in key["cap"]  # the primary signs; only the subkey encrypts
    assert len(key["subkeys"]) == 1
    (subkey,) = key["subkey_info"].values()
    assert subkey["algo"] == "18"  # ECDH
    assert subkey["curve"] == "cv25519"
    assert subkey["cap"] == "e"
    assert [uid for uid in key["uids"] if f"<{settings.security_address}>" in uid]


def test_generated_key_expires_about_two_years_after_creation(keyring):
    key = keyring.describe()

    created = datetime.fromtimestamp(int(key["date"]), UTC)
    expires = datetime.fromtimestamp(int(key["expires"]), UTC)
    assert 728 <= (expires - created).days <= 732
    (subkey,) = key["subkey_info"].values()
    assert subkey["expires"] == key["expires"]


def test_generating_a_second_service_key_is_refused(keyring):
    first = keyring.fingerprint()

    with pytest.raises(KeyringError):
        keyring.generate("someone@example.org")
    assert keyring.fingerprint() == first


def test_keyring_without_a_key_reports_none_and_asks_for_init(fresh_home):
    ring = ServiceKeyring(fresh_home)

    assert ring.fingerprint() is None
    with pytest.raises(KeySetupError, match="forewarn init"):
        ring.export_public()
    with pytest.raises(KeySetupError, match="forewarn init"):
        ring.sign_detached(b"x")


def test_home_and_the_folders_made_for_it_are_private(tmp_path):
    home = tmp_path / "instance" / "deeper" / "gpg"

    ServiceKeyring(home).ensure_home()

    for folder in (tmp_path / "instance", tmp_path / "instance" / "deeper", home):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# -- other implementations accept it ---------------------------------------------------------------


def test_exported_key_is_accepted_by_sequoia_for_encryption(keyring, tmp_path):
    cert = tmp_path / "cert.asc"
    cert.write_text(keyring.export_public())

    encrypted = run("sqop", "encrypt", str(cert), input=MESSAGE).stdout

    assert encrypted.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert decrypted(keyring, encrypted) == MESSAGE


def test_export_holds_the_public_certificate_only(keyring):
    armored = keyring.export_public()

    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE KEY" not in armored


def test_detached_signature_verifies_with_sequoia(keyring, tmp_path):
    cert = tmp_path / "cert.asc"
    cert.write_text(keyring.export_public())
    signature = tmp_path / "sig.asc"
    signature.write_text(keyring.sign_detached(MESSAGE).armored)

    good = run("sqop", "verify", str(signature), str(cert), input=MESSAGE)
    tampered = run("sqop", "verify", str(signature), str(cert), input=MESSAGE + b"!", check=False)

    assert keyring.fingerprint() in good.stdout.decode()
    assert tampered.returncode != 0


def test_detached_signature_verifies_with_rnp(keyring, tmp_path):
    rnp_home = tmp_path / "rnp"
    rnp_home.mkdir(mode=0o700)
    cert = tmp_path / "cert.asc"
    cert.write_text(keyring.export_public())
    signature = tmp_path / "sig.asc"
    signature.write_text(keyring.sign_detached(MESSAGE).armored)
    data = tmp_path / "data"
    data.write_bytes(MESSAGE)
    tampered = tmp_path / "tampered"
    tampered.write_bytes(MESSAGE + b"!")
    run("rnpkeys", "--homedir", str(rnp_home), "--import", str(cert))

    good = run("rnp", "--homedir", str(rnp_home), "--verify", str(signature), "--source", str(data))
    bad = run(
        "rnp",
        *("--homedir", str(rnp_home), "--verify", str(signature), "--source", str(tampered)),
        check=False,
    )

    assert keyring.fingerprint().lower() in good.stdout.decode() + good.stderr.decode()
    assert bad.returncode != 0


def test_signature_hash_algo_names_the_digest_actually_used(keyring, tmp_path):
    signed = keyring.sign_detached(b"body of a PGP/MIME part\r\n")
    signature = tmp_path / "sig.asc"
    signature.write_text(signed.armored)

    packets = json.loads(run("rnp", "--list-packets", "--json", str(signature)).stdout)

    assert signed.hash_algo in ("sha256", "sha384", "sha512")
    assert [p["hash algorithm.str"].lower() for p in packets] == [signed.hash_algo]
    assert signed.armored.startswith("-----BEGIN PGP SIGNATURE-----")


def test_decrypting_garbage_raises_keyring_error(keyring):
    with pytest.raises(KeyringError, match="not an encrypted OpenPGP message"):
        decrypted(keyring, b"this is not an OpenPGP message at all")


def test_decrypting_a_message_to_another_key_raises_keyring_error(keyring, plain_key, tmp_path):
    cert = tmp_path / "other.asc"
    cert.write_bytes(plain_key.public)
    encrypted = run("sqop", "encrypt", str(cert), input=b"not for you").stdout

    with pytest.raises(KeyringError, match="not encrypted to the service key"):
        decrypted(keyring, encrypted)


# -- importing an existing key ------------------------------------------------------------------


def test_imported_secret_key_becomes_the_service_key(fresh_home, plain_key, tmp_path):
    ring = ServiceKeyring(fresh_home)

    assert ring.import_secret(plain_key.secret) == plain_key.fingerprint
    assert ring.fingerprint() == plain_key.fingerprint
    # It really holds the secret: what it signs verifies against the key's own certificate.
    cert = tmp_path / "cert.asc"
    cert.write_bytes(plain_key.public)
    signature = tmp_path / "sig.asc"
    signature.write_text(ring.sign_detached(MESSAGE).armored)
    run("sqop", "verify", str(signature), str(cert), input=MESSAGE)


def test_importing_the_same_key_again_keeps_it(fresh_home, plain_key):
    ring = ServiceKeyring(fresh_home)
    ring.import_secret(plain_key.secret)

    assert ring.import_secret(plain_key.secret) == plain_key.fingerprint
    assert ring.fingerprint() == plain_key.fingerprint


def test_importing_a_different_key_over_the_service_key_is_refused(keyring, plain_key):
    current = keyring.fingerprint()

    with pytest.raises(KeySetupError, match=current):
        keyring.import_secret(plain_key.secret)
    assert keyring.fingerprint() == current


def test_importing_a_public_key_only_is_refused(fresh_home, plain_key):
    ring = ServiceKeyring(fresh_home)

    with pytest.raises(KeySetupError, match="no secret key"):
        ring.import_secret(plain_key.public)
    assert ring.fingerprint() is None


def test_importing_a_file_without_any_key_is_refused(fresh_home):
    ring = ServiceKeyring(fresh_home)

    with pytest.raises(KeySetupError, match="0 keys"):
        ring.import_secret(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnonsense\n")
    assert ring.fingerprint() is None


# -- a passphrase-protected key -------------------------------------------------------------------


def test_protected_key_signs_with_its_passphrase_and_not_with_a_wrong_one(fresh_home, tmp_path):
    generated = ServiceKeyring(fresh_home, passphrase="the right passphrase")
    fingerprint = generated.generate("security@example.org")
    generated.stop_agent()  # nothing cached from generation

    wrong = ServiceKeyring(fresh_home, passphrase="a wrong passphrase")
    with pytest.raises(KeyringError):
        wrong.sign_detached(MESSAGE)
    wrong.stop_agent()

    right = ServiceKeyring(fresh_home, passphrase="the right passphrase")
    signature = tmp_path / "sig.asc"
    signature.write_text(right.sign_detached(MESSAGE).armored)
    cert = tmp_path / "cert.asc"
    cert.write_text(right.export_public())
    right.stop_agent()

    verified = run("sqop", "verify", str(signature), str(cert), input=MESSAGE)
    assert fingerprint in verified.stdout.decode()


def test_protected_key_decrypts_with_its_passphrase_only(fresh_home, tmp_path):
    generated = ServiceKeyring(fresh_home, passphrase="the right passphrase")
    generated.generate("security@example.org")
    cert = tmp_path / "cert.asc"
    cert.write_text(generated.export_public())
    generated.stop_agent()
    encrypted = run("sqop", "encrypt", str(cert), input=MESSAGE).stdout

    wrong = ServiceKeyring(fresh_home, passphrase="a wrong passphrase")
    with pytest.raises(KeyringError):
        decrypted(wrong, encrypted)
    wrong.stop_agent()

    right = ServiceKeyring(fresh_home, passphrase="the right passphrase")
    assert decrypted(right, encrypted) == MESSAGE
    right.stop_agent()


# -- the agent and its sockets ------------------------------------------------------------------


def test_home_too_long_for_agent_sockets_still_works():
    run_dir = Path(f"/run/user/{os.getuid()}")
    existed = run_dir.exists()
    folder = short_tempdir("fwl")
    home = folder / ("a" * 60) / ("b" * 40) / "gpg"
    assert len(str(home) + "/S.gpg-agent.browser") > 107
    ring = ServiceKeyring(home)
    try:
        fingerprint = ring.generate("security@example.org")
        signed = ring.sign_detached(MESSAGE)

        assert ring.fingerprint() == fingerprint
        assert signed.hash_algo in ("sha256", "sha384", "sha512")
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert agent_pids(ring.home)
    finally:
        ring.stop_agent()
        subprocess.run(
            ["gpgconf", "--homedir", str(ring.home), "--remove-socketdir"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
        if not existed:
            # Leave the machine as we found it, unless something else now uses the folder.
            for leftover in (run_dir / "gnupg", run_dir):
                try:
                    leftover.rmdir()
                except OSError:
                    break


def test_stop_agent_leaves_no_agent_for_the_home(keyring):
    keyring.sign_detached(b"start the agent")
    assert agent_pids(keyring.home), "signing should have started a gpg-agent"

    keyring.stop_agent()

    wait_for(lambda: not agent_pids(keyring.home), timeout=10, what="gpg-agent to exit")


def test_stop_agent_on_a_home_that_does_not_exist_does_nothing(tmp_path):
    home = tmp_path / "never-made"

    ServiceKeyring(home).stop_agent()

    assert not home.exists()


def test_decrypting_a_plaintext_over_the_limit_is_refused(keyring, tmp_path):
    cert = tmp_path / "cert.asc"
    cert.write_text(keyring.export_public())
    sender = tmp_path / "sender"
    sender.mkdir(mode=0o700)
    # Zeros compressed: the shape of a decompression bomb, scaled down.
    bomb = run(
        *("gpg", "--homedir", str(sender), "--batch", "--compress-algo", "zlib", "-z", "9"),
        *("--recipient-file", str(cert), "--encrypt"),
        input=bytes(1_000_000),
    ).stdout
    assert len(bomb) < 10_000
    assert decrypted(keyring, bomb) == bytes(1_000_000)

    with pytest.raises(KeyringError, match="larger than 100000 bytes"):
        decrypted(keyring, bomb, limit=100_000)


def test_importing_a_protected_key_with_a_wrong_passphrase_is_refused_and_changes_nothing(
    fresh_home, tmp_path
):
    source = short_tempdir("fws")
    try:
        protected = ServiceKeyring(source / "gpg", passphrase="the right passphrase")
        protected.generate("security@example.org")
        secret = protected.gpg.export_keys(
            [protected.fingerprint()], secret=True, passphrase="the right passphrase"
        ).encode()
        protected.stop_agent()
    finally:
        shutil.rmtree(source, ignore_errors=True)

    for passphrase in ("a wrong passphrase", None):
        target = ServiceKeyring(fresh_home, passphrase=passphrase)
        with pytest.raises(KeySetupError, match="FOREWARN_KEY_PASSPHRASE_FILE"):
            target.import_secret(secret)
        assert target.fingerprint() is None
        target.stop_agent()

    right = ServiceKeyring(fresh_home, passphrase="the right passphrase")
    assert right.import_secret(secret) == right.fingerprint()
    assert right.sign_detached(MESSAGE).hash_algo in ("sha256", "sha384", "sha512")
    right.stop_agent()


# -- fewer gpg processes per message ---------------------------------------------------------------


def test_primary_fingerprints_are_read_from_the_packets_without_gpg(keyring, plain_key):
    service = keyring.export_public()

    assert primary_fingerprints(plain_key.public) == [plain_key.fingerprint]
    assert primary_fingerprints(service.encode()) == [keyring.fingerprint()]
    assert primary_fingerprints(plain_key.public.decode() + service) == [
        plain_key.fingerprint,
        keyring.fingerprint(),
    ]
    assert primary_fingerprints(plain_key.secret) == []  # never a secret key
    assert primary_fingerprints("not a key") == []


def test_the_fingerprint_is_listed_again_only_when_the_keyring_changes(
    keyring, plain_key, monkeypatch
):
    calls = []
    listed = ServiceKeyring._listed_fingerprint

    def counting(self):
        calls.append(self.home)
        return listed(self)

    monkeypatch.setattr(ServiceKeyring, "_listed_fingerprint", counting)
    first = keyring.fingerprint()
    before = len(calls)

    assert ServiceKeyring(keyring.home).fingerprint() == first
    keyring.stop_agent()
    keyring.sign_detached(b"a new gpg-agent starts")  # touches private-keys-v1.d's ctime only
    assert keyring.fingerprint() == first
    assert len(calls) == before
    keyring.gpg.import_keys(plain_key.public)  # the keyring changed: gpg lists it again
    assert keyring.fingerprint() == first
    assert len(calls) == before + 1
