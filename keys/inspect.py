"""Validate a certificate someone gave us (an upload, a mail attachment, an Autocrypt header)
without trusting it: each look happens in a throwaway GnuPG home, never the service keyring."""

import base64
import binascii
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import gnupg

from app.errors import ForewarnError
from keys.keyring import _require_gpg

# Validity letters of a gpg key listing that make a key unusable whatever the time.
_DEAD = {"r": "revoked", "i": "invalid", "d": "disabled"}


class CertificateError(ForewarnError):
    """The data is not one usable public certificate; the message says why, in one line."""


@dataclass(frozen=True)
class Certificate:
    fingerprint: str
    user_ids: tuple[str, ...]
    can_encrypt: bool  # a usable, unexpired, unrevoked encryption-capable key or subkey
    expires: datetime | None  # the primary key's expiry (aware UTC), None if it never expires
    armored: str  # the certificate re-exported: ASCII armor, minimal, public only
    encryption_expires: datetime | None = None  # latest expiry of the usable encryption keys


@contextmanager
def scratch_gpg() -> Iterator[gnupg.GPG]:
    """A python-gnupg object over an empty GnuPG home of its own, removed afterwards.

    The home is under /tmp with a short name: gpg-agent's sockets have a 108-byte path limit.
    """
    binary = _require_gpg()
    home = tempfile.mkdtemp(prefix="fwx", dir="/tmp")
    try:
        # python-gnupg logs decrypted data at DEBUG: never let it.
        logging.getLogger("gnupg").setLevel(logging.WARNING)
        gpg = gnupg.GPG(gpgbinary=binary, gnupghome=home)
        # Status lines can carry other people's bytes (user ids, file names): latin-1 decodes
        # anything, where utf-8 would kill python-gnupg's reader thread.
        gpg.encoding = "latin-1"
        yield gpg
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "all"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


def _instant(timestamp: str) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def _alive(listing: dict, at: datetime) -> bool:
    """Not revoked, invalid or disabled, and not expired at `at` (judged here, not by gpg's
    clock, so that callers and tests decide the instant)."""
    if listing.get("trust") in _DEAD:
        return False
    expires = _instant(listing.get("expires", ""))
    return expires is None or expires > at


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)


def inspect_certificate(data: bytes | str, at: datetime) -> Certificate:
    """The one public certificate in data, as of the instant `at`.

    Raises CertificateError when data holds no key, several keys, secret key material, or
    nothing gpg can read.
    """
    data = _as_bytes(data)
    with scratch_gpg() as gpg:
        scanned = gpg.scan_keys_mem(data)
        if any(key.get("type") == "sec" for key in scanned):
            raise CertificateError(
                "it holds secret key material: send the public key only (gpg --export --armor)"
            )
        primaries = {key["fingerprint"] for key in scanned if key.get("fingerprint")}
        if len(primaries) > 1:
            raise CertificateError(f"it holds {len(primaries)} keys; send exactly one")
        if not primaries:
            raise CertificateError(_why_unreadable(data, scanned.stderr or ""))
        imported = gpg.import_keys(data)
        listed = gpg.list_keys()
        if not imported.count or len(listed) != 1:
            raise CertificateError(
                "gpg could not import it (no valid self-signed user id or damaged data)"
            )
        key = listed[0]
        fingerprint = key["fingerprint"]
        armored = gpg.export_keys([fingerprint], armor=True, minimal=True)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        raise CertificateError("gpg could not export it again")
    primary_alive = _alive(key, at)
    encryption = [key] if "e" in key.get("cap", "") else []
    encryption += [sub for sub in key.get("subkey_info", {}).values() if "e" in sub.get("cap", "")]
    usable = [sub for sub in encryption if _alive(sub, at)] if primary_alive else []
    expiries = [_instant(sub.get("expires", "")) for sub in usable]
    return Certificate(
        fingerprint=fingerprint,
        user_ids=tuple(key.get("uids", ())),
        can_encrypt=bool(usable),
        expires=_instant(key.get("expires", "")),
        armored=armored,
        encryption_expires=None if None in expiries or not expiries else max(expiries),
    )


def autocrypt_keydata(header: str, from_address: str | None) -> bytes:
    """The key in an Autocrypt header (autocrypt.org, level 1) of the sender's own address."""
    attributes = dict(item.strip().split("=", 1) for item in header.split(";") if "=" in item)
    if (attributes.get("addr") or "").strip().lower() != (from_address or "").lower():
        raise CertificateError("its addr is not the From address")
    try:
        return base64.b64decode("".join(attributes.get("keydata", "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("its keydata is not base64") from None


def _why_unreadable(data: bytes, stderr: str) -> str:
    if b"-----BEGIN PGP" not in data and not _looks_binary_openpgp(data):
        return "it holds no OpenPGP key"
    if "CRC error" in stderr or "invalid radix64" in stderr or "invalid armor" in stderr:
        return "its ASCII armor is damaged"
    return "gpg could not read it as an OpenPGP key (damaged or not a key)"


def _looks_binary_openpgp(data: bytes) -> bool:
    return bool(data) and data[0] & 0x80 == 0x80
