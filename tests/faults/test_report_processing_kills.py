"""Every stored report is processed once and acknowledged, whatever happens to the workers:
encrypted reports from distinct reporters are stored by the real intake, then the worker
processes that decrypt them, file them and send their acknowledgements are killed with -9 twice
and Redis is flushed once. Every report ends processed with a vulnerability of its own, every
acknowledgement ends sent, and the only duplicates are sends that were in flight at a kill.

Short by default (CI, `make test`); FOREWARN_FAULTS_FULL=1 (`make faults`) runs the full size.
Deliveries are recovered through their lease (FOREWARN_DELIVERY_LEASE_SECONDS, short here) and the
reconciler. Inbound messages have a fixed 5-minute lease (app/reports/inbound.py, no setting): after
each kill, when no worker is alive, the test ends the lease of every message a killed worker held
(claimed_until set to the past). That stands for five minutes passing; the reconciler of the
restarted workers then queues those messages again, as it would then (for a claim that shows only
after the restart, see KilledLeases, the test runs the reconciler's pass itself).
"""

import contextlib
import os
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
import redis

from app.core import clock
from app.core.db import write_transaction
from app.models import Correspondence, Delivery, InboundMessage, Vulnerability
from app.outbox import sending
from app.reports import inbound
from app.reports import processing as reports
from app.vulns import lifecycle
from app.workers import reconcile, runtime
from tests.conftest import PG_URL, wait_for
from tests.faults.harness import (
    CountingSink,
    Workers,
    queued_deliveries,
    received_by_message_id,
)
from tests.faults.helpers_mail import (
    Intake,
    encrypted_reports,
    report_message_id,
    reporter_address,
    send_all,
)

pytestmark = pytest.mark.faults

FULL = os.environ.get("FOREWARN_FAULTS_FULL", "") == "1"
REPORTS = 200 if FULL else 30
WORKERS = 2
LEASE_SECONDS = 5  # of a delivery; the default is 300
# What happens once that share of the work (reports processed plus acknowledgements sent) is
# done. As in test_alert_fanout, the flush comes first. A "kill" tries for a while to hit a
# report being processed, a "send kill" an acknowledgement being sent (acknowledgements queue
# behind the reports, so most are sent after the reports are processed).
EVENTS = [(0.2, "flush"), (0.45, "kill"), (0.75, "send kill")]
TARGET_TRIES_SECONDS = 10


def processed_count() -> int:
    return InboundMessage.select().where(InboundMessage.state == "processed").count()


def sent_count() -> int:
    return Delivery.select().where(Delivery.state == "sent").count()


def progress() -> float:
    return (processed_count() + sent_count()) / (2 * REPORTS)


def held_messages() -> set[int]:
    """Messages a worker has claimed and not finished."""
    return {
        m.id
        for m in InboundMessage.select(InboundMessage.id).where(
            (InboundMessage.state == "received") & InboundMessage.claimed_until.is_null(False)
        )
    }


def held_deliveries() -> set[int]:
    return {
        d.id
        for d in Delivery.select(Delivery.id).where(
            (Delivery.state == "queued") & Delivery.claimed_until.is_null(False)
        )
    }


class KilledLeases:
    """Five minutes pass for the messages the killed workers held (see the module's text): a
    lease that ends by last kill + inbound.LEASE was taken before that kill, by a dead worker;
    the restarted workers' leases end later. Looked for again while the test waits: on SQLite a
    claim the worker was committing when it was killed can show only a moment after the kill,
    when SQLite recovers its write-ahead log. Once ended, the reconciler's pass queues them."""

    def __init__(self, connection):
        self.connection = connection
        self.last_kill = None
        self.ended: set[int] = set()
        self.looked = 0.0

    def killed(self) -> set[int]:
        self.last_kill = clock.now()
        return self.end()

    def end(self) -> set[int]:
        self.looked = time.monotonic()
        if self.last_kill is None:
            return set()
        stale = (
            (InboundMessage.state == "received")
            & InboundMessage.claimed_until.is_null(False)
            & (InboundMessage.claimed_until <= self.last_kill + inbound.LEASE)
            & (InboundMessage.claimed_until >= clock.now())
        )
        ids = {m.id for m in InboundMessage.select(InboundMessage.id).where(stale)}
        if ids:
            InboundMessage.update(claimed_until=clock.now() - timedelta(seconds=1)).where(
                InboundMessage.id.in_(ids) & stale
            ).execute()
            self.ended |= ids
        return ids

    def now_and_then(self) -> None:
        """While waiting: end any such lease that showed late, and queue its message."""
        if time.monotonic() - self.looked > 0.5 and self.end():
            reconcile.run(self.connection, clock.now())


