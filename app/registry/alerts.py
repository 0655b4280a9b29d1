"""Pre-disclosure alerts: advisory versions (v1, v2, ... like Xen's XSAs) sent to every approved
registrant, each encrypted to their pinned key alone; never plaintext.

A version is written from the vulnerability's fields unless the team wrote one. Sending creates
the Advisory and one Delivery per registrant in one transaction; jobs send them (app/outbox).
"""

import json
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.core import audit
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import (
    Advisory,
    AdvisoryBundle,
    Delivery,
    PublicKey,
    Registrant,
    User,
    Vulnerability,
)
from app.outbox import deliveries
from app.registry import answer_address, renewal
from app.vulns import embargo, lifecycle, patches

SENDABLE = ("accepted", "fixed")


@dataclass(frozen=True)
class Narrowing:
    """An alert the team narrowed (app.registry.targeting): the registrant ids it goes to, what
    the version keeps (ids and counts, so an erasure leaves no address there) and what the
    audit log records (who was left out and who added back, by name)."""

    to: frozenset[int]
    kept: dict
    logged: dict


def draft(v: Vulnerability, settings: Settings, version: int, bundled: bool = False) -> str:
    """The advisory text pre-filled from the vulnerability's fields. In a bundle, nobody edits
    it before it goes out: no place for the team to say what changed (the bundle's note is)."""
    lines = []
    if version > 1 and not bundled:
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


def refusal(vulns: list[Vulnerability]) -> str | None:
    """Why these cannot be alerted (naming each one and its state), or None."""
    unsendable = [v for v in vulns if v.status not in SENDABLE]
    if not unsendable:
        return None
    which = ", ".join(f"{v.tracking_id} is {v.status}" for v in unsendable)
    them = "them" if len(unsendable) > 1 else "it"
    return (
        f"{which}: alerts go out for accepted or fixed vulnerabilities only (accept {them} first)"
    )


def _next_version(
    v: Vulnerability,
    by: User | None,
    at: datetime,
    settings: Settings,
    text: str | None,
    bundle: AdvisoryBundle | None = None,
) -> Advisory:
    last = (
        Advisory.select(peewee.fn.MAX(Advisory.version)).where(Advisory.vulnerability == v).scalar()
    )
    version = (last or 0) + 1
    return Advisory.create(
        vulnerability=v,
        version=version,
        subject=f"{v.tracking_id} v{version}: {v.title}"[:250],
        text=text
        if text and text.strip()
        else draft(v, settings, version, bundled=bundle is not None),
        created_by=by,
        created_at=at,
        attachments=json.dumps([p.id for p in patches.current(v)]),
        bundle=bundle,
    )


def _queue(advisory: Advisory, at: datetime, only: frozenset[int] | None = None) -> dict[str, int]:
    """One delivery per registrant who gets alerts (the advisory, or a notice when their key
    cannot be used), streamed: never all in memory. `only`: the registrant ids of a narrowed
    alert (app.registry.targeting)."""
    counts = {"alert": 0, "alert-missed": 0}
    query = recipients()
    if only is not None:
        query = query.where(Registrant.id.in_(sorted(only)))
    for registrant in query.iterator():
        kind = "alert-missed" if renewal.needs_key(registrant, at) else "alert"
        deliveries.queue(
            kind,
            registrant.user.email,
            at,
            advisory=advisory,
            vulnerability=advisory.vulnerability,
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
            payload={"registrant": registrant.id},
        )
        counts[kind] += 1
    return counts


def send(
    v: Vulnerability,
    by: User | None,
    by_label: str,
    at: datetime,
    settings: Settings,
    text: str | None = None,
    only: Narrowing | None = None,
) -> Advisory:
    """The next advisory version, queued to every approved registrant in one transaction.
    `only` narrows it (app.registry.targeting.send_matching, the one caller)."""
    refused = refusal([v])
    if refused:
        raise Refused(refused)
    with write_transaction():
        advisory = _next_version(v, by, at, settings, text)
        if only is not None:
            advisory.audience = json.dumps(only.kept, sort_keys=True)
            advisory.save()
        counts = _queue(advisory, at, only.to if only is not None else None)
        details = {
            "version": advisory.version,
            "to": counts["alert"],
            "missed": counts["alert-missed"],
        }
        if only is not None:
            details["narrowed"] = only.logged
        audit.record(
            by, "alert.send", at, target=v.tracking_id, actor_label=by_label, details=details
        )
    return advisory


