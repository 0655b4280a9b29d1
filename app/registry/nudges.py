"""One reminder to answer an alert before the lift (#17): a product maker still silent
FOREWARN_ANSWER_NUDGE_DAYS (default 14) before an embargo ends is asked once to say whether their
products are affected, and the team sees who stayed silent.

Silent means no answer at all (any status counts as an answer, "under investigation" too). Only
registrants who were alerted about the vulnerability and still get alerts (approved, subscribed,
active) are reminded. Once only per registrant and vulnerability: the Delivery of kind
NUDGE_KIND is the record, looked for before queueing again, inside a write transaction that
holds the vulnerability's nudge lock, so two reconcilers running at once queue it once, and an
embargo moved out of the window and back brings no second reminder.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core import audit
from app.core.config import Settings
from app.core.db import serialise, write_transaction
from app.models import Answer, Delivery, Registrant, Vulnerability
from app.outbox import deliveries
from app.registry import alerts
from app.registry.answers import NUDGE_KIND

# Under embargo and open to answers: alerts go out in these states (published and rejected
# ones are past asking).
WATCHED = alerts.SENDABLE
# The team's dashboard lists the silent this long before an embargo ends when the reminder
# is turned off.
SHOWN_DAYS = 14


def window(settings: Settings) -> timedelta | None:
    """How long before an embargo's end the reminder goes; None when it is turned off."""
    days = settings.answer_nudge_days
    return timedelta(days=days) if days > 0 else None


def _ending(at: datetime, within: timedelta):
    """Vulnerabilities under embargo whose end is after `at` and no later than `at + within`."""
    return (
        Vulnerability.select()
        .where(
            Vulnerability.status.in_(WATCHED),
            Vulnerability.embargo_until.is_null(False),
            Vulnerability.embargo_until > at,
            Vulnerability.embargo_until <= at + within,
        )
        .order_by(Vulnerability.embargo_until, Vulnerability.id)
    )


def silent(v: Vulnerability):
    """Registrants alerted about v who still get alerts and never answered it (a query)."""
    answered = Answer.select(Answer.registrant).where(Answer.vulnerability == v)
    return alerts.alerted(v).where(Registrant.id.not_in(answered))


def _reminded(v: Vulnerability):
    return Delivery.select(Delivery.user).where(
        Delivery.kind == NUDGE_KIND, Delivery.vulnerability == v
    )


def due(at: datetime, settings: Settings) -> list[tuple[Vulnerability, list[Registrant]]]:
    """Each vulnerability whose reminder is due at `at`, with the registrants to remind (silent,
    and not reminded about it before); nothing when the reminder is turned off."""
    within = window(settings)
    if within is None:
        return []
    found = []
    for v in _ending(at, within):
        people = list(silent(v).where(Registrant.user.not_in(_reminded(v))))
        if people:
            found.append((v, people))
    return found


def send_due(at: datetime, settings: Settings) -> int:
    """Queue every reminder that is due and not yet queued; returns how many. Safe to run at
    any time and from several workers at once (the worker's reconciler runs it every minute)."""
    queued = 0
    for v, _ in due(at, settings):
        with write_transaction():
            # Two workers at once: the second waits here, then finds the first one's rows.
            serialise(f"answer-nudge-{v.id}")
            fresh = _ending(at, window(settings)).where(Vulnerability.id == v.id).first()
            if fresh is None:
                continue  # published, rejected or moved meanwhile: no longer due
            people = list(silent(fresh).where(Registrant.user.not_in(_reminded(fresh))))
            for registrant in people:
                deliveries.queue(
                    NUDGE_KIND,
                    registrant.user.email,
                    at,
                    vulnerability=fresh,
                    user=registrant.user,
                    fingerprint=registrant.pinned_fingerprint,
                    payload={"registrant": registrant.id},
                )
            if people:
                audit.record(
                    None,
                    "answer.nudge",
                    at,
                    target=fresh.tracking_id,
                    details={
                        "embargo_until": fresh.embargo_until.isoformat(),
                        "to": [r.user.email for r in people],
                    },
                )
            queued += len(people)
    return queued


@dataclass(frozen=True)
class Silence:
    """For the team: how many alerted product makers have not answered a vulnerability whose
    embargo ends soon, and when the reminder went (None: not yet)."""

    vulnerability: Vulnerability
    silent: int
    reminded_at: datetime | None


def nearing(at: datetime, settings: Settings) -> list[Silence]:
    """Vulnerabilities whose embargo ends within the reminder's window (SHOWN_DAYS when it is
    turned off) and that someone alerted has not answered, soonest end first."""
    within = window(settings) or timedelta(days=SHOWN_DAYS)
    found = []
    for v in _ending(at, within):
        users = [r.user_id for r in silent(v)]
        if not users:
            continue
        first = (
            Delivery.select(Delivery.created_at)
            .where(
                Delivery.kind == NUDGE_KIND,
                Delivery.vulnerability == v,
                Delivery.user.in_(users),
            )
            .order_by(Delivery.created_at)
            .first()
        )
        found.append(Silence(v, len(users), first.created_at if first else None))
    return found
