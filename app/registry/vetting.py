"""The vulnerability registry: product makers sign up, prove they hold their key, are vetted.

unverified -> pending_review -> approved | rejected; approved -> suspended -> approved.
The key a registrant is alerted with is the one they proved they can decrypt with: the
verification link travels encrypted to it. Every decision is audited.
"""

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import peewee

from app.accounts.team import MIN_PASSWORD_LENGTH, new_session_token
from app.core import audit, oneline, passwords
from app.core.db import write_transaction
from app.core.errors import NotFound, Refused
from app.models import Delivery, PublicKey, Registrant, User
from app.outbox import deliveries
from app.registry import proof, purls
from keys.inspect import Certificate, CertificateError, inspect_registration_key

POLICY_VERSION = "2026-11"  # the embargo policy registrants agree to
TRANSITIONS = {
    "unverified": {"removed"},  # otherwise only the verification link moves it on
    "pending_review": {"approved", "rejected", "removed"},
    "approved": {"suspended", "removed"},
    "suspended": {"approved", "removed"},
    "rejected": {"removed"},
    "removed": set(),  # the account is disabled; the rows stay for the audit trail
}
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_ROLE_LOCALS = ("security", "psirt", "secalert", "cert", "product-security", "vulnerability")


@dataclass(frozen=True)
class SignUp:
    email: str
    password: str
    organisation: str
    products: str
    website: str
    justification: str
    key: bytes
    agrees_to_policy: bool
    listed_publicly: bool = False
    package_urls: str = ""  # space- or line-separated purls (app.registry.targeting)


def is_role_address(email: str) -> bool:
    """security@, psirt@ and the like: encouraged over a personal address."""
    return email.split("@", 1)[0].lower().split("+")[0] in _ROLE_LOCALS


def _inspect(key: bytes, email: str, at: datetime, allow_other_uid: bool = False) -> Certificate:
    try:
        certificate = inspect_registration_key(key, email, at, allow_other_uid=allow_other_uid)
    except CertificateError as exc:
        raise Refused(f"The key was not accepted: {exc}") from None
    holder = (
        Registrant.select()
        .join(User)
        .where(Registrant.pinned_fingerprint == certificate.fingerprint, User.email != email)
        .first()
    )
    if holder is not None:
        raise Refused(
            f"The key {certificate.fingerprint} is already registered for another account; "
            "each registrant needs a key of their own"
        )
    return certificate


def _checked_address(form: SignUp) -> str:
    """The sign-up's address, once every field but the key passes the rules (else Refused)."""
    email = form.email.strip().lower()
    if not _EMAIL.match(email):
        raise Refused(f"{form.email!r} is not an email address")
    if len(form.password) < MIN_PASSWORD_LENGTH:
        raise Refused(f"The password must have at least {MIN_PASSWORD_LENGTH} characters")
    # The organisation's name is shown on one line (lists, the members page): app.core.oneline.
    form = replace(
        form,
        organisation=oneline.checked(form.organisation, "organisation"),
        website=oneline.checked(form.website, "website"),
    )
    if not form.organisation:
        raise Refused("Name your organisation")
    if not form.justification.strip():
        raise Refused(
            "Say why you qualify: the products you build on the project and who uses them"
        )
    if not form.agrees_to_policy:
        raise Refused("Registrants must agree to the embargo policy")
    purls.checked_package_urls(form.package_urls)
    return email


def sign_up(form: SignUp, at: datetime) -> Registrant:
    """A new registrant, unverified until they open the link sent encrypted to their key.

    Refused when the address has an account: for people who may know that (admins, tests).
    The public form uses apply(), whose answer does not tell."""
    email = _checked_address(form)
    if User.select().where(User.email == email).exists():
        raise Refused(f"An account for {email} already exists: sign in, or reset your password")
    certificate = _inspect(form.key, email, at)
    try:
        return _create_registrant(form, email, certificate, at)
    except peewee.IntegrityError:  # the same address signed up at the same moment
        raise Refused(
            f"An account for {email} already exists: sign in, or reset your password"
        ) from None


@dataclass(frozen=True)
class Application:
    """What the applicant is told: the same whether or not their address had an account."""

    email: str
    fingerprint: str


