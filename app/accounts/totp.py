"""Time-based one-time passwords (RFC 6238, SHA-1, 6 digits, 30 s) for sign-in, through pyotp;
and enrolment: a new secret is saved only once the person proves their app shows its codes."""

from datetime import datetime

import pyotp

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import User

STEP = 30
DIGITS = 6
ISSUER = "Forewarn"
DRIFT_STEPS = 1  # the step before and after are accepted too: phones' clocks drift


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP)


def _instant(at: datetime) -> datetime:
    # pyotp reads a naive datetime as local time; ours are always aware UTC (app.core.clock).
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}; use clock.now()")
    return at


def new_secret() -> str:
    """160 random bits (RFC 4226's recommended length) in base32, 32 characters."""
    return pyotp.random_base32()


def code_at(secret: str, at: datetime) -> str:
    return _totp(secret).at(_instant(at))


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose code this is (this one, or one step either side), or None.

    The caller stores the step to refuse a second use of the same code (app.accounts.team)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    try:
        return _totp(secret).verify_and_get_timecode(
            code, for_time=_instant(at), valid_window=DRIFT_STEPS
        )
    except (pyotp.OTPVerificationError, ValueError):  # ValueError: a step before 1970
        return None


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads from a QR code."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def confirm_enrolment(user: User, secret: str, code: str, at: datetime) -> None:
    """Save `secret` as the account's authenticator once `code` shows the app has it.

    Refused (nothing saved) when the code does not match. The step of the confirming code
    counts as used, so the same code cannot sign in afterwards."""
    step = matching_step(secret, code, at)
    if step is None:
        raise Refused(
            "that code does not match: check that your app added the new entry, then enter "
            "the code it shows now"
        )
    with write_transaction():
        replaced = User.select(User.totp_secret).where(User.id == user.id).scalar() is not None
        User.update(totp_secret=secret, totp_last_step=step).where(User.id == user.id).execute()
        audit.record(
            user,
            "account.totp_enrol",
            at,
            target=user.email,
            details={"replaced": replaced, "via": "web"},
        )
    user.totp_secret = secret
    user.totp_last_step = step
