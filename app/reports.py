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

from app import audit, bounces, embargo, inbound, rotation, vulns
from app.config import Settings
from app.db import write_transaction
from app.errors import OutOfTime, Refused
from app.models import (
    Correspondence,
    Delivery,
    InboundMessage,
    PublicKey,
    User,
    Vulnerability,
)
from keys.inspect import CertificateError, inspect_certificate
from keys.keyring import ServiceKeyring
from mail import mime
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
    bounced = bounces.delivery_of(message.envelope_to.split("\n"), settings.security_address)
    if bounced is not None:  # matched by its address alone; a bounce is never decrypted
        kind = bounces.record(bounced, raw, at)
        inbound.finish(message, "processed", at, f"{kind} bounce of delivery {bounced}")
        return "bounce"
    sender = _header_sender(raw)
    parsed = parse(raw, keyring, _certificates_of(sender), at=at)
    body_sha256 = hashlib.sha256(raw.partition(b"\r\n\r\n")[2] or raw).hexdigest()
    automatic = _automatic(parsed, message.envelope_from)
    with write_transaction():
        InboundMessage.update(message_id_header=parsed.message_id, body_sha256=body_sha256).where(
            InboundMessage.id == message.id
        ).execute()
        if _is_retry(message, parsed.message_id, body_sha256):
            inbound.finish(message, "processed", at, "a retried delivery of an earlier message")
            return "duplicate"
        vulnerability = _thread(parsed, message.envelope_to.split("\n"), settings)
        is_new = vulnerability is None
        if is_new and automatic:
            inbound.finish(message, "junk", at, automatic)
            return "junk"
        if is_new:
            vulnerability = _new_vulnerability(parsed, settings, at)
            rotation.assign_new(vulnerability, at)  # whoever is on triage duty
        _remember_reporter_key(vulnerability, parsed, at)
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
        )
        if not automatic and parsed.from_address and _may_acknowledge(parsed.from_address, at):
            _queue(
                "ack" if is_new else "reply-ack",
                vulnerability,
                parsed.from_address,
                at,
                {"correspondence": entry.id, "encrypted": parsed.encrypted},
            )
        for member in _told_about(vulnerability):
            _queue(
                "team-forward",
                vulnerability,
                member.email,
                at,
                {"correspondence": entry.id},
                user=member,
            )
        inbound.finish(message, "processed", at)
    return "new report" if is_new else "reply"


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


def _automatic(parsed: ParsedMessage, envelope_from: str) -> str | None:
    """Why this message must not be answered (RFC 3834), or None."""
    if not envelope_from or parsed.is_bounce:
        return "a bounce or delivery report"
    if parsed.auto_submitted and parsed.auto_submitted.strip().lower() != "no":
        return f"an automatic message (Auto-Submitted: {parsed.auto_submitted})"
    if parsed.precedence and parsed.precedence.strip().lower() in ("bulk", "list", "junk"):
        return f"bulk mail (Precedence: {parsed.precedence})"
    if parsed.list_id:
        return "mailing-list mail"
    return None


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
        local = address.rpartition("@")[0]
        if "+" in local:
            candidates.append(local.split("+", 1)[1].upper())
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


def _new_vulnerability(parsed: ParsedMessage, settings: Settings, at: datetime) -> Vulnerability:
    dates = embargo.default_dates(at, settings)
    return Vulnerability.create(
        tracking_id=vulns.next_tracking_id(settings.tracking_prefix, at.year),
        title=(parsed.subject or "(no subject)")[:250],
        reporter_email=parsed.from_address or "",
        reporter_name=(parsed.from_name or "")[:250],
        reported_at=at,
        fix_due=dates.fix_due,
        embargo_until=dates.embargo_until,
        created_at=at,
        updated_at=at,
    )


def _remember_reporter_key(vulnerability: Vulnerability, parsed: ParsedMessage, at) -> None:
    if parsed.reporter_certificate is None or vulnerability.reporter_key is not None:
        return
    if (parsed.from_address or "") != vulnerability.reporter_email:
        return
    try:
        certificate = inspect_certificate(parsed.reporter_certificate, at)
    except CertificateError as exc:
        log.info("the reporter's key of %s is unusable: %s", vulnerability.tracking_id, exc)
        return
    key = PublicKey.create(
        fingerprint=certificate.fingerprint,
        armored=certificate.armored,
        expires=certificate.expires,
        usable=certificate.can_encrypt,
        created_at=at,
    )
    Vulnerability.update(reporter_key=key).where(Vulnerability.id == vulnerability.id).execute()
    vulnerability.reporter_key = key


def _may_acknowledge(address: str, at: datetime) -> bool:
    recent = Delivery.select().where(
        Delivery.recipient == address,
        Delivery.kind.in_(("ack", "reply-ack", "unreadable")),
        Delivery.created_at > at - timedelta(hours=1),
    )
    return recent.count() < ACKS_PER_SENDER_PER_HOUR


def _queue(kind, vulnerability, recipient, at, payload, user=None) -> Delivery:
    return Delivery.create(
        kind=kind,
        vulnerability=vulnerability,
        user=user,
        recipient=recipient,
        payload=json.dumps(payload, sort_keys=True),
        next_attempt_at=at,
        created_at=at,
    )


def _quarantine(message: InboundMessage, reason: str, settings: Settings, at) -> None:
    """Keep it for a human; tell the sender only that it could not be read (never why)."""
    with write_transaction():
        inbound.finish(message, "quarantined", at, reason)
        raw = bytes(message.raw)
        sender = _header_sender(raw) or ""
        automatic = not message.envelope_from or _looks_automatic(raw)
        if sender and not automatic and _may_acknowledge(sender, at):
            _queue("unreadable", None, sender, at, {"message": message.id})
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


def reply_to_reporter(vulnerability: Vulnerability, author: User, text: str, at) -> Correspondence:
    """A team member's reply: kept in the thread and queued to the reporter (encrypted when
    their key is known; otherwise the reporter gets a signed notice without the text)."""
    text = text.strip()
    if not text:
        raise Refused("write a reply before sending it")
    if not vulnerability.reporter_email:
        raise Refused(f"{vulnerability.tracking_id} has no reporter address to reply to")
    with write_transaction():
        entry = Correspondence.create(
            vulnerability=vulnerability,
            direction="out",
            author=author,
            at=at,
            subject=f"Re: {vulnerability.title}"[:250],
            text=text,
            signature_status="signed",
            encrypted=_usable_reporter_key(vulnerability) is not None,
        )
        delivery = _queue(
            "reply", vulnerability, vulnerability.reporter_email, at, {"correspondence": entry.id}
        )
        Correspondence.update(delivery=delivery).where(Correspondence.id == entry.id).execute()
        audit.record(
            author,
            "report.reply",
            at,
            target=vulnerability.tracking_id,
            details={"correspondence": entry.id},
        )
    return entry


def _usable_reporter_key(vulnerability: Vulnerability) -> PublicKey | None:
    key = vulnerability.reporter_key
    return key if key is not None and key.usable else None