def unfinished(connection) -> str:
    lines = [f"now {clock.now():%H:%M:%S.%f}"]
    for m in InboundMessage.select().where(InboundMessage.state == "received"):
        job = connection.hget(f"rq:job:inbound-{m.id}", "status")
        lines.append(
            f"message {m.id}: attempts {m.attempts}, lease {m.claimed_until}, job {job!r}, "
            f"error {m.error!r}"
        )
    return "\n".join([*lines, *queued_deliveries(connection)])


def test_every_report_is_processed_and_acknowledged_through_kills_and_a_redis_flush(
    env, forewarn, db, settings, redis_url, tmp_path
):
    assert forewarn("init").returncode == 0
    began = time.monotonic()
    keyring = runtime.service_keyring(settings)
    service_cert = keyring.export_public()
    keyring.stop_agent()
    reports = encrypted_reports(service_cert, REPORTS)
    made_seconds = time.monotonic() - began

    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    intake = Intake(env, tmp_path)
    intake.start()
    try:
        wait_for(intake.answers, what="the intake")
        send_all(
            intake.host,
            intake.port,
            [(reporter_address(n), raw) for n, raw in enumerate(reports)],
        )
    finally:
        intake.stop()
    assert InboundMessage.select().count() == REPORTS
    stored_seconds = time.monotonic() - began - made_seconds

    sink = CountingSink()
    workers = Workers(
        {
            **env,
            "FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}",
            "FOREWARN_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        },
        WORKERS,
        tmp_path,
    )
    dropped: set[int] = set()  # deliveries in flight at a kill
    dropped_messages: set[int] = set()  # messages in processing at a kill
    kills = flushes = 0
    leases = KilledLeases(connection)
    started = time.monotonic()
    try:
        workers.start()
        for share, event in EVENTS:
            wait_for(
                lambda s=share: leases.now_and_then() or progress() >= s,
                timeout=60 + REPORTS,
                interval=0.01,
                what=f"{share:.0%} of the work to be done\n{workers.logs()}",
            )
            if event in ("kill", "send kill"):
                fresh, fresh_messages = frozenset(dropped), frozenset(dropped_messages)
                wanted = (
                    (lambda f=fresh: held_deliveries() - f)
                    if event == "send kill"
                    else (lambda m=fresh_messages: held_messages() - m)
                )
                with contextlib.suppress(AssertionError):  # else: anything in flight will do
                    wait_for(wanted, timeout=TARGET_TRIES_SECONDS, interval=0.001)
                try:
                    wait_for(
                        lambda f=fresh, m=fresh_messages: (
                            (held_deliveries() - f) or (held_messages() - m)
                        ),
                        interval=0.001,
                        what="a message or a send in flight",
                    )
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}\n{unfinished(connection)}\n{workers.logs()}"
                    ) from None
                workers.kill()
                dropped_here = held_deliveries() - dropped
                dropped |= dropped_here
                messages_here = leases.killed()
                dropped_messages |= messages_here
                kills += 1
                print(
                    f"\nkill {kills} at {time.monotonic() - started:.1f} s: "
                    f"{len(messages_here)} reports in processing, {len(dropped_here)} sends in "
                    f"flight ({len(dropped_here & sink.delivery_ids)} already accepted by the "
                    f"relay), {processed_count()} processed, {sent_count()} sent",
                    end="",
                )
            else:
                connection.flushall()  # Redis lost everything: queued jobs, registries
                workers.stop()
                flushes += 1
                print(
                    f"\nflush at {time.monotonic() - started:.1f} s: {processed_count()} "
                    f"processed, {sent_count()} sent",
                    end="",
                )
            workers.start()
        try:
            wait_for(
                lambda: (
                    leases.now_and_then() is None
                    and processed_count() == REPORTS
                    and not Delivery.select().where(Delivery.state == "queued").exists()
                ),
                timeout=60 + REPORTS,
                interval=0.1,
                what="every report and delivery to end",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{unfinished(connection)}\n{workers.logs()}") from None
        seconds = time.monotonic() - started
    finally:
        workers.stop()
        sink.stop()
        connection.close()

    messages = list(InboundMessage.select())
    deliveries = list(Delivery.select())
    acks = [d for d in deliveries if d.kind == "ack"]
    expected = {(sending.message_id_for(d, settings), (d.recipient,)): d.id for d in deliveries}
    got = received_by_message_id(sink.received)
    lost = [key for key in expected if got[key] == 0]
    duplicated = {expected[key]: n - 1 for key, n in got.items() if key in expected and n > 1}
    print(
        f"\nreport processing: {REPORTS} reports, {WORKERS} workers, {kills} kills, "
        f"{flushes} flushes, {len(lost)} lost, {sum(duplicated.values())} duplicated "
        f"(in flight at a kill: {len(dropped)} sends, {len(leases.ended)} reports), "
        f"{seconds:.1f} s (reports made in {made_seconds:.1f} s, stored by the intake in "
        f"{stored_seconds:.1f} s)"
    )
    assert kills == 2 and flushes == 1
    assert {m.state for m in messages} == {"processed"}
    assert sorted(m.message_id_header for m in messages) == sorted(
        report_message_id(n) for n in range(REPORTS)
    )
    assert all(m.error == "" for m in messages), [m.error for m in messages if m.error]
    vulnerabilities = list(Vulnerability.select())
    assert sorted(v.reporter_email for v in vulnerabilities) == sorted(
        reporter_address(n) for n in range(REPORTS)
    )
    entries = list(Correspondence.select().where(Correspondence.direction == "in"))
    assert sorted(e.message_id for e in entries) == sorted(m.id for m in messages)
    assert sorted(d.recipient for d in acks) == sorted(reporter_address(n) for n in range(REPORTS))
    assert {d.state for d in deliveries} == {"sent"}
    assert lost == []
    assert set(got) <= set(expected), "the sink got mail no delivery accounts for"
    assert set(duplicated) <= dropped, "a delivery no kill interrupted was sent twice"
    assert sum(duplicated.values()) <= kills * WORKERS


@pytest.mark.skipif(not PG_URL, reason="SQLite serialises writers (BEGIN IMMEDIATE): no race")
def test_two_workers_filing_new_reports_at_once_get_distinct_tracking_ids(
    db, settings, monkeypatch
):
    """What the scenario above used to hit now and then on PostgreSQL, made certain: two
    workers' transactions (threads, each with a connection of its own) ask for the next
    tracking id at the same moment, as reports._process does it. Without app.core.db.serialise both
    read the same highest id and one insert fails on the unique constraint."""
    barrier = threading.Barrier(2, timeout=10)
    original = lifecycle.next_tracking_id

    def together(prefix: str, year: int) -> str:
        barrier.wait()  # both are inside their transactions, neither has read the number yet
        return original(prefix, year)

    monkeypatch.setattr(lifecycle, "next_tracking_id", together)
    at = clock.now()
    errors: list[Exception] = []

    def file(n: int) -> None:
        parsed = SimpleNamespace(
            subject=f"Report {n}", from_address=reporter_address(n), from_name=f"Reporter {n}"
        )
        try:
            with db.connection_context(), write_transaction():
                mailed = SimpleNamespace(channel="mail", tracking_id=None)
                reports._new_vulnerability(parsed, settings, at, mailed)
        except Exception as exc:  # the worker's job would fail here
            errors.append(exc)

    threads = [threading.Thread(target=file, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(v.reporter_email for v in Vulnerability.select()) == [
        reporter_address(0),
        reporter_address(1),
    ]
