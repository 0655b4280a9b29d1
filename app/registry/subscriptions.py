"""Subscribing to alerts: the RFC 8058 one-click unsubscribe links alerts carry, and
resubscribing from the status page.

The link travels in every alert's clear headers (List-Unsubscribe), so anyone who sees one
alert's headers could use it: each link is made for one delivery and one registrant and works
for LINK_LIFETIME after that delivery was queued, and every unsubscription is audited and
confirmed to the registrant by mail, with how to turn alerts back on. Never silent."""

import json
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired

from app.core import audit, tokens
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Delivery, Registrant
from app.outbox import deliveries

# A new salt: the links of earlier versions (registrant id alone, never expiring) are refused.
UNSUBSCRIBE_SALT = "forewarn.unsubscribe.delivery"
LINK_LIFETIME = timedelta(days=60)
NOTICE_KIND = "unsubscribed"

_EXPIRED = (
    "This unsubscribe link has expired: links in alerts work for "
    f"{LINK_LIFETIME.days} days. To stop alerts, sign in and choose "
    '"Stop alerts" on your registration page.'
)
_SUPERSEDED = (
    "This unsubscribe link is from an alert sent before alerts were last turned back on, "
    'so it no longer works. To stop alerts, sign in and choose "Stop alerts" on your '
    "registration page."
)
_INVALID = (
    "This unsubscribe link is not valid: copy the whole link, or sign in and choose "
    '"Stop alerts" on your registration page.'
)


def unsubscribe_token(
    secret_key: str, delivery_id: int, registrant_id: int, issued_at: datetime
) -> str:
    """The link of one delivery to one registrant (in its List-Unsubscribe header, and in its
    body where it has one); issued_at is when the delivery was queued, so every attempt to
    send it carries the same link."""
    return tokens.timed(secret_key, UNSUBSCRIBE_SALT, issued_at).dumps([delivery_id, registrant_id])


def token_of(delivery: Delivery, secret_key: str) -> str:
    """The link token of a delivery whose payload names its registrant."""
    registrant_id = json.loads(delivery.payload)["registrant"]
    return unsubscribe_token(secret_key, delivery.id, registrant_id, delivery.created_at)


def check(token: str, secret_key: str, at: datetime) -> tuple[Registrant, Delivery]:
    """The registrant a link may unsubscribe at `at`, and the delivery that carried it;
    Refused (saying what to do instead) when it is forged, expired, from an earlier version,
    or names a delivery that did not go to that registrant."""
    serializer = tokens.timed(secret_key, UNSUBSCRIBE_SALT, at)
    try:
        delivery_id, registrant_id = serializer.loads(
            token, max_age=int(LINK_LIFETIME.total_seconds())
        )
    except SignatureExpired:
        raise Refused(_EXPIRED) from None
    except (BadSignature, ValueError, TypeError):
        raise Refused(_INVALID) from None
    registrant = Registrant.get_or_none(Registrant.id == registrant_id)
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if registrant is None or delivery is None or not _went_to(delivery, registrant):
        raise Refused(_INVALID)
    if registrant.resubscribed_at is not None and delivery.created_at < registrant.resubscribed_at:
        raise Refused(_SUPERSEDED)
    return registrant, delivery


def _went_to(delivery: Delivery, registrant: Registrant) -> bool:
    try:
        named = json.loads(delivery.payload or "{}").get("registrant")
    except (ValueError, AttributeError):
        return False
    return named == registrant.id and delivery.user_id == registrant.user_id


def unsubscribe(token: str, secret_key: str, at: datetime, via: str = "link") -> Registrant:
    """Stop alerts to the registrant the link names (via "link": the page's button, or
    "one-click": a mail program's RFC 8058 POST); again is harmless (audited and told once)."""
    registrant, delivery = check(token, secret_key, at)
    return stop(registrant, at, via=via, delivery=delivery)


def stop(
    registrant: Registrant, at: datetime, via: str = "status page", delivery: Delivery | None = None
) -> Registrant:
    """No more alerts to this registrant (from a link, or their status page). Audited, and the
    registrant is told by mail how to turn them back on."""
    with write_transaction():
        changed = (
            Registrant.update(unsubscribed=True, updated_at=at)
            .where(Registrant.id == registrant.id, Registrant.unsubscribed == False)  # noqa: E712
            .execute()
        )
        if changed:
            details = {"via": via, "delivery": delivery.id if delivery is not None else None}
            # Whoever used a link is unknown: anyone who saw the alert's headers could have.
            by_link = delivery is not None
            audit.record(
                None if by_link else registrant.user,
                "registry.unsubscribe",
                at,
                target=registrant.user.email,
                details=details,
                actor_label=f"unsubscribe link of delivery {delivery.id}" if by_link else None,
            )
            deliveries.queue(
                NOTICE_KIND,
                registrant.user.email,
                at,
                user=registrant.user,
                payload={
                    "registrant": registrant.id,
                    "via": via,
                    "delivery": details["delivery"],
                    "at": at.isoformat(),
                },
            )
    return Registrant.get_by_id(registrant.id)


def resubscribe(registrant: Registrant, at: datetime) -> Registrant:
    """Alerts again (as far as the registrant's status allows). The links of alerts already
    sent stop working: whoever used one cannot stop the alerts again with it."""
    with write_transaction():
        changed = (
            Registrant.update(unsubscribed=False, resubscribed_at=at, updated_at=at)
            .where(Registrant.id == registrant.id, Registrant.unsubscribed == True)  # noqa: E712
            .execute()
        )
        if changed:
            audit.record(registrant.user, "registry.resubscribe", at, target=registrant.user.email)
    return Registrant.get_by_id(registrant.id)
