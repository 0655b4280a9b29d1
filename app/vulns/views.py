"""What the team and the command line read about vulnerabilities: a summary, the case's
thread with who each message is from, every detail of one, and the team's queues."""

from dataclasses import dataclass
from datetime import datetime

import peewee

from app.core.errors import Refused
from app.models import Correspondence, CveId, User, Vulnerability
from app.reports import attachments
from app.vulns import cases, duplicates
from app.vulns.lifecycle import OPEN_STATES, credits, jsonable


def summary(v: Vulnerability) -> dict:
    """The keys of `forewarn vulns list --json`: scripts rely on them, so a key is never
    renamed without keeping the old one as an alias."""
    return {
        "id": v.tracking_id,
        "title": v.title,
        "status": v.status,
        "cve": v.cve.cve_id if v.cve_id else None,
        "reported_at": jsonable(v.reported_at),
        "embargo_until": jsonable(v.embargo_until),
        "fix_due": jsonable(v.fix_due),
        "assignee": v.assignee.email if v.assignee_id else None,
    }


@dataclass(frozen=True)
class Sender:
    """Who an inbound thread entry is from, as far as anyone can tell. The From address alone
    proves nothing: only a valid signature by the reporter's pinned key does."""

    address: str  # its From address ("" when not recorded)
    is_reporter: bool  # that address is the reporter's
    signed_by_reporter: bool  # a valid signature by the reporter's pinned key


def sender_of(entry, reporter_email: str, pinned_fingerprint: str | None) -> Sender:
    address = entry.sender or ""
    return Sender(
        address=address,
        is_reporter=bool(address) and address.lower() == (reporter_email or "").lower(),
        signed_by_reporter=entry.signature_status == "valid"
        and pinned_fingerprint is not None
        and entry.signer_fingerprint == pinned_fingerprint,
    )


def pinned_fingerprint(v: Vulnerability) -> str | None:
    return v.reporter_key.fingerprint if v.reporter_key_id is not None else None


def _sender_keys(entry, v: Vulnerability, pinned: str | None) -> dict:
    """Who an inbound entry is from, for `vulns show --json` (nothing for outbound ones)."""
    if entry.direction != "in":
        return {}
    sender = sender_of(entry, v.reporter_email, pinned)
    return {
        "sender": sender.address or None,
        "from_reporter": sender.is_reporter,
        "signed_by_reporter": sender.signed_by_reporter,
        "offered_key": entry.offered_key.fingerprint if entry.offered_key_id else None,
    }


def thread(v: Vulnerability):
    """The case's correspondence in the order it was recorded (as before cases): every
    vulnerability of a case shows the one thread (an entry stays on the vulnerability it was
    addressed to)."""
    entries = Correspondence.select().where(Correspondence.vulnerability.in_(cases.member_ids(v)))
    return entries.order_by(Correspondence.id)


def details(v: Vulnerability) -> dict:
    """The keys of `forewarn vulns show --json`: the summary, the fields, the case, the case's
    thread."""
    ids = cases.member_ids(v)
    files = attachments.of_vulnerabilities(ids)
    tracking = dict(
        Vulnerability.select(Vulnerability.id, Vulnerability.tracking_id)
        .where(Vulnerability.id.in_(ids))
        .tuples()
    )
    pinned = pinned_fingerprint(v)
    return {
        **summary(v),
        "description": v.description,
        "affected": v.affected,
        "severity": v.severity,
        "cvss_score": v.cvss_score,
        "cwe": v.cwe,
        "credits": credits(v),
        "fix_refs": v.fix_refs,
        "introduced_commit": v.introduced_commit,
        "reporter": {"name": v.reporter_name, "email": v.reporter_email},
        "case": cases.case_id(v),
        "case_vulnerabilities": [tracking[i] for i in ids],
        "findings": cases.labels(v),
        "duplicate_of": v.duplicate_of.tracking_id if v.duplicate_of_id else None,
        "duplicates": [d.tracking_id for d in duplicates.of(v)],
        # withdrawn after publication (app.vulns.withdrawal): when and why, else null
        "withdrawn": {"at": jsonable(v.withdrawn_at), "reason": v.withdrawn_reason}
        if v.withdrawn_at
        else None,
        "correspondence": [
            {
                "vulnerability": tracking[entry.vulnerability_id],
                "direction": entry.direction,
                "at": jsonable(entry.at),
                "subject": entry.subject,
                "text": entry.text,
                "encrypted": entry.encrypted,
                "signature_status": entry.signature_status,
                "signer_fingerprint": entry.signer_fingerprint,
                **_files_of(entry, files.get(entry.id, [])),
                **_sender_keys(entry, v, pinned),
            }
            for entry in thread(v)
        ],
    }


def _files_of(entry, files) -> dict:
    """An entry's attachments ({name, content_type, size, sha256} each), the ones shown as the
    report's text, those whose content was not kept, and which parts arrived unencrypted."""
    return {
        "attachments": attachments.described(files),
        "attached_text": [
            {"name": shown.name, "text": shown.text, "cut": shown.cut}
            for shown in attachments.report_text(entry, files)
        ],
        "dropped_attachments": [
            {"name": f.name, "sha256": f.sha256, "reason": f.dropped} for f in files if f.dropped
        ],
        "unencrypted_parts": attachments.unencrypted_parts(entry),
    }


QUEUES = ("mine", "unassigned", "all", "overdue")


def queue(view: str, user: User | None, at: datetime, search: str = ""):
    """The team's queues: mine, unassigned, all, overdue; searched by id, CVE or text."""

    query = (
        Vulnerability.select(Vulnerability, CveId, User)
        .join(CveId, peewee.JOIN.LEFT_OUTER, on=(Vulnerability.cve == CveId.id))
        .switch(Vulnerability)
        .join(User, peewee.JOIN.LEFT_OUTER, on=(Vulnerability.assignee == User.id))
    )
    open_ = Vulnerability.status.in_(OPEN_STATES)
    if view == "mine":
        query = query.where(open_, Vulnerability.assignee == user)
    elif view == "unassigned":
        query = query.where(open_, Vulnerability.assignee.is_null())
    elif view == "overdue":
        query = query.where(
            open_, (Vulnerability.fix_due < at) | (Vulnerability.embargo_until < at)
        )
    elif view != "all":
        raise Refused(f"{view!r} is not a queue; use one of {', '.join(QUEUES)}")
    search = search.strip()
    if search:
        query = query.where(
            (Vulnerability.tracking_id == search.upper())
            | (CveId.cve_id == search.upper())
            | Vulnerability.title.contains(search)
            | Vulnerability.description.contains(search)
            | Vulnerability.id.in_(cases.labelled(search))
        )
    return query.order_by(Vulnerability.reported_at.desc(), Vulnerability.id.desc())
