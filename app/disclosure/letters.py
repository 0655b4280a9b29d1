"""What the lift's mails say (app.disclosure.announcements queues them): the signed public
announcement, the short "embargo lifted" notice to everyone who was alerted, and the
publication notice to the reporter with their credit. All of it comes from the public view
(app.disclosure.redaction) only."""

from app.disclosure import redaction
from app.models import Delivery
from app.outbox import mailtext
from app.outbox.text import Composer, Text, usable_key


def _published(delivery: Delivery, at) -> redaction.Published:
    v = delivery.vulnerability
    view = redaction.public_view(v, at)
    if not isinstance(view, redaction.Published):
        # Composed only after the lift; a mail about an unpublished one must not go out.
        raise RuntimeError(f"{v.tracking_id} is not published; its announcement waits")
    return view


def _context(delivery: Delivery, view: redaction.Published, settings) -> dict:
    link = f"{settings.base_url}/vulnerabilities/{delivery.vulnerability.tracking_id}"
    return {"view": view, "rating": redaction.rating(view.cvss_score), "link": link}


def announcement(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    view = _published(delivery, at)
    body = mailtext.render("announcement", **_context(delivery, view, settings), **common)
    subject = f"[{view.id}] {view.title}"
    return Text(subject, subject, body, None)


def embargo_lifted(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    view = _published(delivery, at)
    body = mailtext.render("embargo-lifted", **_context(delivery, view, settings), **common)
    lifted = f"{view.id} is public: embargo lifted"
    return Text(lifted, lifted, body, None)


def publication(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    v = delivery.vulnerability
    view = _published(delivery, at)
    key = usable_key(v.reporter_key)
    body = mailtext.render(
        "publication",
        credited=view.credits,
        opted_out=not v.credit_reporter and not v.credits.strip(),
        **_context(delivery, view, settings),
        **common,
    )
    subject = f"Published: [{view.id}] {view.title}"
    return Text(subject, f"Security report {v.tracking_id} published", body, key)


LETTERS: dict[str, Composer] = {
    "announcement": announcement,
    "embargo-lifted": embargo_lifted,
    "publication": publication,
}
