"""Authenticator codes (RFC 6238 through pyotp) and setting one up from the account pages: the
QR code, the key for manual entry, and the confirming code that alone saves it."""

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.accounts import team, totp
from app.core import passwords
from app.models import AuditEvent, User
from app.web.account import qr_svg
from tests.conftest import PASSWORD, Auth, csrf_token

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of the ASCII seed "12345678901234567890"
MESSAGE = re.compile(r'<p class="message (\w+)">(.*?)</p>', re.S)
SETUP = "/account/security/authenticator"
IDENTITY = "/account/security/authenticator/identity"


def messages(response) -> list[str]:
    return [" ".join(t.split()) for _c, t in MESSAGE.findall(response.get_data(as_text=True))]


def shown_secret(response) -> str:
    """The key the setup page shows for manual entry, without its grouping spaces."""
    match = re.search(r'<code class="secret" id="totp-secret">([A-Z2-7 ]+)</code>', response.text)
    assert match, "the setup page shows no key"
    return match.group(1).replace(" ", "")


def start_setup(client, password: str = PASSWORD):
    """Give the password on the setup page, as it asks first; the page that follows."""
    page = client.get(SETUP)
    response = client.post(
        IDENTITY, data={"csrf_token": csrf_token(page.text), "password": password}
    )
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == SETUP
    return client.get(SETUP)


def confirm(client, code: str):
    token = csrf_token(client.get(SETUP).get_data(as_text=True))
    return client.post(SETUP, data={"csrf_token": token, "code": code})


def enrolments() -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.action == "account.totp_enrol"))


def other_code(secret: str, at: datetime) -> str:
    """A code that is none of the three accepted at `at`."""
    accepted = {totp.code_at(secret, at + timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in accepted)


# -- the codes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix_time", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_codes_follow_the_rfc_6238_sha1_test_vectors(unix_time, eight_digits):
    # RFC 6238 appendix B lists 8 digits; a 6-digit code is their last six (RFC 4226 5.3).
    at = datetime.fromtimestamp(unix_time, UTC)

    assert totp.code_at(RFC_SECRET, at) == eight_digits[-6:]
    assert totp.matching_step(RFC_SECRET, eight_digits[-6:], at) == unix_time // 30


def test_a_code_matches_its_own_step_and_one_either_side_only():
    at = datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC)
    step = int(at.timestamp()) // 30
    for offset in (-1, 0, 1):
        code = totp.code_at(RFC_SECRET, at + timedelta(seconds=30 * offset))
        assert totp.matching_step(RFC_SECRET, code, at) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(RFC_SECRET, at + timedelta(seconds=30 * offset))
        if code not in {
            totp.code_at(RFC_SECRET, at + timedelta(seconds=30 * o)) for o in (-1, 0, 1)
        }:
            assert totp.matching_step(RFC_SECRET, code, at) is None
    current = totp.code_at(RFC_SECRET, at)
    assert totp.matching_step(RFC_SECRET, f" {current[:3]} {current[3:]} ", at) == step
    for garbage in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):  # the last: Arabic-Indic digits
        assert totp.matching_step(RFC_SECRET, garbage, at) is None


def test_new_secrets_are_160_random_bits_and_the_uri_names_issuer_and_account():
    first, second = totp.new_secret(), totp.new_secret()
    uri = urlsplit(totp.provisioning_uri(first, "ann@example.org"))

    assert first != second
    assert re.fullmatch(r"[A-Z2-7]{32}", first)  # 32 base32 characters: 160 bits
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/Forewarn:ann%40example.org")
    assert parse_qs(uri.query) == {"secret": [first], "issuer": ["Forewarn"]}


# -- the account pages -----------------------------------------------------------------------------


@pytest.fixture
def member(db, clock):
    return team.create_team_account("ann@example.org", PASSWORD, "team", clock.at, by="test").user


@pytest.fixture
def signed_in(client, member):
    assert Auth(client).login(member.email, PASSWORD).status_code == 302
    return client


@pytest.mark.parametrize("path", ["/account/security", SETUP, "/account/security/qr.svg"])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_security_page_says_no_authenticator_yet_and_links_to_the_setup(signed_in):
    response = signed_in.get("/account/security")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "No authenticator app is set up" in html
    assert f'href="{SETUP}">Set up an authenticator</a>' in html


def test_registrants_can_set_one_up_too(client, db, clock):
    User.create(
        email="maker@example.com",
        password_hash=passwords.hash_password(PASSWORD),
        role="registrant",
        session_token=team.new_session_token(),
        created_at=clock.at,
    )
    assert Auth(client).login("maker@example.com", PASSWORD).status_code == 302

    assert client.get("/account/security").status_code == 200
    assert client.get(SETUP).status_code == 200


