"""The service key's own expiry: admins are warned 60 and 30 days before it, and once it has
expired.

Each warning is a mail to every active admin saying what to do (`forewarn key renew`) and by
when. The warnings before expiry are signed; the one after it cannot be (gpg refuses to sign
with an expired key), so it goes out unsigned and says why.

Idempotent like app/registry/renewal.py: every warning queued is recorded as an AuditEvent
("service-key.expiry-warning") whose details carry a mark (the expiry instant and the step),
checked before queueing again; a renewed key (a new expiry) arms the warnings again.

The reconciler calls tick() every pass; it asks gpg for the expiry at most once an hour, and
logs an error each time while the key has expired.
"""

import logging
import time
from datetime import datetime, timedelta

from app.core import audit, steps, timefmt
from app.core.db import write_transaction
from app.outbox import deliveries

log = logging.getLogger("forewarn.service_key")

ACTION = "service-key.expiry-warning"
KIND = "service-key-expiry"
EXPIRED = "expired"
# Nearest first: the nearest step reached is the one due (a missed pass skips to it).
STEPS = ((EXPIRED, timedelta(0)), ("30 days", timedelta(days=30)), ("60 days", timedelta(days=60)))
CHECK_EVERY_SECONDS = 3600

_last_check: float | None = None


def _sent(fingerprint: str, mark: str) -> bool:
    return audit.already(ACTION, fingerprint, mark=mark) is not None


def queue_due(fingerprint: str, expires: datetime | None, at: datetime) -> int:
    """Queue the warning due at `at` for a service key expiring at `expires` (None: never), to
    every active admin, unless it was queued already; returns how many mails were queued."""
    if expires is None:
        return 0
    step = steps.due(STEPS, expires, at)
    if step is None:
        return 0
    mark = f"{expires.isoformat()}:{step}"
    with write_transaction():
        if _sent(fingerprint, mark):
            return 0
        admins = deliveries.queue_to_admins(
            KIND,
            at,
            {"fingerprint": fingerprint, "expires": expires.isoformat(), "step": step},
        )
        audit.record(
            None,
            ACTION,
            at,
            target=fingerprint,
            details={"mark": mark, "admins": len(admins)},
        )
    return len(admins)


def check(keyring, at: datetime) -> int:
    """Read the service key's expiry from the keyring and queue what is due; log an error
    while it has expired (every signed mail fails until it is renewed)."""
    fingerprint = keyring.fingerprint()
    if fingerprint is None:
        return 0
    expires = keyring.expiry()
    if expires is not None and at >= expires:
        log.error(
            "service key %s expired %s: signed mail is failing; run `forewarn key renew`",
            fingerprint,
            timefmt.minute(expires),
        )
    return queue_due(fingerprint, expires, at)


def tick(at: datetime, settings, open_keyring) -> int:
    """The reconciler's call: check() at most once an hour in this process. open_keyring()
    gives the worker's service keyring (the workers open it; this module never does)."""
    global _last_check
    if _last_check is not None and time.monotonic() - _last_check < CHECK_EVERY_SECONDS:
        return 0
    _last_check = time.monotonic()
    if not settings.gnupg_home.is_dir():  # no key here (yet): nothing to watch, nothing made
        return 0
    return check(open_keyring(), at)


def unsigned(payload: dict) -> bool:
    """Whether a warning must go out unsigned: the one sent once the key has expired."""
    return payload.get("step") == EXPIRED
