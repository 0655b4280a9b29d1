"""Signing in to the portal: the login page, sessions, CSRF, rate limits, next=, TOTP, outages."""

import hashlib
import re
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import peewee
import pytest

from app.accounts import team, totp
from app.core import passwords
from app.core.config import load_settings
from app.models import User
from app.web import create_app, ratelimit
from tests.conftest import PASSWORD, Auth, csrf_token, free_port

WRONG_CREDENTIALS = "Wrong email or password, or the account is disabled."
MESSAGE = re.compile(r'<p class="message (\w+)">(.*?)</p>', re.S)


def messages(response) -> list[str]:
    """The flashed messages shown on a page, as text."""
    return [text.strip() for _category, text in MESSAGE.findall(response.get_data(as_text=True))]


def heading(response) -> str:
    match = re.search(r"<h1>(.*?)</h1>", response.get_data(as_text=True), re.S)
    assert match, "the page has no <h1>"
    return match.group(1).strip()


def sign_in(client, email, password, code="", path="/login", **request):
    """Post the login form at path (with its CSRF token); request goes to both requests."""
    page = client.get(path, **request)
    return client.post(
        path,
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": email,
            "password": password,
            "code": code,
        },
        **request,
    )


def portal(env, **overrides):
    """A second portal built from this test's environment with some variables changed."""
    return create_app(load_settings({**env, **overrides}), test_config={"TESTING": True})


