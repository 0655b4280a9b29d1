"""The outbox: one Delivery row per (message, recipient), sent by a job, retried until it ends.

Message-IDs derive from the delivery id, so a resend after a crash is recognisable. 4xx and
connection problems retry with backoff for days; 5xx (but 552) ends the delivery as failed,
and so does a message that cannot be composed from what is stored (at once, with the reason).
"""

import json
import logging
from datetime import datetime, timedelta

import peewee

from app.core import retry
from app.core.config import Settings, dkim_private_key
from app.core.instance import secret_key
from app.models import Advisory, Correspondence, Delivery, InboundMessage, Vulnerability
from app.outbox import letters
from app.registry import alerts, answer_address, subscriptions
from app.reports import bounces
from keys.keyring import ServiceKeyring
from mail import addresses, domainkeys, mime
from mail.compose import Outgoing, encrypted, signed, signed_and_encrypted, unsigned
from mail.transport import MaildirTransport, PermanentFailure, SmtpTransport, TemporaryFailure

log = logging.getLogger("forewarn.outbox")

GIVE_UP_AFTER = timedelta(days=5)


def transport_for(settings: Settings):
    if settings.smtp_relay is not None:
        return SmtpTransport(settings.smtp_relay.host, settings.smtp_relay.port)
    return MaildirTransport(settings.mail_out)


def _is_due(at: datetime):
    return (
        (Delivery.state == "queued")
        & (Delivery.next_attempt_at.is_null() | (Delivery.next_attempt_at <= at))
        & (Delivery.claimed_until.is_null() | (Delivery.claimed_until < at))
    )


def due(at: datetime) -> peewee.ModelSelect:
    """Deliveries to send now that no live worker holds."""
    return Delivery.select(Delivery.id).where(_is_due(at))


def message_id_for(delivery: Delivery, settings: Settings) -> str:
    domain = settings.from_address.rpartition("@")[2] or "localhost"
    return f"<forewarn.delivery.{delivery.id}@{domain}>"


def next_lease_end(at: datetime) -> datetime | None:
    """When the first lease still held on an unfinished delivery runs out (if its worker died,
    the delivery is due again then)."""
    first = (
        Delivery.select(Delivery.claimed_until)
        .where((Delivery.state == "queued") & (Delivery.claimed_until >= at))
        .order_by(Delivery.claimed_until)
        .first()
    )
    return first.claimed_until if first is not None else None


def _claim(delivery_id: int, at: datetime, lease: timedelta = retry.LEASE) -> Delivery | None:
    # One UPDATE, atomic on its own: SQLite takes the write lock as the statement starts, and
    # PostgreSQL re-checks the WHERE on a row another worker just claimed, so of two workers
    # only one changes it. No transaction around it: on PostgreSQL that would add two round
    # trips (BEGIN, COMMIT) to every alert.
    taken = (
        Delivery.update(claimed_until=at + lease, attempts=Delivery.attempts + 1)
        .where((Delivery.id == delivery_id) & _is_due(at))
        .execute()
    )
    if not taken:
        return None
    # With its advisory and vulnerability in the same query (every letter reads them).
    return (
        Delivery.select(Delivery, Advisory, Vulnerability)
        .join(Advisory, peewee.JOIN.LEFT_OUTER)
        .switch(Delivery)
        .join(Vulnerability, peewee.JOIN.LEFT_OUTER)
        .where(Delivery.id == delivery_id)
        .get()
    )


def send_many(ids: list[int], keyring: ServiceKeyring, settings: Settings, transport, now) -> dict:
    """Send the due deliveries among ids one after another over the same relay connection (a
    worker's batch). Each is claimed just before it is sent, so a claimed delivery is exactly
    one in flight. Returns how many ended how."""
    outcomes: dict[str, int] = {}
    candidates = [row_id for (row_id,) in due(now()).where(Delivery.id.in_(ids)).tuples()]
    for delivery_id in sorted(candidates):
        outcome = send(delivery_id, keyring, settings, transport, now())
        if outcome != "skipped":
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def send(delivery_id: int, keyring: ServiceKeyring, settings: Settings, transport, at) -> str:
    delivery = _claim(delivery_id, at, timedelta(seconds=settings.delivery_lease_seconds))
    if delivery is None:
        return "skipped"
    return _deliver(delivery, keyring, settings, transport, at)