def test_setup_page_shows_the_key_a_labelled_code_field_and_no_inline_code(signed_in):
    response = start_setup(signed_in)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert re.fullmatch(r"[A-Z2-7]{32}", shown_secret(response))
    assert re.search(r'<img class="qr" src="/account/security/qr.svg"\s+alt="[^"]+"', html)
    assert re.search(r'<label for="code">[^<]+</label>', html)
    assert re.search(r'<input[^>]*autocomplete="one-time-code"[^>]*id="code"', html)
    assert re.search(rf'<form method="post" action="{SETUP}"', html)
    assert 'name="csrf_token"' in html
    assert "style=" not in html and "<style" not in html and "<script" not in html
    assert "data:" not in html


def test_the_key_stays_the_same_across_reloads_until_confirmed(signed_in):
    start_setup(signed_in)
    assert shown_secret(signed_in.get(SETUP)) == shown_secret(signed_in.get(SETUP))


def test_qr_code_is_an_svg_of_the_pending_key_for_this_account(signed_in, member):
    secret = shown_secret(start_setup(signed_in))

    response = signed_in.get("/account/security/qr.svg")

    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "no-store"  # it holds the key
    assert "img-src 'self'" in response.headers["Content-Security-Policy"]
    root = ET.fromstring(response.data)  # noqa: S314 (our own output)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert response.data == qr_svg(totp.provisioning_uri(secret, member.email))
    assert b"style=" not in response.data and b"<script" not in response.data


def test_qr_code_is_404_before_a_setup_is_started(signed_in):
    assert signed_in.get("/account/security/qr.svg").status_code == 404


def test_a_wrong_code_is_refused_and_nothing_is_saved(signed_in, member, clock):
    secret = shown_secret(start_setup(signed_in))

    response = confirm(signed_in, other_code(secret, clock.at))

    assert response.status_code == 400
    assert messages(response) == ["Your authenticator is not set up yet; see the code field below."]
    assert re.search(
        r'<p class="error" id="code-error">That code does not match: [^<]+</p>', response.text
    )
    assert shown_secret(response) == secret  # the same key, to try again
    assert User.get_by_id(member.id).totp_secret is None
    assert enrolments() == []


@pytest.mark.parametrize("code", ["", "12a456", "1234567"], ids=["empty", "letters", "seven"])
def test_a_malformed_code_is_refused_with_the_reason(signed_in, member, code):
    start_setup(signed_in)

    response = confirm(signed_in, code)

    assert response.status_code == 400
    assert re.search(r'<p class="error" id="code-error">[^<]+</p>', response.text)
    assert User.get_by_id(member.id).totp_secret is None


def test_confirming_without_a_csrf_token_is_refused(signed_in, member, clock):
    secret = shown_secret(start_setup(signed_in))

    response = signed_in.post(SETUP, data={"code": totp.code_at(secret, clock.at)})

    assert response.status_code == 400
    assert User.get_by_id(member.id).totp_secret is None


def test_the_right_code_saves_the_key_and_sign_in_then_needs_a_code(app, signed_in, member, clock):
    secret = shown_secret(start_setup(signed_in))
    code = totp.code_at(secret, clock.at)

    response = confirm(signed_in, code)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account/security"
    page = signed_in.get("/account/security")
    assert messages(page) == [
        "Your authenticator app is set up: from now on, signing in asks for the 6-digit code "
        "it shows."
    ]
    assert "An authenticator app is set up" in page.text
    assert User.get_by_id(member.id).totp_secret == secret
    [event] = enrolments()
    assert (event.actor.id, event.target, event.at) == (member.id, member.email, clock.at)
    assert json.loads(event.details) == {"replaced": False, "via": "web"}
    assert signed_in.get("/account/security/qr.svg").status_code == 404  # no longer pending

    elsewhere = Auth(app.test_client())
    without = elsewhere.login(member.email, PASSWORD)
    assert without.status_code == 401
    assert messages(without) == ["Enter the 6-digit code from your authenticator app."]
    assert elsewhere.login(member.email, PASSWORD, code).status_code == 401  # already used
    later = clock.move(seconds=30)
    assert elsewhere.login(member.email, PASSWORD, totp.code_at(secret, later)).status_code == 302


