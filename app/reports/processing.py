"""Inbound message -> report -> vulnerability: decrypt, thread, acknowledge, tell the team.

Runs in a worker from the stored bytes. A message that cannot be read is quarantined with its
reason and kept for a human; one whose processing crashes is retried, and quarantined after
inbound.MAX_ATTEMPTS.
"""

import hashlib
import json
import logging
import re
import traceback
from datetime import datetime, timedelta

from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import OutOfTime
from app.core.instance import secret_key
from app.models import (
    Correspondence,
    Delivery,
    InboundMessage,
    PublicKey,
    User,
    Vulnerability,
)
from app.outbox import deliveries
from app.registry import answer_address, mail_answers
from app.reports import attachments, bounces, followup, inbound, reporter_keys, triage
from app.vulns import embargo, lifecycle
from keys.keyring import ServiceKeyring
from mail import addresses, hygiene, mime
from mail.parse import ParsedMessage, Unreadable, parse

log = logging.getLogger("forewarn.reports")

ACKS_PER_SENDER_PER_HOUR = 5
_TRACKING = re.compile(r"\b([A-Z][A-Z0-9]{0,9}-\d{4}-\d{4,})\b")


def process_inbound(message_id: int, keyring: ServiceKeyring, settings: Settings, at) -> str:
    """Process one stored message; returns what became of it (for the job's result)."""
    message = inbound.claim(message_id, at)
    if message is None:
        return "skipped"
    return process_claimed(message, keyring, settings, at)


def process_claimed(message: InboundMessage, keyring: ServiceKeyring, settings: Settings, at):
    """Process a message this worker has claimed. If its lease ran out meanwhile and another
    worker claimed it, this worker's work is rolled back ("superseded"): one message never
    makes two reports or two entries."""
    try:
        if message.attempts > inbound.MAX_ATTEMPTS:
            reason = f"processing failed {inbound.MAX_ATTEMPTS} times ({message.error or 'crash'})"
            _quarantine(message, reason, settings, at)
            return "quarantined"
        try:
            return _process(message, keyring, settings, at)
        except Unreadable as exc:
            _quarantine(message, str(exc), settings, at)
            return "quarantined"
        except OutOfTime:  # the job's time is up: retried later, quarantined after MAX_ATTEMPTS
            log.warning("processing message %d ran out of time", message.id)
            inbound.release(message, "ran out of time")
            raise
        except inbound.LeaseLost:
            raise
        except Exception as exc:
            # One line, never the exception's text (it may quote the message).
            log.error("processing message %d failed: %s", message.id, _where(exc))
            inbound.release(message, type(exc).__name__)
            raise
    except inbound.LeaseLost:
        log.info("message %d was claimed again by another worker; this work is dropped", message.id)
        return "superseded"


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    last = f" at {frames[-1].filename.rpartition('/')[2]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}{last}"


def _process(message: InboundMessage, keyring: ServiceKeyring, settings: Settings, at) -> str:
    raw = bytes(message.raw)
    bounced = bounces.delivery_of(message.envelope_to.split("\n"), settings)
    if bounced is not None:  # matched by its address alone; a bounce is never decrypted
        state, note = bounces.record(bounced, raw, at)  # unmatched ones are kept for a human
        inbound.finish(message, state, at, note)
        return "bounce"
    answering = answer_address.addressed(message.envelope_to.split("\n"), settings)
    if answering is not None:  # a product maker's answer to an alert: never a case's thread
        return mail_answers.process(message, answering, keyring, settings, at)
    if message.channel == "web-reply":
        return _web_reply(message, raw, keyring, settings, at)
    sender = _header_sender(raw)
    parsed = parse(raw, keyring, _certificates_of(sender), at=at)
    body_sha256 = hashlib.sha256(raw.partition(b"\r\n\r\n")[2] or raw).hexdigest()
    web_report = message.channel == "web-report"
    # The portal's form: a person in a browser (checked there), with no envelope sender.
    automatic = None if web_report else hygiene.automatic(parsed, message.envelope_from)
    with write_transaction():
        InboundMessage.update(message_id_header=parsed.message_id, body_sha256=body_sha256).where(
            InboundMessage.id == message.id
        ).execute()
        if _is_retry(message, parsed.message_id, body_sha256):
            inbound.finish(message, "processed", at, "a retried delivery of an earlier message")
            return "duplicate"
        # A web report is a new report under the id its answer page gave, whatever it says.
        recipients = message.envelope_to.split("\n")
        vulnerability = None if web_report else _thread(parsed, recipients, settings)
        is_new = vulnerability is None
        if is_new and automatic:
            inbound.finish(message, "junk", at, automatic)
            return "junk"
        if is_new:
            vulnerability = _new_vulnerability(parsed, settings, at, message)
            triage.assign_new(vulnerability, at)  # whoever is on triage duty
            reporter_keys.remember(vulnerability, parsed, at)
            if message.channel == "mail":  # the reporter's way back, sent with the ack
                followup.issue(vulnerability.tracking_id, secret_key(settings), at)
        # A key in a later message is only offered (the team confirms it): never pinned by itself.
        offered = None if is_new else reporter_keys.offered(vulnerability, parsed, at)
        # The sender as the From line says: unauthenticated.
        entry = _record(vulnerability, message, parsed, parsed.from_address, at, offered)
        if not automatic and parsed.from_address and _may_acknowledge(parsed.from_address, at):
            _acknowledge(message, vulnerability, entry, parsed, is_new, settings, at)
        for member in _told_about(vulnerability):
            deliveries.queue(
                "team-forward",
                member.email,
                at,
                vulnerability=vulnerability,
                user=member,
                payload={"correspondence": entry.id},
            )
        inbound.finish(message, "processed", at)
    return "new report" if is_new else "reply"