def _deliver(delivery: Delivery, keyring: ServiceKeyring, settings: Settings, transport, at) -> str:
    """Send one claimed delivery and record how it ended."""
    message_id = delivery.message_id or message_id_for(delivery, settings)
    try:
        sent = _attempt(delivery, message_id, keyring, settings, transport, at)
    except PermanentFailure as exc:
        _end(delivery, "failed", str(exc), message_id, at)
        return "failed"
    except TemporaryFailure as exc:
        if at - delivery.created_at >= GIVE_UP_AFTER:
            _end(
                delivery,
                "failed",
                f"gave up after {delivery.attempts} attempts: {exc}",
                message_id,
                at,
            )
            return "failed"
        wait = retry.backoff(delivery.attempts, retry.DELIVERY_BACKOFF)
        Delivery.update(
            claimed_until=None,
            next_attempt_at=at + wait,
            last_answer=str(exc)[:1000],
            message_id=message_id,
        ).where(Delivery.id == delivery.id).execute()
        return "retry"
    _end(delivery, "sent", sent.answer, message_id, at)
    return "sent"


# Mail to registrants about advisories: VERP envelope sender and one-click unsubscribe.
REGISTRANT_KINDS = ("alert", "alert-missed", "alert-embargo", "embargo-lifted", "key-rotation")
REGISTRANT_KINDS += ("key-compromise", "answer-nudge")
# Mail a product maker answers by replying (app/registry/mail_answers.py): the alert, and the
# replies to an answer (a refusal to a stranger names no advisory). A notice of a missed alert
# asks for a resend by reply: that reply still goes to the team.
ANSWERED_BY_REPLY = ("alert", "answer-recorded", "answer-refused")
# Files travel only inside encrypted mail (patches are embargoed), except where they are public:
# the revoked service key that a compromise notice carries.
PUBLIC_ATTACHMENTS = ("key-compromise", "key-compromise-reporter")


def envelope_sender(delivery: Delivery, settings: Settings) -> str:
    """Alerts go out from security-bounces+<delivery id>-<token>@... (VERP) so bounces map back;
    the token (app.reports.bounces) keeps anyone else from bouncing a delivery."""
    if delivery.kind not in REGISTRANT_KINDS:
        return settings.from_address
    return bounces.address(delivery.id, settings)


