"""One way into the outbox: a Delivery row per (message, recipient), queued to be sent at `at`.

Every feature queues its mail with `queue` (or `queue_to_admins`, `queue_to_team` for the
usual groups of recipients); `row` is the one shape of a new delivery, for a caller that
inserts many at once. The payload is what the composer needs besides the rows, as JSON with
sorted keys. Call these inside the transaction that decides the mail, so the mail is queued
exactly when that decision is kept.
"""

import json
from collections.abc import Iterable
from datetime import datetime

from app.models import Advisory, Delivery, User, Vulnerability
from app.models.mail import DELIVERY_KINDS

KINDS = frozenset(DELIVERY_KINDS)


def _known(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"no such kind of delivery: {kind!r} (the kinds are DELIVERY_KINDS)")


def row(
    kind: str,
    recipient: str,
    at: datetime,
    *,
    vulnerability: Vulnerability | None = None,
    advisory: Advisory | None = None,
    user: User | None = None,
    fingerprint: str | None = None,
    payload: dict | None = None,
) -> dict:
    """The columns of a new delivery, due at `at`; ValueError for a kind the outbox cannot
    compose (nothing would ever send it)."""
    _known(kind)
    return {
        "kind": kind,
        "advisory": advisory,
        "vulnerability": vulnerability,
        "user": user,
        "recipient": recipient,
        "fingerprint": fingerprint,
        "payload": json.dumps(payload or {}, sort_keys=True),
        "next_attempt_at": at,
        "created_at": at,
    }


def queue(
    kind: str,
    recipient: str,
    at: datetime,
    *,
    vulnerability: Vulnerability | None = None,
    advisory: Advisory | None = None,
    user: User | None = None,
    fingerprint: str | None = None,
    payload: dict | None = None,
) -> Delivery:
    """Queue one mail of `kind` to `recipient`, to be sent from `at` on."""
    return Delivery.create(
        **row(
            kind,
            recipient,
            at,
            vulnerability=vulnerability,
            advisory=advisory,
            user=user,
            fingerprint=fingerprint,
            payload=payload,
        )
    )


def _to_each(
    kind: str, people: Iterable[User], at: datetime, payload: dict | None, **rows
) -> list[User]:
    _known(kind)  # also when there is nobody to tell
    told = []
    for person in people:
        queue(kind, person.email, at, user=person, payload=payload, **rows)
        told.append(person)
    return told


def admins() -> list[User]:
    """Every active admin, oldest account first."""
    return list(
        User.select()
        .where(User.role == "admin", User.active == True)  # noqa: E712
        .order_by(User.id)
    )


def queue_to_admins(kind: str, at: datetime, payload: dict | None = None, **rows) -> list[User]:
    """The same mail to every active admin; returns the admins it was queued to."""
    return _to_each(kind, admins(), at, payload, **rows)


def queue_to_team(
    kind: str,
    at: datetime,
    payload: dict | None = None,
    *,
    vulnerability: Vulnerability | None = None,
) -> list[User]:
    """The same mail to each member of the security team (active admins and team members);
    returns the members it was queued to."""
    return _to_each(kind, User.security_team(), at, payload, vulnerability=vulnerability)
