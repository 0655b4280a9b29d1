"""Re-queues what the database says is unfinished: a lost Redis or a killed worker loses nothing."""

import logging
import threading
from datetime import datetime

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from app import inbound, lift, outbox, queue, reminders, renewal

log = logging.getLogger("forewarn.reconcile")

PERIOD_SECONDS = 60
PROCESS_INBOUND = "app.jobs.process_inbound"
SEND_DELIVERY = "app.jobs.send_delivery"


def _waiting(connection: redis.Redis, job_id: str) -> bool:
    """Is this job already queued or running (so queueing it again would only add noise)?"""
    try:
        status = Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status()
    except NoSuchJobError:
        return False
    return status in ("queued", "started", "scheduled", "deferred")


def _queue(connection: redis.Redis, function: str, prefix: str, ids) -> int:
    queued = 0
    for row_id in ids:
        job_id = f"{prefix}-{row_id}"
        if not _waiting(connection, job_id):
            queue.enqueue(connection, function, row_id, job_id=job_id)
            queued += 1
    return queued


def queue_new_inbound(connection: redis.Redis, message_ids: list[int]) -> None:
    """Messages just stored: nothing can be waiting for them yet, so no look first."""
    for message_id in message_ids:
        queue.enqueue(connection, PROCESS_INBOUND, message_id, job_id=f"inbound-{message_id}")


def queue_due_deliveries(connection: redis.Redis, at: datetime) -> int:
    return _queue(connection, SEND_DELIVERY, "delivery", [d.id for d in outbox.due(at)])


def run(connection: redis.Redis, at: datetime) -> int:
    """One pass: queue every due message, lift and delivery not already waiting; returns how
    many."""
    queued = _queue(connection, PROCESS_INBOUND, "inbound", [m.id for m in inbound.due(at)])
    queued += lift.reconcile(connection, at)
    return queued + queue_due_deliveries(connection, at)


def run_forever(connection: redis.Redis, database, now, stop: threading.Event) -> None:
    """The worker's reconciler thread: one pass a minute until stop is set."""
    while not stop.is_set():
        try:
            with database.connection_context():
                reminders.queue_due(now())
                renewal.queue_due(now())
                count = run(connection, now())
            if count:
                log.info("reconciler queued %d jobs", count)
        except Exception as exc:  # Redis or the database away: try again next period
            log.warning("reconciler pass failed: %s", type(exc).__name__)
        stop.wait(PERIOD_SECONDS)
