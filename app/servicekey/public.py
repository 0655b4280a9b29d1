"""The service key's public side, published for the web: the certificate and a signed
security.txt, written by whoever holds the secret key, read by a web that never does.

The secret key lives in the GnuPG home (instance/gpg) and is opened only by the workers and by
the operator's key commands (`forewarn init`, `key import`, `key renew`). They publish, into
instance/public/ (Settings.public_dir):

- service-key.json what the web reads, in one file replaced whole: the certificate (public key,
                   ASCII-armored: /key.asc, the WKD, and what the web encrypts a web report to,
                   certificate()), security.txt (RFC 9116's fields clear-signed by the service
                   key; Expires moves forward with every day, so a worker signs it again each
                   day), the fingerprint, the key's expiry, when security.txt was signed and
                   until when it holds, the sha256 of its fields;
- service-key.asc, security.txt   copies of the two, for an operator or a proxy serving files.

publish() writes them (each file replaced whole, atomically); tick() is the reconciler's call,
which publishes again when the key changed (a rotation, a renewal) or security.txt's fields
would (a new day, another address or site). Reading needs nothing but these files.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.core.config import Settings
from app.core.errors import OperatorError
from app.disclosure import wellknown
from keys.errors import KeysError

log = logging.getLogger("forewarn.service_key")

CERTIFICATE = "service-key.asc"
SECURITY_TXT = "security.txt"
STATE = "service-key.json"
# The reconciler exports the certificate again this often, to notice a renewal made elsewhere
# (each key command publishes at once; this is for a key changed by gpg by hand).
EXPORT_EVERY_SECONDS = 3600
# After a failed publication (a key that cannot sign: expired, or its passphrase wrong), the
# reconciler tries again this much later, not every pass.
RETRY_AFTER_SECONDS = 600

# Per published folder (this process may serve several instances, as the tests do): when the
# certificate was last exported, and when a publication last failed (time.monotonic()).
_last_export: dict[Path, float] = {}
_last_failure: dict[Path, float] = {}


class NotPublished(OperatorError):
    """Nothing is published yet (or the folder cannot be read)."""


@dataclass(frozen=True)
class Published:
    fingerprint: str
    certificate: str  # ASCII armor
    key_expires: datetime | None
    published_at: datetime
    security_txt: str | None  # clear-signed; None when the key could not sign (expired)
    signed_at: datetime | None
    security_txt_expires: datetime | None
    fields_sha256: str | None  # of the unsigned fields signed


def fields(settings: Settings, at: datetime) -> str:
    """security.txt's fields at `at`, unsigned."""
    return wellknown.security_txt(settings, at, wellknown.POLICY_PATH)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write(folder: Path, name: str, data: str) -> None:
    """Replace folder/name whole: a reader sees the old file or the new, never half of one."""
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)  # public material: readable by a web running as another user
        os.replace(temporary, folder / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def publish(keyring, settings: Settings, at: datetime) -> Published:
    """Export the service key's certificate and sign security.txt for `at`, and publish both
    for the web. The certificate is published even when signing fails (an expired key cannot
    sign): then the error is raised after it, and the security.txt published before stays if
    it is this key's."""
    fingerprint = keyring.fingerprint()
    if fingerprint is None:
        raise OperatorError("there is no service key yet: run `forewarn init`")
    certificate = keyring.export_public()
    expires = keyring.expiry()
    text = fields(settings, at)
    try:
        signed, failure = keyring.clearsign(text), None
    except KeysError as exc:
        signed, failure = None, exc
    before = read(settings)
    state = {
        "fingerprint": fingerprint,
        "key_expires": _iso(expires),
        "published_at": at.isoformat(),
        "certificate": certificate,
        "security_txt": signed,
        "signed_at": at.isoformat() if signed else None,
        "security_txt_expires": _iso(wellknown.security_txt_expires(at)) if signed else None,
        "fields_sha256": _sha(text) if signed else None,
    }
    if signed is None and before is not None and before.fingerprint == fingerprint:
        state.update(  # keep this key's last signature while it still holds
            security_txt=before.security_txt,
            signed_at=_iso(before.signed_at),
            security_txt_expires=_iso(before.security_txt_expires),
            fields_sha256=before.fields_sha256,
        )
    folder = settings.public_dir
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    # The copies, for an operator or a proxy that serves files; the web reads the state alone,
    # one file replaced whole, so it never sees one key's certificate with another's signature.
    _write(folder, CERTIFICATE, certificate)
    if state["security_txt"]:
        _write(folder, SECURITY_TXT, state["security_txt"])
    else:
        (folder / SECURITY_TXT).unlink(missing_ok=True)
    _write(folder, STATE, json.dumps(state, indent=2) + "\n")
    if failure is not None:
        raise failure
    log.info("published the service key %s and security.txt", fingerprint)
    return read(settings)


def read(settings: Settings) -> Published | None:
    """What is published, or None when nothing is (yet)."""
    path = settings.public_dir / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return Published(
            fingerprint=state["fingerprint"],
            certificate=state["certificate"],
            key_expires=_instant(state.get("key_expires")),
            published_at=_instant(state["published_at"]),
            security_txt=state.get("security_txt"),
            signed_at=_instant(state.get("signed_at")),
            security_txt_expires=_instant(state.get("security_txt_expires")),
            fields_sha256=state.get("fields_sha256"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotPublished(
            f"cannot read the published service key {path} ({type(exc).__name__}); "
            "fix its permissions or run `forewarn init`"
        ) from None


def version(settings: Settings) -> tuple | None:
    """Changes with every publication (the file is replaced: a new inode), so that a reader
    may keep what it read until then."""
    try:
        stat = os.stat(settings.public_dir / STATE)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def required(settings: Settings) -> Published:
    published = read(settings)
    if published is None:
        raise NotPublished(
            f"the service key is not published in {settings.public_dir}: run `forewarn init` "
            "(or start a worker, which publishes it)"
        )
    return published


def certificate(settings: Settings) -> str:
    """The service key's certificate (ASCII armor), public only: what the web serves and
    encrypts to. NotPublished when there is none yet."""
    return required(settings).certificate


def fingerprint(settings: Settings) -> str | None:
    """The published service key's fingerprint, or None when nothing is published."""
    published = read(settings)
    return published.fingerprint if published is not None else None


def stale(published: Published | None, fingerprint: str | None, text: str) -> bool:
    """Whether what is published no longer matches the key (`fingerprint`) or the fields."""
    if published is None or fingerprint is None:
        return fingerprint is not None
    if published.fingerprint != fingerprint:
        return True
    return published.security_txt is None or published.fields_sha256 != _sha(text)


def tick(at: datetime, settings: Settings, open_keyring) -> bool:
    """The reconciler's call, every pass: publish again when what is published is stale (a
    new day's Expires, another key after a rotation, other settings), and export the
    certificate again once an hour to catch a renewal. Returns whether it published.

    open_keyring() gives the worker's service keyring; the fingerprint is read from the
    keyring's files' state, so a pass with nothing to do starts no gpg."""
    folder = settings.public_dir
    failed = _last_failure.get(folder)
    if failed is not None and time.monotonic() - failed < RETRY_AFTER_SECONDS:
        return False
    keyring = open_keyring()
    current = keyring.fingerprint()
    published = read(settings)
    due = stale(published, current, fields(settings, at))
    exported = _last_export.get(folder)
    hourly = exported is None or time.monotonic() - exported >= EXPORT_EVERY_SECONDS
    if not due and current is not None and hourly:
        _last_export[folder] = time.monotonic()
        due = keyring.export_public() != published.certificate
    if not due:
        return False
    try:
        publish(keyring, settings, at)
    except Exception:
        _last_failure[folder] = time.monotonic()
        raise
    _last_failure.pop(folder, None)
    _last_export[folder] = time.monotonic()
    return True