def session_cookie(response) -> tuple[str, set[str]]:
    """The Set-Cookie value of the session cookie and its attributes, lower-cased."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("forewarn_session="):
            value, *attributes = (part.strip() for part in header.split(";"))
            return value, {attribute.lower() for attribute in attributes}
    raise AssertionError(f"no session cookie in {response.headers.getlist('Set-Cookie')}")


def assert_signed_out(client):
    response = client.get("/team/")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


class FormInventory(HTMLParser):
    """The inputs, labels and inline code of a page."""

    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []
        self.label_targets: set[str] = set()
        self.inline_scripts = 0
        self.style_elements = 0
        self.style_attributes = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "style" in attributes:
            self.style_attributes += 1
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        elif tag == "style":
            self.style_elements += 1
        elif tag == "script" and not attributes.get("src"):
            self._in_script_without_src = True

    def handle_endtag(self, tag):
        self._in_script_without_src = False

    def handle_data(self, data):
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


# -- the login page ------------------------------------------------------------------------------


def test_login_page_labels_every_input_and_loads_nothing_from_elsewhere(client):
    response = client.get("/login")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    page = FormInventory()
    page.feed(html)
    visible = [field for field in page.inputs if field.get("type") != "hidden"]
    assert {field["name"] for field in visible} == {"email", "password", "code"}
    for field in visible:
        assert field.get("id") in page.label_targets, f"input {field['name']} has no <label>"
    assert re.findall(r"https?://", html) == []
    # The page must itself obey the CSP below: no inline script or style to be blocked.
    assert (page.inline_scripts, page.style_elements, page.style_attributes) == (0, 0, 0)


def test_login_page_sends_strict_security_headers(client):
    response = client.get("/login")

    policy = response.headers["Content-Security-Policy"]
    directives = {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    for name, sources in directives.items():
        for source in sources:
            assert source in ("'self'", "'none'"), f"{name} allows {source}"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # plain http: no HSTS


# -- signing in --------------------------------------------------------------------------------


def test_admin_signs_in_lands_in_workspace_and_is_told_who_they_are(client, auth, admin_user):
    response = auth.login("Admin@Example.org ", PASSWORD)

    assert response.status_code == 302
    assert response.headers["Location"] == "/team/"
    _value, attributes = session_cookie(response)
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # FOREWARN_BASE_URL is http here
    workspace = client.get(response.headers["Location"])
    assert workspace.status_code == 200
    assert heading(workspace) == "Workspace"
    assert messages(workspace) == ["Signed in as admin@example.org."]
    assert User.get_by_id(admin_user.id).last_login_at is not None


def test_session_cookie_is_secure_when_the_portal_is_served_over_https(
    env, db, redis_conn, clock, admin_user
):
    base = "https://cvd.example.org"
    https_portal = portal(env, FOREWARN_BASE_URL=base)
    # Over https a second factor is required by default, so this admin enrols one.
    secret = team.enrol_totp(admin_user.email, clock.at, by="test")
    client = https_portal.test_client()
    page = client.get(f"{base}/login")

    response = client.post(
        f"{base}/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": admin_user.email,
            "password": PASSWORD,
            "code": totp.code_at(secret, clock.at),
        },
        headers={"Referer": f"{base}/login"},  # Flask-WTF checks it on https
    )

    assert response.status_code == 302, messages(response)
    _value, attributes = session_cookie(response)
    assert {"httponly", "samesite=lax", "secure"} <= attributes
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert client.get(f"{base}/team/").status_code == 200


@pytest.mark.parametrize(
    "email", ["admin@example.org", "nobody@example.org"], ids=["wrong-password", "unknown-email"]
)
def test_failed_sign_in_is_401_with_one_message_for_wrong_password_and_unknown_email(
    client, auth, admin_user, email
):
    response = auth.login(email, "not the password at all")

    assert response.status_code == 401
    assert messages(response) == [WRONG_CREDENTIALS]
    assert heading(response) == "Sign in"
    assert_signed_out(client)


def test_post_without_csrf_token_is_refused_with_form_expired_page(client, admin_user):
    response = client.post("/login", data={"email": admin_user.email, "password": PASSWORD})

    assert response.status_code == 400
    assert heading(response) == "Form expired"
    assert_signed_out(client)


ATTACKER = {"REMOTE_ADDR": "203.0.113.5"}
OWNER = {"REMOTE_ADDR": "198.51.100.23"}


def test_an_address_that_failed_ten_times_is_refused_for_every_account_for_a_while(
    app, admin_user, clock, redis_conn
):
    colleague = team.create_team_account(
        "colleague@example.org", PASSWORD, "team", clock.at, by="test"
    ).user
    for attempt in range(ratelimit.LOGIN.attempts):  # spread over accounts, known and not
        email = [admin_user.email, colleague.email, f"nobody{attempt}@example.org"][attempt % 3]
        response = sign_in(app.test_client(), email, f"guess {attempt}", environ_base=ATTACKER)
        assert response.status_code == 401

    blocked = sign_in(app.test_client(), colleague.email, PASSWORD, environ_base=ATTACKER)

    assert blocked.status_code == 429  # even the right password, from this address
    assert messages(blocked) == [
        "Too many failed sign-ins from your address. Wait 15 minutes, then try again."
    ]
    counters = list(redis_conn.scan_iter(f"forewarn:ratelimit:{ratelimit.LOGIN.name}:ip:*"))
    assert counters, "the attempts were not counted in Redis"
    for counter in counters:  # each count expires with its window: no lockout for ever
        assert 0 < redis_conn.ttl(counter) <= ratelimit.LOGIN.window_seconds
    # Another address is not blocked, for either account.
    for user in (admin_user, colleague):
        assert (
            sign_in(app.test_client(), user.email, PASSWORD, environ_base=OWNER).status_code == 302
        )
    # The counts live in Redis, not in this process: once they are gone, the address gets in.
    redis_conn.delete(*counters)
    assert (
        sign_in(app.test_client(), colleague.email, PASSWORD, environ_base=ATTACKER).status_code
        == 302
    )


def test_an_attackers_failures_never_lock_the_owner_out_from_their_own_address(
    app, admin_user, clock
):
    for attempt in range(ratelimit.LOGIN.attempts + 5):  # until the attacker is refused
        sign_in(app.test_client(), admin_user.email, f"guess {attempt}", environ_base=ATTACKER)
    assert (
        sign_in(app.test_client(), admin_user.email, PASSWORD, environ_base=ATTACKER).status_code
        == 429
    )

    response = sign_in(app.test_client(), admin_user.email, PASSWORD, environ_base=OWNER)

    assert response.status_code == 302
    assert response.headers["Location"] == "/team/"


def test_failures_for_one_account_from_one_address_wait_longer_each_time(app, admin_user, clock):
    def attempt(password):
        return sign_in(app.test_client(), admin_user.email, password, environ_base=ATTACKER)

    for number in range(ratelimit.LOGIN_PAIR.free_failures):
        assert attempt(f"guess {number}").status_code == 401
    for wait in (1, 2, 4):  # minutes: each failure after the free ones doubles the wait
        refused = attempt(PASSWORD)
        assert refused.status_code == 429
        assert messages(refused) == [
            "Too many failed sign-ins to this account from your address. "
            f"Wait {wait} minute{'s' if wait > 1 else ''}, then try again (or reset your "
            "password)."
        ]
        clock.move(minutes=wait, seconds=-1)
        assert attempt(PASSWORD).status_code == 429  # not a second early
        clock.move(seconds=1)
        assert attempt(f"guess after {wait}").status_code == 401  # one more try, then wait

    clock.move(minutes=8)
    assert attempt(PASSWORD).status_code == 302  # the right password after the wait
    assert attempt("a wrong one again").status_code == 401  # and the count started over


def test_successful_sign_ins_do_not_use_up_the_addresss_failure_budget(app, admin_user, clock):
    # Behind a proxy with FOREWARN_TRUSTED_PROXIES=0, every sign-in comes from one address.
    for _ in range(ratelimit.LOGIN.attempts + 2):
        assert sign_in(app.test_client(), admin_user.email, PASSWORD).status_code == 302

    for number in range(ratelimit.LOGIN.attempts):  # the whole failure budget is still there
        response = sign_in(app.test_client(), f"nobody{number}@example.org", "wrong password")
        assert response.status_code == 401
    assert sign_in(app.test_client(), "nobody@example.org", "wrong password").status_code == 429


def test_wrong_authenticator_codes_are_limited_per_account_whatever_the_address(app, db, clock):
    secret = team.create_team_account(
        "ann@example.org", PASSWORD, "team", clock.at, by="test", with_totp=True
    ).totp_secret
    right = totp.code_at(secret, clock.at)
    wrong = next(c for c in ("000000", "111111", "222222") if c != right)
    for number in range(ratelimit.LOGIN_CODE.attempts):  # the password is known: one per address
        address = {"REMOTE_ADDR": f"192.0.2.{number + 1}"}
        response = sign_in(
            app.test_client(), "ann@example.org", PASSWORD, wrong, environ_base=address
        )
        assert response.status_code == 401

    response = sign_in(app.test_client(), "ann@example.org", PASSWORD, right, environ_base=OWNER)

    assert response.status_code == 429
    assert messages(response) == [
        "Too many wrong authenticator codes for this account. Wait 15 minutes."
    ]


@pytest.mark.parametrize(
    ("target", "destination"),
    [
        ("/team/?view=mine", "/team/?view=mine"),
        ("https://evil.example/", "/team/"),
        ("//evil.example", "/team/"),
        ("//evil.example/team/", "/team/"),
        ("/\\evil.example", None),  # browsers read "\" as "/": "//evil.example"
        ("/\t/evil.example", "/team/"),  # browsers drop the tab: "//evil.example"
        ("javascript:alert(1)", "/team/"),
    ],
    ids=[
        "same-site",
        "absolute",
        "scheme-relative",
        "scheme-relative-path",
        "backslash",
        "tab",
        "js",
    ],
)
def test_next_only_follows_same_site_paths(client, admin_user, target, destination):
    response = sign_in(client, admin_user.email, PASSWORD, query_string={"next": target})

    assert response.status_code == 302
    location = response.headers["Location"]
    if destination is not None:
        assert location == destination
    # Resolved the way a browser does (WHATWG: "\" is "/", tabs and newlines are dropped).
    as_browser = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    assert urlsplit(urljoin("http://localhost/login", as_browser)).netloc == "localhost"


def test_a_sign_in_costs_the_same_hash_whether_the_account_exists_or_has_a_password(
    app, admin_user, clock, monkeypatch
):
    """Unknown addresses, accounts an admin added (no password until a reset link) and erased
    accounts answered in 6 ms, the others in about 100: the same scrypt run now, every time."""
    for email, stored in (("added@maker.example", "!unset:0123abcd"), ("gone@x.example", "!")):
        User.create(
            email=email,
            password_hash=stored,
            role="registrant",
            session_token=team.new_session_token(),
            created_at=clock.at,
        )
    runs = []
    real = hashlib.scrypt

    def counted(password, **parameters):
        runs.append({name: parameters[name] for name in ("n", "r", "p")})
        return real(password, **parameters)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    answers = {}
    emails = (admin_user.email, "added@maker.example", "gone@x.example", "nobody@example.org")
    for number, email in enumerate(emails):
        runs.clear()
        response = sign_in(
            app.test_client(),
            email,
            "not the password",
            environ_base={"REMOTE_ADDR": f"192.0.2.{number + 1}"},
        )
        answers[email] = (response.status_code, messages(response), list(runs))

    known = answers[admin_user.email]
    assert known == (401, [WRONG_CREDENTIALS], [{"n": 2**15, "r": 8, "p": 1}])
    assert passwords.hash_password("x").startswith("scrypt$32768$8$1$")  # what accounts store
    for email in emails[1:]:
        assert answers[email] == known, email


# -- who stays signed in -----------------------------------------------------------------------


def test_workspace_sends_anonymous_visitors_to_sign_in_and_back(client, admin_user):
    response = client.get("/team/")

    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    login_page = client.get(location)
    assert messages(login_page) == ["Please sign in to see that page."]
    back = sign_in(client, admin_user.email, PASSWORD, path=location)
    assert back.headers["Location"] == "/team/"
    assert client.get("/team").status_code in (301, 308)  # the bare path redirects too


@pytest.mark.parametrize(
    "change",
    [{"session_token": "rotated-elsewhere"}, {"active": False}],
    ids=["session-token-rotated", "account-disabled"],
)
def test_signed_in_user_is_signed_out_when_the_account_changes(client, auth, admin_user, change):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    assert client.get("/team/").status_code == 200

    User.update(**change).where(User.id == admin_user.id).execute()

    assert_signed_out(client)


def test_logout_is_post_only_and_ends_the_session(client, auth, admin_user):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    workspace = client.get("/team/")

    refused = client.get("/logout")
    assert refused.status_code == 405
    assert heading(refused) == "Not allowed"
    forged = client.post("/logout")  # no CSRF token: another site cannot sign people out
    assert forged.status_code == 400
    assert client.get("/team/").status_code == 200

    response = client.post("/logout", data={"csrf_token": csrf_token(workspace.text)})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert "You are signed out. Sign in again to continue working." in messages(
        client.get(response.headers["Location"])
    )
    assert_signed_out(client)


def test_signing_out_ends_the_accounts_other_sessions_too(app, client, auth, admin_user):
    other = app.test_client()
    Auth(other).login(admin_user.email, PASSWORD)
    assert other.get("/team/").status_code == 200
    auth.login(admin_user.email, PASSWORD)
    workspace = client.get("/team/")
    client.post("/logout", data={"csrf_token": csrf_token(workspace.text)})
    assert_signed_out(other)


# -- the second factor ----------------------------------------------------------------------------


def test_account_with_authenticator_needs_its_current_code(client, auth, db, clock):
    team.create_team_account("member@example.org", PASSWORD, "team", clock.at, by="test")
    # A fixed secret, so the codes below are known to differ from the three accepted ones.
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    User.update(totp_secret=secret).where(User.email == "member@example.org").execute()
    accepted = {totp.code_at(secret, clock.at + timedelta(seconds=s)) for s in (-30, 0, 30)}
    wrong = "000000"
    stale = totp.code_at(secret, clock.at - timedelta(minutes=5))
    assert wrong not in accepted and stale not in accepted

    without = auth.login("member@example.org", PASSWORD)
    assert without.status_code == 401
    assert messages(without) == ["Enter the 6-digit code from your authenticator app."]
    for bad in (wrong, stale):
        refused = auth.login("member@example.org", PASSWORD, code=bad)
        assert refused.status_code == 401
        assert messages(refused) == [
            "That authenticator code is wrong or already used; enter the next one."
        ]
    assert_signed_out(client)

    response = auth.login("member@example.org", PASSWORD, code=totp.code_at(secret, clock.at))
    assert response.status_code == 302
    assert client.get("/team/").status_code == 200


def test_required_second_factor_refuses_account_without_one_and_names_the_command(
    env, db, redis_conn, clock, admin_user
):
    strict = portal(env, FOREWARN_REQUIRE_2FA="1")
    client = strict.test_client()

    response = Auth(client).login(admin_user.email, PASSWORD)

    assert response.status_code == 401
    [message] = messages(response)
    assert "forewarn admin totp admin@example.org" in message
    assert_signed_out(client)
    secret = team.enrol_totp(admin_user.email, clock.at, by="test")
    enrolled = Auth(client).login(admin_user.email, PASSWORD, totp.code_at(secret, clock.at))
    assert enrolled.status_code == 302


# -- the database going away -------------------------------------------------------------------


def cut_off_database(app, settings) -> None:
    """Make the portal's next connection fail the way a real outage does, without mocks.

    The portal connects per request and closes at teardown, so the next request connects anew.
    SQLite: the folder holding the database file is moved away, and sqlite3 answers "unable
    to open database file". PostgreSQL: the portal's own database object is pointed at a local
    port where nothing listens, so psycopg's connect is refused as when the server is down.
    """
    database = app.extensions["forewarn.db"]
    assert database.is_closed()
    if isinstance(database, peewee.PostgresqlDatabase):
        database.init(database.database, host="127.0.0.1", port=free_port())
    else:
        settings.instance.rename(settings.instance.with_name("moved-away"))


def test_database_outage_shows_friendly_503_page_not_a_traceback(
    app, client, auth, admin_user, settings, caplog
):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    visitor = app.test_client()
    token = csrf_token(visitor.get("/login").get_data(as_text=True))

    cut_off_database(app, settings)
    pages = {
        "signed-in workspace": client.get("/team/"),
        "anonymous login page": app.test_client().get("/login"),
        "sign-in attempt": visitor.post(
            "/login",
            data={"csrf_token": token, "email": admin_user.email, "password": PASSWORD},
        ),
    }

    for name, response in pages.items():
        body = response.get_data(as_text=True)
        assert response.status_code == 503, name
        assert heading(response) == "Temporarily unavailable", name
        assert "cannot reach its database" in body
        assert "Traceback" not in body and "OperationalError" not in body
        assert response.headers["Content-Security-Policy"]
    assert "database unavailable: OperationalError" in caplog.text


def test_signing_in_starts_a_fresh_session(client, auth, admin_user):
    """Nothing of the visitor's session before sign-in (here its CSRF token) is carried over:
    a session planted before sign-in is worth nothing after it."""
    page = client.get("/login")
    before = csrf_token(page.get_data(as_text=True))
    planted = session_cookie(page)[0].removeprefix("forewarn_session=")
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    after = csrf_token(client.get("/team/").get_data(as_text=True))
    assert after != before
    visitor = client.application.test_client()
    visitor.set_cookie("forewarn_session", planted)
    assert visitor.get("/team/").status_code == 302  # still anonymous: to the sign-in page
