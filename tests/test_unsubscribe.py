"""Unsubscribing from alerts: the RFC 8058 one-click POST, the page with a button, resubscribe.

The link travels in every alert's clear headers: it belongs to one alert and one registrant,
expires, and using it is never silent (audited, and the registrant is told by mail)."""

import html as html_module
import json
import re
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeSerializer

from app.core import passwords
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import AuditEvent, Delivery, Registrant, User
from app.outbox import sending
from app.registry import alerts, proof, subscriptions, vetting
from app.vulns import lifecycle
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import csrf_token
from tests.openpgp import parse, parts_as_sent, sqop_verifies, text_of
from tests.smtpsink import SmtpSink

MAKER = "psirt@maker.example"
OTHER = "psirt@other.example"
MAKER_PASSWORD = "a long enough password"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
CLI = lifecycle.Actor(None, "test")


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


@pytest.fixture(scope="module")
def other_maker():
    return mc.make_reporter(OTHER, "Other PSIRT")


@pytest.fixture
def registrant(db, clock, maker):
    added = vetting.add_by_admin(MAKER, "Maker Ltd", maker.cert, None, "t", clock.at, approve=True)
    User.update(password_hash=passwords.hash_password(MAKER_PASSWORD)).where(
        User.id == added.user_id
    ).execute()
    return added


@pytest.fixture
def relay():
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture
def alert(registrant, settings, clock):
    """An alert queued to the registrant (its delivery)."""
    v = lifecycle.set_status(
        lifecycle.create("Overflow in the parser", "Details.", CLI, clock.at, settings),
        "accepted",
        CLI,
        clock.at,
    )
    advisory = alerts.send(v, None, "t", clock.at, settings)
    return Delivery.get(Delivery.advisory == advisory, Delivery.recipient == MAKER)


def send_all(relay, keyring, settings, at, kind):
    for d in Delivery.select().where(Delivery.kind == kind, Delivery.state == "queued"):
        sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", relay.port), at)
    return [r.data for r in relay.received if r.recipients == [MAKER]]


def header_link(relay, keyring, settings, at) -> str:
    """The one-click address in the List-Unsubscribe header of the alert as it was sent."""
    [raw] = send_all(relay, keyring, settings, at, "alert")
    return urlsplit(parse(raw)["List-Unsubscribe"].strip("<>")).path


def token_for(delivery: Delivery, settings) -> str:
    return subscriptions.token_of(delivery, secret_key(settings))


def events(action: str) -> int:
    return AuditEvent.select().where(AuditEvent.action == action).count()


def notices() -> list[Delivery]:
    return list(Delivery.select().where(Delivery.kind == "unsubscribed"))


def one_line(html: str) -> str:
    return html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)))


def test_one_click_from_an_alerts_header_works_within_sixty_days_and_is_idempotent(
    client, registrant, alert, relay, keyring, settings, clock
):
    link = header_link(relay, keyring, settings, clock.at)
    assert link.endswith("/one-click")
    clock.move(days=59)  # an alert read late: its link still works
    for _ in range(2):
        response = client.post(link, data=ONE_CLICK)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "Unsubscribed."
        assert response.mimetype == "text/plain"
    assert Registrant.get_by_id(registrant.id).unsubscribed
    assert not Registrant.approved().where(Registrant.id == registrant.id).exists()
    event = AuditEvent.get(AuditEvent.action == "registry.unsubscribe")  # once
    assert json.loads(event.details) == {"via": "one-click", "delivery": alert.id}
    assert event.actor_label == f"unsubscribe link of delivery {alert.id}"
    assert len(notices()) == 1


def test_an_expired_link_is_refused_with_a_clear_page(
    client, registrant, alert, relay, keyring, settings, clock
):
    link = header_link(relay, keyring, settings, clock.at)
    clock.move(days=60, seconds=1)  # subscriptions.LINK_LIFETIME
    response = client.post(link, data=ONE_CLICK)
    assert response.status_code == 400
    assert "This unsubscribe link has expired" in response.get_data(as_text=True)
    page = client.get(link.removesuffix("/one-click"))
    text = one_line(page.get_data(as_text=True))
    assert page.status_code == 400 and "<button" not in page.get_data(as_text=True)
    assert "This unsubscribe link has expired: links in alerts work for 60 days" in text
    assert 'choose "Stop alerts" on your registration page' in text
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    assert events("registry.unsubscribe") == 0 and notices() == []


def test_a_link_cannot_unsubscribe_another_registrant(
    client, registrant, alert, other_maker, settings, clock
):
    other = vetting.add_by_admin(
        OTHER, "Other Ltd", other_maker.cert, None, "t", clock.at, approve=True
    )
    # Signed with our own key, naming the maker's alert but the other registrant.
    crossed = subscriptions.unsubscribe_token(secret_key(settings), alert.id, other.id, clock.at)
    response = client.post(f"/registry/unsubscribe/{crossed}/one-click", data=ONE_CLICK)
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)
    assert not Registrant.get_by_id(other.id).unsubscribed
    assert not Registrant.get_by_id(registrant.id).unsubscribed


