"""Telling people that the service key changed: after a planned rotation (docs/keys.md, 2.8)
the approved, subscribed registrants; after a compromise (3.6) also the reporters of open
vulnerabilities, with the old key's revocation attached. One short mail each, queued once per
(old, new) pair.

Nothing in them is secret (fingerprints, a public key, tracking ids), so they are signed by the
current service key, which must be the new one, and not encrypted.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from peewee import fn

from app.core import audit, timefmt
from app.core.db import write_transaction
from app.core.errors import OperatorError, Refused
from app.models import Vulnerability
from app.outbox import deliveries
from app.registry import alerts
from keys import inspect, packets
from keys.errors import CertificateError

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
            return f"already announced {pair} on {timefmt.minute(self.already_at)}: none queued"
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


def _pair(old: str, new: str, service_key: str | None) -> tuple[str, str]:
    """(old, new) as gpg lists them; refused unless the service key (which signs) is new."""
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
    return old, new


def announced_at(old: str, new: str, action: str = ACTION) -> datetime | None:
    event = audit.already(action, new, old=old)
    return event.at if event is not None else None


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
    old, new = _pair(old, new, service_key)
    with write_transaction():
        already = announced_at(old, new)
        if already is not None:
            return Announcement(old, new, 0, dry_run, already, certified)
        recipients = list(alerts.recipients())
        if dry_run:
            return Announcement(old, new, len(recipients), True, certified=certified)
        for registrant in recipients:
            deliveries.queue(
                KIND,
                registrant.user.email,
                at,
                user=registrant.user,
                payload={
                    "registrant": registrant.id,
                    "old": old,
                    "new": new,
                    "certified": certified,
                },
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


# -- after a compromise (docs/keys.md, 3.6) ----------------------------------------------------

COMPROMISE_ACTION = "service-key.compromise-announced"
# Registrant mail (VERP, one-click unsubscribe: the payload names the registrant) and reporter
# mail (no list headers: a reporter never subscribed to anything) are told apart by kind,
# because the outbox decides those headers by kind alone.
COMPROMISE_KIND = "key-compromise"
COMPROMISE_REPORTER_KIND = "key-compromise-reporter"
CLOSED = ("published", "rejected")  # a reporter of any other vulnerability is still in touch
_MAKE_REVOCATION = (
    "make it as docs/keys.md 3.2 says: gpg --homedir OLDHOME --import the .rev file, then "
    "gpg --homedir OLDHOME --export --armor {old} > old-revoked.asc"
)


@dataclass(frozen=True)
class CompromiseAnnouncement:
    old: str
    new: str
    registrants: int  # queued, or that would be queued (dry run)
    reporters: int
    since: datetime
    dry_run: bool = False
    already_at: datetime | None = None

    def line(self) -> str:
        pair = f"{self.old} -> {self.new}"
        if self.already_at is not None:
            return (
                f"already announced the compromise {pair} on "
                f"{timefmt.minute(self.already_at)}: none queued"
            )
        told = (
            f"{self.registrants} registrant{'' if self.registrants == 1 else 's'} and "
            f"{self.reporters} reporter{'' if self.reporters == 1 else 's'}"
        )
        if self.dry_run:
            return f"would tell {told} about the compromise {pair}"
        since = timefmt.minute(self.since)
        return f"queued the key-compromise notice to {told}: {pair}, untrusted since {since}"


def open_reporters() -> dict[str, list[str]]:
    """Each reporter of a vulnerability not yet published or rejected, once (addresses compared
    without case, spelled as first reported), with the tracking ids of those vulnerabilities."""
    reporters: dict[str, tuple[str, list[str]]] = {}
    query = (
        Vulnerability.select(Vulnerability.reporter_email, Vulnerability.tracking_id)
        .where(Vulnerability.status.not_in(CLOSED), fn.TRIM(Vulnerability.reporter_email) != "")
        .order_by(Vulnerability.id)
    )
    for address, tracking_id in query.tuples():
        address = address.strip()
        reporters.setdefault(address.lower(), (address, []))[1].append(tracking_id)
    return dict(reporters.values())


def checked_revocation(data: bytes, old: str, name: str) -> str:
    """The revocation file as given (ASCII armor, attached unchanged), once it is the public key
    `old` carrying a revocation; refused otherwise, saying how to make it."""
    try:
        if not data.isascii() or not packets.BEGIN.search(data):
            raise CertificateError("it is not an ASCII-armored OpenPGP public key")
        inspect.require_revoked(data, old)
    except CertificateError as exc:
        raise Refused(f"--revocation {name}: {exc}; {_MAKE_REVOCATION.format(old=old)}") from None
    return data.decode("ascii")


def announce_compromise(
    old: str,
    new: str,
    service_key: str | None,
    revocation: bytes,
    revocation_name: str,
    since: datetime | None,
    by_label: str,
    at: datetime,
    dry_run: bool = False,
) -> CompromiseAnnouncement:
    """Queue, in one transaction, the compromise notice with the old key's revocation attached
    to every approved, subscribed registrant and to each reporter of an open vulnerability,
    unless this pair was announced already. Mail signed by the old key is not to be trusted
    from `since` (default: `at`) on."""
    old, new = _pair(old, new, service_key)
    since = since or at
    if since > at:
        raise Refused(
            f"--since {timefmt.minute(since)} is in the future: give when the "
            "old key was exposed, or leave it out (now)"
        )
    armored = checked_revocation(revocation, old, revocation_name)
    with write_transaction():
        already = announced_at(old, new, COMPROMISE_ACTION)
        if already is not None:
            return CompromiseAnnouncement(old, new, 0, 0, since, dry_run, already)
        registrants = list(alerts.recipients())
        reporters = open_reporters()
        if dry_run:
            return CompromiseAnnouncement(old, new, len(registrants), len(reporters), since, True)
        common = {"old": old, "new": new, "since": since.isoformat(), "revocation": armored}
        for registrant in registrants:
            deliveries.queue(
                COMPROMISE_KIND,
                registrant.user.email,
                at,
                user=registrant.user,
                payload={"registrant": registrant.id, **common},
            )
        for address, reports in reporters.items():
            deliveries.queue(
                COMPROMISE_REPORTER_KIND, address, at, payload={"reports": reports, **common}
            )
        audit.record(
            None,
            COMPROMISE_ACTION,
            at,
            target=new,
            details={
                "old": old,
                "new": new,
                "since": since.isoformat(),
                "registrants": len(registrants),
                "reporters": len(reporters),
            },
            actor_label=by_label,
        )
    return CompromiseAnnouncement(old, new, len(registrants), len(reporters), since)
