"""At the lift: the signed public announcement, a short "embargo lifted" notice to everyone
who was alerted, and the publication notice to the reporter with their credit.

`queue` is called by the lift, inside the transaction that publishes the vulnerability; it is
idempotent. What the mails say comes from the public view (app.disclosure.redaction) only.
"""

from datetime import datetime

from app.core.config import Settings
from app.models import Delivery, Vulnerability
from app.outbox import deliveries
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
