"""Hostile inbound mail: headers built to stall the parser or flood the log, Message-IDs built
to break every later reply, and one message processed by two workers at once."""

import contextlib
import logging
import mailbox
import signal
import time
from datetime import timedelta

import pytest

from app.accounts import team
from app.core.errors import OutOfTime
from app.models import Correspondence, Delivery, InboundMessage, PublicKey, Vulnerability
from app.outbox import sending
from app.reports import inbound, processing, replies
from mail import mime
from mail.transport import MaildirTransport, SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.openpgp import make_sqop_key, parse
from tests.smtpsink import SmtpSink

SERVICE = "security@localhost"
CRLF = b"\r\n"


def deliver(raw: bytes, clock) -> int:
    return inbound.store(raw, "rita@example.org", [SERVICE], clock.at)


def process(message_id, keyring, settings, clock) -> str:
    return processing.process_inbound(message_id, keyring, settings, clock.at)


def with_header(name: str, value: bytes, text: str = "Details of the overflow.") -> bytes:
    """A plain report whose header `name` is `value` (replacing the usual one)."""
    raw = mc.plain(text)
    head, _, body = raw.partition(CRLF + CRLF)
    lines = [line for line in head.split(CRLF) if not line.lower().startswith(name.lower() + b":")]
    return CRLF.join([*lines, name + b": " + value]) + CRLF + CRLF + body


@contextlib.contextmanager
def cpu_seconds(limit: float):
    """Fail (by OutOfTime, which nothing on the way may catch) once this process has used
    `limit` seconds of CPU: a bound that holds on a busy machine, without waiting on a clock."""

    def out_of_time(signum, frame):
        raise OutOfTime(f"more than {limit}s of CPU")

    previous = signal.signal(signal.SIGPROF, out_of_time)
    signal.setitimer(signal.ITIMER_PROF, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


PATHOLOGICAL = {
    "dots": b"a." * 120_000,  # 240 KB: over nine minutes of the worker before
    "quotes": b'"a' * 120_000,
    "comments": b"(" * 240_000,
}


# -- finding 3: one header stalls the worker --


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL))
def test_a_240_kb_pathological_from_header_is_dealt_with_in_well_under_two_seconds(
    db, keyring, settings, clock, shape
):
    message_id = deliver(with_header(b"From", PATHOLOGICAL[shape]), clock)
    started = time.process_time()
    with cpu_seconds(5):  # today's code would run for minutes: stop it early
        outcome = process(message_id, keyring, settings, clock)
    assert time.process_time() - started < 2
    assert outcome == "quarantined"  # kept for a human, with the reason
    message = InboundMessage.get_by_id(message_id)
    assert message.state == "quarantined"
    assert message.error.startswith("the From header ")
    assert not Delivery.select().exists()  # no notice to an address nobody could read


def test_the_header_parser_is_never_given_more_than_the_caps():
    fields = [
        (b"From", PATHOLOGICAL["quotes"]),
        (b"Content-Type", b"text/plain; " + b"a=b;" * 5000),
        (b"Message-ID", b"<" + b"a." * 5000 + b"@x>"),
        *[(b"Received", b"from a by b; " + b"x" * 900) for _ in range(200)],  # 180 KB in all
    ]
    head = b"".join(name + b": " + value + CRLF for name, value in fields) + CRLF
    parsed = mime.headers(head)
    structured = [(name, value) for name, value in parsed.raw_items() if name != "Received"]
    assert all(len(name) + 2 + len(value) <= mime.MAX_FIELD_BYTES for name, value in structured)
    assert sum(len(n) + len(v) + 4 for n, v in parsed.raw_items()) <= mime.MAX_HEADER_BYTES
    cuts = [str(cut) for cut in mime.cuts(parsed)]
    assert "the From header is longer than 998 bytes" in cuts
    assert any(cut.startswith("the header is longer than") for cut in cuts)


def test_a_long_header_the_report_is_not_read_by_is_cut_and_noted(keyring):
    from mail.parse import parse as parse_message

    many = ", ".join(f"Person {n} <p{n}@example.org>" for n in range(60)).encode()
    parsed = parse_message(with_header(b"Cc", many), keyring)
    assert "the Cc header is longer than 998 bytes: it was cut" in parsed.problems
    assert parsed.from_address == "rita@example.org"
    assert "Details of the overflow." in parsed.text


def test_a_long_header_the_report_is_read_by_makes_it_unreadable_with_the_reason(keyring):
    from mail.parse import Unreadable
    from mail.parse import parse as parse_message

    content_type = b"text/plain; " + b"a=b;" * 2000
    with pytest.raises(Unreadable, match="^the Content-Type header is longer than 998 bytes$"):
        parse_message(with_header(b"Content-Type", content_type), keyring)


def test_a_real_reporters_headers_are_read_as_before(db, keyring, settings, clock):
    message_id = deliver(mc.plain("The BLE stack overflows.", subject="Overflow in BLE"), clock)
    assert process(message_id, keyring, settings, clock) == "new report"
    v = Vulnerability.get()
    assert (v.reporter_email, v.reporter_name, v.title) == (
        "rita@example.org",
        "Rita Reporter",
        "Overflow in BLE",
    )
    assert InboundMessage.get_by_id(message_id).message_id_header == "<report-1@example.org>"


