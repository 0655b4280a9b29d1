"""What the desk writes about a vulnerability's dates: reminders to the team, an embargo's
change to the team and the reporter, and an embargo's end that did not publish; about a
case: the reporter's findings mapped to the vulnerabilities that cover them; and to a
reporter whose report is marked a duplicate of another (or tracked on its own again)."""

import textwrap
from datetime import datetime

from app.core import timefmt
from app.models import Delivery, Vulnerability
from app.outbox import mailtext
from app.outbox.text import Composer, Text, member_key, usable_key
from app.vulns import casemap


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


# A vulnerability's state as the reporter reads it.
_STATES = {
    "new": "being assessed",
    "triage": "being assessed",
    "accepted": "accepted: we track it as a vulnerability",
    "fixed": "fixed, not published yet",
    "published": "published",
    "rejected": "rejected: not a vulnerability we track",
}


def _state(member: casemap.Member) -> str:
    if member.duplicate_of is not None:
        return f"a duplicate of {member.duplicate_of}: tracked there, not on its own"
    return _STATES.get(member.status, member.status)


def _ids(member: casemap.Member) -> str:
    return f"{member.tracking_id} ({member.cve_id})" if member.cve_id else member.tracking_id


def _label_lines(found: casemap.FindingMap) -> list[str]:
    """ "  NCC-ZEP-001  SEC-2026-0002 (CVE-2026-41234), SEC-2026-0003", wrapped at 72 under
    the ids (the mail's wrapping leaves indented lines alone)."""
    width = min(max((len(label) for label, _ in found.by_label), default=0), 24)
    lines = []
    for label, members in found.by_label:
        head = f"  {label.ljust(width)}  "
        lines.extend(
            textwrap.wrap(
                ", ".join(_ids(m) for m in members),
                mailtext.WIDTH,
                initial_indent=head,
                subsequent_indent=" " * min(len(head), 28),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def case_map(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To the reporter of a case (delivery.vulnerability is its root): their finding labels
    mapped to tracking ids and CVE ids, composed from the case as it is when the mail is sent
    (app.vulns.casemap.tell_reporter batches the changes). Without their key: a notice that
    names no label, title or id but the case's."""
    root = delivery.vulnerability
    key = usable_key(root.reporter_key)
    neutral = f"Security report {root.tracking_id}"
    if key is None:
        body = mailtext.render("case-map-notice", v=root, **common)
        return Text(neutral, neutral, body, None)
    found = casemap.finding_map(root)
    ends = found.embargo_ends()
    body = mailtext.render(
        "case-map",
        v=root,
        found=found,
        ends=ends,
        one_end=ends[0] if len(ends) == 1 else None,
        label_lines=_label_lines(found),
        state=_state,
        minute=timefmt.minute,
        **common,
    )
    subject = f"Re: {root.title} [{root.tracking_id}]: your findings and our ids"
    return Text(subject[:250], neutral, body, key)


def duplicate(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To the reporter of a duplicate: the id it is tracked under now (and the CVE id once
    that one is published), whether they are credited, what to do; or, undone, that it is
    tracked on its own again. Never who else reported it, nor the original's title or
    description. Without their key, the original's id only once it is public."""
    v = delivery.vulnerability
    key = usable_key(v.reporter_key)
    original = Vulnerability.get(Vulnerability.tracking_id == payload["original"])
    published = original.status == "published"
    neutral = f"Security report {v.tracking_id}"
    if payload.get("undone"):
        body = mailtext.render("duplicate-undone", v=v, **common)
        return Text(f"[{v.tracking_id}] tracked on its own again", neutral, body, key)
    shown = key is not None or published  # what is public anyway may go unencrypted
    body = mailtext.render(
        "duplicate",
        v=v,
        encrypted=key is not None,
        original=original.tracking_id if shown else None,
        cve=original.cve.cve_id if published and original.cve_id else None,
        embargo_until=original.embargo_until if key is not None and not published else None,
        published=published,
        link=f"{settings.base_url}/vulnerabilities/{original.tracking_id}" if published else None,
        credited=payload.get("credited", ""),
        **common,
    )
    subject = f"[{v.tracking_id}] now tracked as {original.tracking_id}"
    return Text(subject if shown else neutral, neutral, body, key)


LETTERS: dict[str, Composer] = {
    "reminder": reminder,
    "embargo-changed": embargo_changed,
    "lift-held": lift_held,
    "case-map": case_map,
    "duplicate": duplicate,
}
