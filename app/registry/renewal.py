"""The registry's life cycle: encryption keys that expire, and the yearly re-confirmation.

Key expiry: an approved registrant is warned 30, 14 and 3 days before their encryption subkey
expires (encrypted to that key); admins are told 14 days before and when it has expired.
`flagged(at)` lists approved registrants alerts could not reach (no usable key, or an expired
one), so an alert never skips them silently.

Re-confirmation: a year after a registrant was last confirmed (or created) they get a link to
confirm they still qualify; 30 days after the link went out without an answer they are
suspended and admins are told.

Idempotent: each mail queued is recorded as an AuditEvent ("renewal.<kind>") whose details
carry a mark (the expiry date or the year it is about, and the step), checked before queueing
again, so a pass can run at any time (the worker's reconciler runs one every minute) and a
new key arms its warnings again.
"""

from datetime import datetime, timedelta

import peewee
from itsdangerous import BadSignature, SignatureExpired

from app.core import audit, steps, tokens
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import AuditEvent, PublicKey, Registrant, User
from app.outbox import deliveries
from app.registry import proof, vetting
from keys.inspect import encrypts_at

# Nearest first: the nearest step reached is the one due (a missed pass skips to it).
REGISTRANT_STEPS = (
    ("3 days", timedelta(days=3)),
    ("14 days", timedelta(days=14)),
    ("30 days", timedelta(days=30)),
)
ADMIN_STEPS = (("expired", timedelta(0)), ("14 days", timedelta(days=14)))
RECONFIRM_EVERY = timedelta(days=365)
GRACE = timedelta(days=30)
RECONFIRM_SALT = "forewarn.reconfirm"
SUSPEND_REASON = "not re-confirmed within 30 days"


# -- keys -------------------------------------------------------------------------------------


def needs_key(registrant: Registrant, at: datetime) -> bool:
    """True if alerts could not be encrypted to this registrant at `at`."""
    key = registrant.key if registrant.key_id is not None else None
    if key is None or not key.usable:
        return True
    return not encrypts_at(key.expires, registrant.encryption_expires, at)


def flagged(at: datetime) -> peewee.ModelSelect:
    """Approved registrants whose key is missing, unusable or expired at `at`."""
    return (
        Registrant.approved()
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(
            Registrant.key.is_null()
            | (PublicKey.usable == False)  # noqa: E712
            | (Registrant.encryption_expires <= at)
            | (PublicKey.expires <= at)
        )
        .order_by(Registrant.id)
    )


def current_key(registrant: Registrant, at: datetime) -> PublicKey | None:
    """The key to encrypt a registrant's mail to: their pinned one if usable and unexpired."""
    return None if needs_key(registrant, at) else registrant.key


# -- what was sent ----------------------------------------------------------------------------


def _sent(kind: str, registrant: Registrant, mark: str) -> AuditEvent | None:
    return audit.already(f"renewal.{kind}", registrant.user.email, mark=mark)


def _lock(registrant: Registrant) -> Registrant:
    """Re-read the registrant inside a write transaction (locked on PostgreSQL, where two
    reconcilers could otherwise both queue the same mail; SQLite's IMMEDIATE does it there)."""
    query = Registrant.select().where(Registrant.id == registrant.id)
    if not isinstance(Registrant._meta.database.obj, peewee.SqliteDatabase):
        query = query.for_update()
    return query.get()


def _tell_admins(registrant: Registrant, event: str, at: datetime, **extra) -> list[User]:
    return deliveries.queue_to_admins(
        "registry-admin",
        at,
        {
            "event": event,
            "registrant": registrant.id,
            "email": registrant.user.email,
            "organisation": registrant.organisation,
            **extra,
        },
    )


# -- key expiry -------------------------------------------------------------------------------


def _watch_key(registrant: Registrant, at: datetime) -> int:
    expires = registrant.encryption_expires
    queued = 0
    step = steps.due(REGISTRANT_STEPS, expires, at) if at < expires else None
    if step is not None:
        mark = f"{expires.isoformat()}:{step}"
        with write_transaction():
            fresh = _lock(registrant)
            if fresh.encryption_expires == expires and _sent("key-expiry", fresh, mark) is None:
                deliveries.queue(
                    "key-expiry",
                    fresh.user.email,
                    at,
                    user=fresh.user,
                    fingerprint=fresh.pinned_fingerprint,
                    payload={"registrant": fresh.id, "expires": expires.isoformat(), "step": step},
                )
                audit.record(
                    None,
                    "renewal.key-expiry",
                    at,
                    target=fresh.user.email,
                    details={"mark": mark, "to": [fresh.user.email]},
                )
                queued += 1
    step = steps.due(ADMIN_STEPS, expires, at)
    if step is not None:
        mark = f"{expires.isoformat()}:{step}"
        with write_transaction():
            fresh = _lock(registrant)
            if fresh.encryption_expires == expires and _sent("registry-admin", fresh, mark) is None:
                event = "key-expired" if step == "expired" else "key-expiring"
                admins = _tell_admins(fresh, event, at, expires=expires.isoformat())
                audit.record(
                    None,
                    "renewal.registry-admin",
                    at,
                    target=fresh.user.email,
                    details={"mark": mark, "event": event, "to": [a.email for a in admins]},
                )
                queued += len(admins)
    return queued


