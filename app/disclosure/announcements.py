"""At the lift: the signed public announcement, a short "embargo lifted" notice to everyone
who was alerted, and the publication notice to the reporter with their credit.

`queue` is called by the lift, inside the transaction that publishes the vulnerabilities of one
publication (one, or the members of a case lifted at the same instant); it is idempotent. One
announcement names every vulnerability of the publication, each registrant gets one notice
naming those they were alerted about, and each reporter one naming theirs; reporters of
vulnerabilities marked duplicates of a published one hear under which public id it is tracked,
nothing else. What the mails say comes from the public view (app.disclosure.redaction) only.
"""

from collections.abc import Sequence
from datetime import datetime

from app.core.config import Settings
from app.models import Delivery, Vulnerability
from app.outbox import deliveries
from app.registry import alerts

KINDS = ("announcement", "embargo-lifted", "publication")


def queue(
    v: Vulnerability, at: datetime, settings: Settings, others: Sequence[Vulnerability] = ()
) -> int:
    """The lift's mails, once per publication: v's, with `others` published together with it.
    Returns how many were queued. A publication of one has the payloads it always had; one of
    several lists them all (`vulnerabilities`: their ids, v's first)."""
    group = [v, *others]
    ids = [m.id for m in group]
    if Delivery.select().where(Delivery.vulnerability.in_(ids), Delivery.kind.in_(KINDS)).exists():
        return 0
    several = len(group) > 1

    def about(members: list[Vulnerability]) -> dict:
        return {"vulnerabilities": [m.id for m in members]} if several else {}

    queued: list[tuple] = []
    if settings.announce_address:
        queued.append(("announcement", v, None, settings.announce_address, about(group)))
    told: dict[int, tuple] = {}
    for member in group:
        for r in alerts.alerted(member).iterator():
            told.setdefault(r.id, (r, []))[1].append(member)
    for r, theirs in told.values():
        payload = {"registrant": r.id, **about(theirs)}
        queued.append(("embargo-lifted", theirs[0], r.user, r.user.email, payload))
    reporters: dict[str, list[Vulnerability]] = {}
    for member in group:
        if member.reporter_email:
            reporters.setdefault(member.reporter_email, []).append(member)
    for address, theirs in reporters.items():
        queued.append(("publication", theirs[0], None, address, about(theirs)))
    for dup in duplicates_of(group):
        if dup.reporter_email and dup.reporter_email not in reporters:
            payload = {"duplicate": dup.id}  # tells them the public id alone
            queued.append(("publication", dup.duplicate_of, None, dup.reporter_email, payload))
            reporters[dup.reporter_email] = []
    for kind, vulnerability, user, address, payload in queued:
        deliveries.queue(kind, address, at, vulnerability=vulnerability, user=user, payload=payload)
    return len(queued)


def duplicates_of(group: Sequence[Vulnerability]) -> list[Vulnerability]:
    """The vulnerabilities marked duplicates of one in `group`, oldest first."""
    return list(
        Vulnerability.select()
        .where(Vulnerability.duplicate_of.in_([m.id for m in group]))
        .order_by(Vulnerability.id)
    )
