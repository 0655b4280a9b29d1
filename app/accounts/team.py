"""Accounts of the security team and admins: creation and sign-in."""

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from app.accounts import totp
from app.core import audit, passwords
from app.core.errors import Refused
from app.models import PublicKey, User, database
from keys.inspect import inspect_certificate

TEAM_ROLES = ("admin", "team")
MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")


@dataclass(frozen=True)
class NewAccount:
    user: User
    totp_secret: str | None


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def create_team_account(
    email: str, password: str, role: str, at: datetime, by: str, with_totp: bool = False
) -> NewAccount:
    """A security-team or admin account; `by` names who created it, for the audit log."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise Refused(f"{email!r} is not an email address")
    if role not in TEAM_ROLES:
        raise Refused(f"role must be one of {', '.join(TEAM_ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Refused(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    secret = totp.new_secret() if with_totp else None
    with database.atomic():
        if User.select().where(User.email == email).exists():
            raise Refused(f"an account for {email} already exists")
        user = User.create(
            email=email,
            password_hash=passwords.hash_password(password),
            role=role,
            totp_secret=secret,
            session_token=new_session_token(),
            created_at=at,
        )
        audit.record(
            None, "account.create", at, target=email, details={"role": role}, actor_label=by
        )
    return NewAccount(user, secret)


class LoginFailed(Refused):
    pass


class SecondFactorNeeded(Refused):
    pass


class WrongCode(LoginFailed):
    """The password was right, the authenticator code was not (or was used before)."""


def authenticate(
    email: str, password: str, code: str, at: datetime, require_2fa: bool, source: str = ""
) -> User:
    """The user these credentials belong to, or LoginFailed with a message fit to show.

    Every sign-in and every failed one is audited (source: the client's address)."""
    try:
        user = _check_credentials(email, password, code, at, require_2fa)
    except SecondFactorNeeded:
        raise  # the password was right; the person is asked for the code next
    except LoginFailed as exc:
        audit.record(
            None,
            "auth.login_failed",
            at,
            target=email.strip().lower()[:250],
            details={"source": source, "why": str(exc)},
            actor_label="anonymous",
        )
        raise
    audit.record(user, "auth.login", at, target=user.email, details={"source": source})
    return user


def _check_credentials(email, password, code, at, require_2fa) -> User:
    user = User.get_or_none(User.email == email.strip().lower())
    stored = user.password_hash if user is not None else passwords.DUMMY_HASH
    if not passwords.check_password(stored, password) or user is None or not user.active:
        raise LoginFailed("Wrong email or password, or the account is disabled.")
    if user.totp_secret:
        if not code:
            raise SecondFactorNeeded("Enter the 6-digit code from your authenticator app.")
        step = totp.matching_step(user.totp_secret, code, at)
        # Each code works once: a step at or before the last accepted one is a replay.
        used = User.update(totp_last_step=step).where(
            User.id == user.id,
            (User.totp_last_step.is_null()) | (User.totp_last_step < (step or 0)),
        )
        if step is None or used.execute() != 1:
            raise WrongCode("That authenticator code is wrong or already used; enter the next one.")
    elif require_2fa and user.role in TEAM_ROLES:
        raise LoginFailed(
            "Two-factor authentication is required for this account: "
            f"ask an operator to run `forewarn admin totp {user.email}`."
        )
    User.update(last_login_at=at).where(User.id == user.id).execute()
    return user


def reauthenticate(user: User, password: str, at: datetime, why: str, source: str = "") -> None:
    """Refused unless password is the account's own: asked again before a change that would
    let whoever holds a session keep the account (an authenticator). Failures are audited."""
    current = User.get_or_none(User.id == user.id, User.active == True)  # noqa: E712
    stored = current.password_hash if current is not None else None
    if not passwords.check_password(stored, password) or current is None:
        audit.record(
            user,
            "auth.reauth_failed",
            at,
            target=user.email,
            details={"source": source, "for": why},
        )
        raise LoginFailed("That is not your password.")


def end_sessions(user: User) -> None:
    """Sign the account out everywhere: every session and remember-me cookie stops working."""
    User.update(session_token=new_session_token()).where(User.id == user.id).execute()


def set_openpgp_key(email: str, data: bytes, at: datetime, by: str) -> PublicKey:
    """The certificate that mail to this team member is encrypted to (replacing any before)."""
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None or user.role not in TEAM_ROLES:
        raise Refused(f"no security-team account for {email}")
    certificate = inspect_certificate(data, at)
    if not certificate.can_encrypt:
        raise Refused(
            f"the key {certificate.fingerprint} has no usable encryption subkey "
            "(expired, revoked or missing); export a current key and try again"
        )
    with database.atomic():
        PublicKey.update(usable=False).where(PublicKey.owner == user).execute()
        key = PublicKey.create(
            fingerprint=certificate.fingerprint,
            armored=certificate.armored,
            owner=user,
            expires=certificate.encryption_expires or certificate.expires,
            usable=True,
            created_at=at,
        )
        audit.record(
            None,
            "account.openpgp_key",
            at,
            target=user.email,
            details={"fingerprint": certificate.fingerprint},
            actor_label=by,
        )
    return key


def enrol_totp(email: str, at: datetime, by: str) -> str:
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise Refused(f"no account for {email}")
    secret = totp.new_secret()
    with database.atomic():
        User.update(totp_secret=secret, totp_last_step=None).where(User.id == user.id).execute()
        audit.record(None, "account.totp_enrol", at, target=user.email, actor_label=by)
    return secret
