"""What each kind of delivery says, and the one key it is encrypted to (None: signed only).

Never plaintext for anything embargoed: whoever has no usable key gets a notice with a link.
"""

import json
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.core.config import Settings
from app.models import Correspondence, Delivery, PublicKey, Vulnerability
from app.outbox import mailtext
from app.reports import attachments
from keys.keyring import ServiceKeyring
from mail.compose import Attachment


@dataclass(frozen=True)
class Text:
    subject: str  # the real subject (shown only inside encryption)
    outer_subject: str  # what anyone on the way may see
    body: str
    certificate: PublicKey | None  # encrypt to this one, or sign only
    attachments: tuple[Attachment, ...] = ()
    # Sent as plain text, neither signed nor encrypted: only the warning that the service key
    # has expired (it cannot sign), whose body says so.
    unsigned: bool = False


def usable_key(key: PublicKey | None) -> PublicKey | None:
    return key if key is not None and key.usable else None


def _alert_text(delivery: Delivery, payload: dict, settings: Settings, common: dict) -> Text:
    """The advisory (or a notice about it), encrypted to the registrant's pinned key alone; or,
    when that key cannot be used, a signed notice without details (never the advisory in
    plaintext)."""
    from app.core.instance import secret_key
    from app.models import Registrant
    from app.registry import subscriptions
    from app.vulns import patches

    registrant = (  # with its key, in one query
        Registrant.select(Registrant, PublicKey)
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(Registrant.id == payload["registrant"])
        .get()
    )
    v = delivery.vulnerability
    key = usable_key(registrant.key)
    token = subscriptions.token_of(delivery, secret_key(settings))  # this alert's link alone
    unsubscribe = f"{settings.base_url}/registry/unsubscribe/{token}"
    status_link = f"{settings.base_url}/registry/status"
    if delivery.kind == "alert-embargo":
        context = {
            "label": v.tracking_id,
            "kind": payload["kind"],
            "before": datetime.fromisoformat(payload["before"]),
            "after": datetime.fromisoformat(payload["after"]),
        }
        outer = f"Security advisory {v.tracking_id} (embargoed)"
        if key is None:
            body = mailtext.render(
                "alert-embargo-missed", status_link=status_link, **context, **common
            )
            return Text(f"{v.tracking_id}: embargo date changed", outer, body, None)
        body = mailtext.render(
            "alert-embargo",
            organisation=registrant.organisation,
            fingerprint=key.fingerprint,
            unsubscribe=unsubscribe,
            **context,
        )
        return Text(f"{v.tracking_id}: embargo date changed", outer, body, key)
    advisory = delivery.advisory
    label = f"{v.tracking_id} v{advisory.version}"
    if delivery.kind == "alert" and key is not None:
        # The same for every registrant: the version is signed once
        # (app.registry.alerts.signed_entity).
        body = mailtext.render(
            "alert",
            text=advisory.text,
            project=settings.product or "project",
            status_link=status_link,
        )
        files = tuple(
            Attachment(p.filename, bytes(p.content), p.content_type)
            for p in patches.of_advisory(advisory)
        )
        return Text(advisory.subject, f"Security advisory {label} (embargoed)", body, key, files)
    body = mailtext.render("alert-missed", advisory=label, status_link=status_link, **common)
    return Text(
        f"Missed security advisory {label}", f"Missed security advisory {label}", body, None
    )


def _to_reporter(delivery: Delivery) -> bool:
    """Whether an acknowledgement goes to its case's reporter (the address that reported it)."""
    v = delivery.vulnerability
    reporter = (v.reporter_email if v is not None else "").strip().lower()
    return bool(reporter) and delivery.recipient.strip().lower() == reporter


def member_key(user) -> PublicKey | None:
    """A team member's current key (the newest usable one)."""
    return (
        PublicKey.select()
        .where(PublicKey.owner == user, PublicKey.usable == True)  # noqa: E712
        .order_by(PublicKey.created_at.desc())
        .first()
    )


