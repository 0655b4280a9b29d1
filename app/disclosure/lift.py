"""The lift: at an embargo's end an accepted or fixed vulnerability becomes public, never a
second early; one still in new or triage is held and the team told.

One transaction publishes it and queues its mails (app.disclosure.announcements). Then a Publication
row tracks what must follow, outside that transaction because it talks to the network: every export
must validate, the public page must render, and in CVE Services mode the CVE record must be
published. A failing step is retried with backoff and shown to the team.

Nothing here knows of the queue: this module says what is due, and the workers
(app.workers.scheduling) schedule a job for the instant, reschedule it when the end moves, and
catch up on anything missed. Every step is idempotent.
"""

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import datetime

import markupsafe

from app.core import audit, retry
from app.core.config import Settings
from app.core.db import serialise, write_transaction
from app.core.errors import ForewarnError
from app.disclosure import announcements
from app.models import Publication, Vulnerability
from app.outbox import deliveries
from app.vulns import cases, cve_records, cve_services

log = logging.getLogger("forewarn.lift")

LIFTABLE = ("accepted", "fixed")
UNVALIDATED = ("new", "triage")


def due(at: datetime):
    """Vulnerabilities whose embargo has ended and which are not published yet."""
    return Vulnerability.select().where(
        Vulnerability.status.in_(LIFTABLE + UNVALIDATED),
        Vulnerability.embargo_until.is_null(False),
        Vulnerability.embargo_until <= at,
    )


def upcoming(at: datetime, until: datetime):
    """Lifts to schedule: embargoes that end after `at` and by `until`."""
    return Vulnerability.select(
        Vulnerability.id,
        Vulnerability.tracking_id,
        Vulnerability.status,
        Vulnerability.embargo_until,
    ).where(
        Vulnerability.status.in_(LIFTABLE + UNVALIDATED),
        Vulnerability.embargo_until > at,
        Vulnerability.embargo_until <= until,
    )


def lift(vulnerability_id: int, at: datetime, settings: Settings) -> str:
    """Publish one vulnerability if its time has come, together with every other liftable
    member of its case whose embargo ends at the same instant (one publication: one set of
    mails naming them all; see published_with). Returns what happened: "lifted", "held"
    (still unvalidated: the team is told once per embargo end), "not-due", "already"
    (published before, maybe with another member of its case) or "not-public" (rejected)."""
    with write_transaction():
        serialise(f"lift-case-{_case_root_id(vulnerability_id)}")
        v = Vulnerability.get_by_id(vulnerability_id)  # read again inside the lock
        if v.status == "published":
            return "already"
        if v.status not in LIFTABLE + UNVALIDATED:
            return "not-public"
        if v.embargo_until is None or v.embargo_until > at:
            return "not-due"
        if v.status in UNVALIDATED:
            _hold(v, at)
            return "held"
        group = sorted([v, *_same_instant(v)], key=lambda m: m.id)  # in the case's order
        for member in group:
            _publish(member, at)
        group = [Vulnerability.get_by_id(member.id) for member in group]
        announcements.queue(group[0], at, settings, others=group[1:])
        for member in group:
            Publication.create(vulnerability=member, lifted_at=at, next_attempt_at=at)
    return "lifted"


def _case_root_id(vulnerability_id: int) -> int:
    row = Vulnerability.select(Vulnerability.id, Vulnerability.case_root).where(
        Vulnerability.id == vulnerability_id
    )
    v = row.get()
    return v.case_root_id if v.case_root_id is not None else v.id


def _same_instant(v: Vulnerability) -> list[Vulnerability]:
    """The other members of v's case that are published with it: liftable, with the same
    embargo end. A member with a later end stays embargoed (and is named nowhere)."""
    return list(
        cases.members(v).where(
            Vulnerability.id != v.id,
            Vulnerability.status.in_(LIFTABLE),
            Vulnerability.embargo_until == v.embargo_until,
        )
    )


def _publish(v: Vulnerability, at: datetime) -> None:
    Vulnerability.update(status="published", published_at=at, updated_at=at).where(
        Vulnerability.id == v.id
    ).execute()
    audit.record(
        None,
        "vuln.published",
        at,
        target=v.tracking_id,
        actor_label="lift",
        details={"embargo_until": v.embargo_until.isoformat(), "was": v.status},
    )


