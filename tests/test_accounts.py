"""Security-team accounts: creation rules, password hashes, sign-in, TOTP."""

import json

import pytest

from app.accounts import team, totp
from app.core import passwords
from app.core.errors import Refused
from app.models import AuditEvent, User
from tests.conftest import PASSWORD


def test_passwords_are_salted_slow_hashes():
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first != second  # salted
    assert first.startswith("scrypt$32768$")
    assert PASSWORD not in first
    assert passwords.check_password(first, PASSWORD)
    assert not passwords.check_password(first, PASSWORD + "!")
    assert not passwords.check_password("garbage", PASSWORD)


def test_creating_an_account_is_audited(db, clock):
    created = team.create_team_account(
        "Lead@Example.org ", PASSWORD, "team", clock.at, by="cli:root"
    )
    assert created.user.email == "lead@example.org"
    assert created.totp_secret is None
    event = AuditEvent.get(AuditEvent.action == "account.create")
    assert (event.actor_label, event.target, event.at) == ("cli:root", "lead@example.org", clock.at)
    assert json.loads(event.details) == {"role": "team"}


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("not-an-address", PASSWORD, "admin", "not an email address"),
        ("a@example.org", "short", "admin", "at least 12 characters"),
        ("a@example.org", PASSWORD, "registrant", "role must be one of"),
    ],
)
def test_bad_accounts_are_refused(db, clock, email, password, role, message):
    with pytest.raises(Refused, match=message):
        team.create_team_account(email, password, role, clock.at, by="t")
    assert User.select().count() == 0


def test_a_second_account_for_the_same_email_is_refused(db, clock, admin_user):
    with pytest.raises(Refused, match="already exists"):
        team.create_team_account(admin_user.email, PASSWORD, "team", clock.at, by="t")


def test_sign_in_checks_the_password_and_records_the_time(db, clock, admin_user):
    clock.move(minutes=5)
    user = team.authenticate("ADMIN@example.org", PASSWORD, "", clock.at, require_2fa=False)
    assert user.id == admin_user.id
    assert User.get_by_id(user.id).last_login_at == clock.at
    with pytest.raises(team.LoginFailed):
        team.authenticate(admin_user.email, "wrong password!", "", clock.at, False)


def test_unknown_email_and_wrong_password_fail_alike(db, clock, admin_user):
    with pytest.raises(team.LoginFailed) as unknown:
        team.authenticate("nobody@example.org", PASSWORD, "", clock.at, False)
    with pytest.raises(team.LoginFailed) as wrong:
        team.authenticate(admin_user.email, "wrong password!", "", clock.at, False)
    assert str(unknown.value) == str(wrong.value)


def test_disabled_accounts_cannot_sign_in(db, clock, admin_user):
    User.update(active=False).where(User.id == admin_user.id).execute()
    with pytest.raises(team.LoginFailed):
        team.authenticate(admin_user.email, PASSWORD, "", clock.at, False)


def test_totp_codes_follow_rfc_6238():
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s -> 94287082 (8 digits).
    from datetime import UTC, datetime

    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp.code_at(secret, datetime.fromtimestamp(59, UTC)) == "287082"
    assert totp.code_at(secret, datetime.fromtimestamp(1111111109, UTC)) == "081804"


def test_an_enrolled_account_needs_its_current_code(db, clock):
    created = team.create_team_account(
        "t@example.org", PASSWORD, "team", clock.at, by="t", with_totp=True
    )
    secret = created.totp_secret
    with pytest.raises(team.SecondFactorNeeded):
        team.authenticate("t@example.org", PASSWORD, "", clock.at, False)
    stale = totp.code_at(secret, clock.move(minutes=-10))
    clock.move(minutes=10)
    if stale != totp.code_at(secret, clock.at):
        with pytest.raises(team.LoginFailed):
            team.authenticate("t@example.org", PASSWORD, stale, clock.at, False)
    good = totp.code_at(secret, clock.at)
    assert team.authenticate("t@example.org", PASSWORD, good, clock.at, False).email == (
        "t@example.org"
    )


def test_required_two_factor_refuses_accounts_without_it(db, clock, admin_user):
    with pytest.raises(team.LoginFailed, match="forewarn admin totp"):
        team.authenticate(admin_user.email, PASSWORD, "", clock.at, require_2fa=True)
    secret = team.enrol_totp(admin_user.email, clock.at, by="t")
    code = totp.code_at(secret, clock.at)
    assert team.authenticate(admin_user.email, PASSWORD, code, clock.at, True).id == (admin_user.id)
    assert AuditEvent.select().where(AuditEvent.action == "account.totp_enrol").count() == 1


def test_an_authenticator_code_works_only_once(db, clock):
    created = team.create_team_account(
        "t@example.org", PASSWORD, "team", clock.at, by="t", with_totp=True
    )
    code = totp.code_at(created.totp_secret, clock.at)
    team.authenticate("t@example.org", PASSWORD, code, clock.at, False)
    with pytest.raises(team.LoginFailed):
        team.authenticate("t@example.org", PASSWORD, code, clock.move(seconds=10), False)
    later = clock.move(seconds=30)
    fresh = totp.code_at(created.totp_secret, later)
    assert team.authenticate("t@example.org", PASSWORD, fresh, later, False).email == (
        "t@example.org"
    )


def test_ending_sessions_rotates_the_session_token(db, clock, admin_user):
    before = admin_user.session_token
    team.end_sessions(admin_user)
    assert User.get_by_id(admin_user.id).session_token != before


def test_sign_ins_and_failed_ones_are_audited_with_their_source(db, clock, admin_user):
    team.authenticate(admin_user.email, PASSWORD, "", clock.at, False, source="198.51.100.7")
    with pytest.raises(team.LoginFailed):
        team.authenticate(
            admin_user.email, "wrong password!", "", clock.at, False, source="203.0.113.9"
        )
    ok = AuditEvent.get(AuditEvent.action == "auth.login")
    assert (ok.actor_id, ok.target, json.loads(ok.details)) == (
        admin_user.id,
        admin_user.email,
        {"source": "198.51.100.7"},
    )
    failed = AuditEvent.get(AuditEvent.action == "auth.login_failed")
    assert failed.actor_id is None and failed.target == admin_user.email
    assert json.loads(failed.details)["source"] == "203.0.113.9"
