"""Subscribing to alerts: the RFC 8058 one-click unsubscribe links alerts carry (they never
expire: an alert may be read months later), and resubscribing from the status page."""

from datetime import datetime

from itsdangerous import BadSignature

from app import audit, tokens
from app.db import write_transaction
from app.errors import Refused
from app.models import Registrant

UNSUBSCRIBE_SALT = "forewarn.unsubscribe"


def unsubscribe_token(secret_key: str, registrant_id: int) -> str:
    """The link in every alert; it does not expire, since alerts may be read months later."""
    return tokens.lasting(secret_key, UNSUBSCRIBE_SALT).dumps(registrant_id)


def unsubscribe(token: str, secret_key: str, at: datetime) -> Registrant:
    """Stop alerts to the registrant the token names; again is harmless (audited once)."""
    try:
        registrant_id = tokens.lasting(secret_key, UNSUBSCRIBE_SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        raise Refused("This unsubscribe link is not valid: copy the whole link") from None
    registrant = Registrant.get_or_none(Registrant.id == registrant_id)
    if registrant is None:
        raise Refused("This unsubscribe link is not valid any more")
    return stop(registrant, at)


def stop(registrant: Registrant, at: datetime) -> Registrant:
    """No more alerts to this registrant (from a link, or their status page)."""
    with write_transaction():
        changed = (
            Registrant.update(unsubscribed=True, updated_at=at)
            .where(Registrant.id == registrant.id, Registrant.unsubscribed == False)  # noqa: E712
            .execute()
        )
        if changed:
            audit.record(registrant.user, "registry.unsubscribe", at, target=registrant.user.email)
    return Registrant.get_by_id(registrant.id)


def resubscribe(registrant: Registrant, at: datetime) -> Registrant:
    """Alerts again (as far as the registrant's status allows)."""
    with write_transaction():
        changed = (
            Registrant.update(unsubscribed=False, updated_at=at)
            .where(Registrant.id == registrant.id, Registrant.unsubscribed == True)  # noqa: E712
            .execute()
        )
        if changed:
            audit.record(registrant.user, "registry.resubscribe", at, target=registrant.user.email)
    return Registrant.get_by_id(registrant.id)
