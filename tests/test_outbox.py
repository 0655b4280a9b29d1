"""The outbox: deliveries sent over a real SMTP relay (or to a Maildir), retried, never lost."""

import json
import mailbox
import threading
from datetime import timedelta

import pytest

from app.models import Correspondence, Delivery, PublicKey, User, Vulnerability
from app.outbox import sending
from mail.transport import MaildirTransport, SmtpTransport
from tests.conftest import PASSWORD, free_port
from tests.openpgp import (
    body_of,
    encrypted_payload,
    make_sqop_key,
    parse,
    parts_as_sent,
    run,
    sqop_verifies,
    text_of,
)
from tests.smtpsink import SmtpSink

SECRET_DETAIL = "heap overflow in the BLE stack's L2CAP reassembly"


@pytest.fixture
def sink():
    server = SmtpSink()
    yield server
    server.stop()


@pytest.fixture
def relay(sink):
    return SmtpTransport("127.0.0.1", sink.port, timeout=10)


@pytest.fixture
def reporter_key(tmp_path_factory):
    return make_sqop_key(tmp_path_factory.mktemp("rk") / "k", "Ada <ada@example.net>")


@pytest.fixture
def vulnerability(db, clock):
    return Vulnerability.create(
        tracking_id="SEC-2026-0001",
        title=SECRET_DETAIL,
        reporter_email="ada@example.net",
        reporter_name="Ada",
        reported_at=clock.at,
        embargo_until=clock.at + timedelta(days=90),
        fix_due=clock.at + timedelta(days=30),
        created_at=clock.at,
        updated_at=clock.at,
    )


def delivery(vulnerability, clock, kind="ack", recipient="ada@example.net", **payload):
    return Delivery.create(
        kind=kind,
        vulnerability=vulnerability,
        recipient=recipient,
        payload=json.dumps({"encrypted": False, **payload}),
        next_attempt_at=clock.at,
        created_at=clock.at,
    )


def test_a_sent_delivery_records_the_relays_answer_and_a_message_id(
    vulnerability, clock, keyring, settings, sink, relay
):
    queued = delivery(vulnerability, clock)
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "sent"
    sent = Delivery.get_by_id(queued.id)
    assert (sent.state, sent.attempts, sent.sent_at) == ("sent", 1, clock.at)
    assert sent.last_answer.startswith("250")
    assert sent.message_id == f"<forewarn.delivery.{queued.id}@localhost>"
    [received] = sink.received
    assert received.recipients == ["ada@example.net"]
    assert parse(received.data)["Message-ID"] == sent.message_id
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "skipped"
    assert len(sink.received) == 1


def test_a_temporary_refusal_is_retried_later_with_the_same_message_id(
    vulnerability, clock, keyring, settings, sink, relay
):
    queued = delivery(vulnerability, clock)
    sink.replies.append("451 4.3.0 try later")
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "retry"
    waiting = Delivery.get_by_id(queued.id)
    assert waiting.state == "queued" and waiting.last_answer.startswith("451")
    assert waiting.next_attempt_at == clock.at + timedelta(minutes=1)
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "skipped"  # not yet due
    clock.move(minutes=1)
    assert [d.id for d in sending.due(clock.at)] == [queued.id]
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "sent"
    assert parse(sink.received[0].data)["Message-ID"] == waiting.message_id


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [("550 5.1.1 no such user", "failed"), ("552 5.2.2 mailbox full", "retry")],
)
def test_5xx_is_permanent_except_552(
    vulnerability, clock, keyring, settings, sink, relay, reply, outcome
):
    queued = delivery(vulnerability, clock)
    sink.replies.append(reply)
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == outcome
    assert Delivery.get_by_id(queued.id).last_answer == reply


def test_an_unreachable_relay_is_retried_with_backoff_then_given_up_after_days(
    vulnerability, clock, keyring, settings
):
    down = SmtpTransport("127.0.0.1", free_port(), timeout=2)
    queued = delivery(vulnerability, clock)
    waits = []
    for _ in range(4):
        assert sending.send(queued.id, keyring, settings, down, clock.at) == "retry"
        row = Delivery.get_by_id(queued.id)
        waits.append(row.next_attempt_at - clock.at)
        clock.move(seconds=(row.next_attempt_at - clock.at).total_seconds())
    assert waits == [timedelta(minutes=m) for m in (1, 5, 15, 60)]
    clock.move(days=5)
    assert sending.send(queued.id, keyring, settings, down, clock.at) == "failed"
    assert Delivery.get_by_id(queued.id).last_answer.startswith("gave up after 5 attempts")


