"""The registrant's proof of possession: a single-use, signed link that expires, mailed
encrypted to the key they uploaded; following it pins that key."""

from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired

from app.core import audit, tokens
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Delivery, PublicKey, Registrant
from app.outbox import deliveries

TOKEN_LIFETIME = timedelta(hours=48)
VERIFY_SALT = "forewarn.registry.verify-key"


def queue_proof(registrant: Registrant, key: PublicKey, at: datetime) -> Delivery:
    return deliveries.queue(
        "verify-key",
        registrant.user.email,
        at,
        user=registrant.user,
        fingerprint=key.fingerprint,
        payload={"registrant": registrant.id, "key": key.id},
    )


def resend_proof(registrant: Registrant, key: PublicKey, at: datetime) -> None:
    """Another link to the same unproven key (the first mail was lost or expired)."""
    if key.owner_id != registrant.user_id or key.usable:
        raise Refused("That key is not waiting for confirmation")
    with write_transaction():
        queue_proof(registrant, key, at)
        audit.record(
            registrant.user,
            "registry.proof_resent",
            at,
            target=registrant.user.email,
            details={"fingerprint": key.fingerprint},
        )


def verification_token(secret_key: str, registrant_id: int, key_id: int, at: datetime) -> str:
    return tokens.timed(secret_key, VERIFY_SALT, at).dumps([registrant_id, key_id])


def verify(token: str, secret_key: str, at: datetime) -> Registrant:
    """Pin the key the link was encrypted to; the first proof sends the registrant to review."""
    serializer = tokens.timed(secret_key, VERIFY_SALT, at)
    try:
        registrant_id, key_id = serializer.loads(token, max_age=int(TOKEN_LIFETIME.total_seconds()))
    except SignatureExpired:
        raise Refused(
            "This link has expired (links last 48 hours): sign in to get a new one"
        ) from None
    except (BadSignature, ValueError, TypeError):
        raise Refused("This link is not valid: copy the whole link from the mail") from None
    registrant = Registrant.get_or_none(Registrant.id == registrant_id)
    key = PublicKey.get_or_none(PublicKey.id == key_id)
    if registrant is None or key is None or key.owner_id != registrant.user_id:
        raise Refused("This link is not valid any more: sign in to get a new one")
    with write_transaction():
        use_once(VERIFY_SALT, token, at)
        PublicKey.update(usable=False).where(PublicKey.owner == registrant.user).execute()
        PublicKey.update(usable=True).where(PublicKey.id == key.id).execute()
        status = "pending_review" if registrant.status == "unverified" else registrant.status
        Registrant.update(
            key=key,
            pinned_fingerprint=key.fingerprint,
            encryption_expires=key.expires,
            status=status,
            updated_at=at,
        ).where(Registrant.id == registrant.id).execute()
        audit.record(
            registrant.user,
            "registry.key_proven",
            at,
            target=registrant.user.email,
            details={"fingerprint": key.fingerprint, "status": status},
        )
    return Registrant.get_by_id(registrant.id)


def use_once(purpose: str, token: str, at: datetime) -> None:
    try:
        tokens.use_once(purpose, token, at)
    except Refused:
        raise Refused("This link was already used: sign in to see your status") from None
