"""Signed links (itsdangerous): one salt per purpose, stamped and judged by our clock (so tests
can move time), and single use recorded in the database. Tokens are signed, not encrypted:
they carry ids, never secrets."""

import base64
import hashlib
import hmac
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


# -- tokens in plus-addresses: security-bounces+<delivery>-<token>@, security-answers+… ---------

_ADDRESS_TOKEN_BYTES = 10  # 80 bits, 16 base32 characters (lowercase letters and digits 2-7)
_ADDRESS_TOKEN_CHARS = 16


def address_token(purpose: str, number: int, secret: str) -> str:
    """The unguessable part of an address that names a row by its number (lowercase letters
    and digits, which relays leave alone)."""
    mac = hmac.new(secret.encode(), f"forewarn.{purpose}.{number}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:_ADDRESS_TOKEN_BYTES]).decode().lower()


def address_detail(purpose: str, number: int, secret: str) -> str:
    """What follows the "+": the number, then its token."""
    return f"{number}-{address_token(purpose, number, secret)}"


def read_address_detail(
    purpose: str, what: str, detail: str, secret: str
) -> tuple[int | None, str]:
    """The number of the `what` (a delivery, an advisory) an address's detail names when its
    token is right; else None and what is wrong with it, in one line for the team."""
    number, _, given = detail.partition("-")
    if not number.isdigit() or len(number) > 18:
        return None, f"names no {what}"
    if not given:
        return None, f"no token for {what} {int(number)}"
    expected = address_token(purpose, int(number), secret)
    if len(given) != _ADDRESS_TOKEN_CHARS or not hmac.compare_digest(given.lower(), expected):
        return None, f"a wrong token for {what} {int(number)}"
    return int(number), ""


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
