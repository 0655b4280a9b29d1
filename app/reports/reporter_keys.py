"""The reporter's key: pinned only from the report itself when its user id is the sender's
address; a key in a later message is only offered, and the team confirms it."""

import logging

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Correspondence, PublicKey, User, Vulnerability
from app.vulns import casemap, cases
from keys.inspect import CertificateError, inspect_certificate
from mail.parse import ParsedMessage

log = logging.getLogger("forewarn.reports")


def remember(vulnerability: Vulnerability, parsed: ParsedMessage, at) -> None:
    """The report itself (the message that opened the case) pins the key it carries, if a
    user id of that key is the report's From address."""
    if parsed.reporter_certificate is None or vulnerability.reporter_key is not None:
        return
    certificate = _reporters_certificate(vulnerability, parsed, at)
    if certificate is None:
        return
    key = _stored_key(certificate, at)
    Vulnerability.update(reporter_key=key).where(Vulnerability.id == vulnerability.id).execute()
    vulnerability.reporter_key = key


def offered(vulnerability: Vulnerability, parsed: ParsedMessage, at) -> PublicKey | None:
    """A key a later message carries for the reporter's address: kept as offered, for the team
    to confirm (confirm_reporter_key); anyone can write a From line or attach a key."""
    if parsed.reporter_certificate is None or not vulnerability.reporter_email:
        return None
    certificate = _reporters_certificate(vulnerability, parsed, at)
    pinned = vulnerability.reporter_key
    if certificate is None:
        return None
    if pinned is not None and pinned.fingerprint == certificate.fingerprint:
        return None  # already the reporter's
    return _stored_key(certificate, at)


def _reporters_certificate(vulnerability: Vulnerability, parsed: ParsedMessage, at):
    """The message's key, if it is usable and a user id of it is the reporter's address."""
    try:
        certificate = inspect_certificate(parsed.reporter_certificate, at)
    except CertificateError as exc:
        log.info("a key sent about %s is unusable: %s", vulnerability.tracking_id, exc)
        return None
    if (vulnerability.reporter_email or "").strip().lower() not in certificate.addresses:
        log.info("a key sent about %s is not for the reporter's address", vulnerability.tracking_id)
        return None
    return certificate


def _stored_key(certificate, at) -> PublicKey:
    return PublicKey.create(
        fingerprint=certificate.fingerprint,
        armored=certificate.armored,
        expires=certificate.expires,
        usable=certificate.can_encrypt,
        created_at=at,
    )


def confirm_reporter_key(vulnerability: Vulnerability, entry_id: int, actor: User, at) -> PublicKey:
    """The team's decision: the key offered by thread entry `entry_id` becomes the reporter's
    key (replies, rejections and embargo changes are encrypted to it from now on), on every
    vulnerability of its case (one reporter); audited."""
    entry = Correspondence.get_or_none(
        Correspondence.id == entry_id,
        Correspondence.vulnerability == vulnerability,
        Correspondence.offered_key.is_null(False),
    )
    if entry is None:
        raise Refused(f"no message of {vulnerability.tracking_id} offers that key")
    key = entry.offered_key
    if not key.usable or (key.expires is not None and key.expires <= at):
        raise Refused(
            f"the key {key.fingerprint} cannot be used: ask the reporter for a current key"
        )
    with write_transaction():
        previous = vulnerability.reporter_key
        # The case has one reporter: every vulnerability of it replies to the same key.
        Vulnerability.update(reporter_key=key, updated_at=at).where(
            Vulnerability.id.in_(cases.member_ids(vulnerability))
        ).execute()
        audit.record(
            actor,
            "report.key-confirm",
            at,
            target=vulnerability.tracking_id,
            details={
                "correspondence": entry.id,
                "fingerprint": key.fingerprint,
                "previous": previous.fingerprint if previous is not None else None,
                "sender": entry.sender,
            },
        )
        unusable = previous is None or not previous.usable
        if unusable and casemap.last_mail(vulnerability) is not None:
            # The finding map went as a notice asking for this key: now it goes encrypted.
            casemap.tell_reporter(vulnerability, at)
    vulnerability.reporter_key = key
    return key