def send_many(
    vulns: list[Vulnerability],
    by: User | None,
    by_label: str,
    at: datetime,
    settings: Settings,
    text: str | None = None,
) -> list[Advisory]:
    """One advisory covering several vulnerabilities: the next version of each (drafted from
    its fields, versioned as if sent alone) and one mail per registrant carrying them all, in
    one transaction. `text` is the team's note at the top of the mail. Refused, with nothing
    sent, unless every one may be alerted. One vulnerability is `send` itself."""
    unique = list({v.id: v for v in vulns}.values())  # the order given, each once
    if not unique:
        raise Refused("name the vulnerabilities the advisory covers")
    if len(unique) == 1:
        return [send(unique[0], by, by_label, at, settings, text=text)]
    refused = refusal(unique)
    if refused:
        raise Refused(refused)  # naming every one that cannot be alerted, and why
    with write_transaction():
        bundle = AdvisoryBundle.create(subject="", text="", created_by=by, created_at=at)
        versions = [_next_version(v, by, at, settings, None, bundle) for v in unique]
        bundle.subject = bundle_subject(versions)[:250]
        bundle.text = bundle_text(versions, text)
        bundle.save()
        counts = _queue(versions[0], at)  # the first version carries the bundle's deliveries
        for advisory in versions:
            audit.record(
                by,
                "alert.send",
                at,
                target=advisory.vulnerability.tracking_id,
                actor_label=by_label,
                details={
                    "version": advisory.version,
                    "to": counts["alert"],
                    "missed": counts["alert-missed"],
                    "bundle": bundle.id,
                    "with": [a.vulnerability.tracking_id for a in versions if a is not advisory],
                },
            )
    return versions


def bundle_label(versions: list[Advisory]) -> str:
    """How outer headers and notices name a bundle's versions: their ids (nothing embargoed
    but the ids), or how many when the ids would not fit on a subject line."""
    named = ", ".join(f"{a.vulnerability.tracking_id} v{a.version}" for a in versions)
    return named if len(named) <= 50 else f"{len(versions)} vulnerabilities"


def bundle_subject(versions: list[Advisory]) -> str:
    """The protected subject (inside the encryption; titles are in the sections)."""
    named = bundle_label(versions)
    if named[0].isdigit():  # counted, not named
        return f"One advisory for {named}"
    return f"{named}: {len(versions)} vulnerabilities"


