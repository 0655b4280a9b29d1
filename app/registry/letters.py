"""What the desk writes to product makers and about them: pre-disclosure alerts and their
embargo notices, the sign-up's key proof and rejection, key-expiry warnings and the yearly
re-confirmation, the notices to admins, the confirmation that alerts stopped, and the
one reminder to answer an alert.

Alerts are encrypted to the registrant's pinned key alone; whoever has no usable key gets a
signed notice without details, never the advisory in plaintext.
"""

from datetime import datetime

import peewee

from app.core import timefmt
from app.core.instance import secret_key
from app.models import Advisory, Answer, Delivery, PublicKey, Registrant, Vulnerability
from app.outbox import mailtext
from app.outbox.text import Composer, Text, account_key, member_key, usable_key
from app.registry import alerts, answer_address, answers, proof, renewal, subscriptions
from app.vulns import patches
from mail.compose import Attachment


def _project(settings) -> str:
    return settings.product or "project"


# -- alerts -----------------------------------------------------------------------------------


def alert(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """alert, alert-missed and alert-embargo: the advisory (or a notice about it), encrypted
    to the registrant's pinned key alone; or, when that key cannot be used, a signed notice
    without details (never the advisory in plaintext)."""
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
        label = _embargo_label(v, payload)
        context = {
            "label": label,
            "several": len(payload.get("vulnerabilities") or ()) > 1,
            "kind": payload["kind"],
            "before": datetime.fromisoformat(payload["before"]),
            "after": datetime.fromisoformat(payload["after"]),
        }
        outer = f"Security advisory {label} (embargoed)"
        if key is None:
            body = mailtext.render(
                "alert-embargo-missed", status_link=status_link, **context, **common
            )
            return Text(f"{label}: embargo date changed", outer, body, None)
        body = mailtext.render(
            "alert-embargo",
            organisation=registrant.organisation,
            fingerprint=key.fingerprint,
            unsubscribe=unsubscribe,
            **context,
        )
        return Text(f"{label}: embargo date changed", outer, body, key)
    advisory = delivery.advisory
    label = f"{v.tracking_id} v{advisory.version}"
    subject, text, versions = advisory.subject, advisory.text, [advisory]
    if advisory.bundle_id is not None:  # one mail for several versions (alerts.send_many)
        versions = alerts.carried(advisory)
        label = alerts.bundle_label(versions)
        subject, text = advisory.bundle.subject, advisory.bundle.text
    if delivery.kind == "alert" and key is not None:
        # The same for every registrant: the version (or bundle) is signed once
        # (app.registry.alerts.signed_entity).
        body = mailtext.render(
            "alert",
            text=text,
            project=_project(settings),
            status_link=status_link,
            **_how_to_answer(advisory, versions, settings),
        )
        files = tuple(
            Attachment(p.filename, bytes(p.content), p.content_type)
            for version in versions
            for p in patches.of_advisory(version)
        )
        return Text(subject, f"Security advisory {label} (embargoed)", body, key, files)
    covered = [f"{a.vulnerability.tracking_id} v{a.version}" for a in versions]
    if len(covered) == 1:
        covered = []  # sent alone: the notice names it in its first line
    body = mailtext.render(
        "alert-missed", advisory=label, covered=covered, status_link=status_link, **common
    )
    return Text(
        f"Missed security advisory {label}", f"Missed security advisory {label}", body, None
    )


def _how_to_answer(advisory: Advisory, versions: list[Advisory], settings) -> dict:
    """What the alert's "How to answer" needs: the same for every registrant (the alert is
    signed once), so it names the version's answers address and page, nobody's own."""
    return {
        "answers_address": answer_address.address(advisory.id, settings),
        "page": _advisory_page(advisory, settings),
        "statuses": ", ".join(answers.STATUSES),
        "justifications": answers.JUSTIFICATIONS,
        "covered": [a.vulnerability.tracking_id for a in versions],
    }


def _advisory_page(advisory: Advisory, settings) -> str:
    return f"{settings.base_url}/registry/advisories/{advisory.id}"


def _embargo_label(v: Vulnerability, payload: dict) -> str:
    """The tracking ids an embargo notice is about: v's, or those of the case's members that
    moved together and that this registrant was alerted about."""
    ids = payload.get("vulnerabilities")
    if not ids:
        return v.tracking_id
    rows = Vulnerability.select(Vulnerability.tracking_id).where(Vulnerability.id.in_(ids))
    return ", ".join(sorted(r.tracking_id for r in rows))


def unsubscribed(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """Alerts stopped: how (which link, or the status page) and how to turn them back on."""
    by_link = payload["delivery"] is not None  # a link in an alert, or the status page
    carrier = Delivery.get_or_none(Delivery.id == payload["delivery"]) if by_link else None
    way = " in one click, as mail programs do" if payload["via"] == "one-click" else ""
    if carrier is not None:
        how_text = (
            "The unsubscribe link of the alert we sent you on "
            f"{timefmt.minute(carrier.created_at)} was used{way}."
        )
    elif by_link:
        how_text = f"The unsubscribe link of an alert we sent you was used{way}."
    else:
        how_text = 'You chose "Stop alerts" on your registration page, signed in.'
    expires = carrier.created_at + subscriptions.LINK_LIFETIME if carrier else None
    body = mailtext.render(
        "unsubscribed",
        project=_project(settings),
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


# -- answers by mail (app/registry/mail_answers.py) -----------------------------------------


def answer_recorded(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """What was recorded, encrypted to the registrant's pinned key (their answer is about an
    embargoed vulnerability); a signed notice without it when that key cannot be used."""
    registrant = (
        Registrant.select(Registrant, PublicKey)
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(Registrant.id == payload["registrant"])
        .get()
    )
    advisory = Advisory.get_by_id(payload["advisory"])
    page = _advisory_page(advisory, settings)
    key = usable_key(registrant.key)
    rows = list(
        Answer.select(Answer, Advisory)
        .join(Advisory, peewee.JOIN.LEFT_OUTER)
        .where(Answer.id.in_(payload["answers"]))
        .order_by(Answer.id)
    )
    if key is None:
        label = f"{advisory.vulnerability.tracking_id} v{advisory.version}"
        body = mailtext.render(
            "answer-recorded-notice",
            advisory=label,
            page=page,
            status_link=f"{settings.base_url}/registry/status",
            **common,
        )
        return Text("Your answer was recorded", "Your answer was recorded", body, None)
    shown = [
        {
            "label": f"{row.vulnerability.tracking_id} v{row.advisory.version}"
            if row.advisory_id
            else row.vulnerability.tracking_id,
            "status": row.status,
            "justification": row.justification,
            "statement": row.statement,
            "consent": row.public_consent,
        }
        for row in rows
    ]
    body = mailtext.render("answer-recorded", rows=shown, page=page, **common)
    ids = ", ".join(dict.fromkeys(row.vulnerability.tracking_id for row in rows))
    return Text(f"Answer recorded: {ids}", "Your answer was recorded", body, key)


def answer_refused(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """Why a mail to an answers address was not recorded and how to fix it: signed, never
    encrypted, and naming no advisory (a stranger's says only who may answer)."""
    advisory_id = payload.get("advisory")
    body = mailtext.render(
        "answer-refused",
        reason=payload.get("reason", "") if advisory_id is not None else "",
        page=f"{settings.base_url}/registry/advisories/{advisory_id}",
        statuses=", ".join(answers.STATUSES),
        justifications=answers.JUSTIFICATIONS,
        security_address=settings.security_address,
        **common,
    )
    return Text("Your answer was not recorded", "Your answer was not recorded", body, None)


# -- signing up -------------------------------------------------------------------------------


def verify_key(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    key = PublicKey.get_by_id(payload["key"])  # not usable yet: this mail is the proof
    token = proof.verification_token(secret_key(settings), payload["registrant"], key.id, at)
    body = mailtext.render(
        "verify-key",
        link=f"{settings.base_url}/registry/verify/{token}",
        fingerprint_uploaded=key.fingerprint,
        project=_project(settings),
        **common,
    )
    subject = "Confirm your registration"
    return Text(subject, subject, body, key)


def registrant_rejected(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    body = mailtext.render(
        "registrant-rejected",
        reason=payload["reason"],
        project=_project(settings),
        **common,
    )
    subject = "Your registry application"
    return Text(subject, subject, body, member_key(delivery.user))


def sign_up_attempt(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """Someone signed up with an address that has an account (app.registry.vetting.apply)."""
    user = delivery.user
    body = mailtext.render(
        "sign-up-attempt",
        email=user.email,
        at=datetime.fromisoformat(payload["at"]),
        login=f"{settings.base_url}/login",
        forgot=f"{settings.base_url}/login/forgot",
        project=_project(settings),
        **common,
    )
    subject = "Someone tried to register with your address"
    return Text(subject, subject, body, account_key(user))


# -- renewal: key expiry, the yearly re-confirmation, and the admins' notices -------------------


def registry_admin(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    body = mailtext.render(
        "registry-admin",
        event=payload["event"],
        email=payload["email"],
        organisation=payload["organisation"],
        expires=datetime.fromisoformat(payload["expires"]) if "expires" in payload else None,
        reason=payload.get("reason", ""),
    )
    subject = {
        "key-expiring": "Registry: a registrant's key expires in 14 days",
        "key-expired": "Registry: a registrant's key has expired",
        "suspended": "Registry: a registrant was suspended",
    }[payload["event"]]
    return Text(subject, subject, body, None)  # an address and a date: signed, not secret


def key_expiry(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    registrant = Registrant.get_by_id(payload["registrant"])
    key = renewal.current_key(registrant, at)
    when = {"30 days": "in 30 days", "14 days": "in 14 days", "3 days": "in 3 days"}
    body = mailtext.render(
        "key-expiry",
        project=_project(settings),
        when=when[payload["step"]],
        expires=datetime.fromisoformat(payload["expires"]),
        fingerprint_pinned=registrant.pinned_fingerprint,
        link=f"{settings.base_url}/registry/status",
        **common,
    )
    subject = f"Your registry key expires {when[payload['step']]}"
    return Text(subject, subject, body, key)


def reconfirm(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    registrant = Registrant.get_by_id(payload["registrant"])
    key = renewal.current_key(registrant, at)
    since = datetime.fromisoformat(payload["since"])
    token = renewal.reconfirm_token(secret_key(settings), registrant.id, since, at)
    body = mailtext.render(
        "reconfirm",
        project=_project(settings),
        link=f"{settings.base_url}/registry/reconfirm/{token}",
        deadline=datetime.fromisoformat(payload["deadline"]),
        **common,
    )
    subject = "Confirm your registry membership"
    return Text(subject, subject, body, key)


# -- answers ------------------------------------------------------------------------------------


def answer_nudge(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """The one reminder to answer an alert before the lift (app.registry.nudges): what to do
    and by when, the vulnerability by its ids alone (never its title or details), and how to
    answer. Encrypted to the registrant's key when it can be used; otherwise signed, and then
    it names the tracking id alone, which in the clear must not be tied to the CVE id."""
    registrant = (
        Registrant.select(Registrant, PublicKey)
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(Registrant.id == payload["registrant"])
        .get()
    )
    v = delivery.vulnerability
    key = renewal.current_key(registrant, at)
    cve = v.cve.cve_id if v.cve_id else None
    label = f"{v.tracking_id} ({cve})" if key is not None and cve else v.tracking_id
    body = mailtext.render(
        "answer-nudge",
        label=label,
        deadline=v.embargo_until,
        link=_readable_page(registrant, v, settings),
        organisation=registrant.organisation,
        key_fingerprint=key.fingerprint if key is not None else None,
        status_link=f"{settings.base_url}/registry/status",
        unsubscribe=f"{settings.base_url}/registry/unsubscribe/"
        + subscriptions.token_of(delivery, secret_key(settings)),
        **common,
    )
    subject = f"Reminder: are your products affected by {label}?"
    outer = f"Reminder: your answer about {v.tracking_id} (embargoed)"
    return Text(subject, outer, body, key)


def _readable_page(registrant: Registrant, v: Vulnerability, settings) -> str:
    """The portal page of the newest alert about v the registrant may read (where they answer
    it), or the list of their alerts when they could read none (they got the missed notice)."""
    versions = Advisory.select(Advisory.id).where(Advisory.vulnerability == v)
    for (advisory_id,) in versions.order_by(Advisory.version.desc()).tuples():
        if alerts.may_read(registrant, advisory_id) is not None:
            return f"{settings.base_url}/registry/advisories/{advisory_id}"
    return f"{settings.base_url}/registry/advisories/"


LETTERS: dict[str, Composer] = {
    "alert": alert,
    "alert-missed": alert,
    "alert-embargo": alert,
    "unsubscribed": unsubscribed,
    "verify-key": verify_key,
    "registrant-rejected": registrant_rejected,
    "sign-up-attempt": sign_up_attempt,
    "answer-recorded": answer_recorded,
    "answer-refused": answer_refused,
    "registry-admin": registry_admin,
    "key-expiry": key_expiry,
    "reconfirm": reconfirm,
    "answer-nudge": answer_nudge,
}
