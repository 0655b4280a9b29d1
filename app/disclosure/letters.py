"""What the lift's mails say (app.disclosure.announcements queues them): the signed public
announcement, the short "embargo lifted" notice to everyone who was alerted, and the
publication notice to the reporter with their credit; for a publication of several members of
a case, one of each naming them all (a section each), and for the reporter of a duplicate, the
public id it is tracked under. All of it comes from the public view (app.disclosure.redaction)
only."""

import textwrap
from datetime import datetime

from app.core import timefmt
from app.disclosure import redaction
from app.models import Delivery, Vulnerability
from app.outbox import mailtext
from app.outbox.text import Composer, Text, usable_key


def _view(v: Vulnerability, at) -> redaction.Published:
    view = redaction.public_view(v, at)
    if not isinstance(view, redaction.Published):
        # Composed only after the lift; a mail about an unpublished one must not go out.
        raise RuntimeError(f"{v.tracking_id} is not published; its announcement waits")
    return view


def _published(delivery: Delivery, at) -> redaction.Published:
    return _view(delivery.vulnerability, at)


def _link(settings, v) -> str:
    return f"{settings.base_url}/vulnerabilities/{v.tracking_id}"


def _context(delivery: Delivery, view: redaction.Published, settings) -> dict:
    link = _link(settings, delivery.vulnerability)
    return {"view": view, "rating": redaction.rating(view.cvss_score), "link": link}


def _items(delivery: Delivery, payload: dict, settings, at) -> list[dict] | None:
    """For a publication of several: each one's public view, rating and link, in the order the
    payload gives; None for a mail about one vulnerability."""
    ids = payload.get("vulnerabilities") or []
    if len(ids) < 2:
        return None
    rows = {v.id: v for v in Vulnerability.select().where(Vulnerability.id.in_(ids))}
    items = []
    for vid in ids:
        v = rows[vid]
        view = _view(v, at)
        items.append(
            {
                "v": v,
                "view": view,
                "rating": redaction.rating(view.cvss_score),
                "link": _link(settings, v),
                "opted_out": not v.credit_reporter and not v.credits.strip(),
            }
        )
    return items


def _ids(items: list[dict]) -> str:
    return ", ".join(item["view"].id for item in items)


def announcement(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    items = _items(delivery, payload, settings, at)
    if items:
        body = mailtext.render(
            "announcement-case", items=items, published=items[0]["view"].published_at, **common
        )
        subject = f"[{_ids(items)}] {len(items)} vulnerabilities published"
        return Text(subject, subject, body, None)
    subject, body = announcement_text(_published(delivery, at), settings, common)
    return Text(subject, subject, body, None)


def announcement_text(view: redaction.Published, settings, common: dict) -> tuple[str, str]:
    """The announcement of one vulnerability, (subject, body): what the lift mails, and what
    the pre-flight (app.disclosure.preflight) writes beforehand to see that it can."""
    link = f"{settings.base_url}/vulnerabilities/{view.tracking_id}"
    context = {"view": view, "rating": redaction.rating(view.cvss_score), "link": link}
    return f"[{view.id}] {view.title}", mailtext.render("announcement", **context, **common)


def embargo_lifted(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    items = _items(delivery, payload, settings, at)
    if items:
        body = mailtext.render(
            "embargo-lifted-case",
            items=items,
            published=items[0]["view"].published_at,
            **common,
        )
        lifted = f"{_ids(items)} are public: embargo lifted"
        return Text(lifted, lifted, body, None)
    view = _published(delivery, at)
    body = mailtext.render("embargo-lifted", **_context(delivery, view, settings), **common)
    lifted = f"{view.id} is public: embargo lifted"
    return Text(lifted, lifted, body, None)


def publication(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    if payload.get("duplicate"):
        return _duplicate_published(delivery, payload, common, settings, at)
    v = delivery.vulnerability
    key = usable_key(v.reporter_key)
    items = _items(delivery, payload, settings, at)
    if items:
        body = mailtext.render(
            "publication-case", items=items, published=items[0]["view"].published_at, **common
        )
        ids = ", ".join(item["v"].tracking_id for item in items)
        subject = f"Published: {_ids(items)}"
        return Text(subject, f"Security reports {ids} published", body, key)
    view = _published(delivery, at)
    body = mailtext.render(
        "publication",
        credited=view.credits,
        opted_out=not v.credit_reporter and not v.credits.strip(),
        **_context(delivery, view, settings),
        **common,
    )
    subject = f"Published: [{view.id}] {view.title}"
    return Text(subject, f"Security report {v.tracking_id} published", body, key)


def _duplicate_published(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To the reporter of a duplicate: the public id and page of the vulnerability their report
    was folded into, nothing about who else reported it (no credits)."""
    duplicate = Vulnerability.get_by_id(payload["duplicate"])
    view = _published(delivery, at)
    body = mailtext.render(
        "publication-duplicate",
        duplicate=duplicate,
        **_context(delivery, view, settings),
        **common,
    )
    subject = f"Published: [{view.id}] {view.title}"
    outer = f"Security report {duplicate.tracking_id} published"
    return Text(subject, outer, body, usable_key(duplicate.reporter_key))


def preflight(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To a team member: what the pre-flight (app.disclosure.preflight) found wrong in what the
    lift will publish, each with its fix; or all clear after an earlier one found something.
    The findings name fields and commands, never their private content: signed, not secret."""
    v = delivery.vulnerability
    until = datetime.fromisoformat(payload["embargo_until"])
    findings = payload["findings"]
    body = mailtext.render(
        "preflight",
        v=v,
        until=until,
        window=payload["window"],
        count=len(findings),
        lines=_finding_lines(findings),
        link=f"{settings.base_url}/team/vulnerabilities/{v.tracking_id}",
        dashboard=f"{settings.base_url}/team/dashboard",
    )
    if findings:
        subject = f"[{v.tracking_id}] fix before the lift at {timefmt.minute(until)}"
    else:
        subject = f"[{v.tracking_id}] pre-flight all clear for the lift"
    return Text(subject, subject, body, None)


def _finding_lines(findings: list[list[str]]) -> list[str]:
    """ "  1. CVE id: none assigned ...", its fix below, wrapped at 72 under the number (the
    mail's wrapping leaves indented lines alone)."""
    lines = []
    wrap = {"break_long_words": False, "break_on_hyphens": False}
    for number, (document, what, fix) in enumerate(findings, 1):
        head = f"{number:>3}. "
        indent = " " * len(head)
        lines += textwrap.wrap(
            f"{document}: {what}.",
            mailtext.WIDTH,
            initial_indent=head,
            subsequent_indent=indent,
            **wrap,
        )
        lines += textwrap.wrap(
            f"Fix: {fix}", mailtext.WIDTH, initial_indent=indent, subsequent_indent=indent, **wrap
        )
    return lines


LETTERS: dict[str, Composer] = {
    "announcement": announcement,
    "embargo-lifted": embargo_lifted,
    "publication": publication,
    "preflight": preflight,
}