def test_replacing_an_authenticator_keeps_the_old_one_until_the_new_one_is_confirmed(
    app, client, db, clock
):
    created = team.create_team_account(
        "ann@example.org", PASSWORD, "team", clock.at, by="test", with_totp=True
    )
    old = created.totp_secret
    auth = Auth(client)
    assert auth.login("ann@example.org", PASSWORD, totp.code_at(old, clock.at)).status_code == 302
    page = start_setup(client)
    new = shown_secret(page)
    assert "Your current authenticator keeps working until you confirm this one." in page.text

    confirm(client, other_code(new, clock.at))
    assert User.get(User.email == "ann@example.org").totp_secret == old

    later = clock.move(seconds=30)
    assert confirm(client, totp.code_at(new, later)).status_code == 302
    assert User.get(User.email == "ann@example.org").totp_secret == new
    assert json.loads(enrolments()[-1].details) == {"replaced": True, "via": "web"}


# -- the password first: a session alone cannot put an authenticator on the account ------------


def test_a_first_setup_asks_for_the_password_before_showing_any_key(signed_in, member, clock):
    page = signed_in.get(SETUP)

    assert page.status_code == 200
    assert "Confirm it is you" in page.text
    assert re.search(r'<input[^>]*autocomplete="current-password"[^>]*id="password"', page.text)
    assert re.search(rf'<form method="post" action="{IDENTITY}"', page.text)
    assert 'id="totp-secret"' not in page.text
    assert signed_in.get("/account/security/qr.svg").status_code == 404
    # A code for a key of the session's own choosing cannot be confirmed: there is no setup.
    refused = confirm(signed_in, totp.code_at(totp.new_secret(), clock.at))
    assert refused.status_code == 302
    assert messages(signed_in.get(refused.headers["Location"])) == [
        "That setup had expired. Enter your password to start again."
    ]
    assert User.get_by_id(member.id).totp_secret is None
    assert enrolments() == []

    secret = shown_secret(start_setup(signed_in))  # with the password, it works
    assert confirm(signed_in, totp.code_at(secret, clock.at)).status_code == 302
    assert User.get_by_id(member.id).totp_secret == secret


def test_a_wrong_password_starts_no_setup_and_is_audited(signed_in, member):
    page = signed_in.get(SETUP)

    response = signed_in.post(
        IDENTITY, data={"csrf_token": csrf_token(page.text), "password": "not " + PASSWORD}
    )

    assert response.status_code == 401
    assert re.search(
        r'<p class="error" id="password-error">That is not your password.</p>', response.text
    )
    assert 'id="totp-secret"' not in signed_in.get(SETUP).text
    assert signed_in.get("/account/security/qr.svg").status_code == 404
    [event] = AuditEvent.select().where(AuditEvent.action == "auth.reauth_failed")
    assert (event.actor.id, event.target) == (member.id, member.email)
    assert json.loads(event.details)["for"] == "authenticator"


def test_a_session_without_the_password_cannot_replace_the_authenticator(app, client, db, clock):
    created = team.create_team_account(
        "ann@example.org", PASSWORD, "team", clock.at, by="test", with_totp=True
    )
    old = created.totp_secret
    assert (
        Auth(client).login("ann@example.org", PASSWORD, totp.code_at(old, clock.at)).status_code
        == 302
    )
    # Whoever holds this session (a borrowed laptop, a stolen cookie) tries to put their own
    # authenticator on the account: with any key the page offers, or one of their own.
    offered = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', client.get(SETUP).text)
    attacker = offered.group(1).replace(" ", "") if offered else totp.new_secret()
    confirm(client, totp.code_at(attacker, clock.at))

    assert User.get(User.email == "ann@example.org").totp_secret == old
    assert enrolments() == []
    assert "Confirm it is you" in client.get(SETUP).text

    later = clock.move(seconds=30)
    new = shown_secret(start_setup(client))  # the owner, who knows the password
    assert confirm(client, totp.code_at(new, later)).status_code == 302
    assert User.get(User.email == "ann@example.org").totp_secret == new


def test_a_setup_started_with_the_password_expires_after_ten_minutes(signed_in, member, clock):
    secret = shown_secret(start_setup(signed_in))
    later = clock.move(minutes=10, seconds=1)

    response = confirm(signed_in, totp.code_at(secret, later))

    assert response.status_code == 302
    assert User.get_by_id(member.id).totp_secret is None
    assert 'id="totp-secret"' not in signed_in.get(SETUP).text  # the password again
    assert signed_in.get("/account/security/qr.svg").status_code == 404


def test_guessing_the_password_on_the_setup_page_is_slowed_like_signing_in(signed_in, member):
    from app.web import ratelimit

    token = csrf_token(signed_in.get(SETUP).text)
    for number in range(ratelimit.LOGIN_PAIR.free_failures):
        wrong = signed_in.post(IDENTITY, data={"csrf_token": token, "password": f"guess {number}"})
        assert wrong.status_code == 401

    response = signed_in.post(IDENTITY, data={"csrf_token": token, "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many failed sign-ins to this account from your address" in response.text
    assert 'id="totp-secret"' not in signed_in.get(SETUP).text
