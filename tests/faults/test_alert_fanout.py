"""Exactly one alert per registrant, whatever happens to the workers: during a fan-out to many
approved registrants (each with a real key of their own), the worker processes are killed with
-9 twice and Redis is flushed once. Every registrant still gets the advisory, every delivery
ends sent, and the only duplicates are sends that were in flight at a kill.

Short by default (CI, `make test`); FOREWARN_FAULTS_FULL=1 (`make faults`) runs the full size.
Recovery from a kill rests on the delivery lease (FOREWARN_DELIVERY_LEASE_SECONDS, short here)
and the reconciler, which wakes when a lease ends and queues the delivery again.
"""

import contextlib
import os
import time

import pytest
import redis

from app.core import clock
from app.models import Delivery
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from tests.conftest import wait_for
from tests.faults.harness import (
    CountingSink,
    Workers,
    queued_deliveries,
    received_by_message_id,
    registrant_certificates,
)

pytestmark = pytest.mark.faults

FULL = os.environ.get("FOREWARN_FAULTS_FULL", "") == "1"
RECIPIENTS = 200 if FULL else 40
WORKERS = 2
LEASE_SECONDS = 5  # a send takes well under a second here; the default is 300
# What happens once that share of the deliveries has been sent. A "kill" waits for a send in
# flight; a "late kill" tries for a while to hit one the relay has accepted but the worker has
# not yet marked sent (it will be sent twice). The flush comes first: a flush drops the jobs a
# kill left "started" in Redis, which would hide whether the reconciler recovers them itself.
EVENTS = [(0.2, "flush"), (0.45, "kill"), (0.7, "late kill")]
LATE_KILL_TRIES_SECONDS = 10
CLI = lifecycle.Actor(None, "faults")


def sent_count() -> int:
    return Delivery.select().where(Delivery.state == "sent").count()


def in_flight() -> set[int]:
    """Deliveries a worker had claimed and not finished (after a kill: the ones it dropped)."""
    return {
        d.id
        for d in Delivery.select(Delivery.id).where(
            (Delivery.state == "queued") & Delivery.claimed_until.is_null(False)
        )
    }


def unfinished(connection) -> str:
    """Each delivery still queued, with its lease and its job's state in Redis."""
    return "\n".join([f"now {clock.now():%H:%M:%S.%f}", *queued_deliveries(connection)])


def test_every_registrant_gets_the_advisory_through_kills_and_a_redis_flush(
    env, forewarn, db, settings, redis_url, tmp_path
):
    assert forewarn("init").returncode == 0
    began = time.monotonic()
    addresses = [f"psirt@maker{n:03d}.example" for n in range(RECIPIENTS)]
    certificates = registrant_certificates(addresses)
    keys_seconds = time.monotonic() - began
    for n, address in enumerate(addresses):
        vetting.add_by_admin(
            address, f"Maker {n}", certificates[address], None, "faults", clock.now(), approve=True
        )
    registry_seconds = time.monotonic() - began - keys_seconds
    v = lifecycle.create(
        "Heap overflow in the L2CAP reassembly", "Details.", CLI, clock.now(), settings
    )
    v = lifecycle.set_status(v, "accepted", CLI, clock.now())

    sink = CountingSink(delay=0.1)  # the fan-out lasts seconds: the faults hit it mid-way
    workers = Workers(
        {
            **env,
            "FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}",
            "FOREWARN_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        },
        WORKERS,
        tmp_path,
    )
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    dropped: set[int] = set()  # deliveries in flight at a kill
    kills = flushes = 0
    started = time.monotonic()
    try:
        workers.start()
        advisory = alerts.send(v, None, "faults", clock.now(), settings)
        from app.workers import reconcile

        reconcile.queue_due_deliveries(connection, clock.now())
        for share, event in EVENTS:
            wait_for(
                lambda s=share: sent_count() >= s * RECIPIENTS,
                timeout=120,
                interval=0.01,
                what=lambda share=share: f"{share:.0%} of the alerts to be sent\n{workers.logs()}",
            )
            fresh = frozenset(dropped)  # in flight now, not left over from an earlier kill
            late = False
            if event == "late kill":
                with contextlib.suppress(AssertionError):  # else: any send in flight will do
                    wait_for(
                        lambda f=fresh: (
                            (in_flight() - f) & sink.delivery_ids or RECIPIENTS - sent_count() <= 4
                        ),  # keep some sends for the kill
                        timeout=LATE_KILL_TRIES_SECONDS,
                        interval=0.001,
                    )
                    late = bool((in_flight() - fresh) & sink.delivery_ids)
            if event in ("kill", "late kill"):
                if not late:
                    wait_for(lambda f=fresh: in_flight() - f, interval=0.001, what="a send")
                workers.kill()
                dropped_here = in_flight() - dropped
                dropped |= dropped_here
                kills += 1
                print(
                    f"\nkill {kills} at {time.monotonic() - started:.1f} s: "
                    f"{len(dropped_here)} in flight ({len(dropped_here & sink.delivery_ids)} "
                    f"already accepted by the relay), {sent_count()} sent",
                    end="",
                )
            else:
                connection.flushall()  # Redis lost everything: queued jobs, registries
                workers.stop()
                flushes += 1
                print(f"\nflush at {time.monotonic() - started:.1f} s: {sent_count()} sent", end="")
            workers.start()
        try:
            wait_for(
                lambda: not Delivery.select().where(Delivery.state == "queued").exists(),
                timeout=60 + RECIPIENTS,
                interval=0.1,
                what="every delivery to end",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{unfinished(connection)}\n{workers.logs()}") from None
        seconds = time.monotonic() - started
    finally:
        workers.stop()
        sink.stop()
        connection.close()

    deliveries = list(Delivery.select().where(Delivery.advisory == advisory))
    expected = {(sending.message_id_for(d, settings), (d.recipient,)): d.id for d in deliveries}
    got = received_by_message_id(sink.received)
    lost = [key for key in expected if got[key] == 0]
    duplicated = {expected[key]: n - 1 for key, n in got.items() if key in expected and n > 1}
    print(
        f"\nalert fan-out: {RECIPIENTS} recipients, {WORKERS} workers, {kills} kills, "
        f"{flushes} flushes, {len(lost)} lost, {sum(duplicated.values())} duplicated "
        f"(in flight at a kill: {len(dropped)}), {seconds:.1f} s "
        f"(keys made in {keys_seconds:.1f} s, registered in {registry_seconds:.1f} s)"
    )
    assert kills == 2 and flushes == 1
    assert sorted(d.recipient for d in deliveries) == addresses
    assert {d.kind for d in deliveries} == {"alert"}
    assert {d.state for d in deliveries} == {"sent"}
    assert all(d.message_id == sending.message_id_for(d, settings) for d in deliveries)
    assert lost == []
    assert set(got) <= set(expected), "the sink got mail no delivery accounts for"
    assert set(duplicated) <= dropped, "a delivery no kill interrupted was sent twice"
    assert sum(duplicated.values()) <= kills * WORKERS
