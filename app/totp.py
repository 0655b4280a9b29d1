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
    return _code_for_step(secret, int(at.timestamp()) // STEP)


def _code_for_step(secret: str, step: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose code this is: this step or the one before or after (clock drift)."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    now_step = int(at.timestamp()) // STEP
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(_code_for_step(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str = "Forewarn") -> str:
    return (
        f"otpauth://totp/{quote(issuer)}:{quote(account)}"
        f"?secret={secret}&issuer={quote(issuer)}&digits={DIGITS}&period={STEP}"
    )
