"""The outbox: one Delivery row per (message, recipient), sent by a job, retried until it ends.

Message-IDs derive from the delivery id, so a resend after a crash is recognisable. 4xx and
connection problems retry with backoff for days; 5xx (but 552) ends the delivery as failed.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from app import mailtext
from app.config import Settings
from app.db import write_transaction
from app.models import Correspondence, Delivery, InboundMessage, PublicKey, Vulnerability
from keys.keyring import ServiceKeyring
from mail.compose import Outgoing, signed, signed_and_encrypted
from mail.transport import MaildirTransport, PermanentFailure, SmtpTransport, TemporaryFailure

log = logging.getLogger("forewarn.outbox")

LEASE = timedelta(minutes=5)
GIVE_UP_AFTER = timedelta(days=5)
_BACKOFF = [timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360)]


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


def _claim(delivery_id: int, at: datetime) -> Delivery | None:
    with write_transaction():
        taken = (
            Delivery.update(claimed_until=at + LEASE, attempts=Delivery.attempts + 1)
            .where((Delivery.id == delivery_id) & _is_due(at))
            .execute()
        )
    return Delivery.get_by_id(delivery_id) if taken else None


def send(delivery_id: int, keyring: ServiceKeyring, settings: Settings, transport, at) -> str:
    delivery = _claim(delivery_id, at)
    if delivery is None:
        return "skipped"
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
        wait = _BACKOFF[min(delivery.attempts - 1, len(_BACKOFF) - 1)]
        Delivery.update(
            claimed_until=None,
            next_attempt_at=at + wait,
            last_answer=str(exc)[:1000],
            message_id=message_id,
        ).where(Delivery.id == delivery.id).execute()
        return "retry"
    _end(delivery, "sent", sent.answer, message_id, at)
    return "sent"


def envelope_sender(delivery: Delivery, settings: Settings) -> str:
    """Alerts go out from security-bounces+<delivery id>@... (VERP) so bounces map back."""
    if delivery.kind not in ("alert", "alert-missed"):
        return settings.from_address
    local, _, domain = settings.security_address.rpartition("@")
    return f"{local}-bounces+{delivery.id}@{domain}"


def _list_headers(delivery: Delivery, settings: Settings) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe on every alert."""
    if delivery.kind not in ("alert", "alert-missed"):
        return {}
    from app import subscriptions
    from app.instance import secret_key

    registrant_id = json.loads(delivery.payload)["registrant"]
    token = subscriptions.unsubscribe_token(secret_key(settings), registrant_id)
    return {
        "List-Unsubscribe": f"<{settings.base_url}/registry/unsubscribe/{token}/one-click>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _attempt(delivery, message_id, keyring, settings, transport, at):
    try:
        message = compose(delivery, message_id, keyring, settings, at)
        return transport.send(message, envelope_sender(delivery, settings), delivery.recipient)
    except (PermanentFailure, TemporaryFailure):
        raise
    except Exception as exc:  # our own failure (a key, a template, the disk): retry, visibly
        log.exception("delivery %d could not be sent", delivery.id)
        raise TemporaryFailure(f"internal error ({type(exc).__name__})") from None


def _end(delivery: Delivery, state: str, answer: str, message_id: str, at: datetime) -> None:
    Delivery.update(
        state=state,
        claimed_until=None,
        last_answer=answer[:1000],
        message_id=message_id,
        sent_at=at if state == "sent" else None,
    ).where(Delivery.id == delivery.id).execute()


@dataclass(frozen=True)
class _Text:
    subject: str  # the real subject (shown only inside encryption)
    outer_subject: str  # what anyone on the way may see
    body: str
    certificate: PublicKey | None  # encrypt to this one, or sign only


def compose(delivery: Delivery, message_id: str, keyring, settings: Settings, at) -> bytes:
    text = _text(delivery, keyring, settings, at)
    vulnerability = delivery.vulnerability
    reply_to = settings.security_address
    if vulnerability is not None:
        local, _, domain = settings.security_address.rpartition("@")
        reply_to = f"{local}+{vulnerability.tracking_id}@{domain}"
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
    )
    if text.certificate is not None:
        return signed_and_encrypted(
            keyring, outgoing, text.certificate.armored, text.certificate.fingerprint
        )
    return signed(keyring, outgoing)