def text_for(delivery: Delivery, keyring: ServiceKeyring, settings: Settings, at) -> Text:
    payload = json.loads(delivery.payload or "{}")
    common = {
        "fingerprint": keyring.fingerprint(),
        "key_url": f"{settings.base_url}/key.asc",
        "sender": f"The security team <{settings.security_address}>",
    }
    v: Vulnerability | None = delivery.vulnerability
    if delivery.kind == "unreadable":
        body = mailtext.render("unreadable", **common)
        return Text(
            "Your message to the security team", "Your message to the security team", body, None
        )
    if delivery.kind == "receipt" or (
        delivery.kind in ("ack", "reply-ack") and not _to_reporter(delivery)
    ):
        # Anyone but the reporter (or a reply-ack queued to one before senders were told
        # apart): the same text whatever case was named, signed only, nothing about the case.
        body = mailtext.render("receipt", encrypted=payload.get("encrypted", False), **common)
        subject = "Your message to the security team"
        return Text(subject, subject, body, None)
    if delivery.kind in ("ack", "reply-ack"):
        body = mailtext.render(
            delivery.kind, v=v, encrypted=payload.get("encrypted", False), **common
        )
        neutral = f"Security report {v.tracking_id}"
        return Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, usable_key(v.reporter_key))
    if delivery.kind == "verify-key":
        from app.core.instance import secret_key
        from app.registry import vetting

        key = PublicKey.get_by_id(payload["key"])  # not usable yet: this mail is the proof
        token = vetting.verification_token(secret_key(settings), payload["registrant"], key.id, at)
        body = mailtext.render(
            "verify-key",
            link=f"{settings.base_url}/registry/verify/{token}",
            fingerprint_uploaded=key.fingerprint,
            project=settings.product or "project",
            **common,
        )
        subject = "Confirm your registration"
        return Text(subject, subject, body, key)
    if delivery.kind == "registrant-rejected":
        body = mailtext.render(
            "registrant-rejected",
            reason=payload["reason"],
            project=settings.product or "project",
            **common,
        )
        subject = "Your registry application"
        return Text(subject, subject, body, member_key(delivery.user))
    if delivery.kind == "password-reset":
        from app.accounts import password_reset
        from app.core.instance import secret_key
        from app.models import Registrant

        user = delivery.user
        registrant = Registrant.get_or_none(Registrant.user == user)
        key = usable_key(registrant.key) if registrant is not None else member_key(user)
        token = password_reset.reset_token(secret_key(settings), user, at)
        body = mailtext.render(
            "password-reset",
            link=f"{settings.base_url}/login/reset/{token}",
            until=at + password_reset.TOKEN_LIFETIME,
            project=settings.product or "project",
            **common,
        )
        subject = "Reset your password"
        return Text(subject, subject, body, key)
    if delivery.kind == "sign-up-attempt":  # app.registry.vetting.apply: the address has an account
        from app.models import Registrant

        user = delivery.user
        registrant = Registrant.get_or_none(Registrant.user == user)
        key = usable_key(registrant.key) if registrant is not None else member_key(user)
        body = mailtext.render(
            "sign-up-attempt",
            email=user.email,
            at=datetime.fromisoformat(payload["at"]),
            login=f"{settings.base_url}/login",
            forgot=f"{settings.base_url}/login/forgot",
            project=settings.product or "project",
            **common,
        )
        subject = "Someone tried to register with your address"
        return Text(subject, subject, body, key)
    if delivery.kind == "service-key-expiry":
        from app.servicekey import expiry

        return Text(
            *expiry.mail_text(delivery, payload, common, settings, at),
            unsigned=expiry.unsigned(payload),
        )
    if delivery.kind == "key-rotation":
        from app.servicekey import rotation as key_rotation

        return Text(*key_rotation.mail_text(delivery, payload, common, settings, at))
    if delivery.kind in ("key-compromise", "key-compromise-reporter"):
        from app.servicekey import rotation as key_rotation

        return Text(*key_rotation.compromise_mail_text(delivery, payload, common, settings, at))
    if delivery.kind in ("key-expiry", "reconfirm", "registry-admin"):
        from app.registry import renewal

        return Text(*renewal.mail_text(delivery, payload, common, settings, at))
    if delivery.kind in ("announcement", "embargo-lifted", "publication"):
        from app.disclosure import announcements

        return Text(*announcements.mail_text(delivery, payload, common, settings, at))
    if delivery.kind in ("alert", "alert-missed", "alert-embargo"):
        return _alert_text(delivery, payload, settings, common)
    if delivery.kind == "unsubscribed":
        from app.registry import subscriptions

        by_link = payload["delivery"] is not None  # a link in an alert, or the status page
        carrier = Delivery.get_or_none(Delivery.id == payload["delivery"]) if by_link else None
        way = " in one click, as mail programs do" if payload["via"] == "one-click" else ""
        if carrier is not None:
            how_text = (
                "The unsubscribe link of the alert we sent you on "
                f"{carrier.created_at:%Y-%m-%d %H:%M} UTC was used{way}."
            )
        elif by_link:
            how_text = f"The unsubscribe link of an alert we sent you was used{way}."
        else:
            how_text = 'You chose "Stop alerts" on your registration page, signed in.'
        expires = carrier.created_at + subscriptions.LINK_LIFETIME if carrier else None
        body = mailtext.render(
            "unsubscribed",
            project=settings.product or "project",
            email=delivery.recipient,
            at=datetime.fromisoformat(payload["at"]),
            how=how_text,
            by_link=by_link,
            link_expires=expires,
            status_link=f"{settings.base_url}/registry/status",
            **common,
        )
        subject = "Alerts stopped"
        # Signed, not encrypted: nothing in it is private, and it must reach a registrant
        # whose key is lost too.
        return Text(subject, subject, body, None)
    if delivery.kind == "embargo-changed":
        key = member_key(delivery.user) if delivery.user else usable_key(v.reporter_key)
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
        return Text(subject, subject, body, key)
    if delivery.kind == "lift-held":
        body = mailtext.render(
            "lift-held",
            v=v,
            status=payload["status"],
            until=datetime.fromisoformat(payload["embargo_until"]),
            link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
        )
        subject = f"[{v.tracking_id}] embargo ended: not published, decide now"
        return Text(subject, subject, body, None)  # the id and a date: signed, not secret
    if delivery.kind == "reminder" and payload["field"] == "lead_time":
        body = mailtext.render(
            "lead-time",
            v=v,
            deadline=datetime.fromisoformat(payload["deadline"]),
            link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
        )
        subject = f"[{v.tracking_id}] send the pre-disclosure alert now"
        return Text(subject, subject, body, None)
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
        return Text(subject, subject, body, None)  # dates and ids only: signed, not secret
    if delivery.kind == "rejected":
        key = usable_key(v.reporter_key)
        reason = payload.get("reason", "") if key is not None else ""
        body = mailtext.render("rejected", v=v, reason=reason, **common)
        neutral = f"Security report {v.tracking_id} closed"
        return Text(neutral, neutral, body, key)
    if delivery.kind == "reply":
        entry = Correspondence.get_by_id(payload["correspondence"])
        key = usable_key(v.reporter_key)
        neutral = f"Security report {v.tracking_id}"
        if key is not None:
            body = mailtext.render("reply", v=v, text=entry.text, **common)
            return Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, key)
        body = mailtext.render("reply-notice", v=v, **common)
        return Text(neutral, neutral, body, None)
    if delivery.kind == "team-forward":
        entry = Correspondence.get_by_id(payload["correspondence"])
        key = member_key(delivery.user) if delivery.user is not None else None
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
            # The reporter's files travel inside the encryption, to this member's key alone.
            files = attachments.of_entry(entry)
            carried = attachments.for_mail(files)
            return Text(
                f"[{v.tracking_id}] {entry.subject}",
                neutral,
                mailtext.render(
                    "team-forward",
                    files=files,
                    carried={f.id for f, _ in carried},
                    shown=attachments.report_text(entry, files),
                    unencrypted=attachments.unencrypted_parts(entry),
                    **context,
                ),
                key,
                tuple(
                    Attachment(f.name, content, attachments.mail_type(f)) for f, content in carried
                ),
            )
        # Without a key: the signed notice alone, never the files nor their names.
        return Text(neutral, neutral, mailtext.render("team-notice", **context), None)
    raise ValueError(f"no text for delivery kind {delivery.kind!r}")
