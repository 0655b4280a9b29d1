"""Pre-disclosure alerts: advisory versions (v1, v2, ... like Xen's XSAs) sent to every approved
registrant, each encrypted to their pinned key alone; never plaintext.

A version is written from the vulnerability's fields unless the team wrote one. Sending creates
the Advisory and one Delivery per registrant in one transaction; jobs send them (app/outbox).
"""

import json
from datetime import datetime

import peewee

from app.core import audit
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Advisory, Delivery, PublicKey, Registrant, User, Vulnerability
from app.outbox import deliveries
from app.registry import renewal
from app.vulns import embargo, lifecycle, patches
from mail import addresses

SENDABLE = ("accepted", "fixed")


def draft(v: Vulnerability, settings: Settings, version: int) -> str:
    """The advisory text pre-filled from the vulnerability's fields."""
    lines = []
    if version > 1:
        lines += ["Updates in this version", "", "  (say what changed since the last version)", ""]
    if v.deploy_before_lift:
        deployment = [
            "Before then you MAY deploy the fix to your own products and services, as",
            "long as nothing you publish says what it fixes. You MAY NOT publish or",
            "share anything about the vulnerability itself.",
        ]
    else:
        deployment = [
            "Before then you MAY prepare and test the fix, but you MAY NOT deploy it",
            "where others could see it, nor publish or share anything about the",
            "vulnerability.",
        ]
    attached = list(patches.current(v))
    lines += [
        f"{v.tracking_id}{' / ' + v.cve.cve_id if v.cve_id else ''}: {v.title}",
        "",
        f"Embargo: until {embargo.shown(v.embargo_until)}.",
        *deployment,
        "",
        f"Severity: {v.severity or 'not rated yet'}"
        + (f" (CVSS score {v.cvss_score})" if v.cvss_score is not None else ""),
        f"Affected: {v.affected or 'to be confirmed'}",
        "",
        "Description",
        "",
        v.description.strip() or "(to follow)",
        "",
        "Mitigation",
        "",
        v.mitigation.strip() or "None known besides deploying the fix.",
        "",
        "Fix",
        "",
        (" ".join(v.fix_refs.split()) or "(to follow)"),
    ]
    if attached:
        lines += ["", "Attached patches (check them with sha256sum):", ""]
        lines += patches.listing(attached)
    lines += ["", f"Credits: {lifecycle.credits(v) or '-'}"]
    return "\n".join(lines) + "\n"


def recipients():
    """Registrants who get alerts: approved and subscribed."""
    return (
        Registrant.select(Registrant, User, PublicKey)
        .join(User)
        .switch(Registrant)
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(
            Registrant.status == "approved",
            Registrant.unsubscribed == False,  # noqa: E712
            User.active == True,  # noqa: E712
        )
        .order_by(Registrant.id)
    )


def send(
    v: Vulnerability,
    by: User | None,
    by_label: str,
    at: datetime,
    settings: Settings,
    text: str | None = None,
) -> Advisory:
    """The next advisory version, queued to every approved registrant in one transaction."""
    if v.status not in SENDABLE:
        raise Refused(
            f"{v.tracking_id} is {v.status}: alerts go out for accepted or fixed "
            "vulnerabilities only (accept it first)"
        )
    with write_transaction():
        last = (
            Advisory.select(peewee.fn.MAX(Advisory.version))
            .where(Advisory.vulnerability == v)
            .scalar()
        )
        version = (last or 0) + 1
        advisory = Advisory.create(
            vulnerability=v,
            version=version,
            subject=f"{v.tracking_id} v{version}: {v.title}"[:250],
            text=text if text and text.strip() else draft(v, settings, version),
            created_by=by,
            created_at=at,
            attachments=json.dumps([p.id for p in patches.current(v)]),
        )
        counts = {"alert": 0, "alert-missed": 0}
        for registrant in recipients().iterator():  # streamed: never all in memory
            kind = "alert-missed" if renewal.needs_key(registrant, at) else "alert"
            deliveries.queue(
                kind,
                registrant.user.email,
                at,
                advisory=advisory,
                vulnerability=v,
                user=registrant.user,
                fingerprint=registrant.pinned_fingerprint,
                payload={"registrant": registrant.id},
            )
            counts[kind] += 1
        audit.record(
            by,
            "alert.send",
            at,
            target=v.tracking_id,
            actor_label=by_label,
            details={"version": version, "to": counts["alert"], "missed": counts["alert-missed"]},
        )
    return advisory


def alerted(v: Vulnerability):
    """Registrants who were sent an advisory about v and still get alerts."""
    sent_to = Delivery.select(Delivery.user).where(
        Delivery.vulnerability == v, Delivery.kind.in_(("alert", "alert-missed"))
    )
    return recipients().where(Registrant.user.in_(sent_to))


def signed_entity(advisory: Advisory, text, keyring, settings: Settings) -> bytes:
    """The version's signed entity (RFC 3156 multipart/signed with protected headers), made
    once from the alert's text (app.registry.letters: the same for every registrant) and kept,
    so each registrant's message costs one encryption and a retry sends the same bytes."""
    from mail.compose import Outgoing
    from mail.compose import signed_entity as sign

    if advisory.signed_entity is not None:
        return bytes(advisory.signed_entity)
    v = advisory.vulnerability
    domain = settings.security_address.rpartition("@")[2]
    outgoing = Outgoing(
        sender=settings.from_address,
        recipient="",  # each registrant's To is on their own message, outside
        subject=text.subject,
        outer_subject=text.subject,
        body=text.body,
        message_id=f"<forewarn.advisory.{advisory.id}@{domain or 'localhost'}>",
        reply_to=addresses.case_address(settings.security_address, v.tracking_id),
        date=advisory.created_at,
        attachments=text.attachments,
    )
    Advisory.update(signed_entity=sign(keyring, outgoing)).where(
        Advisory.id == advisory.id, Advisory.signed_entity.is_null()
    ).execute()
    return bytes(Advisory.get_by_id(advisory.id).signed_entity)  # another worker's, if it won


def progress(advisory: Advisory) -> dict[str, int]:
    """queued / sent / failed / bounced counts of one version's deliveries."""
    found = dict(
        Delivery.select(Delivery.state, peewee.fn.COUNT(Delivery.id))
        .where(Delivery.advisory == advisory)
        .group_by(Delivery.state)
        .tuples()
    )
    return {state: found.get(state, 0) for state in ("queued", "sent", "failed", "bounced")}


def may_read(registrant: Registrant, advisory_id: int) -> Advisory | None:
    """The advisory version a registrant may read in the portal, or None: only while approved
    (pending, rejected, suspended and removed registrants read none), and only a version they
    were sent as an alert (not one they missed, and never another registrant's)."""
    if registrant.status != "approved":
        return None
    sent = (
        Delivery.select()
        .where(
            Delivery.user == registrant.user,
            Delivery.advisory == advisory_id,
            Delivery.kind == "alert",
        )
        .exists()
    )
    return Advisory.get_or_none(Advisory.id == advisory_id) if sent else None