def test_the_maildir_gets_the_exact_bytes(vulnerability, clock, keyring, settings, tmp_path):
    maildir = MaildirTransport(tmp_path / "mail-out")
    queued = delivery(vulnerability, clock)
    assert sending.send(queued.id, keyring, settings, maildir, clock.at) == "sent"
    [key] = mailbox.Maildir(str(tmp_path / "mail-out")).keys()
    stored = (tmp_path / "mail-out" / "new" / key).read_bytes()
    assert parse(stored)["Message-ID"] == Delivery.get_by_id(queued.id).message_id
    assert stored.endswith(b"--\r\n")


def test_an_ack_without_a_reporter_key_is_signed_and_reveals_only_the_tracking_id(
    vulnerability, clock, keyring, settings, sink, relay, tmp_path
):
    sending.send(delivery(vulnerability, clock).id, keyring, settings, relay, clock.at)
    raw = sink.received[0].data
    assert SECRET_DETAIL.encode() not in raw
    message = parse(raw)
    assert message["Subject"] == "Security report SEC-2026-0001"
    assert message["Reply-To"] == "security+SEC-2026-0001@localhost"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message.get_content_type() == "multipart/signed"
    text, signature = parts_as_sent(raw)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    assert sqop_verifies(text, body_of(signature), cert, tmp_path)
    body = text_of(text)
    assert "We track it as SEC-2026-0001" in body
    assert keyring.fingerprint() in body  # how to encrypt next time
    assert all(len(line) <= 72 for line in body.splitlines())


def test_an_ack_to_a_reporter_with_a_key_is_encrypted_to_them(
    vulnerability, clock, keyring, settings, sink, relay, reporter_key, tmp_path
):
    key = PublicKey.create(
        fingerprint=reporter_key.fingerprint,
        armored=reporter_key.cert.read_text(),
        created_at=clock.at,
    )
    Vulnerability.update(reporter_key=key).execute()
    sending.send(
        delivery(vulnerability, clock, encrypted=True).id, keyring, settings, relay, clock.at
    )
    raw = sink.received[0].data
    assert parse(raw).get_content_type() == "multipart/encrypted"
    assert SECRET_DETAIL.encode() not in raw
    entity = run("sqop", "decrypt", str(reporter_key.secret), input=encrypted_payload(raw)).stdout
    text, signature = parts_as_sent(entity)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    assert sqop_verifies(text, body_of(signature), cert, tmp_path)
    assert SECRET_DETAIL in parse(text)["Subject"]  # the real subject, protected inside
    assert "encrypt anything further" not in text_of(text)


def team_member(email, clock):
    from app.accounts import team

    return team.create_team_account(email, PASSWORD, "team", clock.at, by="t").user


def test_a_team_member_without_a_key_gets_a_notice_never_the_report(
    vulnerability, clock, keyring, settings, sink, relay
):
    member = team_member("bob@example.org", clock)
    entry = Correspondence.create(
        vulnerability=vulnerability,
        direction="in",
        at=clock.at,
        subject=SECRET_DETAIL,
        text=f"Details: {SECRET_DETAIL}",
    )
    queued = Delivery.create(
        kind="team-forward",
        vulnerability=vulnerability,
        user=member,
        recipient=member.email,
        created_at=clock.at,
        payload=json.dumps({"correspondence": entry.id}),
    )
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "sent"
    raw = sink.received[0].data
    assert SECRET_DETAIL.encode() not in raw
    body = text_of(parts_as_sent(raw)[0])
    assert "http://127.0.0.1:8000/team/vulnerabilities/SEC-2026-0001" in body
    assert "no usable OpenPGP key" in body


def test_a_team_member_with_a_key_gets_the_report_encrypted(
    vulnerability, clock, keyring, settings, sink, relay, tmp_path
):
    member = team_member("bob@example.org", clock)
    key = make_sqop_key(tmp_path / "bob", "Bob <bob@example.org>")
    PublicKey.create(
        fingerprint=key.fingerprint, armored=key.cert.read_text(), owner=member, created_at=clock.at
    )
    entry = Correspondence.create(
        vulnerability=vulnerability,
        direction="in",
        at=clock.at,
        subject="Overflow",
        text=f"Details: {SECRET_DETAIL}",
    )
    queued = Delivery.create(
        kind="team-forward",
        vulnerability=vulnerability,
        user=member,
        recipient=member.email,
        created_at=clock.at,
        payload=json.dumps({"correspondence": entry.id}),
    )
    sending.send(queued.id, keyring, settings, relay, clock.at)
    raw = sink.received[0].data
    assert SECRET_DETAIL.encode() not in raw
    entity = run("sqop", "decrypt", str(key.secret), input=encrypted_payload(raw)).stdout
    body = text_of(parts_as_sent(entity)[0])
    assert f"Details: {SECRET_DETAIL}" in body
    assert body.startswith("New report SEC-2026-0001: read and triage it.")
    assert User.select().count() == 1


