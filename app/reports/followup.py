"""A reporter's follow-up link: their private way back to their case, without an account.

Every reporter gets one, by mail (in the acknowledgement) or on the report form's answer page.
The token is HMAC-SHA256(secret key, "follow-up:" + nonce), 256 bits, URL-safe: only the
nonce and the token's sha256 are stored, so the database alone gives no working link, and a
mail composed when it is sent can still carry it. One link is live per case; reissuing revokes
it and makes another. An unknown, altered or revoked token finds nothing (the page answers 404).
"""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from app.core.db import write_transaction
from app.core.instance import secret_key
from app.models import FollowUpLink

PATH = "/follow-up/"


def token_of(link: FollowUpLink, secret_key: str) -> str:
    mac = hmac.new(secret_key.encode(), f"follow-up:{link.nonce}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_of(token: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}{token}"


def issue(tracking_id: str, secret_key: str, at: datetime) -> tuple[FollowUpLink, str]:
    """A new live link for the case `tracking_id` (its root's id), revoking any earlier one.
    Call it inside the transaction that decides it (or it opens its own)."""
    with write_transaction():
        FollowUpLink.update(revoked_at=at).where(
            FollowUpLink.tracking_id == tracking_id, FollowUpLink.revoked_at.is_null()
        ).execute()
        nonce = secrets.token_hex(16)
        link = FollowUpLink(tracking_id=tracking_id, nonce=nonce, created_at=at)
        token = token_of(link, secret_key)
        link.token_hash = _digest(token)
        link.save(force_insert=True)
    return link, token


def live(tracking_id: str) -> FollowUpLink | None:
    """The case's live link, if it has one."""
    return (
        FollowUpLink.select()
        .where(FollowUpLink.tracking_id == tracking_id, FollowUpLink.revoked_at.is_null())
        .order_by(FollowUpLink.id.desc())
        .first()
    )


def find(token: str) -> FollowUpLink | None:
    """The live link a token opens; None for an unknown, altered or revoked one."""
    if not token or len(token) > 100:
        return None
    link = FollowUpLink.get_or_none(FollowUpLink.token_hash == _digest(token))
    if link is None or link.revoked_at is not None:
        return None
    return link


def revoke(tracking_id: str, at: datetime) -> int:
    """Revoke the case's live link (erasure, or the team's choice); returns how many."""
    with write_transaction():
        return (
            FollowUpLink.update(revoked_at=at)
            .where(FollowUpLink.tracking_id == tracking_id, FollowUpLink.revoked_at.is_null())
            .execute()
        )


def current_url(tracking_id: str, settings) -> str | None:
    """The address of the case's live link, recomputed (to mail it); None when it has none."""
    link = live(tracking_id)
    if link is None:
        return None
    return url_of(token_of(link, secret_key(settings)), settings.base_url)
