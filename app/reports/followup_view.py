"""What a reporter's follow-up link opens, and what it lets them do; and the team's hold on
the link (revoke, reissue).

The page shows the reporter's own case alone: its vulnerabilities in the reporter's words,
their CVE ids and dates, their credit, and both sides' messages (what the reporter sent and
what the team sent them). Never the team's notes or fields, assignees, registrants, other
reporters (a duplicate filed by someone else is another case), nor other cases. Reading it
changes nothing; a reply is stored encrypted to the service key's public part and processed by
a worker exactly as a mailed reply is (app/reports/processing.py, channel "web-reply").
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from peewee import JOIN

from app.core import audit, oneline
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import (
    Correspondence,
    CveId,
    FollowUpLink,
    InboundMessage,
    ReceivedFile,
    Vulnerability,
)
from app.outbox import deliveries
from app.reports import attachments, followup, webform
from app.vulns import cases, duplicates, lifecycle
from keys.keyring import encrypt_to_certificate
from keys.packets import primary_fingerprints
from mail.compose import Attachment
from mail.submission import Submission, sealed

# Who acts when a reporter uses their link (the audit log's actor label).
REPORTER = "reporter (follow-up link)"
MAX_NAME = 200
MAX_TEXT = 100_000
MAX_FILES = 10
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES_BYTES = 10 * 1024 * 1024

# A vulnerability's state in the reporter's words.
STATES = {
    "new": "received",
    "triage": "being assessed",
    "accepted": "confirmed",
    "fixed": "fixed",
    "published": "published",
    "rejected": "not a vulnerability",
}


@dataclass(frozen=True)
class Member:
    tracking_id: str
    state: str
    cve_id: str | None
    embargo_until: datetime | None
    fix_due: datetime | None


@dataclass(frozen=True)
class Message:
    entry: Correspondence
    from_reporter: bool
    files: list[ReceivedFile]


@dataclass(frozen=True)
class Page:
    root: Vulnerability
    members: list[Member]
    anonymous: bool
    credited_as: str  # the name the reporter is credited under ("" when anonymous)
    credit_line: list[str]  # the credit as it will appear, without other reporters
    thread: list[Message]


@dataclass(frozen=True)
class Pending:
    """A web report whose answer page gave the link: stored (encrypted), not yet filed by a
    worker. Its page says it was received; nothing else of it is readable before then."""

    tracking_id: str
    received_at: datetime


def pending(link: FollowUpLink) -> Pending | None:
    """The web report that reserved the link's tracking id, while no vulnerability has it."""
    message = (
        InboundMessage.select(InboundMessage.received_at)
        .where(
            InboundMessage.channel == "web-report",
            InboundMessage.tracking_id == link.tracking_id,
        )
        .order_by(InboundMessage.id)
        .first()
    )
    return Pending(link.tracking_id, message.received_at) if message is not None else None


def case_of(link: FollowUpLink) -> Vulnerability | None:
    """The root of the case the link opens (None: gone)."""
    found = Vulnerability.get_or_none(Vulnerability.tracking_id == link.tracking_id)
    return cases.root(found) if found is not None else None


def state_of(v: Vulnerability) -> str:
    if v.duplicate_of_id is not None:
        return f"a duplicate of a report we track as {v.duplicate_of.tracking_id}"
    return STATES.get(v.status, v.status)


def _others_credited(case: list[Vulnerability]) -> set[str]:
    """The names under which reporters of duplicates of this case may be credited on it."""
    names = set()
    for member in case:
        for other in duplicates.of(member):
            name = duplicates.credit_name(other).lower()
            if name:
                names.add(name)
    return names


def page(root: Vulnerability) -> Page:
    """What the follow-up page of the case `root` shows (reads only)."""
    case = list(cases.members(root).select(Vulnerability, CveId).join(CveId, JOIN.LEFT_OUTER))
    members = [
        Member(
            m.tracking_id,
            state_of(m),
            m.cve.cve_id if m.cve_id is not None and m.cve.cve_id else None,
            m.embargo_until if m.status != "rejected" else None,
            m.fix_due if m.status not in ("rejected", "published") else None,
        )
        for m in case
    ]
    others = _others_credited(case)
    own = _own_name(root)
    lines = [
        line
        for line in (" ".join(x.split()) for x in lifecycle.credits(root).splitlines())
        if line and (line.lower() not in others or line.lower() == own.lower())
    ]
    return Page(
        root=root,
        members=members,
        anonymous=not root.credit_reporter,
        credited_as=own if root.credit_reporter else "",
        credit_line=lines,
        thread=_thread(root, [m.id for m in case]),
    )


def _own_name(root: Vulnerability) -> str:
    return " ".join((root.reporter_name or "").split())


def _from_reporter(entry: Correspondence, root: Vulnerability) -> bool:
    if entry.message_id is not None and entry.message.channel in ("web-report", "web-reply"):
        return True
    return bool(root.reporter_email) and (entry.sender or "").strip().lower() == (
        root.reporter_email.strip().lower()
    )


def _thread(root: Vulnerability, ids: list[int]) -> list[Message]:
    """The reporter's messages and the team's to them, oldest first; nothing anyone else
    wrote into the case."""
    entries = (
        Correspondence.select(Correspondence, InboundMessage.id, InboundMessage.channel)
        .join(InboundMessage, JOIN.LEFT_OUTER)
        .where(Correspondence.vulnerability.in_(ids))
        .order_by(Correspondence.at, Correspondence.id)
    )
    files = attachments.of_vulnerabilities(ids)
    shown = []
    for entry in entries:
        if entry.direction == "in":
            if not _from_reporter(entry, root):
                continue
            shown.append(Message(entry, True, files.get(entry.id, [])))
        else:
            shown.append(Message(entry, False, []))
    return shown