def test_a_timeout_passes_the_header_fallbacks_instead_of_parsing_again():
    def parser_that_runs_out_of_time():
        raise OutOfTime("Task exceeded maximum timeout value (180 seconds)")

    with pytest.raises(OutOfTime):
        mime.safe(parser_that_runs_out_of_time, "parsed again")


# -- finding 12: one message floods the log --


def test_a_from_header_of_nested_comments_logs_a_few_lines_and_no_traceback(
    db, keyring, settings, clock, caplog
):
    caplog.set_level(logging.INFO)
    message_id = deliver(with_header(b"From", b"(" * 3000), clock)
    process(message_id, keyring, settings, clock)
    assert InboundMessage.get_by_id(message_id).state in ("processed", "quarantined")
    assert len(caplog.records) <= 3
    assert len(caplog.text.splitlines()) <= 3
    assert "Traceback" not in caplog.text and 'File "' not in caplog.text


def test_a_crash_while_parsing_logs_one_line(db, keyring, settings, clock, caplog):
    caplog.set_level(logging.INFO)
    encrypted = mc.sqop_encrypt(keyring.export_public(), mc.text_part("very secret detail"))
    message_id = deliver(mc.pgp_mime_encrypted(encrypted), clock)
    # No keyring (None): decryption fails in a way the parser did not foresee.
    assert processing.process_inbound(message_id, None, settings, clock.at) == "quarantined"
    assert "internal error" in InboundMessage.get_by_id(message_id).error
    assert "AttributeError" in caplog.text and "very secret" not in caplog.text
    assert len(caplog.text.splitlines()) <= 3
    assert "Traceback" not in caplog.text and 'File "' not in caplog.text


# -- finding 6: a hostile Message-ID blocks the team's replies --

HOSTILE_IDS = {
    "long": "<" + "a" * 1200 + "@example.org>",  # 1,214 characters
    "longer than kept": "<" + "a" * 250 + "@example.org>",  # valid, but over 255
    "non-ASCII": "<überraschung@example.org>",
    "no domain": "<just-a-word>",
}


@pytest.fixture
def sink():
    server = SmtpSink()
    yield server
    server.stop()


@pytest.fixture
def member(db, clock):
    return team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user


