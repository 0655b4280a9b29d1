"""The service key: generate or import it, export its certificate, sign and decrypt with it.

The keyring under the GnuPG home holds the service key alone; every operation names it by its
fingerprint, never by a user id. Certificates of other people live in the database.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keys import gpgrun, packets
from keys.errors import CertificateError, KeyringError, KeySetupError

# Longest socket name gpg-agent creates in its home, and the kernel's sun_path limit.
_LONGEST_SOCKET = "S.gpg-agent.browser"
_SUN_PATH_MAX = 107
# A decrypted report larger than this is refused (decompression bombs; PITFALLS.md).
MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024
ENCRYPT_TIMEOUT_SECONDS = 60  # one alert's encryption; gpg takes milliseconds
# Any other run on the service key (sign, decrypt a report, list, generate); gpg takes
# milliseconds to a second or two. A run past it is killed (keys/gpgrun.py).
GPG_TIMEOUT_SECONDS = 60
# What one run may write on stdout: a decrypted report (gpg's --max-output stops it first).
MAX_GPG_OUTPUT_BYTES = MAX_PLAINTEXT_BYTES + 1024 * 1024
# gpgconf --kill, run when a home is left.
GPGCONF_TIMEOUT_SECONDS = 10
# OpenPGP hash algorithm ids (RFC 4880, 9.4) as RFC 3156 names them in micalg.
_HASH_NAMES = {"2": "sha1", "8": "sha256", "9": "sha384", "10": "sha512", "11": "sha224"}


# The service key's fingerprint per GnuPG home, with the state of its keyrings when listed.
_FINGERPRINTS: dict[Path, tuple[tuple, str]] = {}


def _gpg_said(text: str) -> str:
    """The last line gpg wrote, for a one-line error (its stderr runs to many lines)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith("[GNUPG:]")]  # not status lines
    return (said or lines)[-1][:200] if lines else "no details"


@dataclass(frozen=True)
class Signature:
    armored: str
    hash_algo: str  # as for micalg: "sha256", "sha512", ...


def _require_gpg() -> str:
    binary = shutil.which("gpg")
    if binary is None or shutil.which("gpgconf") is None:
        raise KeySetupError(
            "gpg not found: install GnuPG (apt-get install gnupg) or run `make run`"
        )
    return binary