def _record(vulnerability, message, parsed: ParsedMessage, sender, at, offered=None):
    """The message in the case's thread, with the files it carried."""
    entry = Correspondence.create(
        vulnerability=vulnerability,
        direction="in",
        message=message,
        at=at,
        subject=(parsed.subject or "")[:250],
        text=parsed.text,
        signature_status=parsed.signature.status,
        signer_fingerprint=parsed.signature.fingerprint,
        encrypted=parsed.encrypted,
        unencrypted_parts=json.dumps(parsed.unencrypted_parts),
        sender=(sender or "")[:250],
        offered_key=offered,
    )
    attachments.keep(entry, parsed.attachments, at)
    return entry


def _web_reply(message: InboundMessage, raw: bytes, keyring, settings: Settings, at) -> str:
    """A reply sent from a follow-up page: the web process stored it encrypted to the service
    key, naming the case whose link sent it. The link proved who wrote it: it joins the case's
    thread as the reporter's, exactly as their mailed reply would (the same reply-ack)."""
    root = Vulnerability.get_or_none(Vulnerability.tracking_id == (message.tracking_id or ""))
    if root is None:
        raise Unreadable("the case this follow-up reply names no longer exists")
    parsed = parse(raw, keyring, [], at=at)
    with write_transaction():
        entry = _record(root, message, parsed, root.reporter_email, at)
        reporter = root.reporter_email
        if reporter and _may_acknowledge(reporter, at):
            payload = {"correspondence": entry.id, "encrypted": True}
            deliveries.queue("reply-ack", reporter, at, vulnerability=root, payload=payload)
        for member in _told_about(root):
            deliveries.queue(
                "team-forward",
                member.email,
                at,
                vulnerability=root,
                user=member,
                payload={"correspondence": entry.id},
            )
        inbound.finish(message, "processed", at)
    return "reply"


def _headers(raw: bytes):
    """The outer headers (over-long fields cut, as the parser does), or None when even they
    cannot be read."""
    try:
        return mime.headers(mime.split_entity(raw)[0])
    except Exception:  # garbage of any kind: the caller does without (a timeout passes)
        return None


def _told_about(vulnerability: Vulnerability) -> list[User]:
    """Who gets a report or reply forwarded: its assignee (on duty), else the whole team."""
    assignee = vulnerability.assignee
    if assignee is not None and assignee.active:
        return [assignee]
    return list(User.security_team())


def _header_sender(raw: bytes) -> str:
    headers = _headers(raw)
    return (mime.sender(headers)[1] or "").lower() if headers is not None else ""


def _certificates_of(address: str) -> list[str]:
    if not address:
        return []
    query = (
        PublicKey.select(PublicKey.armored)
        .join(Vulnerability, on=(Vulnerability.reporter_key == PublicKey.id))
        .where(Vulnerability.reporter_email == address, PublicKey.usable == True)  # noqa: E712
        .distinct()
    )
    return [row.armored for row in query]


def _is_retry(message: InboundMessage, message_id_header: str | None, body_sha256: str) -> bool:
    if not message_id_header:
        return False
    return (
        InboundMessage.select()
        .where(
            InboundMessage.id != message.id,
            InboundMessage.message_id_header == message_id_header,
            InboundMessage.body_sha256 == body_sha256,
            InboundMessage.state.in_(("processed", "junk")),
        )
        .exists()
    )


def _thread(parsed: ParsedMessage, recipients: list[str], settings: Settings):
    """The vulnerability this message belongs to: plus-address, our Message-IDs, or subject tag."""
    candidates = []
    for address in recipients:
        detail = addresses.plus_detail(address)
        if detail is not None:
            candidates.append(detail.upper())
    for tracking_id in candidates:
        found = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
        if found is not None:
            return found
    referenced = [parsed.in_reply_to, *parsed.references]
    referenced = [ref for ref in referenced if ref]
    if referenced:
        delivery = (
            Delivery.select()
            .where(Delivery.message_id.in_(referenced), Delivery.vulnerability.is_null(False))
            .first()
        )
        if delivery is not None:
            return delivery.vulnerability
    for tracking_id in _TRACKING.findall(parsed.subject or ""):
        if tracking_id.startswith(settings.tracking_prefix + "-"):
            found = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
            if found is not None:
                return found
    return None


