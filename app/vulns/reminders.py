"""Reminders before dates slip: the assignee is mailed when a fix is due, or an embargo ends,
in 7 days, in 1 day, and when the date has passed (then the whole team too).

Idempotent: each reminder is recorded on the vulnerability with the date it was about, so a
pass can run at any time (the worker's reconciler runs one every minute) and a changed date
arms its reminders again.
"""

import json
from datetime import datetime, timedelta

import peewee

from app.core import audit, steps
from app.core.db import write_transaction
from app.models import Advisory, User, Vulnerability
from app.outbox import deliveries

STEPS = (("past", timedelta(0)), ("1 day", timedelta(days=1)), ("7 days", timedelta(days=7)))
# Which states each date matters in: a fixed vulnerability needs no fix reminder.
WATCHED = {
    "fix_due": ("new", "triage", "accepted"),
    "embargo_until": ("new", "triage", "accepted", "fixed"),
}


# Product makers are promised this long between the alert and the embargo's end.
DEPLOY_WINDOW = timedelta(days=60)


def queue_due(at: datetime) -> int:
    """Queue every reminder that is due and not yet sent; returns how many deliveries."""
    queued = _lead_time(at)
    for field, states in WATCHED.items():
        column = getattr(Vulnerability, field)
        candidates = Vulnerability.select().where(
            Vulnerability.status.in_(states), column.is_null(False), column <= at + STEPS[-1][1]
        )
        for v in candidates:
            queued += _remind(v, field, at)
    return queued


def _lead_time(at: datetime) -> int:
    """The team is told when an embargo ends sooner than the deployment window promised to
    product makers and no alert has gone out yet."""
    late = (
        Vulnerability.select()
        .join(Advisory, peewee.JOIN.LEFT_OUTER, on=(Advisory.vulnerability == Vulnerability.id))
        .where(
            Vulnerability.status.in_(("accepted", "fixed")),
            Vulnerability.embargo_until.is_null(False),
            Vulnerability.embargo_until < at + DEPLOY_WINDOW,
            Advisory.id.is_null(),
        )
    )
    queued = 0
    for v in late:
        key = f"lead-time:{v.embargo_until.isoformat()}"
        with write_transaction():
            fresh = Vulnerability.get_by_id(v.id)
            sent = json.loads(fresh.reminders_sent or "{}")
            if key in sent:
                continue
            sent[key] = at.isoformat()
            Vulnerability.update(reminders_sent=json.dumps(sent, sort_keys=True)).where(
                Vulnerability.id == v.id
            ).execute()
            for person in _recipients(fresh, overdue=True):
                deliveries.queue(
                    "reminder",
                    person.email,
                    at,
                    vulnerability=v,
                    user=person,
                    payload={
                        "field": "lead_time",
                        "step": "alert",
                        "deadline": v.embargo_until.isoformat(),
                    },
                )
                queued += 1
            audit.record(None, "reminder.lead_time", at, target=v.tracking_id)
    return queued


def _remind(v: Vulnerability, field: str, at: datetime) -> int:
    deadline = getattr(v, field)
    step = steps.due(STEPS, deadline, at)
    if step is None:
        return 0
    key = f"{field}:{deadline.isoformat()}:{step}"
    with write_transaction():
        fresh = Vulnerability.get_by_id(v.id)
        sent = json.loads(fresh.reminders_sent or "{}")
        if key in sent:
            return 0
        sent[key] = at.isoformat()
        Vulnerability.update(reminders_sent=json.dumps(sent, sort_keys=True)).where(
            Vulnerability.id == v.id
        ).execute()
        people = _recipients(fresh, overdue=step == "past")
        for person in people:
            deliveries.queue(
                "reminder",
                person.email,
                at,
                vulnerability=v,
                user=person,
                payload={"field": field, "step": step, "deadline": deadline.isoformat()},
            )
        audit.record(
            None,
            "reminder.queue",
            at,
            target=v.tracking_id,
            details={"field": field, "step": step, "to": [p.email for p in people]},
        )
    return len(people)


def _recipients(v: Vulnerability, overdue: bool) -> list[User]:
    team = list(User.security_team())
    assignee = v.assignee if v.assignee_id and v.assignee.active else None
    if assignee is None:
        return team
    if overdue:
        return [assignee] + [member for member in team if member.id != assignee.id]
    return [assignee]
