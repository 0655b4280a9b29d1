"""The SMTP intake in real SMTP conversations: recipients, sizes, limits, and durable-before-250."""

import asyncio
import hashlib
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import pytest

from app.core import clock as app_clock
from app.models import InboundMessage
from app.reports import inbound
from app.workers import reconcile
from mail import addresses
from mail.intake import (
    GroupCommitter,
    IntakeHandler,
    IntakePolicy,
    protocol_factory,
)
from tests.conftest import wait_for
from tests.smtpsink import LoopServer

SECURITY = "security@example.org"


class RunningIntake(LoopServer):
    """The intake as `forewarn intake` wires it (a GroupCommitter), on a loop in a thread."""

    def __init__(self, policy, commit, after_commit, lmtp=False, tls_context=None):
        self.committer = GroupCommitter(commit, after_commit)
        handler = IntakeHandler(policy, self.committer.store)
        super().__init__(
            protocol_factory(handler, "example.org", lmtp=lmtp, tls_context=tls_context)
        )

    def stop(self):
        super().stop()
        self.committer.close()


@pytest.fixture
def start_intake(db, redis_conn, clock):
    running = []

    def start(after_commit=None, lmtp=False, tls_context=None, **policy):
        def default_after_commit(ids):
            reconcile.queue_new_inbound(redis_conn, ids)

        settings = {"security_address": SECURITY, "max_message_bytes": 200_000, **policy}
        intake = RunningIntake(
            IntakePolicy(**settings),
            inbound.committer(db, app_clock.now),
            after_commit or default_after_commit,
            lmtp=lmtp,
            tls_context=tls_context,
        )
        running.append(intake)
        return intake

    yield start
    for intake in running:
        intake.stop()


def report(body="The parser overflows on a long header.\n", subject="Overflow in parser"):
    message = EmailMessage()
    message["From"] = "Ada Reporter <ada@example.net>"
    message["To"] = SECURITY
    message["Subject"] = subject
    message["Message-ID"] = "<r1@example.net>"
    message.set_content(body)
    return message.as_bytes().replace(b"\n", b"\r\n")


def send(port, raw, to=SECURITY, sender="ada@example.net"):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        return smtp.sendmail(sender, [to], raw)


def test_recipients_are_the_security_address_and_its_plus_addresses():
    assert addresses.accepts("security@example.org", SECURITY)
    assert addresses.accepts("<Security@EXAMPLE.org>", SECURITY)
    assert addresses.accepts("security+SEC-2026-0001@example.org", SECURITY)
    assert not addresses.accepts("securityx@example.org", SECURITY)
    assert not addresses.accepts("security@example.com", SECURITY)
    assert not addresses.accepts("postmaster@example.org", SECURITY)


def test_an_accepted_message_is_stored_exactly_as_received_and_queued(
    start_intake, db, redis_conn, clock
):
    intake = start_intake()
    raw = report()
    assert send(intake.port, raw, to="security+SEC-2026-0007@example.org") == {}
    stored = InboundMessage.get()
    assert bytes(stored.raw) == raw
    assert stored.sha256 == hashlib.sha256(raw).hexdigest()
    assert stored.envelope_from == "ada@example.net"
    assert stored.envelope_to == "security+SEC-2026-0007@example.org"
    assert stored.received_at == clock.at
    assert stored.state == "received"
    from app.workers import queue

    # Queued by the writer thread right after the commit (the 250 does not wait for Redis).
    wait_for(
        lambda: queue.inbound_queue(redis_conn).job_ids == [f"inbound-{stored.id}"],
        what="the processing job",
    )


def test_unknown_recipients_get_550(start_intake, db):
    intake = start_intake()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
        send(intake.port, report(), to="webmaster@example.org")
    code, text = excinfo.value.recipients["webmaster@example.org"]
    assert code == 550 and text.startswith(b"5.1.1")
    assert InboundMessage.select().count() == 0


def test_a_message_over_the_limit_gets_552_and_the_session_goes_on(start_intake, db):
    intake = start_intake(max_message_bytes=50_000)
    big = report(body="x" * 70 + "\n") * 1000
    with smtplib.SMTP("127.0.0.1", intake.port, timeout=10) as smtp:
        # Declared with SIZE: refused at MAIL FROM.
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            smtp.sendmail("ada@example.net", [SECURITY], big)
        assert excinfo.value.smtp_code == 552
        # Undeclared: the data is drained and refused at its end, the session stays usable.
        smtp.ehlo()
        assert smtp.mail("ada@example.net")[0] == 250
        assert smtp.rcpt(SECURITY)[0] == 250
        assert smtp.data(big)[0] == 552
        assert smtp.sendmail("ada@example.net", [SECURITY], report()) == {}
    assert InboundMessage.select().count() == 1


