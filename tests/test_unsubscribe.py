"""Unsubscribing from alerts: the RFC 8058 one-click POST, the page with a button, resubscribe."""

import re

import pytest

from app import passwords, registry, subscriptions
from app.errors import Refused
from app.instance import secret_key
from app.models import AuditEvent, Registrant, User
from tests import mailcorpus as mc
from tests.conftest import csrf_token

MAKER = "psirt@maker.example"
MAKER_PASSWORD = "a long enough password"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


@pytest.fixture
def registrant(db, clock, maker):
    added = registry.add_by_admin(MAKER, "Maker Ltd", maker.cert, None, "t", clock.at, approve=True)
    User.update(password_hash=passwords.hash_password(MAKER_PASSWORD)).where(
        User.id == added.user_id
    ).execute()
    return added


def events(action: str) -> int:
    return AuditEvent.select().where(AuditEvent.action == action).count()


def one_line(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_one_click_post_unsubscribes_without_csrf_and_is_idempotent(client, registrant, settings):
    token = subscriptions.unsubscribe_token(secret_key(settings), registrant.id)
    assert Registrant.approved().where(Registrant.id == registrant.id).exists()
    for _ in range(2):
        response = client.post(f"/registry/unsubscribe/{token}/one-click", data=ONE_CLICK)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "Unsubscribed."
        assert response.mimetype == "text/plain"
    assert Registrant.get_by_id(registrant.id).unsubscribed
    assert not Registrant.approved().where(Registrant.id == registrant.id).exists()
    assert events("registry.unsubscribe") == 1


def test_one_click_refuses_bad_tokens_and_missing_body(client, registrant, settings):
    token = subscriptions.unsubscribe_token(secret_key(settings), registrant.id)
    forged = subscriptions.unsubscribe_token("another secret", registrant.id)
    for bad in (token[:-3] + "abc", forged, "nonsense"):
        response = client.post(f"/registry/unsubscribe/{bad}/one-click", data=ONE_CLICK)
        assert response.status_code == 400, bad
    assert client.post(f"/registry/unsubscribe/{token}/one-click", data={}).status_code == 400
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    assert events("registry.unsubscribe") == 0


def test_the_token_is_bound_to_its_purpose(registrant, settings, clock):
    verify_token = registry.verification_token(
        secret_key(settings), registrant.id, registrant.key_id, clock.at
    )
    with pytest.raises(Refused, match="not valid"):
        subscriptions.unsubscribe(verify_token, secret_key(settings), clock.at)


def test_the_page_asks_first_and_its_button_needs_csrf(client, registrant, settings):
    token = subscriptions.unsubscribe_token(secret_key(settings), registrant.id)
    page = client.get(f"/registry/unsubscribe/{token}")
    assert page.status_code == 200
    assert not Registrant.get_by_id(registrant.id).unsubscribed  # opening changes nothing
    no_csrf = client.post(f"/registry/unsubscribe/{token}", data={})
    assert no_csrf.status_code == 400 and "Form expired" in no_csrf.get_data(as_text=True)
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    done = client.post(
        f"/registry/unsubscribe/{token}",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert done.status_code == 200
    assert "You unsubscribed from alerts" in one_line(done.get_data(as_text=True))
    assert Registrant.get_by_id(registrant.id).unsubscribed
    page = client.get("/registry/unsubscribe/nonsense")
    refused = client.post(
        "/registry/unsubscribe/nonsense",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert refused.status_code == 400 and "not valid" in refused.get_data(as_text=True)


def test_the_status_page_shows_it_and_resubscribes(client, auth, registrant, settings, clock):
    auth.login(MAKER, MAKER_PASSWORD)
    status = one_line(client.get("/registry/status").get_data(as_text=True))
    assert "You receive alerts" in status and "You unsubscribed" not in status
    subscriptions.unsubscribe(
        subscriptions.unsubscribe_token(secret_key(settings), registrant.id),
        secret_key(settings),
        clock.at,
    )
    page = client.get("/registry/status")
    assert "You unsubscribed from alerts" in one_line(page.get_data(as_text=True))
    assert client.post("/registry/status/resubscribe", data={}).status_code == 400
    assert Registrant.get_by_id(registrant.id).unsubscribed
    response = client.post(
        "/registry/status/resubscribe",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
        follow_redirects=True,
    )
    assert "You receive alerts again" in response.get_data(as_text=True)
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    assert Registrant.approved().where(Registrant.id == registrant.id).exists()
    assert events("registry.resubscribe") == 1


def test_resubscribe_needs_a_signed_in_registrant(client, registrant, settings, clock):
    subscriptions.unsubscribe(
        subscriptions.unsubscribe_token(secret_key(settings), registrant.id),
        secret_key(settings),
        clock.at,
    )
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/registry/status/resubscribe", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert Registrant.get_by_id(registrant.id).unsubscribed
