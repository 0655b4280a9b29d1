"""Where a product maker answers an alert by mail: security-answers+<advisory id>-<token>@...,
the Reply-To of every alert (app.registry.alerts.signed_entity).

The token is an HMAC of the advisory id with the instance's secret key (as a bounce address's
is of its delivery), so nobody can name an advisory they were not sent; one address per version
(a bundle's mail carries its first version's). A wrong token or none names nothing.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass

from app.core.config import Settings
from app.core.instance import secret_key
from mail import addresses

_TOKEN_BYTES = 10  # 80 bits, 16 base32 characters (lowercase letters and digits 2-7)
_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Addressed:
    """A message to an answers address: the advisory it names (None when the address does not
    carry a valid token), the address itself, and what is wrong with it, for the team."""

    address: str
    advisory_id: int | None
    problem: str = ""


def token(advisory_id: int, secret: str) -> str:
    mac = hmac.new(secret.encode(), f"forewarn.answers.{advisory_id}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:_TOKEN_BYTES]).decode().lower()


def address(advisory_id: int, settings: Settings) -> str:
    """The address answers to this advisory version go to."""
    detail = f"{advisory_id}-{token(advisory_id, secret_key(settings))}"
    return addresses.answers_address(settings.security_address, detail)


def addressed(recipients: list[str], settings: Settings) -> Addressed | None:
    """What the first answers address among the recipients names; None if none is one."""
    for recipient in recipients:
        detail = addresses.answers_detail(recipient, settings.security_address)
        if detail is not None:
            return _verified(recipient.strip().strip("<>"), detail, settings)
    return None


def _verified(recipient: str, detail: str, settings: Settings) -> Addressed:
    number, _, given = detail.partition("-")
    if not number.isdigit() or len(number) > 18:
        return Addressed(recipient, None, "names no advisory")
    expected = token(int(number), secret_key(settings))
    if len(given) != _TOKEN_CHARS or not hmac.compare_digest(given.lower(), expected):
        return Addressed(recipient, None, f"a wrong token for advisory {int(number)}")
    return Addressed(recipient, int(number))
