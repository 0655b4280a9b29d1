"""Alert bounces come back to the VERP address: matched to their delivery by a token only we
can make, applied only to mail that was sent, never decrypted.

The end-to-end tests speak real SMTP to the intake, run the real jobs on the real Redis and
send the alerts over a real relay (tests/smtpsink.py)."""

import json
import re

import pytest

from app.core import clock as app_clock
from app.models import AuditEvent, Delivery, InboundMessage, User, Vulnerability
from app.registry import alerts, vetting
from app.reports import bounces, inbound, processing
from app.vulns import lifecycle
from app.workers import jobs, reconcile
from app.workers.queue import inbound_queue
from mail import addresses
from mail.intake import IntakePolicy
from tests import mailcorpus as mc
from tests.conftest import run_jobs, wait_for
from tests.smtpsink import SmtpSink
from tests.test_intake import RunningIntake, send

MAKER = "psirt@maker.example"
CLI = lifecycle.Actor(None, "test")
DSN = (
    b"From: MAILER-DAEMON@mx.maker.example\r\nTo: {to}\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Final-Recipient: rfc822; psirt@maker.example\r\nAction: failed\r\nStatus: {status}\r\n"
    b"--b--\r\n"
)


def dsn(to: str, status: bytes = b"5.1.1") -> bytes:
    return DSN.replace(b"{to}", to.encode()).replace(b"{status}", status)


def alert_delivery(clock, user=None, state="sent"):
    return Delivery.create(
        kind="alert",
        recipient=MAKER,
        user=user,
        payload=json.dumps({"registrant": 1}),
        state=state,
        created_at=clock.at,
        sent_at=clock.at if state == "sent" else None,
    )


def held(message_id: int) -> InboundMessage:
    return InboundMessage.get_by_id(message_id)


# -- end to end: the intake, the jobs, the relay -------------------------------------------------


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


@pytest.fixture
def relay():
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture
def desk(env, settings, db, redis_conn, keyring, relay, clock, maker, monkeypatch):
    """An approved registrant, an accepted vulnerability, and an intake whose jobs run in this
    process and send over the test relay."""
    for name, value in {**env, "FOREWARN_SMTP_RELAY": f"127.0.0.1:{relay.port}"}.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    vetting.add_by_admin(MAKER, "Maker Ltd", maker.cert, None, "t", clock.at, approve=True)
    v = lifecycle.set_status(
        lifecycle.create("Overflow in the parser", "Details.", CLI, clock.at, settings),
        "accepted",
        CLI,
        clock.at,
    )
    policy = IntakePolicy(
        security_address=settings.security_address, max_message_bytes=settings.max_message_bytes
    )
    intake = RunningIntake(
        policy,
        inbound.committer(db, app_clock.now),
        lambda ids: reconcile.queue_new_inbound(redis_conn, ids),
    )

    class Desk:
        def alert(self) -> Delivery:
            """Queue the next advisory version to the registrant (not sent yet)."""
            advisory = alerts.send(v, None, "t", clock.at, settings)
            return Delivery.get(Delivery.advisory == advisory)

        def send_due(self) -> None:
            reconcile.queue_due_deliveries(redis_conn, clock.at)
            run_jobs(redis_conn)

        def envelope_of(self, delivery: Delivery) -> str:
            [received] = [r for r in relay.received if str(delivery.id) in r.envelope_from]
            return received.envelope_from

        def bounce(self, to: str, status: bytes = b"5.1.1") -> InboundMessage:
            """A DSN over SMTP to `to`, with the null sender, processed by the jobs."""
            assert send(intake.port, dsn(to, status), to=to, sender="") == {}
            # The writer thread queues the job just after the 250.
            wait_for(lambda: inbound_queue(redis_conn).count, what="the processing job")
            run_jobs(redis_conn)
            return InboundMessage.select().order_by(InboundMessage.id.desc()).first()

    yield Desk()
    intake.stop()
    jobs._settings.cache_clear()


