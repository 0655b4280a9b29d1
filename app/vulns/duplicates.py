"""Duplicates: a vulnerability (often a second reporter's case) that describes one the desk
already tracks ends there (state `rejected`, `duplicate_of` the original), its reporter is
told under which id it is tracked, and may be credited on the original. Undo brings it back.

The reporter is an outsider and the original may be embargoed: they hear the original's
tracking id (its CVE id once it is published), never who else reported it, nor its title or
description (app/vulns/letters.py writes that mail). The team's reason stays with the team.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from app.core import audit
from app.core.config import Settings
from app.core.db import serialise, write_transaction
from app.core.errors import Refused
from app.models import AuditEvent, Vulnerability
from app.outbox import deliveries
from app.vulns import casemap, cases, lifecycle

MAX_REASON = 2000


@dataclass(frozen=True)
class Marked:
    """What marking (or undoing) did: the vulnerability as it is now, whose credit was added
    to (or removed from) the original's (None: none), and whether its reporter is told."""

    vulnerability: Vulnerability
    original: Vulnerability
    credit: str | None
    reporter_told: bool


def of(original: Vulnerability):
    """The vulnerabilities marked duplicate of `original`, in the order they were made."""
    return (
        Vulnerability.select()
        .where(Vulnerability.duplicate_of == original.id)
        .order_by(Vulnerability.id)
    )


def credit_name(v: Vulnerability) -> str:
    """How v's reporter is credited: the name they gave, else their address's local part;
    never the address itself. "" when neither is known (an erased reporter)."""
    name = " ".join((v.reporter_name or "").split())
    if not name and "@" in (v.reporter_email or ""):
        name = v.reporter_email.rsplit("@", 1)[0].strip()
    return name


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in (text or "").splitlines() if line.strip()]


