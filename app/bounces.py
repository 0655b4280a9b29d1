"""Bounces of alerts come back to security-bounces+<delivery id>@... (VERP): they are matched
to their delivery from the address alone (never decrypted), and repeated hard bounces flag
the registrant for admins."""

import re
from datetime import datetime

import peewee

from app import audit
from app.db import write_transaction
from app.models import Delivery

HARD_BOUNCES_TO_FLAG = 3
_STATUS = re.compile(rb"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.IGNORECASE | re.MULTILINE)
_FAILED = re.compile(rb"^Action:\s*failed", re.IGNORECASE | re.MULTILINE)


def delivery_of(recipients: list[str], security_address: str) -> int | None:
    """The delivery id a bounce address names, if the message came to one."""
    local, _, domain = security_address.rpartition("@")
    pattern = re.compile(
        rf"^<?{re.escape(local)}-bounces\+(\d+)@{re.escape(domain)}>?$", re.IGNORECASE
    )
    for address in recipients:
        found = pattern.match(address.strip())
        if found:
            return int(found.group(1))
    return None


def record(delivery_id: int, raw: bytes, at: datetime) -> str:
    """Mark the delivery bounced (hard) or note a temporary one; returns which."""
    status = _STATUS.search(raw)
    code = status.group(1).decode() if status else ""
    hard = code.startswith("5") or (not code and _FAILED.search(raw) is not None)
    with write_transaction():
        delivery = Delivery.get_or_none(Delivery.id == delivery_id)
        if delivery is None:
            return "unknown"
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
    return "hard" if hard else "soft"


def repeatedly_bouncing():
    """(user id, hard bounces) of recipients with HARD_BOUNCES_TO_FLAG or more."""
    count = peewee.fn.COUNT(Delivery.id)
    return (
        Delivery.select(Delivery.user, count.alias("bounces"))
        .where(Delivery.state == "bounced", Delivery.user.is_null(False))
        .group_by(Delivery.user)
        .having(count >= HARD_BOUNCES_TO_FLAG)
    )