def bundle_text(versions: list[Advisory], note: str | None) -> str:
    """The one mail: what to do and by when, the team's note, the list, then each version's
    own text as its section."""
    ends = [a.vulnerability.embargo_until for a in versions if a.vulnerability.embargo_until]
    first = f"the first ends {embargo.shown(min(ends))}" if ends else "the dates are to follow"
    lines = [
        f"This advisory covers {len(versions)} vulnerabilities, each in its own section",
        "below with its own embargo. Keep all of it private until each one's",
        f"embargo ends; {first}.",
        "",
    ]
    if note and note.strip():
        lines += [note.strip(), ""]
    elif any(a.version > 1 for a in versions):
        lines += ["A version after v1 replaces the earlier ones in full.", ""]
    for a in versions:
        v = a.vulnerability
        lines.append(f"  {v.tracking_id} v{a.version}{' / ' + v.cve.cve_id if v.cve_id else ''}")
    for n, a in enumerate(versions, start=1):
        heading = f"{n} of {len(versions)}: {a.vulnerability.tracking_id} v{a.version} "
        lines += ["", "", heading + "=" * max(4, 72 - len(heading)), "", a.text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def carried(advisory: Advisory) -> list[Advisory]:
    """The versions a delivery of `advisory` carries: it alone, or its bundle's."""
    if advisory.bundle_id is None:
        return [advisory]
    return list(
        Advisory.select(Advisory, Vulnerability)
        .join(Vulnerability)
        .where(Advisory.bundle == advisory.bundle_id)
        .order_by(Advisory.id)
    )


def _carriers(advisory_ids):
    """Ids of the advisories whose deliveries carry any of `advisory_ids` (a query): each one
    itself, and the first version of any bundle one of them went out in."""
    bundles = Advisory.select(Advisory.bundle).where(
        Advisory.id.in_(advisory_ids), Advisory.bundle.is_null(False)
    )
    return Advisory.select(Advisory.id).where(
        Advisory.id.in_(advisory_ids) | Advisory.bundle.in_(bundles)
    )


def alerted(v: Vulnerability):
    """Registrants who were sent an advisory about v (alone or in a bundle) and still get
    alerts."""
    versions = Advisory.select(Advisory.id).where(Advisory.vulnerability == v)
    sent_to = Delivery.select(Delivery.user).where(
        Delivery.kind.in_(("alert", "alert-missed")),
        (Delivery.vulnerability == v) | Delivery.advisory.in_(_carriers(versions)),
    )
    return recipients().where(Registrant.user.in_(sent_to))


def newest_version(v: Vulnerability) -> Advisory | None:
    """The latest advisory version about v (None before its first alert)."""
    return (
        Advisory.select()
        .where(Advisory.vulnerability == v)
        .order_by(Advisory.version.desc())
        .first()
    )


def signed_entity(advisory: Advisory, text, keyring, settings: Settings) -> bytes:
    """The version's signed entity (RFC 3156 multipart/signed with protected headers), made
    once from the alert's text (app.registry.letters: the same for every registrant) and kept,
    so each registrant's message costs one encryption and a retry sends the same bytes."""
    from mail.compose import Outgoing
    from mail.compose import signed_entity as sign

    if advisory.signed_entity is not None:
        return bytes(advisory.signed_entity)
    domain = settings.security_address.rpartition("@")[2]
    outgoing = Outgoing(
        sender=settings.from_address,
        recipient="",  # each registrant's To is on their own message, outside
        subject=text.subject,
        outer_subject=text.subject,
        body=text.body,
        message_id=f"<forewarn.advisory.{advisory.id}@{domain or 'localhost'}>",
        # Answers come back to the version, never to the reporter's case (mail_answers.py)
        reply_to=answer_address.address(advisory.id, settings),
        date=advisory.created_at,
        attachments=text.attachments,
    )
    Advisory.update(signed_entity=sign(keyring, outgoing)).where(
        Advisory.id == advisory.id, Advisory.signed_entity.is_null()
    ).execute()
    return bytes(Advisory.get_by_id(advisory.id).signed_entity)  # another worker's, if it won


def progress(advisory: Advisory) -> dict[str, int]:
    """queued / sent / failed / bounced counts of the deliveries carrying one version (its
    bundle's, when it went out in one)."""
    found = dict(
        Delivery.select(Delivery.state, peewee.fn.COUNT(Delivery.id))
        .where(Delivery.advisory.in_(_carriers([advisory.id])))
        .group_by(Delivery.state)
        .tuples()
    )
    return {state: found.get(state, 0) for state in ("queued", "sent", "failed", "bounced")}


def missed(advisory: Advisory) -> int:
    """How many registrants got a notice instead of this version (their key could not be
    used)."""
    return (
        Delivery.select()
        .where(Delivery.advisory.in_(_carriers([advisory.id])), Delivery.kind == "alert-missed")
        .count()
    )


def may_read(registrant: Registrant, advisory_id: int) -> Advisory | None:
    """The advisory version a registrant may read in the portal, or None: only while approved
    (pending, rejected, suspended and removed registrants read none), and only a version they
    were sent as an alert, alone or in a bundle (not one they missed, and never another
    registrant's)."""
    if registrant.status != "approved":
        return None
    sent = (
        Delivery.select()
        .where(
            Delivery.user == registrant.user,
            Delivery.advisory.in_(_carriers([advisory_id])),
            Delivery.kind == "alert",
        )
        .exists()
    )
    return Advisory.get_or_none(Advisory.id == advisory_id) if sent else None