def _list_headers(delivery: Delivery, settings: Settings) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe on every alert: a link for this delivery alone, which
    expires (app.registry.subscriptions.LINK_LIFETIME), since anyone on the way sees these
    headers."""
    if delivery.kind not in REGISTRANT_KINDS:
        return {}

    token = subscriptions.token_of(delivery, secret_key(settings))
    return {
        "List-Unsubscribe": f"<{settings.base_url}/registry/unsubscribe/{token}/one-click>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _attempt(delivery, message_id, keyring, settings, transport, at):
    try:
        message = compose(delivery, message_id, keyring, settings, at)
    except (ValueError, TypeError, LookupError) as exc:
        # One line, never the exception's text in the log (it may quote embargoed content);
        # the reason goes to the delivery's last answer, which only the team sees.
        log.error("delivery %d could not be composed: %s", delivery.id, type(exc).__name__)
        raise ComposeError(f"could not be composed: {exc}"[:500]) from None
    except Exception as exc:  # our own failure (a key, the disk): retry, visibly
        log.exception("delivery %d could not be sent", delivery.id)
        raise TemporaryFailure(f"internal error ({type(exc).__name__})") from None
    try:
        if settings.dkim_key_file is not None:  # RFC 8058: list headers must be DKIM-signed
            message = domainkeys.sign(
                message, settings.dkim_selector, settings.dkim_domain, dkim_private_key(settings)
            )
        return transport.send(message, envelope_sender(delivery, settings), delivery.recipient)
    except (PermanentFailure, TemporaryFailure):
        raise
    except Exception as exc:  # our own failure (a key, the disk): retry, visibly
        log.exception("delivery %d could not be sent", delivery.id)
        raise TemporaryFailure(f"internal error ({type(exc).__name__})") from None


class ComposeError(PermanentFailure):
    """The message cannot be composed from what is stored (a header value it may not carry):
    trying again would fail the same way, so the delivery fails at once with the reason, for
    the team to see."""


def _end(delivery: Delivery, state: str, answer: str, message_id: str, at: datetime) -> None:
    Delivery.update(
        state=state,
        claimed_until=None,
        last_answer=answer[:1000],
        message_id=message_id,
        sent_at=at if state == "sent" else None,
    ).where(Delivery.id == delivery.id).execute()


def compose(delivery: Delivery, message_id: str, keyring, settings: Settings, at) -> bytes:
    text = letters.text_for(delivery, keyring, settings, at)
    reply_to = _reply_to(delivery, settings)
    outgoing = Outgoing(
        sender=settings.from_address,
        recipient=delivery.recipient,
        subject=text.subject if text.certificate else text.outer_subject,
        outer_subject=text.outer_subject,
        body=text.body,
        message_id=message_id,
        reply_to=reply_to,
        in_reply_to=_replied_message_id(delivery),
        auto_submitted=_AUTO_SUBMITTED.get(delivery.kind, "auto-generated"),
        extra_headers=_list_headers(delivery, settings),
        date=at,
        attachments=text.attachments
        if text.certificate is not None or delivery.kind in PUBLIC_ATTACHMENTS
        else (),
    )
    if text.unsigned:  # the service key has expired and cannot sign (app/servicekey/expiry.py)
        return unsigned(outgoing)
    if delivery.kind == "alert" and text.certificate is not None:
        entity = alerts.signed_entity(delivery.advisory, text, keyring, settings)
        return encrypted(
            keyring, outgoing, entity, text.certificate.armored, text.certificate.fingerprint
        )
    if text.certificate is not None:
        return signed_and_encrypted(
            keyring, outgoing, text.certificate.armored, text.certificate.fingerprint
        )
    return signed(keyring, outgoing)


def _reply_to(delivery: Delivery, settings: Settings) -> str:
    """Where a reply goes: an alert's answers address (as inside its signed part; a reminder
    to answer, the newest version's), never the case; a case's address for other mail about a
    vulnerability; else the security address."""
    if delivery.kind == "answer-nudge":
        # The reminder is answered as the alert is: by the newest version's answers address,
        # which takes an answer about the vulnerability from whoever was alerted about it.
        newest = alerts.newest_version(delivery.vulnerability)
        if newest is not None:
            return answer_address.address(newest.id, settings)
    if delivery.kind in ANSWERED_BY_REPLY:
        # An answer's reply names the version in its payload: as a delivery of the advisory it
        # would count among the alert's own (alerts.progress).
        advisory_id = delivery.advisory_id or json.loads(delivery.payload or "{}").get("advisory")
        if advisory_id is not None:
            return answer_address.address(advisory_id, settings)
    if delivery.vulnerability is not None:
        return addresses.case_address(settings.security_address, delivery.vulnerability.tracking_id)
    return settings.security_address


# RFC 3834: automatic answers say so; a team member's reply is written by a person.
_AUTO_SUBMITTED = {
    "ack": "auto-replied",
    "reply-ack": "auto-replied",
    "receipt": "auto-replied",
    "unreadable": "auto-replied",
    "answer-recorded": "auto-replied",
    "answer-refused": "auto-replied",
    "reply": None,
    "rejected": None,
    "duplicate": None,
}


def _replied_message_id(delivery: Delivery) -> str | None:
    payload = json.loads(delivery.payload or "{}")
    if delivery.kind not in _AUTO_SUBMITTED:
        return None
    if delivery.kind in ("reply", "rejected", "duplicate"):  # the reporter's latest message
        # The reporter's, not a stranger's post into the thread (older entries recorded no
        # sender: they were taken as the reporter's then).
        reporter = (delivery.vulnerability.reporter_email or "").strip().lower()
        latest = (
            Correspondence.select()
            .where(
                Correspondence.vulnerability == delivery.vulnerability,
                Correspondence.direction == "in",
                (peewee.fn.LOWER(Correspondence.sender) == reporter)
                | Correspondence.sender.is_null()
                | (Correspondence.sender == ""),
            )
            .order_by(Correspondence.id.desc())
            .first()
        )
        message = latest.message if latest is not None else None
    elif "correspondence" in payload:
        entry = Correspondence.get_or_none(Correspondence.id == payload["correspondence"])
        message = entry.message if entry is not None else None
    else:
        message = InboundMessage.get_or_none(InboundMessage.id == payload.get("message"))
    replied = message.message_id_header if message is not None else None
    # Stored before ids were checked at intake, a hostile id must not block every reply.
    return replied if mime.valid_id(replied) else None
