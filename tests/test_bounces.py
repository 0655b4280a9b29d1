"""Alert bounces come back to the VERP address: matched to their delivery, never decrypted."""

import json

from app import bounces, inbound, reports
from app.models import AuditEvent, Delivery, InboundMessage, User
from mail.intake import accepts_recipient

DSN = (
    b"From: MAILER-DAEMON@mx.maker.example\r\nTo: security-bounces+{id}@localhost\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Final-Recipient: rfc822; psirt@maker.example\r\nAction: failed\r\nStatus: {status}\r\n"
    b"--b--\r\n"
)


def alert_delivery(clock, user=None):
    return Delivery.create(
        kind="alert",
        recipient="psirt@maker.example",
        user=user,
        payload=json.dumps({"registrant": 1}),
        state="sent",
        created_at=clock.at,
    )


def bounce(delivery, status=b"5.1.1"):
    return DSN.replace(b"{id}", str(delivery.id).encode()).replace(b"{status}", status)


def test_the_intake_accepts_the_bounce_address():
    assert accepts_recipient("security-bounces+42@localhost", "security@localhost")
    assert not accepts_recipient("security-other+42@localhost", "security@localhost")


def test_a_hard_bounce_marks_its_delivery_without_decrypting_anything(db, clock, keyring, settings):
    delivery = alert_delivery(clock)
    message_id = inbound.store(
        bounce(delivery), "", [f"security-bounces+{delivery.id}@localhost"], clock.at
    )
    assert reports.process_inbound(message_id, keyring, settings, clock.at) == "bounce"
    marked = Delivery.get_by_id(delivery.id)
    assert marked.state == "bounced" and marked.last_answer == "bounce: 5.1.1 (permanent)"
    assert InboundMessage.get_by_id(message_id).error == f"hard bounce of delivery {delivery.id}"
    assert Delivery.select().count() == 1  # no acknowledgement, no forward
    assert AuditEvent.get(AuditEvent.action == "delivery.bounce").target == "psirt@maker.example"


def test_a_temporary_bounce_is_noted_but_the_delivery_stands(db, clock):
    delivery = alert_delivery(clock)
    assert bounces.record(delivery.id, bounce(delivery, b"4.2.2"), clock.at) == "soft"
    assert Delivery.get_by_id(delivery.id).state == "sent"


def test_repeated_hard_bounces_flag_the_recipient(db, clock, admin_user):
    user = User.get_by_id(admin_user.id)
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG - 1):
        bounces.record(alert_delivery(clock, user).id, b"Status: 5.1.1\r\n", clock.at)
    assert list(bounces.repeatedly_bouncing()) == []
    bounces.record(alert_delivery(clock, user).id, b"Status: 5.1.1\r\n", clock.at)
    [(user_id, count)] = [(row.user_id, row.bounces) for row in bounces.repeatedly_bouncing()]
    assert (user_id, count) == (user.id, bounces.HARD_BOUNCES_TO_FLAG)


def test_admins_see_recipients_that_keep_bouncing(client, auth, db, clock, admin_user):
    for _ in range(bounces.HARD_BOUNCES_TO_FLAG):
        bounces.record(
            alert_delivery(clock, User.get_by_id(admin_user.id)).id, b"Status: 5.1.1\r\n", clock.at
        )
    auth.login(admin_user.email, "correct horse battery staple")
    page = client.get("/admin/registrants/").get_data(as_text=True)
    assert f"{admin_user.email}: {bounces.HARD_BOUNCES_TO_FLAG} permanent bounces" in page
