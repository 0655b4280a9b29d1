"""Password reset by a link sent by mail, for every account.

Registrants added by an admin have no usable password until they use such a link. The link is a
signed token (one salt for this purpose), judged by our clock, valid one hour, used once, and
bound to the account's current password hash: a changed password makes older links useless.
"""

import hashlib
from datetime import datetime, timedelta

import peewee
from itsdangerous import BadSignature, SignatureExpired

from app.accounts.team import MIN_PASSWORD_LENGTH, new_session_token
from app.core import audit, passwords, tokens
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import UsedToken, User
from app.outbox import deliveries

RESET_SALT = "forewarn.password-reset"
TOKEN_LIFETIME = timedelta(hours=1)
MESSAGE = "If an account exists for that address, we sent a link valid for one hour."


def _password_binding(user: User) -> str:
    """A digest of the current hash (the token is signed, not encrypted: no hash in it)."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def request_reset(email: str, at: datetime) -> None:
    """Queue a reset mail if an active account has this address. Returns None either way, so
    the caller cannot tell whether the account exists."""
    user = User.get_or_none(User.email == (email or "").strip().lower())
    if user is None or not user.active:
        return None
    deliveries.queue("password-reset", user.email, at, user=user, payload={"user": user.id})
    return None


def reset_token(secret_key: str, user: User, at: datetime) -> str:
    return tokens.timed(secret_key, RESET_SALT, at).dumps([user.id, _password_binding(user)])


def check(token: str, secret_key: str, at: datetime) -> User:
    """The account this link resets, or Refused with a message fit to show (nothing is used)."""
    try:
        user_id, binding = tokens.timed(secret_key, RESET_SALT, at).loads(
            token, max_age=int(TOKEN_LIFETIME.total_seconds())
        )
    except SignatureExpired:
        raise Refused("This link has expired (links last one hour): ask for a new one") from None
    except (BadSignature, ValueError, TypeError):
        raise Refused("This link is not valid: copy the whole link from the mail") from None
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.active or binding != _password_binding(user):
        raise Refused("This link is not valid any more: ask for a new one")
    if tokens.was_used(RESET_SALT, token):
        raise Refused("This link was already used: ask for a new one if you need it")
    return user


def reset(token: str, new_password: str, secret_key: str, at: datetime) -> User:
    """Set the new password, end every session of the account, and audit it."""
    user = check(token, secret_key, at)
    if len(new_password) < MIN_PASSWORD_LENGTH:
        raise Refused(f"The password must have at least {MIN_PASSWORD_LENGTH} characters")
    try:
        with write_transaction():
            UsedToken.create(purpose=RESET_SALT, token_hash=tokens.digest(token), used_at=at)
            changed = (
                User.update(
                    password_hash=passwords.hash_password(new_password),
                    session_token=new_session_token(),
                )
                .where(User.id == user.id, User.password_hash == user.password_hash)
                .execute()
            )
            if changed != 1:  # the password changed since check(): the link is stale
                raise Refused("This link is not valid any more: ask for a new one")
            audit.record(user, "account.password_reset", at, target=user.email)
    except peewee.IntegrityError:
        raise Refused("This link was already used: ask for a new one if you need it") from None
    return User.get_by_id(user.id)
