"""Password reset by a link sent by mail: for registrants (encrypted to their pinned key) and
for the security team."""

import re
from datetime import timedelta

import pytest

from app.accounts import password_reset
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import AuditEvent, Delivery, User
from app.outbox import sending
from app.registry import proof, vetting
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

MAKER = "psirt@maker.example"
NEW_PASSWORD = "a brand new long password"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


def added_by_admin(maker, clock):
    """A registrant added by an admin: pinned key, no usable password yet."""
    return vetting.add_by_admin(
        MAKER, "Maker Ltd", maker.cert, None, "test", clock.at, approve=True
    )


def send_reset(keyring, settings, clock) -> bytes:
    [delivery] = Delivery.select().where(Delivery.kind == "password-reset")
    sink = SmtpSink()
    try:
        answer = sending.send(
            delivery.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at
        )
        assert answer == "sent"
        return sink.received[0].data
    finally:
        sink.stop()


def decrypted_body(raw: bytes, maker, tmp_path) -> str:
    key = tmp_path / "maker.key"
    key.write_bytes(maker.secret)
    entity = run("sqop", "decrypt", str(key), input=encrypted_payload(raw)).stdout
    return text_of(parts_as_sent(entity)[0])


def token_in(body: str) -> str:
    return re.search(r"/login/reset/(\S+)", body).group(1)


def test_unknown_or_disabled_address_queues_nothing_and_answers_the_same(client, clock, admin_user):
    User.update(active=False).where(User.id == admin_user.id).execute()
    answers = []
    for address in ("nobody@example.org", admin_user.email):
        page = client.get("/login/forgot")
        response = client.post(
            "/login/forgot",
            data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": address},
            follow_redirects=True,
        )
        assert response.status_code == 200
        answers.append(response.get_data(as_text=True))
    assert password_reset.MESSAGE in answers[0]
    assert answers[0] == answers[1]
    assert Delivery.select().where(Delivery.kind == "password-reset").count() == 0
    assert password_reset.request_reset("nobody@example.org", clock.at) is None


def test_the_mail_is_encrypted_to_the_pinned_key_and_says_only_what_to_do(
    client, clock, keyring, settings, maker, tmp_path
):
    added_by_admin(maker, clock)
    page = client.get("/login/forgot")
    response = client.post(
        "/login/forgot",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": MAKER.upper()},
        follow_redirects=True,
    )
    assert password_reset.MESSAGE in response.get_data(as_text=True)
    raw = send_reset(keyring, settings, clock)
    assert parse(raw).get_content_type() == "multipart/encrypted"
    assert b"/login/reset/" not in raw
    assert b"Maker Ltd" not in raw
    body = decrypted_body(raw, maker, tmp_path)
    assert body.lstrip().startswith("To choose a new password")
    assert "before 2026-11-25 13:00 UTC" in body
    assert "Maker Ltd" not in body and maker.fingerprint not in body


def test_an_admin_added_registrant_sets_a_password_through_the_link_once(
    client, auth, clock, keyring, settings, maker, tmp_path
):
    added_by_admin(maker, clock)
    assert auth.login(MAKER, NEW_PASSWORD).status_code == 401
    password_reset.request_reset(MAKER, clock.at)
    token = token_in(decrypted_body(send_reset(keyring, settings, clock), maker, tmp_path))
    page = client.get(f"/login/reset/{token}")
    assert page.status_code == 200 and MAKER in page.get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    }
    response = client.post(f"/login/reset/{token}", data=form)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Your password was changed" in client.get("/login").get_data(as_text=True)
    again = client.get(f"/login/reset/{token}")
    assert again.status_code == 400
    assert "not valid any more" in again.get_data(as_text=True)
    assert auth.login(MAKER, NEW_PASSWORD).status_code == 302
    [event] = AuditEvent.select().where(AuditEvent.action == "account.password_reset")
    assert event.target == MAKER


def test_the_link_lasts_one_hour_by_our_clock(db, clock, settings, admin_user):
    token = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    with pytest.raises(Refused, match="expired"):
        password_reset.reset(
            token, NEW_PASSWORD, secret_key(settings), clock.at + timedelta(minutes=61)
        )
    user = password_reset.reset(
        token, NEW_PASSWORD, secret_key(settings), clock.at + timedelta(minutes=59)
    )
    assert user.id == admin_user.id


def test_a_used_token_is_refused_even_if_the_password_came_back(db, clock, settings, admin_user):
    token = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    password_reset.reset(token, NEW_PASSWORD, secret_key(settings), clock.at)
    User.update(password_hash=admin_user.password_hash).where(User.id == admin_user.id).execute()
    with pytest.raises(Refused, match="already used"):
        password_reset.reset(token, "yet another long password", secret_key(settings), clock.at)


def test_a_password_change_kills_older_links(db, clock, settings, admin_user):
    first = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    other = password_reset.reset_token(
        secret_key(settings), admin_user, clock.at + timedelta(seconds=1)
    )
    later = clock.at + timedelta(seconds=2)
    assert password_reset.check(other, secret_key(settings), later).id == admin_user.id
    password_reset.reset(first, NEW_PASSWORD, secret_key(settings), later)
    with pytest.raises(Refused, match="not valid any more"):
        password_reset.reset(other, "yet another long password", secret_key(settings), later)


def test_short_passwords_tampered_and_foreign_tokens_are_refused(db, clock, settings, admin_user):
    token = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    with pytest.raises(Refused, match="at least 12"):
        password_reset.reset(token, "short", secret_key(settings), clock.at)
    with pytest.raises(Refused, match="not valid"):
        password_reset.reset(token[:-3] + "abc", NEW_PASSWORD, secret_key(settings), clock.at)
    forged = password_reset.reset_token("another secret", admin_user, clock.at)
    with pytest.raises(Refused, match="not valid"):
        password_reset.reset(forged, NEW_PASSWORD, secret_key(settings), clock.at)
    verify_salt = proof.verification_token(secret_key(settings), admin_user.id, 1, clock.at)
    with pytest.raises(Refused, match="not valid"):
        password_reset.reset(verify_salt, NEW_PASSWORD, secret_key(settings), clock.at)
    # the short password did not use the link up
    assert password_reset.reset(token, NEW_PASSWORD, secret_key(settings), clock.at)


def test_the_web_form_refuses_short_passwords_with_400(client, clock, settings, admin_user):
    token = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    page = client.get(f"/login/reset/{token}")
    response = client.post(
        f"/login/reset/{token}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "password": "short",
            "confirm": "short",
        },
    )
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert client.get("/login/reset/nonsense").status_code == 400


def test_a_reset_ends_every_other_session(app, clock, settings, admin_user):
    elsewhere = app.test_client()
    from tests.conftest import Auth

    Auth(elsewhere).login(admin_user.email, PASSWORD)
    assert elsewhere.get("/team/").status_code == 200
    token = password_reset.reset_token(secret_key(settings), admin_user, clock.at)
    password_reset.reset(token, NEW_PASSWORD, secret_key(settings), clock.at)
    assert elsewhere.get("/team/").status_code == 302


def test_a_team_member_without_a_key_gets_a_signed_mail(db, clock, keyring, settings, admin_user):
    password_reset.request_reset(admin_user.email, clock.at)
    raw = send_reset(keyring, settings, clock)
    message = parse(raw)
    assert message.get_content_type() == "multipart/signed"
    body = text_of(parts_as_sent(raw)[0])
    token = token_in(body)
    assert password_reset.check(token, secret_key(settings), clock.at).id == admin_user.id