# An account's owner hears of sign-ups with their address at most this often.
ATTEMPT_NOTICE_EVERY = timedelta(hours=24)


def apply(form: SignUp, at: datetime) -> Application:
    """The public sign-up. For an address that has an account nothing is created; its owner
    is mailed that someone tried (the account's own key, never the one given here), and the
    answer, and the work done (the key inspected, the password hashed), are those of a new
    sign-up: the form does not tell which addresses have accounts."""
    email = _checked_address(form)
    certificate = _inspect(form.key, email, at)
    answer = Application(email, certificate.fingerprint)
    if not User.select().where(User.email == email).exists():
        try:
            _create_registrant(form, email, certificate, at)
            return answer
        except peewee.IntegrityError:  # the same address signed up at the same moment
            pass
    else:
        passwords.hash_password(form.password)  # what creating the account would have cost
    _tell_owner_of_attempt(email, at)
    return answer


def _tell_owner_of_attempt(email: str, at: datetime) -> None:
    with write_transaction():
        owner = User.get_or_none(User.email == email, User.active == True)  # noqa: E712
        if owner is None:
            return
        audit.record(None, "registry.sign_up_existing", at, target=email, actor_label="anonymous")
        recent = Delivery.select().where(
            Delivery.kind == "sign-up-attempt",
            Delivery.user == owner,
            Delivery.created_at > at - ATTEMPT_NOTICE_EVERY,
        )
        if recent.exists():
            return
        deliveries.queue(
            "sign-up-attempt", owner.email, at, user=owner, payload={"at": at.isoformat()}
        )


def _create_registrant(form: SignUp, email: str, certificate: Certificate, at) -> Registrant:
    with write_transaction():
        user = User.create(
            email=email,
            password_hash=passwords.hash_password(form.password),
            role="registrant",
            session_token=new_session_token(),
            created_at=at,
        )
        key = _store_key(user, certificate, at)
        registrant = Registrant.create(
            user=user,
            organisation=form.organisation.strip()[:250],
            products=form.products.strip(),
            package_urls=purls.checked_package_urls(form.package_urls),
            website=form.website.strip()[:250],
            justification=form.justification.strip(),
            policy_version=POLICY_VERSION,
            policy_agreed_at=at,
            listed_publicly=form.listed_publicly,
            created_at=at,
            updated_at=at,
        )
        proof.queue_proof(registrant, key, at)
        audit.record(
            user,
            "registry.sign_up",
            at,
            target=email,
            details={
                "organisation": registrant.organisation,
                "fingerprint": certificate.fingerprint,
            },
        )
    return registrant


def _store_key(user: User, certificate: Certificate, at: datetime) -> PublicKey:
    """The uploaded certificate, kept unusable until it is proven (or pinned by an admin)."""
    return PublicKey.create(
        fingerprint=certificate.fingerprint,
        armored=certificate.armored,
        owner=user,
        expires=certificate.encryption_expires,
        usable=False,
        created_at=at,
    )


def replace_key(registrant: Registrant, key: bytes, at: datetime) -> PublicKey:
    """A new key is inspected and proven like the first; the old one stays pinned until then."""
    certificate = _inspect(key, registrant.user.email, at)
    with write_transaction():
        stored = _store_key(registrant.user, certificate, at)
        proof.queue_proof(registrant, stored, at)
        audit.record(
            registrant.user,
            "registry.key_upload",
            at,
            target=registrant.user.email,
            details={"fingerprint": certificate.fingerprint},
        )
    return stored


# -- vetting ----------------------------------------------------------------------------------


def get(registrant_id: int | str) -> Registrant:
    found = Registrant.get_or_none(Registrant.id == int(registrant_id))
    if found is None:
        raise NotFound(f"no registrant {registrant_id}; `forewarn registrants list` shows them")
    return found


