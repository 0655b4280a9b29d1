"""Time-based one-time passwords (RFC 6238, SHA-1, 6 digits, 30 s) for team and admin logins."""

import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote

STEP = 30
DIGITS = 6


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def code_at(secret: str, at: datetime) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int(at.timestamp()) // STEP
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def verify(secret: str, code: str, at: datetime) -> bool:
    """Accept the code of this step and the one before or after (clock drift)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return False
    return any(
        hmac.compare_digest(
            code_at(secret, datetime.fromtimestamp(at.timestamp() + d * STEP)), code
        )
        for d in (-1, 0, 1)
    )


def provisioning_uri(secret: str, account: str, issuer: str = "Forewarn") -> str:
    return (
        f"otpauth://totp/{quote(issuer)}:{quote(account)}"
        f"?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP}"
    )