def published_with(v: Vulnerability) -> list[Vulnerability]:
    """The vulnerabilities of v's publication: v and the members of its case published at the
    same instant by the same lift (v alone in a case of one)."""
    v = Vulnerability.get_by_id(v.id)
    if v.status != "published" or v.published_at is None:
        return [v]
    return list(
        cases.members(v).where(
            Vulnerability.status == "published",
            Vulnerability.published_at == v.published_at,
        )
    )


SCHEDULE = "schedule"


@dataclass(frozen=True)
class AfterChange:
    """What a change of an embargo end or a state means for the lift. `outcome` is lift()'s
    when the end had passed (an embargo end in the past is an early lift), SCHEDULE when the
    lift must be (re)scheduled for the end (the workers do that: app.workers.scheduling), or
    "none" (no embargo end, or a state the lift leaves alone)."""

    vulnerability: Vulnerability  # as it was read after the change, before any lift
    outcome: str


def awaits_lift(v: Vulnerability) -> bool:
    """Has v an embargo end, and a state the lift acts on (publishing or holding it)?"""
    return v.embargo_until is not None and v.status in LIFTABLE + UNVALIDATED


def after_change(v: Vulnerability, at: datetime, settings: Settings) -> AfterChange:
    """After the team moved an embargo end or a state: lift now when it is due, otherwise say
    that the lift is to be (re)scheduled."""
    v = Vulnerability.get_by_id(v.id)
    if not awaits_lift(v):
        return AfterChange(v, "none")
    if v.embargo_until <= at:
        return AfterChange(v, lift(v.id, at, settings))
    return AfterChange(v, SCHEDULE)


def after_changes(vs: list[Vulnerability], at: datetime, settings: Settings) -> list[AfterChange]:
    """after_change for each of several vulnerabilities whose end moved together: one lifted
    with another (one publication) says "lifted" too, so that its publication steps follow."""
    changes: list[AfterChange] = []
    lifted: set[int] = set()
    for v in vs:
        change = after_change(v, at, settings)
        if v.id in lifted:
            change = AfterChange(change.vulnerability, "lifted")
        elif change.outcome == "lifted":
            lifted.update(m.id for m in published_with(v))
        changes.append(change)
    return changes


def to_schedule(at: datetime, until: datetime) -> list[Vulnerability]:
    """The lifts the workers must have waiting: embargoes that have ended, and those ending by
    `until`. Not an unvalidated one held at its end: the team was told, and accepting it makes
    it due again."""
    return [
        v
        for v in list(due(at)) + list(upcoming(at, until))
        if not (v.status in UNVALIDATED and v.embargo_until <= at and _was_held(v))
    ]


def _hold(v: Vulnerability, at: datetime) -> None:
    """Tell the team, once for this embargo end, that the lift did not publish v."""
    if _was_held(v):
        return
    mark = v.embargo_until.isoformat()
    audit.record(
        None,
        "lift.held",
        at,
        target=v.tracking_id,
        actor_label="lift",
        details={"embargo_until": mark, "status": v.status},
    )
    deliveries.queue_to_team(
        "lift-held", at, {"status": v.status, "embargo_until": mark}, vulnerability=v
    )


def _was_held(v: Vulnerability) -> bool:
    """Was the team told that this embargo end passed with v unvalidated?"""
    mark = v.embargo_until.isoformat()
    return audit.already("lift.held", v.tracking_id, embargo_until=mark) is not None


# -- after the lift ------------------------------------------------------------------------------


def pending(at: datetime):
    """Publications with a step still to do, due now."""
    return Publication.select().where(
        Publication.state == "pending",
        Publication.next_attempt_at.is_null() | (Publication.next_attempt_at <= at),
    )