def attachment(root: Vulnerability, file_id: int) -> ReceivedFile | None:
    """One of the reporter's own files in their case, with its content; None for any other."""
    found = (
        ReceivedFile.select(ReceivedFile, Correspondence)
        .join(Correspondence)
        .where(ReceivedFile.id == file_id, Correspondence.vulnerability.in_(cases.member_ids(root)))
        .first()
    )
    if found is None or found.content is None or found.correspondence.direction != "in":
        return None
    if not _from_reporter(found.correspondence, root):
        return None
    return found


# -- what the reporter may do ------------------------------------------------------------------


def set_credit(root: Vulnerability, name: str, anonymous: bool, at: datetime) -> Vulnerability:
    """The reporter's choice of credit for their whole case: the name to credit, or none.
    A credits text the team wrote that names them by their old name is changed the same way."""
    name = oneline.flattened(name or "").strip()
    if len(name) > MAX_NAME:
        raise Refused(f"the name is longer than {MAX_NAME} characters; shorten it")
    if not anonymous and not name:
        raise Refused("give the name to credit, or choose to stay anonymous")
    with write_transaction():
        root = Vulnerability.get_by_id(root.id)
        old = duplicates.credit_name(root).lower() if root.credit_reporter else ""
        for member in cases.members(root):
            changes = {"credit_reporter": not anonymous}
            if name:
                changes["reporter_name"] = name
            lines = [" ".join(x.split()) for x in (member.credits or "").splitlines()]
            if old and old in (line.lower() for line in lines):
                kept = [x for x in lines if x.lower() != old]
                if not anonymous:
                    kept = [name if x.lower() == old else x for x in lines if x]
                changes["credits"] = "\n".join(x for x in kept if x)
            before = {k: getattr(member, k) for k in changes}
            if before == changes:
                continue
            Vulnerability.update(**changes, updated_at=at).where(
                Vulnerability.id == member.id
            ).execute()
            audit.record(
                None,
                "vuln.set.credit",
                at,
                target=member.tracking_id,
                details={"before": before, "after": changes},
                actor_label=REPORTER,
            )
    return Vulnerability.get_by_id(root.id)


@dataclass(frozen=True)
class Upload:
    name: str
    content_type: str
    content: bytes


def store_reply(
    root: Vulnerability,
    text: str,
    files: list[Upload],
    service_certificate: str,
    settings: Settings,
    at: datetime,
) -> int:
    """The reporter's reply from their page: one MIME message, encrypted to the service key's
    public part before it is stored (nothing readable is kept), committed, to be processed by
    a worker into the case's thread. Returns the stored message's id."""
    text = (text or "").strip()
    files = [f for f in files if f.name or f.content]
    if not text and not files:
        raise Refused("write a message or attach a file")
    if len(text) > MAX_TEXT:
        raise Refused(f"the message is longer than {MAX_TEXT:,} characters; attach it as a file")
    if len(files) > MAX_FILES:
        raise Refused(f"at most {MAX_FILES} files per reply; send the rest in another")
    for f in files:
        if len(f.content) > MAX_FILE_BYTES:
            raise Refused(f"{f.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if sum(len(f.content) for f in files) > MAX_FILES_BYTES:
        raise Refused(f"the files together pass {MAX_FILES_BYTES // (1024 * 1024)} MB")
    domain = settings.security_address.rpartition("@")[2] or "localhost"
    reply = Submission(  # no sender: the outer headers name nothing of the case
        subject=f"Reply from the follow-up page [{root.tracking_id}]",
        text=text or "(files only)",
        recipient=settings.security_address,
        message_id=f"<forewarn.follow-up.{secrets.token_hex(16)}@{domain}>",
        date=at,
        files=tuple(
            Attachment(webform.filename(f.name, n), f.content, webform.content_type(f.content_type))
            for n, f in enumerate(files, start=1)
        ),
    )
    (fingerprint,) = primary_fingerprints(service_certificate)
    raw = sealed(reply, lambda data: encrypt_to_certificate(service_certificate, fingerprint, data))
    with write_transaction():
        message = InboundMessage.create(
            raw=raw,
            sha256=hashlib.sha256(raw).hexdigest(),
            envelope_from="",
            envelope_to=settings.security_address,
            received_at=at,
            channel="web-reply",
            tracking_id=root.tracking_id,
        )
    return message.id


# -- the team's hold on the link ----------------------------------------------------------------


def reissue(
    v: Vulnerability, actor: lifecycle.Actor, at: datetime, settings: Settings
) -> tuple[FollowUpLink, bool]:
    """A new link for v's case (the old one stops working); the reporter is mailed it.
    Returns the link and whether a mail was queued (False: no address on file)."""
    root = cases.root(v)
    with write_transaction():
        link, _token = followup.issue(root.tracking_id, secret_key(settings), at)
        told = bool(root.reporter_email)
        if told:
            deliveries.queue("follow-up-link", root.reporter_email, at, vulnerability=root)
        audit.record(
            actor.user,
            "followup.reissue",
            at,
            target=root.tracking_id,
            details={"mailed": told},
            actor_label=actor.label,
        )
    return link, told


def revoke(v: Vulnerability, actor: lifecycle.Actor, at: datetime) -> int:
    """v's case has no working link any more (until reissued)."""
    root = cases.root(v)
    with write_transaction():
        count = followup.revoke(root.tracking_id, at)
        if not count:
            raise Refused(f"{root.tracking_id} has no live follow-up link; nothing to revoke")
        audit.record(
            actor.user, "followup.revoke", at, target=root.tracking_id, actor_label=actor.label
        )
    return count