def mark(
    v: Vulnerability,
    original: Vulnerability,
    reason: str,
    credit: bool,
    actor: lifecycle.Actor,
    at: datetime,
    settings: Settings,
) -> Marked:
    """v is a duplicate of `original`: it ends (state `rejected`, `duplicate_of` set), its
    reporter is told which id it is tracked under, and with `credit` they are added to the
    original's credits (once). All in one transaction, audited."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise Refused(f"the reason is longer than {MAX_REASON} characters; shorten it")
    with write_transaction():
        serialise("duplicates")  # two marks at once must not make a loop of duplicates
        v = Vulnerability.get_by_id(v.id)  # read again inside the lock
        original = Vulnerability.get_by_id(original.id)
        _refuse(v, original)
        name = credit_name(v) if credit else None
        if credit and not v.credit_reporter:
            raise Refused(
                f"{v.tracking_id}'s reporter asked not to be credited; mark it without credit"
            )
        if credit and not name:
            raise Refused(f"{v.tracking_id} has no reporter to credit; mark it without credit")
        credits_before = original.credits
        added = None
        if name:
            shown = _lines(lifecycle.credits(original))
            if name.lower() not in (line.lower() for line in shown):
                # The credits as they read now (the reporter's name when the team wrote
                # none) and one line more.
                added = name
                _set_credits(original, "\n".join([*shown, name]), v, actor, at)
        ends = f"Duplicate of {original.tracking_id}."
        Vulnerability.update(
            status="rejected",
            duplicate_of=original.id,
            rejection_reason=f"{ends} {reason}".strip(),
            updated_at=at,
        ).where(Vulnerability.id == v.id).execute()
        audit.record(
            actor.user,
            "vuln.duplicate",
            at,
            target=v.tracking_id,
            details={
                "original": original.tracking_id,
                "reason": reason,
                "before": v.status,
                "rejection_reason_before": v.rejection_reason,
                "credit": bool(credit),
                "credit_added": added,
                "credits_before": credits_before,
            },
            actor_label=actor.label,
        )
        told = bool(v.reporter_email)
        if told:
            deliveries.queue(
                "duplicate",
                v.reporter_email,
                at,
                vulnerability=v,
                payload={"original": original.tracking_id, "credited": name or ""},
            )
        _case_changed(v, at)
    return Marked(Vulnerability.get_by_id(v.id), Vulnerability.get_by_id(original.id), added, told)


def _case_changed(v: Vulnerability, at: datetime) -> None:
    """In a case of several, the reporter's finding map changes too (batched, as for a state
    change: app.vulns.casemap)."""
    if len(cases.member_ids(v)) > 1:
        casemap.tell_reporter(v, at)


def _refuse(v: Vulnerability, original: Vulnerability) -> None:
    if v.id == original.id:
        raise Refused(f"{v.tracking_id} cannot be a duplicate of itself; name another id")
    if original.duplicate_of_id is not None:
        first = original.duplicate_of.tracking_id
        raise Refused(
            f"{original.tracking_id} is itself a duplicate of {first}; mark {v.tracking_id} "
            f"as a duplicate of {first}"
        )
    if v.duplicate_of_id is not None:
        raise Refused(
            f"{v.tracking_id} is already a duplicate of {v.duplicate_of.tracking_id}; "
            "undo that first"
        )
    if v.status == "published":
        raise Refused(f"{v.tracking_id} is published; a published vulnerability stays as it is")
    if v.status == "rejected":
        raise Refused(f"{v.tracking_id} is rejected already; it cannot become a duplicate")
    if original.status == "rejected":
        raise Refused(
            f"{original.tracking_id} was rejected; a duplicate must point at a vulnerability "
            "the desk still tracks"
        )
    own = [d.tracking_id for d in of(v)]
    if own:
        raise Refused(
            f"{v.tracking_id} has duplicates of its own ({', '.join(own)}); undo them and "
            f"mark them as duplicates of {original.tracking_id} first"
        )


def _last_mark(v: Vulnerability) -> dict:
    """The details of the mark that made v what it is (the newest one)."""
    event = (
        AuditEvent.select()
        .where(AuditEvent.action == "vuln.duplicate", AuditEvent.target == v.tracking_id)
        .order_by(AuditEvent.id.desc())
        .first()
    )
    if event is None:  # marked by hand in the database: nothing to go back to
        raise Refused(f"{v.tracking_id} has no recorded mark to undo; set its fields instead")
    return json.loads(event.details or "{}")


def undo(v: Vulnerability, actor: lifecycle.Actor, at: datetime, settings: Settings) -> Marked:
    """v is tracked on its own again: the state it had before the mark, `duplicate_of`
    cleared, the credit that mark added to the original removed. Audited; the reporter told."""
    with write_transaction():
        serialise("duplicates")
        v = Vulnerability.get_by_id(v.id)
        if v.duplicate_of_id is None:
            raise Refused(f"{v.tracking_id} is not marked as a duplicate; nothing to undo")
        original = Vulnerability.get_by_id(v.duplicate_of_id)
        marked = _last_mark(v)
        removed = _remove_credit(v, original, marked, actor, at)
        status = marked.get("before") or "new"
        Vulnerability.update(
            status=status,
            duplicate_of=None,
            rejection_reason=marked.get("rejection_reason_before", ""),
            updated_at=at,
        ).where(Vulnerability.id == v.id).execute()
        audit.record(
            actor.user,
            "vuln.duplicate_undone",
            at,
            target=v.tracking_id,
            details={
                "original": original.tracking_id,
                "before": v.status,
                "after": status,
                "credit_removed": removed,
            },
            actor_label=actor.label,
        )
        told = bool(v.reporter_email)
        if told:
            deliveries.queue(
                "duplicate",
                v.reporter_email,
                at,
                vulnerability=v,
                payload={"original": original.tracking_id, "undone": True},
            )
        _case_changed(v, at)
    return Marked(
        Vulnerability.get_by_id(v.id), Vulnerability.get_by_id(original.id), removed, told
    )


def _remove_credit(
    v: Vulnerability, original: Vulnerability, marked: dict, actor: lifecycle.Actor, at
) -> str | None:
    """Take out the line the mark added to the original's credits: only if the mark added it,
    it is still there, and no other duplicate of the original credits the same name."""
    added = marked.get("credit_added")
    if not added:
        return None
    lines = _lines(original.credits)
    if added.lower() not in (line.lower() for line in lines):
        return None  # the team has edited it out already
    for other in of(original).where(Vulnerability.id != v.id):
        same = credit_name(other).lower() == added.lower()
        if same and _last_mark(other).get("credit"):
            return None  # still credited for that one
    left = [line for line in lines if line.lower() != added.lower()]
    text = "\n".join(left)
    fallback = original.reporter_name if original.credit_reporter else ""
    if not marked.get("credits_before", "").strip() and text == " ".join(fallback.split()):
        text = ""  # as the team left it: empty, which credits the reporter by name
    _set_credits(original, text, v, actor, at)
    return added


def _set_credits(
    original: Vulnerability, text: str, v: Vulnerability, actor: lifecycle.Actor, at: datetime
) -> None:
    """The original's credits, audited on the original as every field change is."""
    Vulnerability.update(credits=text, updated_at=at).where(
        Vulnerability.id == original.id
    ).execute()
    audit.record(
        actor.user,
        "vuln.set.credits",
        at,
        target=original.tracking_id,
        details={"before": original.credits, "after": text, "duplicate": v.tracking_id},
        actor_label=actor.label,
    )