def test_a_team_reply_without_a_reporter_key_sends_a_notice_not_the_text(
    vulnerability, clock, keyring, settings, sink, relay
):
    member = team_member("bob@example.org", clock)
    from app.reports import replies as reports

    reports.reply_to_reporter(vulnerability, member, f"About the {SECRET_DETAIL}", clock.at)
    [queued] = Delivery.select().where(Delivery.kind == "reply")
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "sent"
    raw = sink.received[0].data
    assert SECRET_DETAIL.encode() not in raw
    message = parse(raw)
    assert message["Auto-Submitted"] is None  # a person wrote it
    body = text_of(parts_as_sent(raw)[0])
    assert "reply to this mail with your public key" in body.replace("\n", " ")


def test_a_team_reply_to_a_reporter_with_a_key_carries_the_text_encrypted(
    vulnerability, clock, keyring, settings, sink, relay, reporter_key
):
    from app.reports import replies as reports

    key = PublicKey.create(
        fingerprint=reporter_key.fingerprint,
        armored=reporter_key.cert.read_text(),
        created_at=clock.at,
    )
    Vulnerability.update(reporter_key=key).execute()
    member = team_member("bob@example.org", clock)
    entry = reports.reply_to_reporter(
        Vulnerability.get(), member, f"About the {SECRET_DETAIL}", clock.at
    )
    assert entry.encrypted
    [queued] = Delivery.select().where(Delivery.kind == "reply")
    sending.send(queued.id, keyring, settings, relay, clock.at)
    raw = sink.received[0].data
    assert SECRET_DETAIL.encode() not in raw
    entity = run("sqop", "decrypt", str(reporter_key.secret), input=encrypted_payload(raw)).stdout
    assert f"About the {SECRET_DETAIL}" in text_of(parts_as_sent(entity)[0])


def test_a_batch_claims_only_what_is_due_and_sends_each_once(db, clock, settings, keyring):
    due = [
        Delivery.create(kind="unreadable", recipient=f"r{n}@example.org", created_at=clock.at)
        for n in range(3)
    ]
    later = Delivery.create(
        kind="unreadable",
        recipient="later@example.org",
        created_at=clock.at,
        next_attempt_at=clock.at + timedelta(hours=1),
    )
    sink = SmtpSink()
    try:
        transport = SmtpTransport("127.0.0.1", sink.port)
        ids = [d.id for d in due] + [later.id, 10_000]
        assert sending.send_many(ids, keyring, settings, transport, lambda: clock.at) == {"sent": 3}
        assert sending.send_many(ids, keyring, settings, transport, lambda: clock.at) == {}
        assert sorted(r.recipients[0] for r in sink.received) == [d.recipient for d in due]
    finally:
        sink.stop()
    assert Delivery.get_by_id(later.id).state == "queued"


def test_two_workers_claiming_the_same_delivery_at_once_never_both_get_it(db, clock):
    """Each claim is one UPDATE on its own connection; of two racing for a due delivery, exactly
    one gets it (SQLite: the write lock; PostgreSQL: the WHERE re-checked on the claimed row)."""
    rows = [
        Delivery.create(kind="unreadable", recipient=f"r{n}@example.org", created_at=clock.at)
        for n in range(30)
    ]
    start = threading.Barrier(2)
    won: dict[str, list[int]] = {"a": [], "b": []}

    def worker(name: str) -> None:
        with db.connection_context():  # a connection of this thread's own
            for row in rows:
                start.wait(timeout=30)
                if sending._claim(row.id, clock.at) is not None:
                    won[name].append(row.id)

    threads = [threading.Thread(target=worker, args=(name,)) for name in won]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(won["a"] + won["b"]) == [row.id for row in rows]  # each once, none lost
    assert not set(won["a"]) & set(won["b"])
    assert {Delivery.get_by_id(row.id).attempts for row in rows} == {1}
