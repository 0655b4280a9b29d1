"""Validate a certificate someone gave us (an upload, a mail attachment, an Autocrypt header)
without trusting it: each look happens in a throwaway GnuPG home, never the service keyring.

inspect_registration_key() is the strict check of a product maker's key for alerts; whether its
fingerprint is already another registrant's is the registry's rule (database), not checked here.
"""

import base64
import binascii
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from keys import gpgrun, packets
from keys.errors import CertificateError
from keys.home import require_gpg, stop_agent

# Each gpg run on one key (import, list, export) takes milliseconds; past this it is killed.
# Well under gunicorn's 60 s worker timeout: a sign-up answers with an error, not a 502.
KEY_TIMEOUT_SECONDS = 10
# What one such run may write (a listing or an export of a key of at most 1 MiB).
MAX_KEY_OUTPUT_BYTES = 8 * 1024 * 1024

# Validity letters of a gpg key listing that make a key unusable whatever the time.
_DEAD = {"r": "revoked", "i": "invalid", "d": "disabled"}


@dataclass(frozen=True)
class Certificate:
    fingerprint: str
    user_ids: tuple[str, ...]
    can_encrypt: bool  # a usable, unexpired, unrevoked encryption-capable key or subkey
    expires: datetime | None  # the primary key's expiry (aware UTC), None if it never expires
    armored: str  # the certificate re-exported: ASCII armor, minimal, public only
    encryption_expires: datetime | None = None  # latest expiry of the usable encryption keys
    notes: tuple[str, ...] = ()  # what was accepted by an override (one line each)
    addresses: tuple[str, ...] = ()  # the e-mail addresses of its unrevoked user ids, lower case


@contextmanager
def scratch_gpg(
    error: type[Exception] = CertificateError,
    timeout: float = KEY_TIMEOUT_SECONDS,
    max_output: int = MAX_KEY_OUTPUT_BYTES,
) -> Iterator[gpgrun.BoundedGPG]:
    """A python-gnupg object over an empty GnuPG home of its own, removed afterwards. Each gpg
    run is bounded by timeout (seconds) and max_output (bytes on stdout): past them gpg is
    killed and `error` raised.

    The home is under /tmp with a short name: gpg-agent's sockets have a 108-byte path limit.
    """
    binary = require_gpg()
    home = tempfile.mkdtemp(prefix="fwx", dir="/tmp")
    try:
        # python-gnupg logs decrypted data at DEBUG: never let it.
        logging.getLogger("gnupg").setLevel(logging.WARNING)
        gpg = gpgrun.BoundedGPG(
            error=error,
            timeout=timeout,
            max_output=max_output,
            gpgbinary=binary,
            gnupghome=home,
        )
        # Status lines can carry other people's bytes (user ids, file names): latin-1 decodes
        # anything, where utf-8 would kill python-gnupg's reader thread.
        gpg.encoding = "latin-1"
        yield gpg
    finally:
        try:
            stop_agent(home, error)
        finally:
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


def encrypts_at(
    expires: datetime | None, encryption_expires: datetime | None, at: datetime
) -> bool:
    """Whether a certificate can still be encrypted to at `at`, from its primary key's expiry
    and its encryption keys' (None: never): neither may have passed. A subkey is usable no
    longer than its primary key: gpg will not encrypt to a certificate whose primary key has
    expired, however long its encryption subkey has left."""
    return all(end is None or end > at for end in (expires, encryption_expires))


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)


def inspect_certificate(data: bytes | str, at: datetime) -> Certificate:
    """The one public certificate in data, as of the instant `at`.

    Raises CertificateError when data holds no key, several keys, secret key material, any
    packet a public key never has (compressed data: gpg would inflate it), more than
    MAX_KEY_UPLOAD_BYTES, or nothing gpg can read. gpg sees only the packets checked here.
    """
    binary = _key_packets(_as_bytes(data))
    with scratch_gpg() as gpg:
        scanned = gpg.scan_keys_mem(binary)
        primaries = {key["fingerprint"] for key in scanned if key.get("fingerprint")}
        if len(primaries) > 1:
            raise CertificateError(f"it holds {len(primaries)} keys; send exactly one")
        if not primaries:
            raise CertificateError("gpg could not read it as an OpenPGP key (damaged or not a key)")
        imported = gpg.import_keys(binary)
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
        addresses=_addresses(key, listed.uid_map),
    )