# -- yearly re-confirmation -------------------------------------------------------------------


def _since(registrant: Registrant) -> datetime:
    return registrant.last_confirmed_at or registrant.created_at


def reconfirm_token(secret_key: str, registrant_id: int, since: datetime, at: datetime) -> str:
    """The link's token: the registrant and the confirmation it renews."""
    return tokens.timed(secret_key, RECONFIRM_SALT, at).dumps([registrant_id, since.isoformat()])


def confirm(token: str, secret_key: str, at: datetime) -> Registrant:
    """The registrant still qualifies: the year starts again. Each link works once.
    (The web route /registry/reconfirm/<token> calls this.)"""
    try:
        registrant_id, since = tokens.timed(secret_key, RECONFIRM_SALT, at).loads(
            token, max_age=int(GRACE.total_seconds())
        )
    except SignatureExpired:
        raise Refused(
            "This link has expired: ask the security team to re-confirm your registration"
        ) from None
    except (BadSignature, ValueError, TypeError):
        raise Refused("This link is not valid: copy the whole link from the mail") from None
    registrant = Registrant.get_or_none(Registrant.id == registrant_id)
    if registrant is None:
        raise Refused("This link is not valid any more")
    with write_transaction():
        fresh = _lock(registrant)
        if fresh.status != "approved":
            raise Refused(
                f"Your registration is {fresh.status}: ask the security team to review it"
            )
        if _since(fresh).isoformat() != since:
            raise Refused("This link was already used: sign in to see your status")
        proof.use_once(RECONFIRM_SALT, token, at)
        Registrant.update(last_confirmed_at=at, updated_at=at).where(
            Registrant.id == fresh.id
        ).execute()
        audit.record(
            fresh.user,
            "registry.reconfirmed",
            at,
            target=fresh.user.email,
            details={"previous": since},
        )
    return Registrant.get_by_id(registrant.id)


def _reconfirm(registrant: Registrant, at: datetime) -> int:
    since = _since(registrant)
    if at < since + RECONFIRM_EVERY:
        return 0
    mark = since.isoformat()
    with write_transaction():
        fresh = _lock(registrant)
        if fresh.status != "approved" or _since(fresh) != since:
            return 0
        asked = _sent("reconfirm", fresh, mark)
        if asked is None:
            deliveries.queue(
                "reconfirm",
                fresh.user.email,
                at,
                user=fresh.user,
                fingerprint=fresh.pinned_fingerprint,
                payload={
                    "registrant": fresh.id,
                    "since": mark,
                    "deadline": (at + GRACE).isoformat(),
                },
            )
            audit.record(
                None,
                "renewal.reconfirm",
                at,
                target=fresh.user.email,
                details={"mark": mark, "to": [fresh.user.email]},
            )
            return 1
        if at < asked.at + GRACE:
            return 0
    # No answer within the grace period: suspended, and admins told (once: decide() refuses
    # a second suspension, and the registrant is no longer approved).
    with write_transaction():
        fresh = _lock(registrant)
        if fresh.status != "approved" or _since(fresh) != since:
            return 0
        vetting.decide(fresh, "suspended", None, "system", at, reason=SUSPEND_REASON)
        admins = _tell_admins(fresh, "suspended", at, reason=SUSPEND_REASON)
        audit.record(
            None,
            "renewal.registry-admin",
            at,
            target=fresh.user.email,
            details={
                "mark": f"suspended:{mark}",
                "event": "suspended",
                "to": [a.email for a in admins],
            },
        )
    return len(admins)


# -- the pass ---------------------------------------------------------------------------------


def queue_due(at: datetime) -> int:
    """Queue every warning, link and notice that is due and not yet sent, and suspend those
    whose grace has run out; returns how many deliveries were queued."""
    queued = 0
    watched = Registrant.approved().where(
        Registrant.encryption_expires.is_null(False),
        Registrant.encryption_expires <= at + REGISTRANT_STEPS[-1][1],
    )
    for registrant in watched.order_by(Registrant.id):
        queued += _watch_key(registrant, at)
    cutoff = at - RECONFIRM_EVERY
    due = Registrant.select().where(
        Registrant.status == "approved",
        (Registrant.last_confirmed_at <= cutoff)
        | (Registrant.last_confirmed_at.is_null() & (Registrant.created_at <= cutoff)),
    )
    for registrant in due.order_by(Registrant.id):
        queued += _reconfirm(registrant, at)
    return queued
