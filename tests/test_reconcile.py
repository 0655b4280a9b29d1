"""The reconciler: what the database says is unfinished gets queued again; nothing twice."""

import json
from datetime import timedelta

from app.models import Delivery, InboundMessage
from app.reports import inbound
from app.workers import queue, reconcile
from tests import mailcorpus as mc


def job_ids(redis_conn):
    """Every queued job, whichever queue it waits in."""
    return sorted(job for q in queue.worker_queues(redis_conn) for job in q.job_ids)


def test_a_stored_message_whose_job_was_lost_is_queued_again(db, redis_conn, clock):
    message_id = inbound.store(mc.plain("lost job"), "rita@example.org", ["s@x"], clock.at)
    redis_conn.flushall()  # Redis lost everything, as after a restart without persistence
    assert reconcile.run(redis_conn, clock.at) == 1
    assert job_ids(redis_conn) == [f"inbound-{message_id}"]


def test_work_already_waiting_is_not_queued_twice(db, redis_conn, clock):
    message_id = inbound.store(mc.plain("queued once"), "rita@example.org", ["s@x"], clock.at)
    reconcile.queue_new_inbound(redis_conn, [message_id])
    assert reconcile.run(redis_conn, clock.at) == 0
    assert job_ids(redis_conn) == [f"inbound-{message_id}"]


def test_leased_messages_wait_until_the_lease_ends(db, redis_conn, clock):
    message_id = inbound.store(mc.plain("in flight"), "rita@example.org", ["s@x"], clock.at)
    assert inbound.claim(message_id, clock.at) is not None  # a worker has it...
    assert reconcile.run(redis_conn, clock.at) == 0
    clock.move(minutes=6)  # ...and died: its lease ran out
    assert reconcile.run(redis_conn, clock.at) == 1


def test_done_messages_are_left_alone(db, redis_conn, clock):
    message_id = inbound.store(mc.plain("done"), "rita@example.org", ["s@x"], clock.at)
    InboundMessage.update(state="processed").where(InboundMessage.id == message_id).execute()
    assert reconcile.run(redis_conn, clock.at) == 0


def test_deliveries_are_queued_when_due_and_not_before(db, redis_conn, clock):
    later = Delivery.create(
        kind="ack",
        recipient="r@example.org",
        payload=json.dumps({}),
        next_attempt_at=clock.at + timedelta(minutes=5),
        created_at=clock.at,
    )
    sent = Delivery.create(kind="ack", recipient="r@example.org", state="sent", created_at=clock.at)
    assert reconcile.run(redis_conn, clock.at) == 0
    clock.move(minutes=5)
    assert reconcile.run(redis_conn, clock.at) == 1
    assert job_ids(redis_conn) == [reconcile.delivery_job_id(later.id)]
    assert sent.id != later.id


def test_a_job_a_killed_worker_left_started_is_queued_again(db, redis_conn, clock):
    """RQ keeps saying "started" for a job whose worker died with -9: only a job in its queue
    counts as waiting (queue.is_waiting, the one check every enqueuer uses)."""
    from rq.job import JobStatus

    message_id = inbound.store(mc.plain("worker died"), "rita@example.org", ["s@x"], clock.at)
    reconcile.queue_new_inbound(redis_conn, [message_id])
    waiting = queue.inbound_queue(redis_conn)
    waiting.fetch_job(waiting.pop_job_id()).set_status(JobStatus.STARTED)  # then it died
    assert job_ids(redis_conn) == []
    assert not queue.is_waiting(redis_conn, queue.PROCESS_INBOUND, f"inbound-{message_id}")
    assert reconcile.run(redis_conn, clock.at) == 1
    assert job_ids(redis_conn) == [f"inbound-{message_id}"]