@pytest.mark.parametrize("shape", sorted(HOSTILE_IDS))
def test_a_hostile_message_id_is_not_kept_and_the_teams_reply_still_goes_out(
    db, keyring, settings, clock, member, sink, shape
):
    first = deliver(mc.plain("The report."), clock)
    assert process(first, keyring, settings, clock) == "new report"
    v = Vulnerability.get()
    injected = with_header(b"Message-ID", HOSTILE_IDS[shape].encode(), "Injected by a stranger.")
    injected = injected.replace(
        b"Subject: Vulnerability report", f"Subject: [{v.tracking_id}]".encode()
    )
    second = deliver(injected, clock)
    assert process(second, keyring, settings, clock) == "reply"
    assert InboundMessage.get_by_id(second).message_id_header is None

    replies.reply_to_reporter(v, member, "Thanks, confirmed.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    relay = SmtpTransport("127.0.0.1", sink.port, timeout=10)
    assert sending.send(reply.id, keyring, settings, relay, clock.at) == "sent"
    sent = parse(sink.received[-1].data)
    assert sent["In-Reply-To"] is None  # the newest inbound id was not valid: none


def test_a_valid_message_id_is_still_answered_in_reply_to(
    db, keyring, settings, clock, member, sink
):
    message_id = deliver(with_header(b"Message-ID", b"<r-1.x+y@mail.example.org>"), clock)
    assert process(message_id, keyring, settings, clock) == "new report"
    replies.reply_to_reporter(Vulnerability.get(), member, "Thanks.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    relay = SmtpTransport("127.0.0.1", sink.port, timeout=10)
    assert sending.send(reply.id, keyring, settings, relay, clock.at) == "sent"
    assert parse(sink.received[-1].data)["In-Reply-To"] == "<r-1.x+y@mail.example.org>"


@pytest.mark.parametrize("shape", ["non-ASCII", "no domain"])
def test_a_hostile_id_stored_before_the_check_does_not_block_replies(
    db, keyring, settings, clock, member, tmp_path, shape
):
    message_id = deliver(mc.plain("The report."), clock)
    assert process(message_id, keyring, settings, clock) == "new report"
    InboundMessage.update(message_id_header=HOSTILE_IDS[shape]).execute()  # an older row
    replies.reply_to_reporter(Vulnerability.get(), member, "Thanks.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    transport = MaildirTransport(tmp_path / "out")
    assert sending.send(reply.id, keyring, settings, transport, clock.at) == "sent"
    [sent] = mailbox.Maildir(tmp_path / "out").values()
    assert sent["In-Reply-To"] is None


def test_a_reply_that_cannot_be_composed_fails_at_once_and_the_team_sees_why(
    db, keyring, settings, clock, member, tmp_path, client, auth, caplog
):
    message_id = deliver(mc.plain("The report."), clock)
    assert process(message_id, keyring, settings, clock) == "new report"
    reporter = make_sqop_key(tmp_path / "rk", "Rita <rita@example.org>")
    key = PublicKey.create(
        fingerprint=reporter.fingerprint, armored=reporter.cert.read_text(), created_at=clock.at
    )
    Vulnerability.update(reporter_key=key).execute()
    v = Vulnerability.get()
    replies.reply_to_reporter(v, member, "Thanks, confirmed.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    # A recipient stored with a line break (old data) cannot be a To header (titles are made one
    # line when composing, so this is what is left to trip over).
    Delivery.update(recipient="Overflow\r\nBcc: x@example.net").where(
        Delivery.id == reply.id
    ).execute()
    caplog.set_level(logging.DEBUG, logger="forewarn.outbox")

    transport = MaildirTransport(tmp_path / "out")
    assert sending.send(reply.id, keyring, settings, transport, clock.at) == "failed"

    failed = Delivery.get_by_id(reply.id)
    assert failed.state == "failed" and failed.attempts == 1
    assert "could not be composed" in failed.last_answer
    assert "line break" in failed.last_answer
    assert not (tmp_path / "out").exists() or not list(mailbox.Maildir(tmp_path / "out").keys())
    outbox_lines = [r for r in caplog.records if r.name == "forewarn.outbox"]
    assert len(outbox_lines) == 1 and "Traceback" not in caplog.text
    assert "Overflow" not in caplog.text  # the reason's text stays out of the log

    assert auth.login(member.email, PASSWORD).status_code == 302
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert "delivery-failed" in page and "could not be composed" in page


def test_a_relay_that_is_away_still_means_retrying(db, keyring, settings, clock, member):
    message_id = deliver(mc.plain("The report."), clock)
    assert process(message_id, keyring, settings, clock) == "new report"
    replies.reply_to_reporter(Vulnerability.get(), member, "Thanks.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    nobody = SmtpTransport("127.0.0.1", 9, timeout=2)
    assert sending.send(reply.id, keyring, settings, nobody, clock.at) == "retry"
    assert Delivery.get_by_id(reply.id).state == "queued"


# -- also examined: one message, two workers --


@pytest.mark.parametrize("first_to_finish", ["the later claim", "the stale claim"])
def test_a_message_that_outlives_its_lease_makes_exactly_one_report(
    db, keyring, settings, clock, member, first_to_finish
):
    message_id = deliver(mc.plain("The BLE stack overflows."), clock)
    stale = inbound.claim(message_id, clock.at)  # worker A, which then takes too long
    clock.move(minutes=inbound.LEASE.total_seconds() / 60 + 1)
    later = inbound.claim(message_id, clock.at)  # worker B: the lease has run out
    assert later is not None

    if first_to_finish == "the later claim":
        assert processing.process_claimed(later, keyring, settings, clock.at) == "new report"
        assert processing.process_claimed(stale, keyring, settings, clock.at) == "superseded"
    else:
        assert processing.process_claimed(stale, keyring, settings, clock.at) == "superseded"
        assert processing.process_claimed(later, keyring, settings, clock.at) == "new report"

    assert Vulnerability.select().count() == 1
    assert Correspondence.select().where(Correspondence.direction == "in").count() == 1
    assert Delivery.select().where(Delivery.kind == "ack").count() == 1
    assert Delivery.select().where(Delivery.kind == "team-forward").count() == 1
    assert InboundMessage.get_by_id(message_id).state == "processed"


def test_a_stale_claim_that_fails_does_not_release_the_new_owners_lease(db, clock):
    message_id = deliver(mc.plain("x"), clock)
    stale = inbound.claim(message_id, clock.at)
    clock.move(minutes=6)
    assert inbound.claim(message_id, clock.at) is not None
    inbound.release(stale, "crash")
    held = InboundMessage.get_by_id(message_id)
    assert held.claimed_until == clock.at + inbound.LEASE  # still the new owner's
    assert inbound.claim(message_id, clock.at + timedelta(minutes=1)) is None


def test_a_team_reply_answers_the_reporters_message_not_a_strangers_post(
    db, keyring, settings, clock, member, tmp_path
):
    first = deliver(mc.plain("The report."), clock)
    assert process(first, keyring, settings, clock) == "new report"
    v = Vulnerability.get()
    stranger = mc.plain("Me too.", sender="Eve <eve@example.net>").replace(
        b"<report-1@example.org>", b"<eve-1@example.net>"
    )
    post = inbound.store(
        stranger, "eve@example.net", [f"security+{v.tracking_id}@example.org"], clock.at
    )
    assert process(post, keyring, settings, clock) == "reply"
    replies.reply_to_reporter(v, member, "Thanks.", clock.at)
    [reply] = Delivery.select().where(Delivery.kind == "reply")
    transport = MaildirTransport(tmp_path / "out")
    assert sending.send(reply.id, keyring, settings, transport, clock.at) == "sent"
    [sent] = mailbox.Maildir(tmp_path / "out").values()
    assert sent["In-Reply-To"] == "<report-1@example.org>"