class ServiceKeyring:
    def __init__(self, home: Path, passphrase: str | None = None):
        self.home = Path(home).resolve()
        self.passphrase = passphrase
        self._gpg: gpgrun.BoundedGPG | None = None

    # -- set-up --------------------------------------------------------------------------

    @property
    def gpg(self) -> gpgrun.BoundedGPG:
        if self._gpg is None:
            binary = _require_gpg()
            self.ensure_home()
            # python-gnupg logs decrypted data at DEBUG: never let it.
            logging.getLogger("gnupg").setLevel(logging.WARNING)
            self._gpg = gpgrun.BoundedGPG(
                error=KeyringError,
                timeout=GPG_TIMEOUT_SECONDS,
                max_output=MAX_GPG_OUTPUT_BYTES,
                gpgbinary=binary,
                gnupghome=str(self.home),
            )
            self._gpg.encoding = "utf-8"
        return self._gpg

    def ensure_home(self) -> None:
        # Folders we create on the way (e.g. the instance folder) are private too: mkdir's
        # parents=True would give them the umask's 0755.
        for folder in reversed([self.home, *self.home.parents]):
            if not folder.exists():
                folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.home, 0o700)
        if len(str(self.home)) + 1 + len(_LONGEST_SOCKET) > _SUN_PATH_MAX:
            # gpg-agent then puts its sockets under /run/user/<uid>, if that exists.
            run_dir = Path(f"/run/user/{os.getuid()}")
            try:
                run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError:
                raise KeySetupError(
                    f"the GnuPG home {self.home} is too long for gpg-agent's socket and "
                    f"{run_dir} cannot be created; use a shorter FOREWARN_INSTANCE"
                ) from None

    @contextmanager
    def _lock(self):
        """Imports and deletes on one home are serialised (PITFALLS.md)."""
        self.ensure_home()
        with open(self.home / ".forewarn.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stop_agent(self) -> None:
        """Stop the gpg-agent of this home, so no secret stays cached after we stop."""
        if not self.home.is_dir() or shutil.which("gpgconf") is None:
            return
        stop_agent(self.home, KeyringError)

    # -- the key -------------------------------------------------------------------------

    def fingerprint(self) -> str | None:
        """The service key's fingerprint, or None when there is no secret key yet.

        Remembered per home while its keyrings are unchanged (their files' size, inode and
        modification time): every message asks for it, and listing it spawns gpg."""
        state = self._keyring_state()
        remembered = _FINGERPRINTS.get(self.home)
        if remembered is not None and remembered[0] == state:
            return remembered[1]
        fingerprint = self._listed_fingerprint()
        if fingerprint is not None:
            _FINGERPRINTS[self.home] = (state, fingerprint)
        return fingerprint

    def _keyring_state(self) -> tuple:
        state = []
        for name in ("pubring.kbx", "pubring.gpg", "private-keys-v1.d", "secring.gpg"):
            try:
                found = os.stat(self.home / name)
            except OSError:
                state.append(None)
                continue
            # Not st_ctime: gpg-agent changes that of private-keys-v1.d each time it starts.
            state.append((found.st_ino, found.st_size, found.st_mtime_ns))
        return tuple(state)

    def _listed_fingerprint(self) -> str | None:
        """fingerprint() as gpg lists it now, never remembered."""
        secret = self.gpg.list_keys(secret=True)
        if len(secret) > 1:
            raise KeySetupError(
                f"the GnuPG home {self.home} holds {len(secret)} secret keys; "
                "it must hold the service key alone"
            )
        return secret[0]["fingerprint"] if secret else None

    def describe(self) -> dict:
        """The service key's listing (fingerprint, uids, expiry, subkeys) for status pages."""
        fingerprint = self._require_fingerprint()
        for key in self.gpg.list_keys(keys=[fingerprint]):
            if key["fingerprint"] == fingerprint:
                return key
        raise KeyringError(f"the service key {fingerprint} has no public part")

    def generate(self, email: str, expire: str = "2y") -> str:
        """An ed25519 signing primary with a cv25519 encryption subkey; returns the fingerprint."""
        params = {
            "key_type": "EDDSA",
            "key_curve": "ed25519",
            "key_usage": "sign",
            "subkey_type": "ECDH",
            "subkey_curve": "cv25519",
            "subkey_usage": "encrypt",
            "name_real": "Forewarn security team",
            "name_email": email,
            "expire_date": expire,
        }
        if self.passphrase:
            params["passphrase"] = self.passphrase
        else:
            params["no_protection"] = True
        with self._lock():
            if self._listed_fingerprint() is not None:
                raise KeyringError("a service key already exists")
            result = self.gpg.gen_key(self.gpg.gen_key_input(**params))
        if not result.fingerprint:
            raise KeyringError(
                f"gpg could not generate the service key: {_gpg_said(result.stderr)}"
            )
        return result.fingerprint

    def import_secret(self, data: bytes) -> str:
        """Make the secret key in data the service key; returns its fingerprint."""
        listed = self.gpg.scan_keys_mem(data)
        primaries = {key["fingerprint"] for key in listed if key.get("fingerprint")}
        if len(primaries) != 1:
            raise KeySetupError(
                f"the file holds {len(primaries)} keys; export exactly one secret key "
                "(gpg --export-secret-keys --armor FINGERPRINT)"
            )
        if not any(key.get("type") == "sec" for key in listed):
            raise KeySetupError(
                "the file holds no secret key; export it with gpg --export-secret-keys --armor"
            )
        (fingerprint,) = primaries
        with self._lock():
            current = self._listed_fingerprint()
            if current not in (None, fingerprint):
                raise KeySetupError(
                    f"this instance already has the service key {current}; "
                    "move its GnuPG home away first if you mean to replace it"
                )
            self._check_usable(data, fingerprint)
            result = self.gpg.import_keys(data, passphrase=self.passphrase)
            if not result.sec_imported and not result.sec_read:
                raise KeyringError(f"gpg did not import the secret key: {_gpg_said(result.stderr)}")
            # We trust our own key; otherwise gpg warns on every signature.
            self.gpg.trust_keys([fingerprint], "TRUST_ULTIMATE")
        return fingerprint

    def _check_usable(self, data: bytes, fingerprint: str) -> None:
        """Sign once with the key in a throwaway home, so a wrong passphrase (gpg imports
        protected keys without checking it) is found now, not at the first advisory."""
        with tempfile.TemporaryDirectory(prefix="fwk", dir="/tmp") as scratch:
            trial = ServiceKeyring(Path(scratch), self.passphrase)
            try:
                imported = trial.gpg.import_keys(data, passphrase=self.passphrase)
                if not imported.sec_imported and not imported.sec_read:
                    raise KeySetupError(
                        f"gpg cannot import the secret key: {_gpg_said(imported.stderr)}"
                    )
                trial.gpg.trust_keys([fingerprint], "TRUST_ULTIMATE")
                trial.sign_detached(b"forewarn: checking the service key")
            except KeyringError:
                raise KeySetupError(
                    "the key cannot sign with the passphrase given: check "
                    "FOREWARN_KEY_PASSPHRASE_FILE (or set it, if the key has a passphrase)"
                ) from None
            finally:
                trial.stop_agent()

    def export_public(self) -> str:
        fingerprint = self._require_fingerprint()
        armored = self.gpg.export_keys([fingerprint], armor=True, minimal=True)
        if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
            raise KeyringError("gpg did not export the service key")
        return armored

    def expiry(self) -> datetime | None:
        """When the service key stops working: the earliest expiry of its primary key and its
        subkeys (aware UTC), or None when none of them expires."""
        return expiry_of(self.describe())

    def certified_by(self, fingerprint: str) -> bool:
        """Whether a user id of the service key carries a certification issued by the key
        `fingerprint` (by its key id: that key is not in this keyring, so gpg cannot check the
        signature itself; a recipient who holds it can)."""
        service = self._require_fingerprint()
        keyid = fingerprint.replace(" ", "").upper()[-16:]
        for key in self.gpg.list_keys(keys=[service], sigs=True):
            if key["fingerprint"] != service:
                continue
            for issuer, _uid, sig_class in key.get("sigs", ()):
                if issuer.upper() == keyid and sig_class[:2] in ("10", "11", "12", "13"):
                    return True
        return False

    def renew(self, years: int = 2) -> datetime | None:
        """Extend the expiry of the primary key and every subkey to `years` from now (gpg
        --quick-set-expire); returns the new expiry as expiry() reads it back."""
        if not 1 <= years <= 50:
            raise KeyringError("the key can be renewed for 1 to 50 years")
        fingerprint = self._require_fingerprint()
        listing = self.describe()
        # By fingerprint, not "*": gpg's "*" skips subkeys that have already expired, which
        # are exactly the ones a late renewal must bring back. Revoked ones stay revoked.
        info = listing.get("subkey_info", {})
        subkeys = [
            sub[2]
            for sub in listing.get("subkeys", ())
            if len(sub) > 2 and sub[2] and info.get(sub[0], {}).get("trust") != "r"
        ]
        binary = _require_gpg()
        base = [binary, "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback"]
        if self.passphrase:
            base += ["--passphrase-fd", "0"]
        with self._lock():
            for extra in ([], subkeys) if subkeys else ([],):  # the primary, then its subkeys
                done = gpgrun.run(
                    [*base, "--quick-set-expire", fingerprint, f"{years}y", *extra],
                    input=(self.passphrase or "").encode("utf-8"),
                    error=KeyringError,
                    timeout=GPG_TIMEOUT_SECONDS,
                    max_output=MAX_GPG_OUTPUT_BYTES,
                )
                if done.returncode != 0:
                    said = _gpg_said(done.stderr.decode("utf-8", "replace"))
                    raise KeyringError(f"gpg could not renew the service key: {said}")
        return self.expiry()

    # -- operations ----------------------------------------------------------------------

    def _require_fingerprint(self) -> str:
        fingerprint = self.fingerprint()
        if fingerprint is None:
            raise KeySetupError("there is no service key yet: run `forewarn init`")
        return fingerprint

    def sign_detached(self, data: bytes) -> Signature:
        """A detached, ASCII-armored signature over exactly these bytes."""
        result = self.gpg.sign(
            data,
            keyid=self._require_fingerprint(),
            detach=True,
            binary=False,
            passphrase=self.passphrase,
            extra_args=["--digest-algo", "SHA512"],
        )
        if result.returncode != 0 or not result.data:
            raise KeyringError(f"gpg could not sign: {result.status or _gpg_said(result.stderr)}")
        hash_name = _HASH_NAMES.get(str(result.hash_algo))
        if hash_name is None:
            raise KeyringError(f"gpg signed with an unknown hash algorithm {result.hash_algo!r}")
        return Signature(result.data.decode("ascii"), hash_name)

    def clearsign(self, text: str) -> str:
        result = self.gpg.sign(
            text.encode("utf-8"),
            keyid=self._require_fingerprint(),
            clearsign=True,
            passphrase=self.passphrase,
            extra_args=["--digest-algo", "SHA512"],
        )
        if result.returncode != 0 or not result.data:
            raise KeyringError(f"gpg could not sign: {result.status or _gpg_said(result.stderr)}")
        return result.data.decode("utf-8")

    def encrypt_to(self, certificate: str, fingerprint: str, data: bytes) -> str:
        """Encrypt data (ASCII armor) to one certificate, which must have the pinned primary
        fingerprint. The certificate is given to gpg as a file and never imported here."""
        primaries = primary_fingerprints(certificate)
        if primaries != [fingerprint.replace(" ", "").upper()]:
            raise KeyringError(
                f"the certificate is not the pinned key {fingerprint} "
                f"(it holds {', '.join(filter(None, primaries)) or 'no key'})"
            )
        with tempfile.NamedTemporaryFile("w", prefix="fwr", suffix=".asc") as cert_file:
            cert_file.write(certificate)
            cert_file.flush()
            # What GPG.encrypt() would run with always_trust=True and armor=True, but without
            # a --recipient: python-gnupg 0.5.7 refuses encrypt() with no recipients, and the
            # certificate must not enter the keyring (vsajip/python-gnupg#135). No random seed
            # file: gpg locks it in the home, which lets only one encrypting process run at a
            # time (the kernel's getrandom() seeds it anyway). No keyring: the file is the key.
            args = ["--no-random-seed-file", "--no-keyring"]
            args += ["--encrypt", "--armor", "--trust-model", "always"]
            args += ["--recipient-file", cert_file.name]
            # One process, its input and output through one selector loop: this runs once per
            # alert, and python-gnupg's I/O starts three threads a call. ASCII armor of the
            # data is about 4/3 of it, plus headers.
            try:
                result = gpgrun.run(
                    self.gpg.make_args(args, False),
                    input=data,
                    error=KeyringError,
                    timeout=ENCRYPT_TIMEOUT_SECONDS,
                    max_output=2 * len(data) + 64 * 1024,
                )
            except KeyringError as error:
                raise KeyringError(f"gpg could not encrypt to {fingerprint}: {error}") from None
        if result.returncode != 0 or not result.stdout.startswith(b"-----BEGIN PGP MESSAGE"):
            said = result.stderr.decode("utf-8", "replace")
            raise KeyringError(f"gpg could not encrypt to {fingerprint}: {_gpg_said(said)}")
        return result.stdout.decode("ascii")

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt a message to the service key; refuses plaintexts over MAX_PLAINTEXT_BYTES."""
        result = self.gpg.decrypt(
            data,
            passphrase=self.passphrase,
            extra_args=["--max-output", str(MAX_PLAINTEXT_BYTES)],
        )
        if not result.ok or result.returncode != 0:
            raise KeyringError(f"gpg could not decrypt: {result.status or 'no valid data'}")
        return result.data


def stop_agent(home: Path | str, error: type[Exception]) -> None:
    """Stop the gpg-agent (and any other daemon) of a GnuPG home."""
    gpgrun.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"],
        error=error,
        timeout=GPGCONF_TIMEOUT_SECONDS,
        max_output=64 * 1024,
    )


def expiry_of(listing: dict) -> datetime | None:
    """The earliest expiry of a key listing's primary key and subkeys (aware UTC), or None."""
    stamps = [listing.get("expires")]
    stamps += [info.get("expires") for info in listing.get("subkey_info", {}).values()]
    found = [datetime.fromtimestamp(int(s), UTC) for s in stamps if s and s.isdigit()]
    return min(found) if found else None


def primary_fingerprints(certificate: str | bytes) -> list[str]:
    """The v4 fingerprint (RFC 4880, 12.2) of each primary key in a certificate, in order, read
    from its packets in Python (no gpg process); [] when it is no readable public key."""
    data = certificate.encode("ascii", "replace") if isinstance(certificate, str) else certificate
    try:
        found = packets.packets(packets.dearmor(data) if packets.BEGIN.search(data) else data)
    except CertificateError:
        return []
    fingerprints = []
    for tag, raw in found:
        if tag != 6:
            continue
        _, start, length, _ = packets.packet_header(raw, 0)
        body = raw[start : start + length]
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body)  # noqa: S324
        fingerprints.append(digest.hexdigest().upper())
    return fingerprints
