"""An alert fan-out while the outgoing relay is down: first nothing listens on its port
(connection refused), then it answers 451 at MAIL, then at RCPT, then at DATA, then it accepts.
The deliveries wait through every phase (each failure sets the next attempt one backoff step
later), none is dropped (all end sent) and none goes out twice (each Message-ID once).

Short by default (CI, `make test`); FOREWARN_FAULTS_FULL=1 (`make faults`) runs the full size.
The workers run on the real clock and the backoff (app/core/retry.py's DELIVERY_BACKOFF: 1, 5,
15, 60... minutes) has no setting. Between phases the test makes that time pass: it moves the
next_attempt_at of every waiting delivery to now and runs the reconciler's queueing of due
deliveries (which the workers' reconciler thread would do itself within its one-minute period).
Before the last move, it checks that nothing is sent while the deliveries wait.
"""

import os
import time

import pytest
import redis

from app.core import clock, retry
from app.models import Delivery
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from app.workers import reconcile
from tests.conftest import free_port, wait_for
from tests.faults.harness import Workers, received_by_message_id, registrant_certificates
from tests.faults.helpers_mail import FlakyRelay
from tests.faults.test_alert_fanout import CLI, unfinished

pytestmark = pytest.mark.faults

FULL = os.environ.get("FOREWARN_FAULTS_FULL", "") == "1"
RECIPIENTS = 100 if FULL else 20
WORKERS = 2
# (what the relay does, what the deliveries' last answer starts with or contains)
FAILING = [(None, "unreachable"), ("mail", "451"), ("rcpt", "451"), ("data", "451")]
WAIT_SECONDS = 2  # how long the test watches the relay, back up, while deliveries wait


def deliveries() -> list[Delivery]:
    return list(Delivery.select().order_by(Delivery.id))


def all_retried(attempt: int, answer: str) -> bool:
    """Every delivery failed its attempt number `attempt` and waits for the next."""
    return all(
        d.state == "queued"
        and d.attempts == attempt
        and d.claimed_until is None
        and answer in (d.last_answer or "")
        for d in deliveries()
    )


def time_passes(connection) -> None:
    """The backoff has run out: every waiting delivery is due, and the reconciler queues it."""
    Delivery.update(next_attempt_at=clock.now()).where(Delivery.state == "queued").execute()
    reconcile.queue_due_deliveries(connection, clock.now())


def test_alerts_wait_while_the_relay_is_down_or_refusing_and_go_out_once_after(
    env, forewarn, db, settings, redis_url, tmp_path
):
    assert forewarn("init").returncode == 0
    addresses = [f"psirt@maker{n:03d}.example" for n in range(RECIPIENTS)]
    certificates = registrant_certificates(addresses)
    for n, address in enumerate(addresses):
        vetting.add_by_admin(
            address, f"Maker {n}", certificates[address], None, "faults", clock.now(), approve=True
        )
    v = lifecycle.create(
        "Heap overflow in the L2CAP reassembly", "Details.", CLI, clock.now(), settings
    )
    v = lifecycle.set_status(v, "accepted", CLI, clock.now())

    port = free_port()  # nothing listens here until the relay comes back
    workers = Workers({**env, "FOREWARN_SMTP_RELAY": f"127.0.0.1:{port}"}, WORKERS, tmp_path)
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    relay = None
    phases = []
    started = time.monotonic()
    try:
        workers.start()
        alerts.send(v, None, "faults", clock.now(), settings)
        for attempt, (mode, answer) in enumerate(FAILING, start=1):
            if mode is not None:
                if relay is None:
                    relay = FlakyRelay(port, mode)
                relay.mode = mode
            phase_began = clock.now()
            phase_started = time.monotonic()
            if attempt == 1:
                reconcile.queue_due_deliveries(connection, clock.now())  # as `alert send` does
            else:
                time_passes(connection)
            try:
                wait_for(
                    lambda a=attempt, s=answer: all_retried(a, s),
                    timeout=30 + RECIPIENTS,
                    interval=0.05,
                    what=f"every delivery to fail attempt {attempt} ({mode or 'refused'})",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{unfinished(connection)}\n{workers.logs()}") from None
            backoff = retry.DELIVERY_BACKOFF[attempt - 1]
            assert all(d.next_attempt_at >= phase_began + backoff for d in deliveries())
            assert relay is None or relay.received == []
            phases.append(
                f"{mode or 'refused'}: {len(deliveries())} retried in "
                f"{time.monotonic() - phase_started:.1f} s, next in {backoff}"
            )

        relay.mode = "accept"
        time.sleep(WAIT_SECONDS)  # back up, but every delivery waits for its backoff
        assert relay.received == []
        assert all_retried(len(FAILING), "451")
        phase_started = time.monotonic()
        time_passes(connection)
        try:
            wait_for(
                lambda: not Delivery.select().where(Delivery.state == "queued").exists(),
                timeout=30 + RECIPIENTS,
                interval=0.05,
                what="every delivery to end",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{unfinished(connection)}\n{workers.logs()}") from None
        phases.append(f"accept: {RECIPIENTS} sent in {time.monotonic() - phase_started:.1f} s")
        time.sleep(0.5)  # anything sent late (a second copy) would arrive now
        seconds = time.monotonic() - started
    finally:
        workers.stop()
        if relay is not None:
            relay.stop()
        connection.close()

    final = deliveries()
    expected = {(sending.message_id_for(d, settings), (d.recipient,)): d.id for d in final}
    got = received_by_message_id(relay.received)
    lost = [key for key in expected if got[key] == 0]
    duplicated = {expected[key]: n - 1 for key, n in got.items() if n > 1}
    print(
        f"\nrelay down: {RECIPIENTS} alerts, {WORKERS} workers; " + "; ".join(phases) + f"; "
        f"refusals at MAIL/RCPT/DATA {relay.refused['mail']}/{relay.refused['rcpt']}/"
        f"{relay.refused['data']}; {len(lost)} lost, {sum(duplicated.values())} duplicated, "
        f"{seconds:.1f} s"
    )
    assert sorted(d.recipient for d in final) == addresses
    assert {d.state for d in final} == {"sent"}
    assert {d.attempts for d in final} == {len(FAILING) + 1}
    assert all(d.message_id == sending.message_id_for(d, settings) for d in final)
    assert relay.refused == dict.fromkeys(("mail", "rcpt", "data"), RECIPIENTS)
    assert lost == []
    assert duplicated == {}
    assert set(got) == set(expected)
    assert set(got.values()) == {1}