def _new_vulnerability(
    parsed: ParsedMessage, settings: Settings, at: datetime, message: InboundMessage
) -> Vulnerability:
    dates = embargo.default_dates(at, settings)
    if message.channel == "web-report":  # the form's fields, as the portal stored them
        tracking_id = message.tracking_id
        name = parsed.form_fields.get("name") or parsed.from_name or ""
        credit = parsed.form_fields.get("credit", "no") == "yes"
    else:
        tracking_id = lifecycle.next_tracking_id(settings.tracking_prefix, at.year)
        name, credit = parsed.from_name or "", True
    return Vulnerability.create(
        tracking_id=tracking_id,
        title=(parsed.subject or "(no subject)")[:250],
        reporter_email=parsed.from_address or "",
        reporter_name=name[:250],
        credit_reporter=credit,
        reported_at=at,
        fix_due=dates.fix_due,
        embargo_until=dates.embargo_until,
        created_at=at,
        updated_at=at,
    )


def _acknowledge(message, vulnerability, entry, parsed: ParsedMessage, is_new, settings, at):
    """The automatic answer. Only the reporter hears about their case: the sender of a new
    report gets its tracking id; the reporter's address gets the reply-ack (encrypted to their
    key when pinned). Anyone else gets the same neutral "receipt" whether or not the case they
    named exists: no id, no title, not the reporter's key, not even a Reply-To naming the id."""
    sender = parsed.from_address
    payload = {"correspondence": entry.id, "encrypted": parsed.encrypted}
    recipients = message.envelope_to.split("\n")
    # A web report is a new report, whatever its text names.
    new_report = is_new and not _names_a_case(parsed, recipients, settings)
    if new_report or message.channel == "web-report":
        deliveries.queue("ack", sender, at, vulnerability=vulnerability, payload=payload)
    elif not is_new and same_address(sender, vulnerability.reporter_email):
        deliveries.queue("reply-ack", sender, at, vulnerability=vulnerability, payload=payload)
    else:
        receipt = {"message": message.id, "encrypted": parsed.encrypted}
        deliveries.queue("receipt", sender, at, payload=receipt)


def same_address(one: str | None, other: str | None) -> bool:
    """Whether two addresses are the same mailbox (compared without case); never two blanks."""
    one, other = (one or "").strip().lower(), (other or "").strip().lower()
    return bool(one) and one == other


def _names_a_case(parsed: ParsedMessage, recipients: list[str], settings: Settings) -> bool:
    """Whether the message was addressed to a case (a plus-address, a tracking id of ours in
    the subject, or one of our Message-IDs): a new report that names one names an unknown one,
    and is answered exactly as a stranger writing into an existing case is."""
    if any(addresses.plus_detail(address) is not None for address in recipients):
        return True
    prefix = settings.tracking_prefix + "-"
    if any(t.startswith(prefix) for t in _TRACKING.findall(parsed.subject or "")):
        return True
    referenced = [parsed.in_reply_to, *parsed.references]
    return any(ref and ref.startswith("<forewarn.delivery.") for ref in referenced)


def _may_acknowledge(address: str, at: datetime) -> bool:
    recent = Delivery.select().where(
        Delivery.recipient == address,
        Delivery.kind.in_(("ack", "reply-ack", "receipt", "unreadable")),
        Delivery.created_at > at - timedelta(hours=1),
    )
    return recent.count() < ACKS_PER_SENDER_PER_HOUR


def _quarantine(message: InboundMessage, reason: str, settings: Settings, at) -> None:
    """Keep it for a human; tell the sender only that it could not be read (never why)."""
    with write_transaction():
        inbound.finish(message, "quarantined", at, reason)
        raw = bytes(message.raw)
        sender = _header_sender(raw) or ""
        automatic = not message.envelope_from or _looks_automatic(raw)
        if sender and not automatic and _may_acknowledge(sender, at):
            deliveries.queue("unreadable", sender, at, payload={"message": message.id})
    log.warning("quarantined message %d: %s", message.id, reason)


def _looks_automatic(raw: bytes) -> bool:
    headers = _headers(raw)
    if headers is None:
        return True  # unreadable headers: answer nothing
    try:
        auto = str(headers.get("Auto-Submitted", "no")).strip().lower()
        precedence = str(headers.get("Precedence", "")).strip().lower()
        return auto != "no" or precedence in ("bulk", "list", "junk") or "List-Id" in headers
    except Exception:
        return True
