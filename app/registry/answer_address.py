"""Where a product maker answers an alert by mail: security-answers+<advisory id>-<token>@...,
the Reply-To of every alert (app.registry.alerts.signed_entity).

The token is an HMAC of the advisory id with the instance's secret key (as a bounce address's
is of its delivery), so nobody can name an advisory they were not sent; one address per version
(a bundle's mail carries its first version's). A wrong token or none names nothing.
"""

from dataclasses import dataclass

from app.core import tokens
from app.core.config import Settings
from app.core.instance import secret_key
from mail import addresses

_PURPOSE = "answers"  # the HMAC's domain (app.core.tokens.address_token)


@dataclass(frozen=True)
class Addressed:
    """A message to an answers address: the advisory it names (None when the address does not
    carry a valid token), the address itself, and what is wrong with it, for the team."""

    address: str
    advisory_id: int | None
    problem: str = ""


def address(advisory_id: int, settings: Settings) -> str:
    """The address answers to this advisory version go to."""
    detail = tokens.address_detail(_PURPOSE, advisory_id, secret_key(settings))
    return addresses.answers_address(settings.security_address, detail)


def addressed(recipients: list[str], settings: Settings) -> Addressed | None:
    """What the first answers address among the recipients names; None if none is one."""
    for recipient in recipients:
        detail = addresses.answers_detail(recipient, settings.security_address)
        if detail is not None:
            return _verified(recipient.strip().strip("<>"), detail, settings)
    return None


def _verified(recipient: str, detail: str, settings: Settings) -> Addressed:
    found, problem = tokens.read_address_detail(_PURPOSE, "advisory", detail, secret_key(settings))
    return Addressed(recipient, found, problem)
