"""A published vulnerability's public revisions (#18): the exports (CSAF tracking.version and
revision_history, OSV and CVE record modification times, the Atom entry's updated) number and
date them from here.

Revision 1 is the publication itself (the lift). Each later change to a public field of a
published vulnerability, through the same audited paths as before the lift, is the next one,
with what changed and the team's reason as its summary. Changes made in one action (one form
saved at one instant) are one revision. Nothing before the lift is a revision: the first
public version is the one the lift reveals.

A revision also makes the lift's publication steps (app.disclosure.lift.complete) that depend on
the records due again: the exports are checked anew and, in CVE Services mode, the published CVE
record is updated there, by the same job, with the same retries, as at the lift.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from app.core import timefmt
from app.models import Publication, Revision, Vulnerability

# The fields the public sees (app.disclosure.redaction.Published), in the team's words.
PUBLIC_FIELDS = {
    "title": "title",
    "description": "description",
    "affected": "affected products",
    "severity": "severity",
    "credits": "credits",
    "credit_reporter": "credits",
    "fix_refs": "fix references",
    "introduced_commit": "introducing commit",
    "mitigation": "mitigation",
    "cwe": "CWE",
}
INITIAL = "Initial public release"
# The lift's publication steps a revision makes due again (their names in app.disclosure.lift).
REDONE_STEPS = ("exports", "cve-record")


@dataclass(frozen=True)
class Entry:
    number: int
    at: datetime
    summary: str


def is_public(v: Vulnerability, at: datetime) -> bool:
    return v.status == "published" and v.published_at is not None and v.published_at <= at


def note(v: Vulnerability, field: str, reason: str, at: datetime) -> Revision | None:
    """Record a change of `field` made at `at` as a revision, if the public sees that field of
    v by then (None otherwise). Called inside the change's own transaction."""
    if field not in PUBLIC_FIELDS or not is_public(v, at):
        return None
    summary = f"Changed the {PUBLIC_FIELDS[field]}" + (f": {reason.strip()}" if reason else "")
    return add(v, summary, at)


def add(v: Vulnerability, summary: str, at: datetime) -> Revision:
    """A revision of a published vulnerability; joined to one made at the same instant."""
    summary = " ".join(summary.split())
    _redo_publication_steps(v, at)
    last = (
        Revision.select()
        .where(Revision.vulnerability == v)
        .order_by(Revision.at.desc(), Revision.id.desc())
        .first()
    )
    if last is not None and last.at == at:
        if summary not in last.summary.split("; "):
            last.summary = f"{last.summary}; {summary}"
            last.save()
        return last
    return Revision.create(vulnerability=v, at=at, summary=summary)


def made_since(v: Vulnerability, since: datetime) -> bool:
    """Has v a revision made at `since` or later (did an action that began then make one)?"""
    return Revision.select().where(Revision.vulnerability == v, Revision.at >= since).exists()


def _redo_publication_steps(v: Vulnerability, at: datetime) -> None:
    """The publication steps that carry the records out (REDONE_STEPS) become due at `at`; the
    reconciler hands them to a worker (app.workers.scheduling.reconcile). Each is marked with
    the revision's instant, so that a pass that began before it does not mark it done (see
    app.disclosure.lift.complete). A vulnerability published before the lift kept a
    publication gets one."""
    due = {name: f"due: revised at {timefmt.zulu(at)}" for name in REDONE_STEPS}
    publication = Publication.get_or_none(Publication.vulnerability == v)
    if publication is None:
        Publication.create(
            vulnerability=v, lifted_at=v.published_at, steps=json.dumps(due), next_attempt_at=at
        )
        return
    steps = {**json.loads(publication.steps or "{}"), **due}
    Publication.update(
        state="pending", steps=json.dumps(steps), attempts=0, next_attempt_at=at, completed_at=None
    ).where(Publication.id == publication.id).execute()


def history(
    v: Vulnerability, published_at: datetime, rows: list[Revision] | None = None
) -> tuple[Entry, ...]:
    """Every public version, oldest first: the publication, then each revision after it.
    `rows`: v's revisions when already read (see `of_many`)."""
    if rows is None:
        rows = list(
            Revision.select().where(Revision.vulnerability == v).order_by(Revision.at, Revision.id)
        )
    later = [r for r in rows if r.at > published_at]
    return (
        Entry(1, published_at, INITIAL),
        *(Entry(n, r.at, r.summary) for n, r in enumerate(later, start=2)),
    )


def of_many(vulnerability_ids: list[int]) -> dict[int, list[Revision]]:
    """The revisions of many vulnerabilities in one query, oldest first, by vulnerability id
    (a list page or a feed reads them all at once)."""
    found: dict[int, list[Revision]] = {i: [] for i in vulnerability_ids}
    if vulnerability_ids:
        query = (
            Revision.select()
            .where(Revision.vulnerability.in_(vulnerability_ids))
            .order_by(Revision.at, Revision.id)
        )
        for row in query:
            found[row.vulnerability_id].append(row)
    return found
