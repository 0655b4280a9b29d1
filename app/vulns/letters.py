"""What the desk writes about a vulnerability's dates: reminders to the team, an embargo's
change to the team and the reporter, and an embargo's end that did not publish."""

from datetime import datetime

from app.models import Delivery
from app.outbox import mailtext
from app.outbox.text import Composer, Text, member_key, usable_key


def _link(settings, v) -> str:
    return f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}"


def embargo_changed(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To a team member (their key) or the reporter (theirs); the reason only when encrypted."""
    v = delivery.vulnerability
    key = member_key(delivery.user) if delivery.user else usable_key(v.reporter_key)
    for_reporter = delivery.user is None
    body = mailtext.render(
        "embargo-changed",
        v=v,
        moved=payload.get("moved") or [v.tracking_id],  # a case's members moved together
        for_reporter=for_reporter,
        kind=payload["kind"],
        before=datetime.fromisoformat(payload["before"]),
        after=datetime.fromisoformat(payload["after"]),
        reason=payload["reason"] if key is not None else "",
        link=_link(settings, v),
        **common,
    )
    subject = f"[{v.tracking_id}] embargo date changed"
    return Text(subject, subject, body, key)


def lift_held(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    v = delivery.vulnerability
    body = mailtext.render(
        "lift-held",
        v=v,
        status=payload["status"],
        until=datetime.fromisoformat(payload["embargo_until"]),
        link=_link(settings, v),
    )
    subject = f"[{v.tracking_id}] embargo ended: not published, decide now"
    return Text(subject, subject, body, None)  # the id and a date: signed, not secret


def reminder(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """A date coming or passed (app.vulns.reminders), or the alert's lead time running out."""
    v = delivery.vulnerability
    if payload["field"] == "lead_time":
        body = mailtext.render(
            "lead-time",
            v=v,
            deadline=datetime.fromisoformat(payload["deadline"]),
            link=_link(settings, v),
        )
        subject = f"[{v.tracking_id}] send the pre-disclosure alert now"
        return Text(subject, subject, body, None)
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
        link=_link(settings, v),
    )
    subject = f"[{v.tracking_id}] {what.lower()} {when}"
    return Text(subject, subject, body, None)  # dates and ids only: signed, not secret


LETTERS: dict[str, Composer] = {
    "reminder": reminder,
    "embargo-changed": embargo_changed,
    "lift-held": lift_held,
}
