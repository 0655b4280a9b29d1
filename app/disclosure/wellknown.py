"""What the site publishes under /.well-known/: security.txt (RFC 9116, with the CSAF provider's
metadata in a CSAF field, CSAF 2.0 section 7.1.8) and the Web Key Directory's hashed names
(draft-koch-openpgp-webkey-service, "direct method")."""

import hashlib
from datetime import UTC, datetime, time, timedelta

from app.core import timefmt
from app.core.config import Settings

# The embargo policy page (app/web/registry.py's registry.policy), named in security.txt, which
# is signed by the workers, outside any request.
POLICY_PATH = "/registry/policy"
SECURITY_TXT_DAYS = 180  # RFC 9116 advises an Expires less than a year ahead
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def zbase32(data: bytes) -> str:
    """z-base-32 (the WKD draft, section 3.1), without padding."""
    bits = int.from_bytes(data, "big")
    length = len(data) * 8
    chars = []
    for shift in range(length - 5, -5, -5):
        chunk = (bits >> shift) & 31 if shift >= 0 else (bits << -shift) & 31
        chars.append(_ZBASE32[chunk])
    return "".join(chars)


def wkd_hash(local_part: str) -> str:
    """The WKD name of an address's local part: z-base-32 of the SHA-1 of it, lowercased."""
    digest = hashlib.sha1(local_part.lower().encode("utf-8"))  # noqa: S324  (the draft's choice)
    return zbase32(digest.digest())


def wkd_names(settings: Settings) -> tuple[str, str]:
    """(hashed local part, domain) of the security address, whose key the directory serves."""
    local, _, domain = settings.security_address.rpartition("@")
    return wkd_hash(local), domain.lower()


def security_txt_expires(at: datetime) -> datetime:
    """SECURITY_TXT_DAYS ahead, at the start of that day (UTC): renewed with every day."""
    day = (at.astimezone(UTC) + timedelta(days=SECURITY_TXT_DAYS)).date()
    return datetime.combine(day, time(0), tzinfo=UTC)


def security_txt(settings: Settings, at: datetime, policy_path: str) -> str:
    """The unsigned fields; whoever holds the service key clear-signs them (app.servicekey.public).

    policy_path is the embargo policy page's path on the site (e.g. /registry/policy)."""
    base = settings.base_url.rstrip("/")
    expires = timefmt.zulu(security_txt_expires(at))
    return (
        f"# Report security vulnerabilities to {settings.security_address}, encrypted if you\n"
        "# can to the OpenPGP key under Encryption; you will get a tracking id in reply.\n"
        f"Contact: mailto:{settings.security_address}\n"
        f"Expires: {expires}\n"
        f"Encryption: {base}/key.asc\n"
        f"Policy: {base}{policy_path}\n"
        f"Canonical: {base}/.well-known/security.txt\n"
        f"CSAF: {base}/.well-known/csaf/provider-metadata.json\n"
        "Preferred-Languages: en\n"
    )