def decide(
    registrant: Registrant,
    status: str,
    by: User | None,
    by_label: str,
    at: datetime,
    reason: str = "",
) -> Registrant:
    """approve, reject (reason mailed), suspend, reinstate (= approve again)."""
    if status not in TRANSITIONS[registrant.status]:
        allowed = ", ".join(sorted(TRANSITIONS[registrant.status])) or "nothing (for now)"
        raise Refused(f"{registrant.user.email} is {registrant.status}; it can become: {allowed}")
    if status == "approved" and registrant.key_id is None:
        raise Refused(f"{registrant.user.email} has no proven key yet; alerts could not reach them")
    reason = reason.strip()
    if status == "rejected" and not reason:
        raise Refused("Rejecting needs a reason; the applicant is told it")
    with write_transaction():
        Registrant.update(
            status=status,
            reviewer=by,
            updated_at=at,
            last_confirmed_at=at if status == "approved" else registrant.last_confirmed_at,
        ).where(Registrant.id == registrant.id).execute()
        if status == "removed":  # no sign-in, no alerts, no key in use; history kept
            User.update(active=False, session_token=new_session_token()).where(
                User.id == registrant.user_id
            ).execute()
            Registrant.update(unsubscribed=True).where(Registrant.id == registrant.id).execute()
            PublicKey.update(usable=False).where(PublicKey.owner == registrant.user_id).execute()
        if status == "rejected":
            deliveries.queue(
                "registrant-rejected",
                registrant.user.email,
                at,
                user=registrant.user,
                payload={"reason": reason},
            )
        audit.record(
            by,
            f"registry.{status}",
            at,
            target=registrant.user.email,
            details={"before": registrant.status, "after": status, "reason": reason},
            actor_label=by_label,
        )
    return Registrant.get_by_id(registrant.id)


def add_by_admin(
    email: str,
    organisation: str,
    key: bytes,
    by: User | None,
    by_label: str,
    at: datetime,
    approve: bool = False,
    products: str = "",
    allow_other_uid: bool = False,
    package_urls: str = "",
) -> Registrant:
    """A registrant added as an admin decides: the key is inspected and pinned without the
    proof mail (the decision is audited). They set a password through a reset link."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise Refused(f"{email!r} is not an email address")
    organisation = oneline.checked(organisation, "organisation")
    if not organisation:
        raise Refused("Name the organisation")
    if User.select().where(User.email == email).exists():
        raise Refused(f"an account for {email} already exists")
    declared = purls.checked_package_urls(package_urls)
    certificate = _inspect(key, email, at, allow_other_uid=allow_other_uid)
    with write_transaction():
        user = User.create(
            email=email,
            password_hash=f"!unset:{secrets.token_hex(8)}",
            role="registrant",
            session_token=new_session_token(),
            created_at=at,
        )
        stored = _store_key(user, certificate, at)
        PublicKey.update(usable=True).where(PublicKey.id == stored.id).execute()
        registrant = Registrant.create(
            user=user,
            organisation=organisation.strip()[:250],
            products=products.strip(),
            package_urls=declared,
            status="approved" if approve else "pending_review",
            reviewer=by,
            key=stored,
            pinned_fingerprint=certificate.fingerprint,
            encryption_expires=certificate.encryption_expires,
            last_confirmed_at=at if approve else None,
            created_at=at,
            updated_at=at,
        )
        audit.record(
            by,
            "registry.admin_add",
            at,
            target=email,
            actor_label=by_label,
            details={
                "fingerprint": certificate.fingerprint,
                "approved": approve,
                "without_proof": True,
                "notes": list(certificate.notes),
            },
        )
    return registrant


def summary(registrant: Registrant) -> dict:
    """The keys of `forewarn registrants list --json`: scripts rely on them, so a key is never
    renamed without keeping the old one as an alias."""
    expires = registrant.encryption_expires
    return {
        "id": registrant.id,
        "email": registrant.user.email,
        "org": registrant.organisation,
        "status": registrant.status,
        "fingerprint": registrant.pinned_fingerprint,
        "key_expires": expires.isoformat() if expires else None,
    }


def public_members():
    """Organisations that chose to be listed: names only."""
    return (
        Registrant.select(Registrant.organisation)
        .where(Registrant.status == "approved", Registrant.listed_publicly == True)  # noqa: E712
        .order_by(Registrant.organisation)
        .distinct()
    )
