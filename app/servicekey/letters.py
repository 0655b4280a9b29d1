"""What the desk writes about its own key: the warnings to admins before and after it expires,
and the notices after a planned rotation or a compromise. Nothing in them is secret (dates,
fingerprints, a public key, tracking ids): signed, never encrypted."""

from datetime import datetime, timedelta

from app.models import Delivery
from app.outbox import mailtext
from app.outbox.text import Composer, Text
from app.servicekey import expiry
from mail.compose import Attachment


def service_key_expiry(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """A warning to an admin: signed, except once the key has expired (it cannot sign then:
    see app.servicekey.expiry.unsigned)."""
    expires = datetime.fromisoformat(payload["expires"])
    if expiry.unsigned(payload):
        body = mailtext.render(
            "service-key-expired",
            expires=expires,
            fingerprint_service=payload["fingerprint"],
            base_url=settings.base_url,
            **common,
        )
        subject = "Forewarn: the service key has EXPIRED, signed mail is failing"
        return Text(subject, subject, body, None, unsigned=True)
    when = {"60 days": "in 60 days", "30 days": "in 30 days"}[payload["step"]]
    body = mailtext.render(
        "service-key-expiry",
        when=when,
        expires=expires,
        fingerprint_service=payload["fingerprint"],
        renew_by=expires - timedelta(days=7),
        base_url=settings.base_url,
        **common,
    )
    subject = f"Forewarn: the service key expires {when}"
    return Text(subject, subject, body, None)


def key_rotation(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To a registrant after a planned rotation: signed by the new key."""
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
    return Text(subject, subject, body, None)


def key_compromise(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """To a registrant or a reporter after a compromise: signed by the new key, with the old
    key's revocation inside the signed part."""
    old = payload["old"]
    body = mailtext.render(
        "key-rotation-compromise",
        old=old,
        new=payload["new"],
        since=datetime.fromisoformat(payload["since"]),
        reports=payload.get("reports", []),
        project=settings.product or "project",
        base_url=settings.base_url,
        security_address=settings.security_address,
        **common,
    )
    revocation = Attachment(
        f"revocation-{old}.asc", payload["revocation"].encode("ascii"), "application/pgp-keys"
    )
    subject = "Revoke our old OpenPGP key: the security team's key was compromised"
    return Text(subject, subject, body, None, (revocation,))


LETTERS: dict[str, Composer] = {
    "service-key-expiry": service_key_expiry,
    "key-rotation": key_rotation,
    "key-compromise": key_compromise,
    "key-compromise-reporter": key_compromise,
}