def test_a_forged_bounce_for_a_queued_alert_leaves_it_queued_and_it_is_then_sent(
    desk, relay, settings, clock
):
    delivery = desk.alert()
    relay.replies.append("451 4.3.0 relay busy, try later")  # the relay is down
    desk.send_due()
    assert Delivery.get_by_id(delivery.id).state == "queued"  # to be retried
    domain = settings.security_address.rpartition("@")[2]
    forged = [
        f"security-bounces+{delivery.id}@{domain}",  # the old form, ids are sequential
        f"security-bounces+{delivery.id}-{'a' * 16}@{domain}",  # a guessed token
    ]
    for address in forged:
        message = desk.bounce(address)
        assert message.state == "quarantined"
        assert message.error.startswith(f"unmatched bounce to {address}")
    assert Delivery.get_by_id(delivery.id).state == "queued"
    clock.move(minutes=5)
    desk.send_due()  # the relay is back
    assert Delivery.get_by_id(delivery.id).state == "sent"
    assert [r.recipients for r in relay.received] == [[MAKER]]


def test_a_bounce_with_a_wrong_token_changes_nothing_and_is_kept(desk, client, auth, admin_user):
    delivery = desk.alert()
    desk.send_due()
    envelope = desk.envelope_of(delivery)
    token = envelope.split("-")[-1].split("@")[0]
    wrong = envelope.replace(token, token[:-1] + ("b" if token[-1] != "b" else "c"))
    reports_before = Vulnerability.select().count()
    message = desk.bounce(wrong)
    assert Delivery.get_by_id(delivery.id).state == "sent"
    assert message.state == "quarantined"
    assert f"a wrong token for delivery {delivery.id}; not applied" in message.error
    assert Vulnerability.select().count() == reports_before  # a bounce never starts a report
    assert not AuditEvent.select().where(AuditEvent.action == "delivery.bounce").exists()
    auth.login(admin_user.email, "correct horse battery staple")
    page = client.get("/team/messages/held").get_data(as_text=True)
    assert f"unmatched bounce to {wrong}" in page  # for a human to see


def test_a_bounce_to_the_address_an_alert_went_out_from_marks_it_bounced(desk, settings):
    delivery = desk.alert()
    desk.send_due()
    envelope = desk.envelope_of(delivery)
    local, _, domain = settings.security_address.rpartition("@")
    assert re.fullmatch(rf"{local}-bounces\+{delivery.id}-[a-z2-7]{{16}}@{domain}", envelope)
    message = desk.bounce(envelope)
    marked = Delivery.get_by_id(delivery.id)
    assert marked.state == "bounced" and marked.last_answer == "bounce: 5.1.1 (permanent)"
    assert (message.state, message.error) == ("processed", f"hard bounce of delivery {delivery.id}")
    assert AuditEvent.get(AuditEvent.action == "delivery.bounce").target == MAKER


def test_old_style_bounce_addresses_without_a_token_are_not_honoured(desk, settings):
    delivery = desk.alert()
    desk.send_due()
    domain = settings.security_address.rpartition("@")[2]
    message = desk.bounce(f"security-bounces+{delivery.id}@{domain}")
    assert Delivery.get_by_id(delivery.id).state == "sent"
    assert message.state == "quarantined"
    assert f"no token for delivery {delivery.id}" in message.error


def test_forged_bounces_do_not_make_admins_see_a_registrant_as_bouncing(
    desk, settings, client, auth, admin_user
):
    domain = settings.security_address.rpartition("@")[2]
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG):
        delivery = desk.alert()
        desk.send_due()
        desk.bounce(f"security-bounces+{delivery.id}@{domain}")
    assert Delivery.select().where(Delivery.state == "sent").count() == 3
    auth.login(admin_user.email, "correct horse battery staple")
    page = client.get("/admin/registrants/").get_data(as_text=True)
    assert "permanent bounces" not in page


# -- the rules, one by one -----------------------------------------------------------------------


def test_the_intake_accepts_the_bounce_address_whatever_follows():
    # Kept even when forged, so that a human can see it (app.reports.bounces decides).
    assert addresses.accepts("security-bounces+42-abc@localhost", "security@localhost")
    assert addresses.accepts("security-bounces+42@localhost", "security@localhost")
    assert not addresses.accepts("security-other+42@localhost", "security@localhost")


