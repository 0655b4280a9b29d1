"""The append-only audit log: every privileged action is recorded with its actor and time."""

import json
from collections.abc import Iterator
from datetime import datetime

from peewee import fn

from app.core import timefmt
from app.models import AuditEvent, User


def record(
    actor: User | None,
    action: str,
    at: datetime,
    target: str = "",
    details: dict | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    label = actor_label or (actor.email if actor is not None else "system")
    return AuditEvent.create(
        actor=actor,
        actor_label=label,
        action=action,
        target=target,
        at=at,
        details=json.dumps(details or {}, sort_keys=True),
    )


def events(
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int | None = None,
):
    """The events that match every filter given, newest first (an unrun query).

    `actor` is the label the event was recorded with (an email, "cli:…", "system"), compared
    without case; `since` is inclusive and `until` exclusive; `before` is the id of the last
    event of the previous page, whose older neighbours come next.
    """
    query = AuditEvent.select().order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if actor:
        query = query.where(fn.LOWER(AuditEvent.actor_label) == actor.strip().lower())
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        query = query.where(AuditEvent.target == target.strip())
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before is not None:
        last = AuditEvent.get_or_none(AuditEvent.id == before)
        if last is not None:
            # Keyset paging: events recorded while someone reads do not shift the pages.
            query = query.where(
                (AuditEvent.at < last.at) | ((AuditEvent.at == last.at) & (AuditEvent.id < last.id))
            )
    if limit is not None:
        query = query.limit(limit)
    return query


def already(action: str, target: str, **details) -> AuditEvent | None:
    """The first event recorded with this action and target whose details hold every value
    given (e.g. mark="..."): what makes a warning or notice go out once. The database narrows
    by action (indexed) and target; the few events left are compared here."""
    query = (
        AuditEvent.select()
        .where(AuditEvent.action == action, AuditEvent.target == target)
        .order_by(AuditEvent.id)
    )
    for event in query:
        recorded = json.loads(event.details or "{}")
        if all(recorded.get(key) == value for key, value in details.items()):
            return event
    return None


def actions() -> list[str]:
    """Every action the log holds, alphabetically (for a filter's choices)."""
    query = AuditEvent.select(AuditEvent.action).distinct().order_by(AuditEvent.action)
    return [action for (action,) in query.tuples()]


CSV_HEADER = ("at", "actor", "action", "target", "details")


def csv_rows(query) -> Iterator[list[str]]:
    """The header, then one row per event: the instant in ISO 8601 UTC, details as JSON."""
    yield list(CSV_HEADER)
    for event in query.iterator():
        yield [
            _cell(value)
            for value in (
                timefmt.zulu(event.at),
                event.actor_label,
                event.action,
                event.target,
                event.details,
            )
        ]


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts like a formula; targets can come from outside.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
