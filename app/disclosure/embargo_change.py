"""Moving an embargo's end: the one sequence the portal and the command line share.

In one transaction the new end is recorded and audited (app.vulns.lifecycle.set_date), and the
security team, the reporter and every registrant alerted about the vulnerability are told.
Then an end that has passed lifts the vulnerability at once (an early lift), and any other end
needs its lift (re)scheduled: the result says so, and the caller has the workers do it
(app.workers.scheduling.follow), for nothing here touches the queue.
"""

from datetime import datetime

from app.core.config import Settings
from app.core.db import write_transaction
from app.disclosure import lift
from app.models import Vulnerability
from app.outbox import deliveries
from app.registry import alerts
from app.vulns import lifecycle


def change_embargo(
    v: Vulnerability,
    until: datetime,
    reason: str,
    actor: lifecycle.Actor,
    at: datetime,
    settings: Settings,
) -> lift.AfterChange:
    """Set v's embargo end to `until`; extending it or ending it early needs a reason (Refused
    otherwise, and nothing changes). Returns what it means for the lift: lifted or held now
    when the end has passed, lift.SCHEDULE when the workers must (re)schedule it."""
    before = v.embargo_until
    kind = lifecycle.move_kind(before, until)
    with write_transaction():
        moved = lifecycle.set_date(v, "embargo_until", until, actor, at, reason)
        if kind in ("extend", "early-lift"):
            _tell_registrants(v, before, until, kind, at)
            _tell_team_and_reporter(v, before, until, kind, reason.strip(), at)
    return lift.after_change(moved, at, settings)


def _tell_registrants(
    v: Vulnerability, before: datetime, after: datetime, kind: str, at: datetime
) -> int:
    """A short notice to everyone alerted about v that its embargo moved, encrypted to each
    one's key like the advisory (the team's reason is not in it)."""
    count = 0
    for registrant in alerts.alerted(v).iterator():
        deliveries.queue(
            "alert-embargo",
            registrant.user.email,
            at,
            vulnerability=v,
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
            payload={
                "registrant": registrant.id,
                "before": before.isoformat(),
                "after": after.isoformat(),
                "kind": kind,
            },
        )
        count += 1
    return count


def _tell_team_and_reporter(v, before, after, kind, reason, at) -> None:
    """The team and the reporter learn that the publication date moved (the reason goes
    only to those whose key we have; the others get the dates and a link)."""
    payload = {
        "before": before.isoformat(),
        "after": after.isoformat(),
        "kind": kind,
        "reason": reason,
    }
    deliveries.queue_to_team("embargo-changed", at, payload, vulnerability=v)
    if v.reporter_email:
        deliveries.queue("embargo-changed", v.reporter_email, at, vulnerability=v, payload=payload)