# RFC 3834: automatic answers say so; a team member's reply is written by a person.
_AUTO_SUBMITTED = {
    "ack": "auto-replied",
    "reply-ack": "auto-replied",
    "unreadable": "auto-replied",
    "reply": None,
    "rejected": None,
}


def _replied_message_id(delivery: Delivery) -> str | None:
    payload = json.loads(delivery.payload or "{}")
    if delivery.kind not in _AUTO_SUBMITTED:
        return None
    if delivery.kind in ("reply", "rejected"):  # answers the reporter's latest message
        latest = (
            Correspondence.select()
            .where(
                Correspondence.vulnerability == delivery.vulnerability,
                Correspondence.direction == "in",
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
    return message.message_id_header if message is not None else None


def _usable_key(key: PublicKey | None) -> PublicKey | None:
    return key if key is not None and key.usable else None


def _alert_text(delivery: Delivery, payload: dict, settings: Settings, common: dict) -> _Text:
    """The advisory, encrypted to the registrant's pinned key alone; or, when that key cannot be
    used, a signed notice that they missed it (never the advisory in plaintext)."""
    from app import subscriptions
    from app.instance import secret_key
    from app.models import Registrant

    registrant = Registrant.get_by_id(payload["registrant"])
    advisory = delivery.advisory
    label = f"{delivery.vulnerability.tracking_id} v{advisory.version}"
    key = _usable_key(registrant.key)
    if delivery.kind == "alert" and key is not None:
        token = subscriptions.unsubscribe_token(secret_key(settings), registrant.id)
        body = mailtext.render(
            "alert",
            text=advisory.text,
            organisation=registrant.organisation,
            fingerprint=key.fingerprint,
            unsubscribe=f"{settings.base_url}/registry/unsubscribe/{token}",
        )
        return _Text(advisory.subject, f"Security advisory {label} (embargoed)", body, key)
    body = mailtext.render(
        "alert-missed", advisory=label, status_link=f"{settings.base_url}/registry/status", **common
    )
    return _Text(
        f"Missed security advisory {label}", f"Missed security advisory {label}", body, None
    )


def _member_key(user) -> PublicKey | None:
    """A team member's current key (the newest usable one)."""
    return (
        PublicKey.select()
        .where(PublicKey.owner == user, PublicKey.usable == True)  # noqa: E712
        .order_by(PublicKey.created_at.desc())
        .first()
    )


def _text(delivery: Delivery, keyring: ServiceKeyring, settings: Settings, at) -> _Text:
    payload = json.loads(delivery.payload or "{}")
    common = {
        "fingerprint": keyring.fingerprint(),
        "key_url": f"{settings.base_url}/key.asc",
        "sender": f"The security team <{settings.security_address}>",
    }
    v: Vulnerability | None = delivery.vulnerability
    if delivery.kind == "unreadable":
        body = mailtext.render("unreadable", **common)
        return _Text(
            "Your message to the security team", "Your message to the security team", body, None
        )
    if delivery.kind in ("ack", "reply-ack"):
        body = mailtext.render(
            delivery.kind, v=v, encrypted=payload.get("encrypted", False), **common
        )
        neutral = f"Security report {v.tracking_id}"
        return _Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, _usable_key(v.reporter_key))
    if delivery.kind == "verify-key":
        from app import registry
        from app.instance import secret_key

        key = PublicKey.get_by_id(payload["key"])  # not usable yet: this mail is the proof
        token = registry.verification_token(secret_key(settings), payload["registrant"], key.id, at)
        body = mailtext.render(
            "verify-key",
            link=f"{settings.base_url}/registry/verify/{token}",
            fingerprint_uploaded=key.fingerprint,
            project=settings.product or "project",
            **common,
        )
        subject = "Confirm your registration"
        return _Text(subject, subject, body, key)
    if delivery.kind == "registrant-rejected":
        body = mailtext.render(
            "registrant-rejected",
            reason=payload["reason"],
            project=settings.product or "project",
            **common,
        )
        subject = "Your registry application"
        return _Text(subject, subject, body, _member_key(delivery.user))
    if delivery.kind == "password-reset":
        from app import password_reset
        from app.instance import secret_key
        from app.models import Registrant

        user = delivery.user
        registrant = Registrant.get_or_none(Registrant.user == user)
        key = _usable_key(registrant.key) if registrant is not None else _member_key(user)
        token = password_reset.reset_token(secret_key(settings), user, at)
        body = mailtext.render(
            "password-reset",
            link=f"{settings.base_url}/login/reset/{token}",
            until=at + password_reset.TOKEN_LIFETIME,
            project=settings.product or "project",
            **common,
        )
        subject = "Reset your password"
        return _Text(subject, subject, body, key)
    if delivery.kind in ("key-expiry", "reconfirm", "registry-admin"):
        from app import renewal

        return _Text(*renewal.mail_text(delivery, payload, common, settings, at))
    if delivery.kind in ("alert", "alert-missed"):
        return _alert_text(delivery, payload, settings, common)
    if delivery.kind == "embargo-changed":
        key = _member_key(delivery.user) if delivery.user else _usable_key(v.reporter_key)
        for_reporter = delivery.user is None
        body = mailtext.render(
            "embargo-changed",
            v=v,
            for_reporter=for_reporter,
            kind=payload["kind"],
            before=datetime.fromisoformat(payload["before"]),
            after=datetime.fromisoformat(payload["after"]),
            reason=payload["reason"] if key is not None else "",
            link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
            **common,
        )
        subject = f"[{v.tracking_id}] embargo date changed"
        return _Text(subject, subject, body, key)
    if delivery.kind == "reminder" and payload["field"] == "lead_time":
        body = mailtext.render(
            "lead-time",
            v=v,
            deadline=datetime.fromisoformat(payload["deadline"]),
            link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
        )
        subject = f"[{v.tracking_id}] send the pre-disclosure alert now"
        return _Text(subject, subject, body, None)
    if delivery.kind == "reminder":
        what = {"fix_due": "The fix is due", "embargo_until": "The embargo ends"}[payload["field"]]
        when = {"past": "was due", "1 day": "in 1 day", "7 days": "in 7 days"}[payload["step"]]
        if payload["step"] == "past":
            what = {"fix_due": "The fix was due", "embargo_until": "The embargo ended"}[
                payload["field"]
            ]
            when = "on"
        body = mailtext.render(
            "reminder",
            v=v,
            what=what,
            when=when,
            step=payload["step"],
            deadline=datetime.fromisoformat(payload["deadline"]),
            link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
        )
        subject = f"[{v.tracking_id}] {what.lower()} {when}"
        return _Text(subject, subject, body, None)  # dates and ids only: signed, not secret
    if delivery.kind == "rejected":
        key = _usable_key(v.reporter_key)
        reason = payload.get("reason", "") if key is not None else ""
        body = mailtext.render("rejected", v=v, reason=reason, **common)
        neutral = f"Security report {v.tracking_id} closed"
        return _Text(neutral, neutral, body, key)
    if delivery.kind == "reply":
        entry = Correspondence.get_by_id(payload["correspondence"])
        key = _usable_key(v.reporter_key)
        neutral = f"Security report {v.tracking_id}"
        if key is not None:
            body = mailtext.render("reply", v=v, text=entry.text, **common)
            return _Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, key)
        body = mailtext.render("reply-notice", v=v, **common)
        return _Text(neutral, neutral, body, None)
    if delivery.kind == "team-forward":
        entry = Correspondence.get_by_id(payload["correspondence"])
        key = _member_key(delivery.user) if delivery.user is not None else None
        first = (
            entry.id
            == Correspondence.select(peewee.fn.MIN(Correspondence.id))
            .where(Correspondence.vulnerability == v)
            .scalar()
        )
        context = {
            "v": v,
            "entry": entry,
            "kind_line": "New report" if first else "Reporter's reply on",
            "link": f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
            "reporter": f"{v.reporter_name} <{v.reporter_email}>".strip(),
        }
        neutral = f"[{v.tracking_id}] {'New report' if first else 'Reply'}"
        if key is not None:
            return _Text(
                f"[{v.tracking_id}] {entry.subject}",
                neutral,
                mailtext.render("team-forward", **context),
                key,
            )
        return _Text(neutral, neutral, mailtext.render("team-notice", **context), None)
    raise ValueError(f"no text for delivery kind {delivery.kind!r}")
