"""What the desk writes about reports: the automatic answers to whoever wrote in, the team's
replies and rejections to the reporter, and each report forwarded to the team.

Only the reporter hears about their case; anyone else gets the same neutral receipt.
"""

import peewee

from app.models import Correspondence, Delivery
from app.outbox import mailtext
from app.outbox.text import Composer, Text, member_key, usable_key
from app.reports import attachments, followup
from app.vulns import cases
from mail.compose import Attachment

_NEUTRAL = "Your message to the security team"


def unreadable(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    body = mailtext.render("unreadable", **common)
    return Text(_NEUTRAL, _NEUTRAL, body, None)


def receipt(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """The same text whatever case was named, signed only, nothing about the case."""
    body = mailtext.render("receipt", encrypted=payload.get("encrypted", False), **common)
    return Text(_NEUTRAL, _NEUTRAL, body, None)


def _to_reporter(delivery: Delivery) -> bool:
    """Whether an acknowledgement goes to its case's reporter (the address that reported it)."""
    v = delivery.vulnerability
    reporter = (v.reporter_email if v is not None else "").strip().lower()
    return bool(reporter) and delivery.recipient.strip().lower() == reporter


def acknowledgement(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """ack and reply-ack: the case's id (and title, encrypted) to its reporter. To anyone else
    (a reply-ack queued to one before senders were told apart): the receipt."""
    if not _to_reporter(delivery):
        return receipt(delivery, payload, common, settings, at)
    v = delivery.vulnerability
    follow_up = followup.current_url(cases.case_id(v), settings) if delivery.kind == "ack" else None
    body = mailtext.render(
        delivery.kind,
        v=v,
        encrypted=payload.get("encrypted", False),
        follow_up=follow_up,
        **common,
    )
    neutral = f"Security report {v.tracking_id}"
    return Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, usable_key(v.reporter_key))


def follow_up_link(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """The team reissued the reporter's follow-up link: the new one (the old one no longer
    opens anything). Composed when sent, from the case's live link: none left (revoked since),
    and the mail says only that the link was withdrawn."""
    v = delivery.vulnerability
    url = followup.current_url(cases.case_id(v), settings)
    body = mailtext.render("follow-up-link", v=v, url=url, **common)
    neutral = f"Security report {v.tracking_id}: your follow-up link"
    return Text(neutral, neutral, body, usable_key(v.reporter_key))


def rejected(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    v = delivery.vulnerability
    key = usable_key(v.reporter_key)
    reason = payload.get("reason", "") if key is not None else ""
    body = mailtext.render("rejected", v=v, reason=reason, **common)
    neutral = f"Security report {v.tracking_id} closed"
    return Text(neutral, neutral, body, key)


def reply(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    v = delivery.vulnerability
    entry = Correspondence.get_by_id(payload["correspondence"])
    key = usable_key(v.reporter_key)
    neutral = f"Security report {v.tracking_id}"
    if key is not None:
        body = mailtext.render("reply", v=v, text=entry.text, **common)
        return Text(f"Re: {v.title} [{v.tracking_id}]", neutral, body, key)
    follow_up = followup.current_url(cases.case_id(v), settings)  # the text is there
    body = mailtext.render("reply-notice", v=v, follow_up=follow_up, **common)
    return Text(neutral, neutral, body, None)


def team_forward(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    v = delivery.vulnerability
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
            tuple(Attachment(f.name, content, attachments.mail_type(f)) for f, content in carried),
        )
    # Without a key: the signed notice alone, never the files nor their names.
    return Text(neutral, neutral, mailtext.render("team-notice", **context), None)


LETTERS: dict[str, Composer] = {
    "unreadable": unreadable,
    "receipt": receipt,
    "ack": acknowledgement,
    "reply-ack": acknowledgement,
    "rejected": rejected,
    "reply": reply,
    "team-forward": team_forward,
    "follow-up-link": follow_up_link,
}