def require_revoked(data: bytes | str, fingerprint: str) -> None:
    """That data is the public key `fingerprint` (and no other key) carrying a revocation of
    its primary key that gpg accepts; else a CertificateError saying, in a few words, what it
    is instead. A bare revocation signature (gpg's .rev file) is no key, so it is refused."""
    data = _as_bytes(data)
    try:
        found = packets.packets(packets.dearmor(data) if packets.BEGIN.search(data) else data)
    except CertificateError:
        raise CertificateError("it is not an OpenPGP public key") from None
    primaries = [raw for tag, raw in found if tag == 6]
    if len(primaries) != 1:
        raise CertificateError(f"it holds {len(primaries)} keys, not the key {fingerprint} alone")
    with scratch_gpg() as gpg:
        gpg.import_keys(b"".join(raw for _, raw in found))
        listed = gpg.list_keys()
    if len(listed) != 1:
        raise CertificateError("gpg could not import it (damaged, or no valid self-signature)")
    key = listed[0]
    if key["fingerprint"] != fingerprint:
        raise CertificateError(f"it is the key {key['fingerprint']}, not {fingerprint}")
    if key.get("trust") != "r":
        raise CertificateError(f"the key {fingerprint} in it carries no revocation")


def autocrypt_keydata(header: str, from_address: str | None) -> bytes:
    """The key in an Autocrypt header (autocrypt.org, level 1) of the sender's own address."""
    attributes = dict(item.strip().split("=", 1) for item in header.split(";") if "=" in item)
    if (attributes.get("addr") or "").strip().lower() != (from_address or "").lower():
        raise CertificateError("its addr is not the From address")
    try:
        return base64.b64decode("".join(attributes.get("keydata", "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("its keydata is not base64") from None


def _key_packets(data: bytes) -> bytes:
    """The packets of the key in data (armored or binary), checked in Python: what gpg may see.
    Refuses, in a few words, anything but one transferable public key's packets."""
    if len(data) > MAX_KEY_UPLOAD_BYTES:
        raise CertificateError(f"it is {_size(data)}; a public key is a few KB")
    armored = packets.BEGIN.search(data) is not None
    try:
        found = packets.packets(packets.dearmor(data) if armored else data)
    except packets.KeyDataError as error:
        if armored and error.short == "it holds no OpenPGP key":
            raise CertificateError("its ASCII armor is damaged (it holds no OpenPGP key)") from None
        raise CertificateError(error.short) from None
    return b"".join(raw for _, raw in found)


def _size(data: bytes) -> str:
    return f"{len(data) / 2**20:.1f} MB" if len(data) >= 2**20 else f"{len(data) / 1024:.1f} KB"


# -- registration: the strict check ----------------------------------------------------------------

MAX_KEY_UPLOAD_BYTES = 1024 * 1024
_MIN_RSA_BITS = 2048
_RSA = {"1", "2", "3"}
# ECDH, ECDSA, EdDSA (RFC 4880bis) and X25519, X448, Ed25519, Ed448 (RFC 9580).
_ELLIPTIC = {"18", "19", "22", "25", "26", "27", "28"}
_ALGO_NAMES = {"16": "ElGamal", "17": "DSA", "20": "ElGamal"}
_STRONGER = "use RSA 3072+ or an elliptic-curve key (ed25519/cv25519)"
_UID_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")


def inspect_registration_key(
    data: bytes | str,
    email: str,
    at: datetime,
    *,
    allow_other_uid: bool = False,
    max_bytes: int = MAX_KEY_UPLOAD_BYTES,
) -> Certificate:
    """The one public key in an upload (armored or binary) for alerts to `email`, usable at
    `at`; else a CertificateError saying, in one line, what to fix. allow_other_uid accepts a
    key without `email` in a user id (noted). `armored` is the minimal export (third-party
    signatures dropped) made in a throwaway home."""
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    data = _as_bytes(data)
    if len(data) > max_bytes:
        raise CertificateError(
            f"the upload is {_size(data)}; a public key is a few KB: {packets.EXPORT}"
        )
    found = packets.packets(packets.dearmor(data) if packets.BEGIN.search(data) else data)
    primaries = {raw for tag, raw in found if tag == 6}
    if len(primaries) > 1:
        raise CertificateError(
            f"the upload holds {len(primaries)} keys; upload exactly one: {packets.EXPORT}"
        )
    with scratch_gpg() as gpg:
        imported = gpg.import_keys(b"".join(raw for _, raw in found))
        listed = gpg.list_keys()
        if not imported.count or len(listed) != 1:
            raise CertificateError(
                "GnuPG could not import the key (damaged, or no user id with a valid "
                f"self-signature): {packets.EXPORT}"
            )
        key = listed[0]
        fingerprint = key["fingerprint"]
        usable = _judge(key, fingerprint, at)
        notes = _check_user_ids(key, listed.uid_map, email, fingerprint, allow_other_uid)
        armored = gpg.export_keys([fingerprint], armor=True, minimal=True)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
        raise CertificateError(f"GnuPG could not export the key again: {packets.EXPORT}")
    expires = _instant(key.get("expires", ""))
    ends = [_instant(sub.get("expires", "")) for sub in usable]
    latest = None if None in ends else max(ends)
    if expires is not None and (latest is None or expires < latest):
        latest = expires  # a subkey is usable no longer than its primary key
    return Certificate(
        fingerprint=fingerprint,
        user_ids=tuple(_text(uid) for uid in key.get("uids", ())),
        can_encrypt=True,
        expires=expires,
        armored=armored,
        encryption_expires=latest,
        notes=notes,
    )


def _judge(key: dict, fingerprint: str, at: datetime) -> list[dict]:
    """The usable encryption keys of key (listings); refuses a revoked, expired or weak key."""
    if key.get("trust") in _DEAD:
        state = _DEAD[key["trust"]]
        raise CertificateError(f"the key {fingerprint} is {state}: upload a current key")
    weak = _weakness(key)
    if weak:
        raise CertificateError(f"the key {fingerprint} is {weak}")
    expires = _instant(key.get("expires", ""))
    if expires is not None and expires <= at:
        raise CertificateError(
            f"the key {fingerprint} expired on {expires:%Y-%m-%d}: extend it with "
            f"gpg --quick-set-expire {fingerprint} 2y (and its subkeys: "
            f"gpg --quick-set-expire {fingerprint} 2y '*'), then upload it again"
        )
    fingerprints = {sub[0]: sub[2] for sub in key.get("subkeys", ())}
    candidates = [(fingerprint, key)] if "e" in key.get("cap", "") else []
    candidates += [
        (fingerprints.get(keyid) or keyid, sub)
        for keyid, sub in key.get("subkey_info", {}).items()
        if "e" in sub.get("cap", "")
    ]
    if not candidates:
        raise CertificateError(
            f"the key {fingerprint} has no encryption subkey: add one with "
            f"gpg --quick-add-key {fingerprint} cv25519 encr, then upload it again"
        )
    usable = [(fpr, sub) for fpr, sub in candidates if _alive(sub, at)]
    if not usable:
        # Not revoked (or invalid) yet not alive: expired, so "expires" is set.
        ends = [(sub["expires"], fpr) for fpr, sub in candidates if sub.get("trust") not in _DEAD]
        if ends:
            end, subkey = max(ends, key=lambda pair: int(pair[0]))
            when = _instant(end)
            raise CertificateError(
                f"the encryption subkey of {fingerprint} expired on {when:%Y-%m-%d}: extend it "
                f"with gpg --quick-set-expire {fingerprint} 2y {subkey}, then upload it again"
            )
        raise CertificateError(
            f"the encryption subkey of {fingerprint} is revoked: add a new one with "
            f"gpg --quick-add-key {fingerprint} cv25519 encr, then upload it again"
        )
    for subkey, sub in usable:
        weak = _weakness(sub)
        if weak:
            raise CertificateError(f"the encryption subkey {subkey} of {fingerprint} is {weak}")
    return [sub for _, sub in usable]


def _weakness(listing: dict) -> str:
    """Why a key (listing) is too weak, ending in what to use instead; "" if it is strong."""
    algo, bits = listing.get("algo", ""), int(listing.get("length") or 0)
    if algo in _ELLIPTIC or (algo in _RSA and bits >= _MIN_RSA_BITS):
        return ""
    if algo in _RSA:
        return f"RSA-{bits}, which is too weak: {_STRONGER}"
    name = _ALGO_NAMES.get(algo, f"algorithm {algo}")
    return f"{name}-{bits}, which we do not accept: {_STRONGER}"


def _check_user_ids(
    key: dict, uid_map: dict, email: str, fingerprint: str, allow_other_uid: bool
) -> tuple[str, ...]:
    """() if a current (unrevoked) user id holds email, as "Name <email>" or "email"."""
    wanted = email.strip().lower()
    uids = [_text(uid) for uid in key.get("uids", ()) if uid_map.get(uid, {}).get("trust") != "r"]
    if any(wanted in (uid.strip().lower(), *_UID_ADDRESS.findall(uid.lower())) for uid in uids):
        return ()
    held = "".join(c if c.isprintable() else "?" for c in "; ".join(uids)[:300]) or "none"
    if allow_other_uid:
        return (f"no user id holds {wanted} (it has: {held}); accepted by an administrator",)
    raise CertificateError(
        f"no user id of the key {fingerprint} holds {wanted} (it has: {held}): add one with "
        f"gpg --quick-add-uid {fingerprint} 'Name <{wanted}>', then upload it again"
    )


def _addresses(key: dict, uid_map: dict) -> tuple[str, ...]:
    """The addresses of key's unrevoked user ids ("Name <a@b>" or "a@b"), lower case."""
    found = []
    for uid in key.get("uids", ()):
        if uid_map.get(uid, {}).get("trust") == "r":
            continue
        text = _text(uid).strip().lower()
        found += _UID_ADDRESS.findall(text) or ([text] if "@" in text and " " not in text else [])
    return tuple(dict.fromkeys(found))


def _text(uid: str) -> str:
    """A user id as its UTF-8 (scratch_gpg reads gpg's output as latin-1, which never fails)."""
    return uid.encode("latin-1", "replace").decode("utf-8", "replace")