def test_a_hard_bounce_marks_its_sent_delivery_without_decrypting_anything(
    db, clock, keyring, settings
):
    delivery = alert_delivery(clock)
    to = bounces.address(delivery.id, settings)
    message_id = inbound.store(dsn(to), "", [to], clock.at)
    assert processing.process_inbound(message_id, keyring, settings, clock.at) == "bounce"
    marked = Delivery.get_by_id(delivery.id)
    assert marked.state == "bounced" and marked.last_answer == "bounce: 5.1.1 (permanent)"
    assert held(message_id).error == f"hard bounce of delivery {delivery.id}"
    assert Delivery.select().count() == 1  # no acknowledgement, no forward
    assert AuditEvent.get(AuditEvent.action == "delivery.bounce").target == MAKER


def test_the_token_is_short_lowercase_and_depends_on_the_secret_and_the_id(settings):
    token = bounces.token(7, "secret one")
    assert re.fullmatch(r"[a-z2-7]{16}", token)  # 80 bits
    assert token != bounces.token(8, "secret one") and token != bounces.token(7, "secret two")


def test_a_valid_token_is_still_refused_for_mail_not_sent(db, clock, settings):
    for state in ("queued", "failed"):
        delivery = alert_delivery(clock, state=state)
        bounce = bounces.delivery_of([bounces.address(delivery.id, settings)], settings)
        assert bounce.delivery_id == delivery.id
        state_after, note = bounces.record(bounce, dsn("x"), clock.at)
        assert state_after == "quarantined"
        assert f"delivery {delivery.id} is {state}, not sent; not applied" in note
        assert Delivery.get_by_id(delivery.id).state == state
    unknown = bounces.delivery_of([bounces.address(999, settings)], settings)
    assert bounces.record(unknown, dsn("x"), clock.at)[0] == "quarantined"


def test_the_bare_bounce_address_and_garbage_after_it_never_start_a_report(
    db, clock, keyring, settings
):
    for to in ("security-bounces@localhost", "security-bounces+nonsense@localhost"):
        message_id = inbound.store(dsn(to), "", [to], clock.at)
        assert processing.process_inbound(message_id, keyring, settings, clock.at) == "bounce"
        assert held(message_id).state == "quarantined"
    assert Vulnerability.select().count() == 0


def test_a_temporary_bounce_is_noted_but_the_delivery_stands(db, clock, settings):
    delivery = alert_delivery(clock)
    bounce = bounces.delivery_of([bounces.address(delivery.id, settings)], settings)
    assert bounces.record(bounce, dsn("x", b"4.2.2"), clock.at)[1].startswith("soft bounce")
    assert Delivery.get_by_id(delivery.id).state == "sent"


def hard_bounce(delivery, settings, at):
    bounce = bounces.delivery_of([bounces.address(delivery.id, settings)], settings)
    return bounces.record(bounce, b"Status: 5.1.1\r\n", at)


def test_repeated_hard_bounces_flag_the_recipient(db, clock, admin_user, settings):
    user = User.get_by_id(admin_user.id)
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG - 1):
        hard_bounce(alert_delivery(clock, user), settings, clock.at)
    assert list(bounces.repeatedly_bouncing()) == []
    hard_bounce(alert_delivery(clock, user), settings, clock.at)
    [(user_id, count)] = [(row.user_id, row.bounces) for row in bounces.repeatedly_bouncing()]
    assert (user_id, count) == (user.id, bounces.HARD_BOUNCES_TO_FLAG)


def test_deliveries_cancelled_before_they_were_sent_do_not_count_as_bouncing(db, clock, admin_user):
    # What forged bounces left behind before they were checked: bounced, never sent.
    user = User.get_by_id(admin_user.id)
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG):
        alert_delivery(clock, user, state="bounced")
    assert list(bounces.repeatedly_bouncing()) == []


def test_admins_see_recipients_that_keep_bouncing(client, auth, db, clock, admin_user, settings):
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG):
        hard_bounce(alert_delivery(clock, User.get_by_id(admin_user.id)), settings, clock.at)
    auth.login(admin_user.email, "correct horse battery staple")
    page = client.get("/admin/registrants/").get_data(as_text=True)
    assert f"{admin_user.email}: {bounces.HARD_BOUNCES_TO_FLAG} permanent bounces" in page
