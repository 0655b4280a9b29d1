"""Bounces of registrant mail come back to security-bounces+<delivery id>-<token>@... (VERP):
matched to their delivery from the address alone (never decrypted), and repeated hard bounces
flag the registrant for admins.

The token is an HMAC of the delivery id with the instance's secret key, so nobody can name a
delivery they did not receive mail from. A bounce is applied only to a delivery that was sent;
one for a queued, failed or unknown delivery, with a wrong token or none (the old `+N@` form),
is kept for a human and changes nothing: a bounce never cancels mail still to be sent."""

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.core import audit, tokens
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.instance import secret_key
from app.models import Delivery
from mail import addresses

log = logging.getLogger("forewarn.bounces")

HARD_BOUNCES_TO_FLAG = 3
_STATUS = re.compile(rb"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.IGNORECASE | re.MULTILINE)
_FAILED = re.compile(rb"^Action:\s*failed", re.IGNORECASE | re.MULTILINE)
# States a bounce may speak about: the relay took the mail (a repeated DSN for one already
# bounced changes nothing). Never "queued": that mail is still ours to send.
_BOUNCEABLE = ("sent", "bounced")
_PURPOSE = "bounce"  # the HMAC's domain (app.core.tokens.address_token)


@dataclass(frozen=True)
class Bounce:
    """A message to the bounce address: the delivery it names (None when the address does not
    carry a valid token) and the address itself, for the record."""

    address: str
    delivery_id: int | None
    problem: str = ""


def token(delivery_id: int, secret: str) -> str:
    """The unguessable part of a delivery's bounce address."""
    return tokens.address_token(_PURPOSE, delivery_id, secret)


def address(delivery_id: int, settings: Settings) -> str:
    """The envelope sender of a delivery whose bounces should come back to it."""
    detail = tokens.address_detail(_PURPOSE, delivery_id, secret_key(settings))
    return addresses.bounce_address(settings.security_address, detail)


def delivery_of(recipients: list[str], settings: Settings) -> Bounce | None:
    """The bounce a message to a bounce address is (None if it came to no bounce address)."""
    for recipient in recipients:
        detail = addresses.bounce_detail(recipient, settings.security_address)
        if detail is not None:
            return _verified(recipient.strip().strip("<>"), detail, settings)
    return None


def _verified(recipient: str, detail: str, settings: Settings) -> Bounce:
    found, problem = tokens.read_address_detail(_PURPOSE, "delivery", detail, secret_key(settings))
    if problem.startswith("no token"):
        problem += " (an old-style address)"
    return Bounce(recipient, found, problem)


def record(bounce: Bounce, raw: bytes, at: datetime) -> tuple[str, str]:
    """Apply a bounce to its sent delivery: mark it bounced (hard) or note a temporary one.
    Returns the state and the note for the inbound message: "processed" when applied,
    "quarantined" (kept for a human, nothing changed) when it matches no sent delivery."""
    status = _STATUS.search(raw)
    code = status.group(1).decode() if status else ""
    hard = code.startswith("5") or (not code and _FAILED.search(raw) is not None)
    if bounce.delivery_id is None:
        return _unmatched(bounce, bounce.problem)
    with write_transaction():
        delivery = Delivery.get_or_none(Delivery.id == bounce.delivery_id)
        if delivery is None:
            return _unmatched(bounce, f"delivery {bounce.delivery_id} does not exist")
        if delivery.state not in _BOUNCEABLE:
            return _unmatched(bounce, f"delivery {delivery.id} is {delivery.state}, not sent")
        answer = f"bounce{': ' + code if code else ''} ({'permanent' if hard else 'temporary'})"
        changes = {"last_answer": answer}
        if hard:
            changes["state"] = "bounced"
        Delivery.update(**changes).where(Delivery.id == delivery.id).execute()
        audit.record(
            None,
            "delivery.bounce",
            at,
            target=delivery.recipient,
            details={"delivery": delivery.id, "status": code, "hard": hard},
        )
    return "processed", f"{'hard' if hard else 'soft'} bounce of delivery {delivery.id}"


def _unmatched(bounce: Bounce, problem: str) -> tuple[str, str]:
    log.warning("unmatched bounce to %s: %s; kept, not applied", bounce.address, problem)
    return "quarantined", f"unmatched bounce to {bounce.address}: {problem}; not applied"


def repeatedly_bouncing():
    """(user id, hard bounces) of recipients with HARD_BOUNCES_TO_FLAG or more. Only bounces of
    mail that was sent count (a delivery bounced before it was ever sent was cancelled by a
    forged bounce, before bounces were checked)."""
    count = peewee.fn.COUNT(Delivery.id)
    return (
        Delivery.select(Delivery.user, count.alias("bounces"))
        .where(
            Delivery.state == "bounced",
            Delivery.sent_at.is_null(False),
            Delivery.user.is_null(False),
        )
        .group_by(Delivery.user)
        .having(count >= HARD_BOUNCES_TO_FLAG)
    )
