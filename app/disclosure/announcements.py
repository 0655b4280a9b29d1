"""At the lift: the signed public announcement, a short "embargo lifted" notice to everyone
who was alerted, and the publication notice to the reporter with their credit.

`queue` is called by the lift, inside the transaction that publishes the vulnerability; it is
idempotent. What the mails say comes from the public view (app.disclosure.redaction) only.
"""

from datetime import datetime

from app.core.config import Settings
from app.disclosure import redaction
from app.models import Delivery, Vulnerability
from app.outbox import deliveries, mailtext
from app.registry import alerts

KINDS = ("announcement", "embargo-lifted", "publication")


def queue(v: Vulnerability, at: datetime, settings: Settings) -> int:
    """The lift's mails, once per vulnerability. Returns how many were queued."""
    if Delivery.select().where(Delivery.vulnerability == v, Delivery.kind.in_(KINDS)).exists():
        return 0
    queued = []
    if settings.announce_address:
        queued.append(("announcement", None, settings.announce_address, {}))
    for r in alerts.alerted(v).iterator():
        queued.append(("embargo-lifted", r.user, r.user.email, {"registrant": r.id}))
    if v.reporter_email:
        queued.append(("publication", None, v.reporter_email, {}))
    for kind, user, address, payload in queued:
        deliveries.queue(kind, address, at, vulnerability=v, user=user, payload=payload)
    return len(queued)


def mail_text(delivery: Delivery, payload: dict, common: dict, settings: Settings, at):
    """(subject, outer subject, body, certificate) of one of the lift's mails."""
    from app.outbox.letters import usable_key

    v = delivery.vulnerability
    view = redaction.public_view(v, at)
    if not isinstance(view, redaction.Published):
        # Composed only after the lift; a mail about an unpublished one must not go out.
        raise RuntimeError(f"{v.tracking_id} is not published; its announcement waits")
    link = f"{settings.base_url}/vulnerabilities/{v.tracking_id}"
    subject = f"[{view.id}] {view.title}"
    context = {"view": view, "rating": redaction.rating(view.cvss_score), "link": link}
    if delivery.kind == "announcement":
        body = mailtext.render("announcement", **context, **common)
        return subject, subject, body, None
    if delivery.kind == "embargo-lifted":
        body = mailtext.render("embargo-lifted", **context, **common)
        lifted = f"{view.id} is public: embargo lifted"
        return lifted, lifted, body, None
    if delivery.kind == "publication":
        key = usable_key(v.reporter_key)
        body = mailtext.render(
            "publication",
            credited=view.credits,
            opted_out=not v.credit_reporter and not v.credits.strip(),
            **context,
            **common,
        )
        return f"Published: {subject}", f"Security report {v.tracking_id} published", body, key
    raise ValueError(f"no announcement text for delivery kind {delivery.kind!r}")