def test_the_old_never_expiring_link_is_refused(client, registrant, settings):
    old = URLSafeSerializer(secret_key(settings), salt="forewarn.unsubscribe").dumps(registrant.id)
    response = client.post(f"/registry/unsubscribe/{old}/one-click", data=ONE_CLICK)
    assert response.status_code == 400
    assert client.get(f"/registry/unsubscribe/{old}").status_code == 400
    assert not Registrant.get_by_id(registrant.id).unsubscribed


def test_the_registrant_is_told_by_mail_how_to_turn_alerts_back_on(
    client, registrant, alert, relay, keyring, settings, clock, tmp_path
):
    link = header_link(relay, keyring, settings, clock.at)
    relay.received.clear()
    clock.move(days=3)
    assert client.post(link, data=ONE_CLICK).status_code == 200
    [raw] = send_all(relay, keyring, settings, clock.at, "unsubscribed")
    message = parse(raw)
    assert message["Subject"] == "Alerts stopped" and message["To"] == MAKER
    assert "List-Unsubscribe" not in message
    text, signature = parts_as_sent(raw)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    assert sqop_verifies(text, signature.split(b"\r\n\r\n", 1)[1], cert, tmp_path)
    body = text_of(text)
    assert f"to {MAKER} on 2026-11-28 12:00 UTC" in body
    assert "The unsubscribe link of the alert we sent you on 2026-11-25 12:00 UTC" in body
    assert '"Receive alerts again"' in body and f"{settings.base_url}/registry/status" in body
    assert "use its link until 2027-01-24 12:00 UTC" in " ".join(body.split())  # its end
    assert max(len(line) for line in body.splitlines()) <= 72


def test_once_alerts_are_turned_back_on_an_earlier_alerts_link_no_longer_works(
    client, registrant, alert, relay, keyring, settings, clock
):
    link = header_link(relay, keyring, settings, clock.at)
    assert client.post(link, data=ONE_CLICK).status_code == 200  # someone who saw the headers
    subscriptions.resubscribe(Registrant.get_by_id(registrant.id), clock.move(hours=1))
    again = client.post(link, data=ONE_CLICK)
    assert again.status_code == 400 and "no longer works" in again.get_data(as_text=True)
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    assert len(notices()) == 1


def test_stopping_alerts_from_the_status_page_is_confirmed_by_mail_too(
    client, auth, registrant, relay, keyring, settings, clock
):
    auth.login(MAKER, MAKER_PASSWORD)
    page = client.get("/registry/status")
    client.post(
        "/registry/status/unsubscribe", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert Registrant.get_by_id(registrant.id).unsubscribed
    [notice] = notices()
    assert notice.recipient == MAKER and json.loads(notice.payload)["via"] == "status page"
    assert AuditEvent.get(AuditEvent.action == "registry.unsubscribe").actor.email == MAKER
    [raw] = send_all(relay, keyring, settings, clock.at, "unsubscribed")
    body = text_of(parts_as_sent(raw)[0])
    assert 'You chose "Stop alerts" on your registration page' in body
    assert "Anyone who saw" not in body


def test_one_click_refuses_bad_tokens_and_missing_body(client, registrant, alert, settings):
    token = token_for(alert, settings)
    forged = subscriptions.unsubscribe_token(
        "another secret", alert.id, registrant.id, alert.created_at
    )
    for bad in (token[:-3] + "abc", forged, "nonsense"):
        response = client.post(f"/registry/unsubscribe/{bad}/one-click", data=ONE_CLICK)
        assert response.status_code == 400, bad
    assert client.post(f"/registry/unsubscribe/{token}/one-click", data={}).status_code == 400
    assert not Registrant.get_by_id(registrant.id).unsubscribed
    assert events("registry.unsubscribe") == 0


def test_the_token_is_bound_to_its_purpose(registrant, settings, clock):
    verify_token = proof.verification_token(
        secret_key(settings), registrant.id, registrant.key_id, clock.at
    )
    with pytest.raises(Refused, match="not valid"):
        subscriptions.unsubscribe(verify_token, secret_key(settings), clock.at)


def test_the_page_asks_first_and_its_button_needs_csrf(client, registrant, alert, settings):
    token = token_for(alert, settings)
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
    assert json.loads(notices()[0].payload)["via"] == "link"
    refused = client.get("/registry/unsubscribe/nonsense")
    assert refused.status_code == 400 and "not valid" in refused.get_data(as_text=True)


def test_the_status_page_shows_it_and_resubscribes(
    client, auth, registrant, alert, settings, clock
):
    auth.login(MAKER, MAKER_PASSWORD)
    status = one_line(client.get("/registry/status").get_data(as_text=True))
    assert "You receive alerts" in status and "You unsubscribed" not in status
    subscriptions.unsubscribe(token_for(alert, settings), secret_key(settings), clock.at)
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


def test_resubscribe_needs_a_signed_in_registrant(client, registrant, alert, settings, clock):
    subscriptions.unsubscribe(token_for(alert, settings), secret_key(settings), clock.at)
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/registry/status/resubscribe", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert Registrant.get_by_id(registrant.id).unsubscribed