def complete(vulnerability_id: int, at: datetime, settings: Settings, services=None) -> dict:
    """Run the steps not done yet; returns the steps with their outcome."""
    publication = Publication.get_or_none(Publication.vulnerability == vulnerability_id)
    if publication is None or publication.state == "complete":
        return json.loads(publication.steps) if publication else {}
    v = Vulnerability.get_by_id(vulnerability_id)
    steps = json.loads(publication.steps or "{}")
    for name, step in (
        ("exports", _check_exports),
        ("page", _check_page),
        ("cve-record", _publish_cve_record),
    ):
        if steps.get(name, "").startswith(("done", "skipped")):
            continue
        try:
            steps[name] = step(v, at, settings, services)
        except Exception as exc:  # shown to the team, retried; never stops the other steps
            steps[name] = f"failed: {_reason(exc)}"
            log.warning("publication of %s: %s failed: %s", v.tracking_id, name, _reason(exc))
    failed = [name for name, outcome in steps.items() if outcome.startswith("failed")]
    attempts = publication.attempts + 1
    changes = {"steps": json.dumps(steps), "attempts": attempts}
    if failed:
        changes["next_attempt_at"] = at + retry.backoff(attempts, retry.PUBLICATION_BACKOFF)
    else:
        changes.update(state="complete", completed_at=at, next_attempt_at=None)
    # Only over the steps this pass read: a revision made while it ran (app.vulns.revisions)
    # marked its steps due again, and they stay due, for the next pass, with the new records.
    written = (
        Publication.update(**changes)
        .where(Publication.id == publication.id, Publication.steps == publication.steps)
        .execute()
    )
    if written and not failed:
        audit.record(
            None,
            "vuln.publication_complete",
            at,
            target=v.tracking_id,
            actor_label="lift",
            details=steps,
        )
    return steps


def complete_publication(vulnerability_id: int, at: datetime, settings: Settings) -> dict:
    """complete() for every vulnerability of the publication v is in (v and the members of its
    case lifted with it); returns each one's steps by tracking id."""
    v = Vulnerability.get_by_id(vulnerability_id)
    return {m.tracking_id: complete(m.id, at, settings) for m in published_with(v)}


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _check_exports(v: Vulnerability, at: datetime, settings: Settings, services) -> str:
    # Imported here: the export validators (jsonschema with its format checkers) take about a
    # second to import, which every command that imports the reconciler would otherwise pay.
    from app.disclosure import exports

    made = []
    for kind in exports.KINDS:
        if kind == "cve" and v.cve_id is None:
            continue
        if kind == "cve" and not settings.cna_org_id:
            continue  # a CVE record needs the CNA's settings; OSV and CSAF do not
        exports.validate(kind, exports.document(kind, v, at, settings), settings)
        made.append(kind)
    return f"done: {', '.join(made)} valid"


def _check_page(v: Vulnerability, at: datetime, settings: Settings, services) -> str:
    """The public page, fetched from the running portal as a visitor would."""
    url = f"{settings.base_url}/vulnerabilities/{v.tracking_id}"
    request = urllib.request.Request(url, headers={"User-Agent": "forewarn-lift"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own URL)
        page = response.read().decode("utf-8", "replace")
    if str(markupsafe.escape(v.title)) not in page:  # as the page's Jinja escapes it
        raise ForewarnError(f"{url} does not show the published details yet")
    return "done"


def _publish_cve_record(v: Vulnerability, at: datetime, settings: Settings, services) -> str:
    from app.disclosure import exports  # imported here for the same second as in _check

    services = services or cve_services.ServicesConfig.from_environ()
    if services is None:
        how = "reject" if v.withdrawn_at is not None else "publish"
        return f"skipped: CVE Services are not configured ({how} the record by hand)"
    if v.cve_id is None:
        return "skipped: no CVE id"
    record = exports.document("cve", v, at, settings)
    if v.withdrawn_at is not None:  # withdrawn (app.vulns.withdrawal): the record is rejected
        cve_records.reject_record(v.cve.cve_id, record, services, at, by_label="lift")
        return "done: rejected"
    cve_records.publish_record(v.cve.cve_id, record, services, at, by_label="lift")
    return "done"


def status_of(v: Vulnerability) -> dict | None:
    """For the team's page: the publication's state and steps, or None before the lift."""
    publication = Publication.get_or_none(Publication.vulnerability == v)
    if publication is None:
        return None
    steps = json.loads(publication.steps or "{}")
    return {
        "state": publication.state,
        "steps": steps,
        # changed since the lift, its records not out yet (app.vulns.revisions), nothing failed
        "revised": publication.state == "pending"
        and any(outcome.startswith("due:") for outcome in steps.values())
        and not any(outcome.startswith("failed") for outcome in steps.values()),
        "attempts": publication.attempts,
        "next_attempt_at": publication.next_attempt_at,
        "completed_at": publication.completed_at,
    }
