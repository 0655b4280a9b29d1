"""Moving an embargo's end: the one sequence the portal and the command line share.

The vulnerabilities of a case share their embargo end by default: moving v's end moves every
other member of v's case that is still to be published and had the same end (unless `only`).
In one transaction each new end is recorded and audited (app.vulns.lifecycle.set_date), and
the security team, the reporter and every registrant alerted about a moved vulnerability are
told, once for the whole move. Then an end that has passed lifts the moved vulnerabilities at
once (an early lift), and any other end needs their lifts (re)scheduled: the result says so
for each, and the caller has the workers do it (app.workers.scheduling.follow), for nothing
here touches the queue.
"""

from dataclasses import dataclass
from datetime import datetime

from app.core import audit
from app.core.config import Settings
from app.core.db import write_transaction
from app.disclosure import lift
from app.models import Vulnerability
from app.outbox import deliveries
from app.registry import alerts
from app.vulns import cases, lifecycle

SETTLED = ("published", "rejected")  # their embargo end no longer moves with the case


@dataclass(frozen=True)
class EmbargoMove:
    """What moving an embargo end did: for v first, then for each member moved with it, what
    it means for the lift (follow each with app.workers.scheduling.follow)."""

    changes: tuple[lift.AfterChange, ...]

    @property
    def vulnerability(self) -> Vulnerability:
        """v, as read after the change."""
        return self.changes[0].vulnerability

    @property
    def outcome(self) -> str:
        """What the change means for v's own lift."""
        return self.changes[0].outcome

    @property
    def moved_with(self) -> list[Vulnerability]:
        """The other members of the case that moved with v."""
        return [c.vulnerability for c in self.changes[1:]]


def moving_with(v: Vulnerability, before: datetime | None) -> list[Vulnerability]:
    """The other members of v's case whose end is `before` and still to be published: they
    move with v."""
    if before is None:
        return []  # a first end is v's alone
    return [
        m
        for m in cases.members(v).where(
            Vulnerability.id != v.id,
            Vulnerability.status.not_in(SETTLED),
            Vulnerability.embargo_until == before,
        )
    ]


def change_embargo(
    v: Vulnerability,
    until: datetime,
    reason: str,
    actor: lifecycle.Actor,
    at: datetime,
    settings: Settings,
    only: bool = False,
) -> EmbargoMove:
    """Set v's embargo end to `until`, and that of every other member of its case that had the
    same end (v alone when `only`); extending it or ending it early needs a reason (Refused
    otherwise, and nothing changes). Returns what it means for each moved one's lift."""
    before = v.embargo_until
    kind = lifecycle.move_kind(before, until)
    with write_transaction():
        others = [] if only or kind == "set" else moving_with(v, before)
        moved = [lifecycle.set_date(v, "embargo_until", until, actor, at, reason)]
        for other in others:
            moved.append(lifecycle.set_date(other, "embargo_until", until, actor, at, reason))
        if others:
            audit.record(
                actor.user,
                "case.embargo_moved",
                at,
                target=v.tracking_id,
                details={
                    "case": cases.case_id(v),
                    "with": [m.tracking_id for m in others],
                    "before": before.isoformat(),
                    "after": until.isoformat(),
                },
                actor_label=actor.label,
            )
        if kind in ("extend", "early-lift"):
            _tell_registrants(moved, before, until, kind, at)
            _tell_team_and_reporter(moved, before, until, kind, reason.strip(), at)
    return EmbargoMove(tuple(lift.after_changes(moved, at, settings)))


def _tell_registrants(
    moved: list[Vulnerability], before: datetime, after: datetime, kind: str, at: datetime
) -> int:
    """A short notice to everyone alerted about a moved vulnerability that its embargo moved,
    encrypted to each one's key like the advisory (the team's reason is not in it): one per
    registrant, naming those they were alerted about."""
    told: dict[int, tuple] = {}
    for v in moved:
        for registrant in alerts.alerted(v).iterator():
            told.setdefault(registrant.id, (registrant, []))[1].append(v)
    for registrant, about in told.values():
        payload = {
            "registrant": registrant.id,
            "before": before.isoformat(),
            "after": after.isoformat(),
            "kind": kind,
        }
        if len(about) > 1:
            payload["vulnerabilities"] = [v.id for v in about]
        deliveries.queue(
            "alert-embargo",
            registrant.user.email,
            at,
            vulnerability=about[0],
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
            payload=payload,
        )
    return len(told)


def _tell_team_and_reporter(moved, before, after, kind, reason, at) -> None:
    """The team and the reporter learn that the publication date moved, once for the whole
    move (the reason goes only to those whose key we have; the others get the dates and a
    link)."""
    v = moved[0]
    payload = {
        "before": before.isoformat(),
        "after": after.isoformat(),
        "kind": kind,
        "reason": reason,
    }
    if len(moved) > 1:
        payload["moved"] = [m.tracking_id for m in moved]
    deliveries.queue_to_team("embargo-changed", at, payload, vulnerability=v)
    reporters: dict[str, list[Vulnerability]] = {}
    for m in moved:
        if m.reporter_email:
            reporters.setdefault(m.reporter_email, []).append(m)
    for address, theirs in reporters.items():
        told = dict(payload)
        told.pop("moved", None)
        if len(theirs) > 1:
            told["moved"] = [m.tracking_id for m in theirs]
        deliveries.queue("embargo-changed", address, at, vulnerability=theirs[0], payload=told)
