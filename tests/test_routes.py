"""Every route is classified by who may use it, and the classification is enforced: a new route
without a rule here fails, so none can be forgotten."""

import pytest

from app.accounts import team
from app.core import passwords
from app.models import User, Vulnerability
from tests.conftest import PASSWORD, csrf_token

AUDIENCES = {
    "public": "anyone",
    "downloads": "anyone",
    "osv": "anyone",
    "csaf": "anyone",  # the CSAF provider's files (tests/test_csaf_provider.py)
    "followup": "anyone",  # with a reporter's token alone: tests/test_followup_page.py
    "auth": "anyone",
    "static": "anyone",
    "account": "signed-in",
    "team": "team",
    "workspace": "team",
    "cases": "team",
    "releases": "team",
    "rotation": "team",
    "admin": "admin",
    "registry": "anyone",
    "report": "anyone",  # the report form and its answer (tests/test_web_report.py)
    "subscriptions": "anyone",
    "advisories": "signed-in",
    "alerting": "team",  # its registrant pages: tests/test_web_registry.py
    "answers": "team",  # the matrix; registrants answer on "advisories" (test_web_answers.py)
    "vetting": "admin",
    "health": "anyone",  # not so: localhost or admins, else 403 (tests/test_health.py)
}
SAMPLE_ARGS = {"tracking_id": "SEC-2026-0001", "filename": "forewarn.css", "kind": "osv"}


def routes(app):
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = rule.build({a: SAMPLE_ARGS.get(a, "1") for a in rule.arguments})[1]
            yield blueprint, rule.endpoint, method, url


@pytest.fixture
def known(db, clock):
    from datetime import UTC, datetime

    at = datetime(2026, 11, 25, tzinfo=UTC)
    Vulnerability.create(tracking_id="SEC-2026-0001", reported_at=at, created_at=at, updated_at=at)


def test_every_route_has_an_audience(app):
    unclassified = sorted({e for b, e, _, _ in routes(app) if b not in AUDIENCES})
    assert unclassified == []


def test_reporters_files_are_served_by_a_team_route_alone(app):
    """Reporters' attachments are embargoed content: downloadable by the team, and by the
    reporter through their follow-up link (its token in the address), nobody else."""
    found = {(b, m) for b, e, m, _ in routes(app) if e == "workspace.attachment"}
    assert found == {("workspace", "GET")}
    assert AUDIENCES["workspace"] == "team"
    tokened = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == "followup.file"}
    assert tokened == {"/follow-up/<token>/files/<int:file_id>"}


def test_team_and_admin_routes_send_anonymous_visitors_to_sign_in(app, client, known):
    for blueprint, endpoint, method, url in routes(app):
        if AUDIENCES[blueprint] in ("anyone",):
            continue
        response = client.open(url, method=method)
        if method == "POST":
            assert response.status_code == 400, (endpoint, response.status_code)  # no CSRF token
        else:
            assert response.status_code == 302, (endpoint, response.status_code)
            assert "/login" in response.headers["Location"], endpoint


def test_registrants_are_refused_every_team_and_admin_route(app, client, auth, known, clock):
    User.create(
        email="maker@example.com",
        password_hash=passwords.hash_password(PASSWORD),
        role="registrant",
        session_token=team.new_session_token(),
        created_at=clock.at,
    )
    auth.login("maker@example.com", PASSWORD)
    token = csrf_token(client.get("/").get_data(as_text=True))
    for blueprint, endpoint, method, url in routes(app):
        if AUDIENCES[blueprint] not in ("team", "admin"):
            continue
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (endpoint, method, response.status_code)


def test_team_members_are_refused_admin_routes(app, client, auth, known, clock):
    team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, by="t")
    auth.login("bob@example.org", PASSWORD)
    token = csrf_token(client.get("/team/").get_data(as_text=True))
    for blueprint, endpoint, method, url in routes(app):
        if AUDIENCES[blueprint] != "admin":
            continue
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (endpoint, method, response.status_code)


# The one documented exception: RFC 8058 one-click unsubscribe is POSTed by mail providers,
# without a session; the signed token in its address is the authorisation.
CSRF_EXEMPT = {"subscriptions.unsubscribe_one_click"}


def test_every_form_needs_its_csrf_token(app, client, auth, known, admin_user):
    auth.login(admin_user.email, PASSWORD)
    posts = [
        (e, url)
        for b, e, m, url in routes(app)
        if m == "POST" and b != "auth" and e not in CSRF_EXEMPT
    ]
    assert posts, "no forms found"
    for endpoint, url in posts:
        response = client.post(url, data={})
        assert response.status_code == 400, endpoint
        assert "Form expired" in response.get_data(as_text=True), endpoint


def test_the_csrf_exemptions_are_only_the_documented_ones_and_need_a_valid_token(app, client, db):
    csrf = app.extensions["csrf"]
    exempt = {
        e
        for _, e, m, _ in routes(app)
        if m == "POST" and csrf._exempt_views & {_location(app.view_functions[e])}
    }
    assert exempt == CSRF_EXEMPT
    for endpoint in CSRF_EXEMPT:
        url = app.url_map.bind("localhost").build(endpoint, {"token": "not-a-token"})
        response = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, endpoint
        assert "Form expired" not in response.get_data(as_text=True)  # exempt, but refused


def _location(view) -> str:
    return f"{view.__module__}.{view.__name__}"
