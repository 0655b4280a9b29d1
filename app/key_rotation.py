"""Telling the registrants that the service key changed (docs/keys.md, 2.8): one short signed
mail to each approved, subscribed registrant, queued once per (old, new) pair.

Nothing in it is secret (two fingerprints and where to fetch a public key), so it is signed by
the current service key, which must be the new one, and not encrypted.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime

from app import alerts, audit, mailtext
from app.db import write_transaction
from app.errors import OperatorError, Refused
from app.models import AuditEvent, Delivery

ACTION = "service-key.rotation-announced"
KIND = "key-rotation"
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


@dataclass(frozen=True)
class Announcement:
    old: str
    new: str
    registrants: int  # queued, or that would be queued (dry run)
    dry_run: bool = False
    already_at: datetime | None = None  # when this pair was announced before
    certified: bool = True

    def line(self) -> str:
        pair = f"{self.old} -> {self.new}"
        if self.already_at is not None:
            return f"already announced {pair} on {self.already_at:%Y-%m-%d %H:%M} UTC: none queued"
        told = f"{self.registrants} registrant{'' if self.registrants == 1 else 's'}"
        note = "" if self.certified else " (the new key carries no certification by the old)"
        if self.dry_run:
            return f"would tell {told} about {pair}{note}"
        return f"queued the key-rotation notice to {told}: {pair}{note}"


def fingerprint(text: str, option: str) -> str:
    """A fingerprint as typed (spaces, any case) in the form gpg lists it."""
    value = "".join(text.split()).upper()
    if not _FINGERPRINT.fullmatch(value):
        raise OperatorError(f"{option} {text!r} is not a key fingerprint (40 or 64 hex digits)")
    return value


def announced_at(old: str, new: str) -> datetime | None:
    for event in AuditEvent.select().where(AuditEvent.action == ACTION, AuditEvent.target == new):
        if json.loads(event.details or "{}").get("old") == old:
            return event.at
    return None


def announce(
    old: str,
    new: str,
    service_key: str | None,
    certified: bool,
    by_label: str,
    at: datetime,
    dry_run: bool = False,
) -> Announcement:
    """Queue the notice to every approved, subscribed registrant, in one transaction, unless
    this pair was announced already. `service_key` is the current service key's fingerprint
    (it signs the notice, so it must be `new`); `certified`: whether the new key carries a
    certification by the old one (the notice says so only then)."""
    old, new = fingerprint(old, "--old"), fingerprint(new, "--new")
    if old == new:
        raise OperatorError("--old and --new are the same key")
    if service_key is None:
        raise OperatorError("there is no service key yet: run `forewarn init`")
    if service_key != new:
        raise Refused(
            f"the service key is {service_key}, not --new {new}: import the new key first "
            "(docs/keys.md, 2.5), so that what the notice points to serves it"
        )
    with write_transaction():
        already = announced_at(old, new)
        if already is not None:
            return Announcement(old, new, 0, dry_run, already, certified)
        recipients = list(alerts.recipients())
        if dry_run:
            return Announcement(old, new, len(recipients), True, certified=certified)
        for registrant in recipients:
            Delivery.create(
                kind=KIND,
                user=registrant.user,
                recipient=registrant.user.email,
                payload=json.dumps(
                    {"registrant": registrant.id, "old": old, "new": new, "certified": certified},
                    sort_keys=True,
                ),
                next_attempt_at=at,
                created_at=at,
            )
        audit.record(
            None,
            ACTION,
            at,
            target=new,
            details={"old": old, "new": new, "registrants": len(recipients)},
            actor_label=by_label,
        )
    return Announcement(old, new, len(recipients), certified=certified)


def mail_text(delivery: Delivery, payload: dict, common: dict, settings, at: datetime):
    """(subject, outer subject, body, None): signed by the new key, not encrypted."""
    body = mailtext.render(
        "key-rotation",
        old=payload["old"],
        new=payload["new"],
        certified=payload["certified"],
        project=settings.product or "project",
        base_url=settings.base_url,
        security_address=settings.security_address,
        **common,
    )
    subject = "Update our OpenPGP key: the security team's key has changed"
    return subject, subject, body, None
