"""Re-queues what the database says is unfinished: a lost Redis or a killed worker loses nothing."""

import logging
import threading
from datetime import datetime
from functools import partial

import redis

from app.core.config import Settings
from app.disclosure import preflight, provider
from app.outbox import sending
from app.privacy import retention
from app.registry import nudges, renewal
from app.reports import inbound
from app.servicekey import expiry, public
from app.vulns import reminders
from app.workers import health, queue, runtime, scheduling

log = logging.getLogger("forewarn.reconcile")

PERIOD_SECONDS = 60
# Deliveries are sent in buckets of consecutive ids, one job each: an alert's thousand
# deliveries are two hundred jobs, each sending over one connection (and a worker told to stop
# finishes at most that many).
BUCKET = 5


def delivery_job_id(delivery_id: int) -> str:
    return f"deliveries-{delivery_id // BUCKET}"


def _queue(connection: redis.Redis, function: str, prefix: str, ids) -> int:
    """Queue `function` for each row id whose job is not waiting already (the work is due)."""
    ids = list(ids)
    in_queue = set(queue.queue_for(connection, function).get_job_ids()) if ids else set()
    jobs = [(row_id, f"{prefix}-{row_id}") for row_id in ids]
    return queue.enqueue_each(
        connection,
        function,
        [
            job
            for job in jobs
            if not queue.is_waiting(connection, function, job[1], queued=in_queue)
        ],
    )


def queue_new_inbound(connection: redis.Redis, message_ids: list[int]) -> None:
    """Messages just stored: nothing can be waiting for them yet, so no look first."""
    queue.enqueue_each(
        connection, queue.PROCESS_INBOUND, [(m, f"inbound-{m}") for m in message_ids]
    )


def queue_due_deliveries(connection: redis.Redis, at: datetime) -> int:
    buckets = sorted({row_id // BUCKET for (row_id,) in sending.due(at).tuples()})
    return _queue(connection, queue.SEND_DELIVERIES, "deliveries", buckets)


def run(connection: redis.Redis, at: datetime) -> int:
    """One pass: queue every due message, lift and delivery not already waiting; returns how
    many."""
    queued = _queue(connection, queue.PROCESS_INBOUND, "inbound", [m.id for m in inbound.due(at)])
    queued += scheduling.reconcile(connection, at)
    return queued + queue_due_deliveries(connection, at)


def _pause(at: datetime) -> float:
    """A minute, or less when a delivery's lease ends sooner (its worker may have died)."""
    ends = sending.next_lease_end(at)
    if ends is None:
        return PERIOD_SECONDS
    return min(PERIOD_SECONDS, max(1.0, (ends - at).total_seconds() + 0.5))


def _keys_and_data(at: datetime, settings: Settings, connection: redis.Redis | None = None) -> None:
    """The service key's expiry warnings (hourly), its public side published for the web
    (when stale), the CSAF provider directory built and signed again (when stale: a
    publication, a revision, a rotation), its health reported for the web (every 15
    minutes), and retention (daily): each throttles itself, and a failure of one never stops
    the pass."""
    open_keyring = partial(runtime.service_keyring, settings)
    ticks = [
        partial(expiry.tick, open_keyring=open_keyring),
        partial(public.tick, open_keyring=open_keyring),
        # After the key's publication: a rotation re-signs the CSAF provider's files at once.
        partial(provider.tick, open_keyring=open_keyring),
        retention.tick,
    ]
    if connection is not None:
        ticks.append(partial(health.report_tick, connection=connection, open_keyring=open_keyring))
    for tick in ticks:
        try:
            tick(at, settings)
        except Exception as exc:
            module = getattr(tick, "func", tick).__module__
            log.warning("%s failed: %s", module, type(exc).__name__)


def _nudges(at: datetime, settings: Settings) -> None:
    """The reminders to answer alerts (app.registry.nudges); a failure never stops the pass."""
    try:
        nudges.send_due(at, settings)
    except Exception as exc:
        log.warning("answer reminders failed: %s", type(exc).__name__)


def _preflights(at: datetime, settings: Settings) -> None:
    """The pre-flights 24 hours and 1 hour before each lift (app.disclosure.preflight); a
    failure never stops the pass, and never the lift."""
    try:
        preflight.run_due(at, settings)
    except Exception as exc:
        log.warning("pre-flights failed: %s", type(exc).__name__)


def run_forever(
    connection: redis.Redis, database, now, stop: threading.Event, settings: Settings
) -> None:
    """The worker's reconciler thread: one pass a minute (or when a lease ends) until stopped."""
    while not stop.is_set():
        pause = PERIOD_SECONDS
        try:
            with database.connection_context():
                # What is due first (reports, lifts, mail): the chores below (pre-flights, the
                # CSAF directory's signing) may take seconds, and a lift never waits for them.
                count = run(connection, now())
                reminders.queue_due(now())
                renewal.queue_due(now())
                _nudges(now(), settings)
                _preflights(now(), settings)
                _keys_and_data(now(), settings, connection)
                count += queue_due_deliveries(connection, now())  # the mail the chores queued
                pause = _pause(now())
            if count:
                log.info("reconciler queued %d jobs", count)
        except Exception as exc:  # Redis or the database away: try again next period
            log.warning("reconciler pass failed: %s", type(exc).__name__)
        stop.wait(pause)
