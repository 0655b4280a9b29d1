"""Erasure on request: a registrant's or a reporter's personal data leaves the database.

What stays: the rows themselves (ids, states, dates, fingerprints, threading), so the history
of every vulnerability and decision still reads; and the audit log, which is append-only (a
database trigger refuses changes): events recorded before the erasure keep what they recorded
(for example a registrant's address as the target of "renewal.*" or "registry.*" events). The
erasure itself is recorded as a new event whose details hold counts and ids, never the data.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from peewee import fn

from app.accounts.team import new_session_token
from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import (
    Correspondence,
    Delivery,
    InboundMessage,
    PublicKey,
    Registrant,
    User,
    Vulnerability,
)
from app.privacy import retention
from app.reports import followup
from app.vulns import cases, duplicates

ERASED = "[erased]"
# Never the result of hash_password(): no password matches it.
UNUSABLE_PASSWORD = "!"  # noqa: S105


def erased_email(user_id: int) -> str:
    """The unique placeholder an erased account's address becomes (.invalid: RFC 2606)."""
    return f"erased-{user_id}@erased.invalid"


def _scrub_deliveries(address: str, replacement: str, at: datetime) -> int:
    """Deliveries to or about `address`: the address replaced, unsent ones ended."""
    address = address.lower()
    count = 0
    to_them = Delivery.select().where(fn.LOWER(Delivery.recipient) == address)
    about_them = Delivery.select().where(fn.LOWER(Delivery.payload).contains(address))
    seen = set()
    for delivery in [*to_them, *about_them]:
        if delivery.id in seen:
            continue
        seen.add(delivery.id)
        changes = {}
        if delivery.recipient.lower() == address:
            changes["recipient"] = replacement
            if delivery.state == "queued":
                changes.update(state="failed", last_answer="recipient erased", claimed_until=None)
        payload = json.loads(delivery.payload or "{}")
        if isinstance(payload, dict) and address in json.dumps(payload).lower():
            for key, value in payload.items():
                if isinstance(value, str) and address in value.lower():
                    payload[key] = replacement
            if "organisation" in payload:
                payload["organisation"] = ERASED
            changes["payload"] = json.dumps(payload, sort_keys=True)
        if changes:
            Delivery.update(**changes).where(Delivery.id == delivery.id).execute()
            count += 1
    return count


def _messages_from(address: str) -> list[int]:
    return [
        m.id
        for m in InboundMessage.select(InboundMessage.id).where(
            fn.LOWER(InboundMessage.envelope_from) == address.lower()
        )
    ]


def _erase_messages(ids: list[int]) -> int:
    """Raw bytes emptied and the envelope sender blanked."""
    purged = retention.purge_messages(ids)
    for start in range(0, len(ids), 500):
        InboundMessage.update(envelope_from="").where(
            InboundMessage.id.in_(ids[start : start + 500])
        ).execute()
    return purged


def _erase_keys(keys: list[int]) -> int:
    if not keys:
        return 0
    return (
        PublicKey.update(armored="", usable=False, owner=None)
        .where(PublicKey.id.in_(keys))
        .execute()
    )


@dataclass
class Erased:
    label: str
    counts: dict
    credits_to_edit: tuple[str, ...] = ()  # tracking ids whose credits text still names them

    def line(self) -> str:
        said = f"{self.label}: " + ", ".join(f"{n} {what}" for what, n in self.counts.items())
        if self.credits_to_edit:
            said += (
                f"; the credits of {', '.join(self.credits_to_edit)} still name them: "
                "edit them on the workspace page"
            )
        return said


