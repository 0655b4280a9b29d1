"""Signed links (itsdangerous): one salt per purpose, stamped and judged by our clock (so tests
can move time), and single use recorded in the database. Tokens are signed, not encrypted:
they carry ids, never secrets."""

import hashlib
from datetime import datetime

import peewee
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import UsedToken


def timed(secret_key: str, salt: str, at: datetime) -> URLSafeTimedSerializer:
    """A serializer whose tokens carry `at` and whose max_age is judged at `at`."""

    class AtSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(at.timestamp())

    return URLSafeTimedSerializer(secret_key, salt=salt, signer=AtSigner)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def was_used(purpose: str, token: str) -> bool:
    return (
        UsedToken.select()
        .where(UsedToken.purpose == purpose, UsedToken.token_hash == digest(token))
        .exists()
    )


def use_once(purpose: str, token: str, at: datetime) -> None:
    """Record the token as used; Refused if it was already."""
    try:
        with write_transaction():
            UsedToken.create(purpose=purpose, token_hash=digest(token), used_at=at)
    except peewee.IntegrityError:
        raise Refused("This link was already used") from None