def test_lines_longer_than_rfc_5321_allows_are_accepted(start_intake, db):
    intake = start_intake()
    raw = b"From: ada@example.net\r\nSubject: long\r\n\r\n" + b"A" * 20_000 + b"\r\n"
    assert send(intake.port, raw) == {}
    assert bytes(InboundMessage.get().raw) == raw


def test_a_storage_failure_answers_451_never_250(start_intake, db):
    intake = start_intake()
    db.execute_sql("ALTER TABLE inbound_message RENAME TO inbound_message_away")  # commits fail
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        send(intake.port, report())
    assert excinfo.value.smtp_code == 451
    assert excinfo.value.smtp_error.startswith(b"4.3.0")
    assert b"InboundMessage" not in excinfo.value.smtp_error  # no internals to the sender


def test_a_message_is_accepted_when_redis_is_down_and_waits_for_the_reconciler(start_intake, db):
    from app.workers import queue

    dead = queue.connect("redis://127.0.0.1:1/0")
    intake = start_intake(after_commit=lambda ids: reconcile.queue_new_inbound(dead, ids))
    assert send(intake.port, report()) == {}
    stored = InboundMessage.get()
    assert [m.id for m in inbound.due(app_clock.now())] == [stored.id]


def test_plaintext_can_be_refused_with_instructions(start_intake, db):
    intake = start_intake(
        refuse_plaintext=True, plaintext_refusal="Reports must be encrypted to key ABCD"
    )
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        send(intake.port, report())
    assert excinfo.value.smtp_code == 550
    assert b"encrypted to key ABCD" in excinfo.value.smtp_error
    armored = report(body="-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n")
    assert send(intake.port, armored) == {}
    assert InboundMessage.select().count() == 1


def test_sixty_concurrent_sessions_from_one_address_are_all_accepted(start_intake, db):
    intake = start_intake()
    barrier = threading.Barrier(60, timeout=30)

    def one(n):
        with smtplib.SMTP("127.0.0.1", intake.port, timeout=30) as smtp:
            smtp.ehlo()
            barrier.wait()  # all sixty sessions open at once
            return smtp.sendmail("ada@example.net", [SECURITY], report(body=f"report {n}\n"))

    with ThreadPoolExecutor(60) as pool:
        results = list(pool.map(one, range(60)))
    assert results == [{}] * 60
    assert InboundMessage.select().count() == 60


def test_sessions_beyond_the_limit_are_told_to_come_back(start_intake, db):
    intake = start_intake(max_connections_per_address=2)
    first = smtplib.SMTP("127.0.0.1", intake.port, timeout=10)
    second = smtplib.SMTP("127.0.0.1", intake.port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPConnectError) as excinfo:
            smtplib.SMTP("127.0.0.1", intake.port, timeout=10)
        assert excinfo.value.smtp_code == 421
    finally:
        first.quit()
        second.quit()
    assert send(intake.port, report()) == {}  # a slot is free again


def test_too_many_recipients_are_refused_per_message(start_intake, db):
    intake = start_intake(max_recipients=2)
    recipients = [f"security+{n}@example.org" for n in range(3)]
    with smtplib.SMTP("127.0.0.1", intake.port, timeout=10) as smtp:
        refused = smtp.sendmail("ada@example.net", recipients, report())
    assert list(refused) == [recipients[2]] and refused[recipients[2]][0] == 452
    assert InboundMessage.get().envelope_to == "\n".join(recipients[:2])


def test_lmtp_mode_speaks_lmtp(start_intake, db):
    intake = start_intake(lmtp=True)
    with smtplib.LMTP("127.0.0.1", intake.port, timeout=10) as lmtp:
        assert lmtp.sendmail("ada@example.net", [SECURITY], report()) == {}
    assert InboundMessage.select().count() == 1


def test_starttls_is_offered_when_a_certificate_is_configured(start_intake, db, tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    intake = start_intake(tls_context=context)
    client_context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP("127.0.0.1", intake.port, timeout=10) as smtp:
        smtp.ehlo("client.example.net")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=client_context)
        smtp.ehlo("client.example.net")
        assert smtp.sock.version().startswith("TLS")
        assert smtp.sendmail("ada@example.net", [SECURITY], report()) == {}
    assert InboundMessage.select().count() == 1


def test_an_unexpected_error_answers_451_without_internals():
    handler = IntakeHandler(IntakePolicy(SECURITY, 1000), store=None)
    reply = asyncio.run(handler.handle_exception(RuntimeError("/srv/secret/path exploded")))
    assert reply.startswith("451 4.3.0")
    assert "secret" not in reply and "RuntimeError" not in reply