def erase_registrant(registrant_id: int | str, actor_label: str, at: datetime) -> Erased:
    """Remove a registrant's personal data; the account can no longer sign in."""
    try:
        number = int(registrant_id)
    except (TypeError, ValueError):
        raise Refused(f"no registrant with id {registrant_id!r}") from None
    with write_transaction():
        registrant = Registrant.get_or_none(Registrant.id == number)
        if registrant is None:
            raise Refused(f"no registrant with id {number}")
        user = registrant.user
        placeholder = erased_email(user.id)
        if user.email == placeholder:
            raise Refused(f"registrant {number} was already erased")
        address = user.email
        keys = {k.id for k in PublicKey.select(PublicKey.id).where(PublicKey.owner == user.id)}
        if registrant.key_id is not None:
            keys.add(registrant.key_id)
        User.update(
            email=placeholder,
            password_hash=UNUSABLE_PASSWORD,
            totp_secret=None,
            totp_last_step=None,
            active=False,
            session_token=new_session_token(),
        ).where(User.id == user.id).execute()
        Registrant.update(
            organisation=ERASED,
            products="",
            package_urls="",
            website="",
            justification="",
            notes="",
            status="removed",
            unsubscribed=True,
            listed_publicly=False,
            updated_at=at,
        ).where(Registrant.id == registrant.id).execute()
        counts = {
            "keys": _erase_keys(sorted(keys)),
            "deliveries": _scrub_deliveries(address, placeholder, at),
            "messages": _erase_messages(_messages_from(address)),
        }
        audit.record(
            None,
            "registrant.erase",
            at,
            target=f"registrant:{registrant.id}",
            details={"registrant": registrant.id, "user": user.id, **counts},
            actor_label=actor_label,
        )
    return Erased(f"erased registrant {registrant.id}", counts)


def erase_reporter(address: str, actor_label: str, at: datetime) -> Erased:
    """Remove a reporter's address, name, key, messages and correspondence from every
    vulnerability they reported."""
    address = (address or "").strip().lower()
    if "@" not in address:
        raise Refused(f"{address!r} is not an e-mail address")
    with write_transaction():
        vulns = list(
            Vulnerability.select().where(fn.LOWER(Vulnerability.reporter_email) == address)
        )
        messages = _messages_from(address)
        incoming = list(  # in their threads, and what they wrote into others' threads
            Correspondence.select(
                Correspondence.id, Correspondence.message, Correspondence.offered_key
            ).where(
                Correspondence.direction == "in",
                Correspondence.vulnerability.in_([v.id for v in vulns])
                | (fn.LOWER(Correspondence.sender) == address),
            )
        )
        if not vulns and not messages and not incoming:
            raise Refused("no vulnerability or message from that address")
        keys = [v.reporter_key_id for v in vulns if v.reporter_key_id is not None]
        keys += [c.offered_key_id for c in incoming if c.offered_key_id is not None]
        # The team wrote the credits by hand: a person must judge them, so they are named;
        # also those of the vulnerabilities their reports duplicate (credited there by name,
        # or by their address's local part: app/vulns/duplicates.py).
        named = [(v, v.reporter_name) for v in vulns]
        named += [(v.duplicate_of, duplicates.credit_name(v)) for v in vulns if v.duplicate_of_id]
        credits_to_edit = tuple(
            dict.fromkeys(v.tracking_id for v, name in named if _names(v.credits, name, address))
        )
        texts = retention.purge_correspondence([c.id for c in incoming], at)
        Correspondence.update(sender="").where(
            Correspondence.id.in_([c.id for c in incoming])
        ).execute()
        messages = sorted(
            set(messages) | {c.message_id for c in incoming if c.message_id is not None}
        )
        for case in dict.fromkeys(cases.case_id(v) for v in vulns):
            followup.revoke(case, at)  # their way back in stops working with their data
        if vulns:
            Vulnerability.update(
                reporter_email="",
                reporter_name="",
                reporter_key=None,
                credit_reporter=False,
                updated_at=at,
            ).where(Vulnerability.id.in_([v.id for v in vulns])).execute()
        counts = {
            "vulnerabilities": len(vulns),
            "correspondence": texts,
            "messages": _erase_messages(messages),
            "keys": _erase_keys(keys),
            "deliveries": _scrub_deliveries(address, ERASED, at),
        }
        audit.record(None, "reporter.erase", at, target="", details=counts, actor_label=actor_label)
    return Erased("erased reporter", counts, credits_to_edit)


def _names(text: str, name: str, address: str) -> bool:
    """Whether free text mentions the person by name or address."""
    text = (text or "").lower()
    return any(part and part in text for part in ((name or "").strip().lower(), address))
