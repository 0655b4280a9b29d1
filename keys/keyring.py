"""The service key's operations: sign, clear-sign, encrypt to a pinned certificate, and take
the service key's encryption off a reporter's message.

ServiceKeyring is the one object the application holds: the operations here, the key's life
(keys/servicekey.py) and the GnuPG home (keys/home.py) under them.
"""

import tempfile
from dataclasses import dataclass

from keys import gpgrun, verify
from keys.errors import KeyringError
from keys.home import MAX_PLAINTEXT_BYTES
from keys.inspect import scratch_gpg
from keys.packets import primary_fingerprints
from keys.servicekey import ServiceKey

ENCRYPT_TIMEOUT_SECONDS = 60  # one alert's encryption; gpg takes milliseconds
# OpenPGP hash algorithm ids (RFC 4880, 9.4) as RFC 3156 names them in micalg.
_HASH_NAMES = {"2": "sha1", "8": "sha256", "9": "sha384", "10": "sha512", "11": "sha224"}


@dataclass(frozen=True)
class Signature:
    armored: str
    hash_algo: str  # as for micalg: "sha256", "sha512", ...


@dataclass(frozen=True)
class Unwrapped:
    data: bytes  # binary OpenPGP: a signed message, or (compressed) literal data
    signed: bool


class ServiceKeyring(ServiceKey):
    """What the service key does: its home and life (ServiceKey), and the operations below."""

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
            raise KeyringError(f"gpg could not sign: {result.status or gpgrun.said(result.stderr)}")
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
            raise KeyringError(f"gpg could not sign: {result.status or gpgrun.said(result.stderr)}")
        return result.data.decode("utf-8")

    def encrypt_to(self, certificate: str, fingerprint: str, data: bytes) -> str:
        """Encrypt data (ASCII armor) to one certificate, which must have the pinned primary
        fingerprint. The certificate is given to gpg as a file and never imported here."""
        return _encrypt(self.gpg, certificate, fingerprint, data)

    def unwrap(self, data: bytes, limit: int = MAX_PLAINTEXT_BYTES) -> Unwrapped:
        """Take the service key's encryption off a message, keeping any signature inside for
        keys.verify.verify_with(); nothing is inflated (--unwrap), nor output past limit bytes.
        The one way a report is decrypted."""
        if not verify.looks_encrypted(data):
            raise KeyringError("it is not an encrypted OpenPGP message, or its armor is damaged")
        try:
            result = self.gpg.decrypt(
                data,
                passphrase=self.passphrase,
                # loopback: a message encrypted with a password must fail, not wait for a pinentry.
                extra_args=["--unwrap", "--max-output", str(limit), "--pinentry-mode", "loopback"],
            )
        except (OSError, ValueError) as error:  # gpg stopped reading: a broken pipe
            name = type(error).__name__
            raise KeyringError(f"gpg stopped before reading the message ({name})") from None
        status = gpgrun.status_lines(result.stderr)
        if not result.ok or result.returncode != 0 or "DECRYPTION_OKAY" not in status:
            raise KeyringError(_why_undecryptable(status, result.stderr or ""))
        if len(result.data) > limit:
            raise KeyringError(f"the decrypted content is larger than {limit} bytes")
        return Unwrapped(result.data, verify.is_signed(result.data))


def encrypt_to_certificate(certificate: str, fingerprint: str, data: bytes) -> str:
    """encrypt_to without the service's GnuPG home: in a throwaway home, for a process that
    holds only certificates (the portal encrypts a web report to the service key's public
    part, and never needs its secret key)."""
    with scratch_gpg(KeyringError, ENCRYPT_TIMEOUT_SECONDS, 64 * 1024) as gpg:
        return _encrypt(gpg, certificate, fingerprint, data)


def _encrypt(gpg, certificate: str, fingerprint: str, data: bytes) -> str:
    """Encrypt data (ASCII armor) to one certificate, which must have the pinned primary
    fingerprint; gpg reads it from a file and never imports it."""
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
                gpg.make_args(args, False),
                input=data,
                error=KeyringError,
                timeout=ENCRYPT_TIMEOUT_SECONDS,
                max_output=2 * len(data) + 64 * 1024,
            )
        except KeyringError as error:
            raise KeyringError(f"gpg could not encrypt to {fingerprint}: {error}") from None
    if result.returncode != 0 or not result.stdout.startswith(b"-----BEGIN PGP MESSAGE"):
        said = result.stderr.decode("utf-8", "replace")
        raise KeyringError(f"gpg could not encrypt to {fingerprint}: {gpgrun.said(said)}")
    return result.stdout.decode("ascii")


def _why_undecryptable(status: dict[str, list[list[str]]], stderr: str) -> str:
    if "NO_SECKEY" in status:
        keys = ", ".join(sorted({args[0] for args in status.get("ENC_TO", []) if args}))
        return f"it is not encrypted to the service key (but to {keys or 'another key'})"
    if "BADMDC" in status or "manipulated" in stderr:
        return "the encrypted data was modified after encryption"
    if "NEED_PASSPHRASE_SYM" in status:
        return "it is encrypted with a password, not to the service key"
    if "CRC error" in stderr or "invalid armor" in stderr or "radix64" in stderr:
        return "its ASCII armor is damaged"
    if "NODATA" in status or "DECRYPTION_FAILED" in status or "invalid packet" in stderr:
        return "the encrypted data is damaged or incomplete"
    return f"gpg could not decrypt it ({gpgrun.said(gpgrun.without_status(stderr))})"
