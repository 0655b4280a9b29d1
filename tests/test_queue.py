"""Jobs carry ids only, through RQ's JSON serializer, run by a real worker on a real Redis."""

import json
import zlib

import pytest

from app.models import AuditEvent
from app.workers import queue
from tests.conftest import run_jobs


def test_a_job_with_ids_runs_in_a_burst_worker(db, redis_conn, admin_user, clock):
    job = queue.enqueue(redis_conn, "tests.jobs.record_sign_in_reminder", admin_user.id)
    assert job.get_status() == "queued"
    run_jobs(redis_conn)
    job.refresh()
    assert job.get_status() == "finished"
    assert job.return_value() == admin_user.email
    event = AuditEvent.get(AuditEvent.action == "test.reminder")
    assert (event.target, event.at) == (admin_user.email, clock.at)


def test_jobs_refuse_anything_but_ids(redis_conn, admin_user):
    with pytest.raises(TypeError, match="ids only"):
        queue.enqueue(redis_conn, "tests.jobs.record_sign_in_reminder", admin_user)
    assert queue.work_queue(redis_conn).count == 0


def test_jobs_are_stored_as_json(redis_conn):
    job = queue.enqueue(redis_conn, "tests.jobs.record_sign_in_reminder", 7)
    stored = zlib.decompress(redis_conn.hget(f"rq:job:{job.id}", "data"))
    function, instance, args, kwargs = json.loads(stored)
    assert function == "tests.jobs.record_sign_in_reminder"
    assert (instance, args, kwargs) == (None, [7], {})


def test_a_batch_is_queued_in_a_fixed_number_of_round_trips_as_json_with_its_job_ids(redis_conn):
    def round_trips(jobs) -> int:
        """Connections taken from the pool while queueing (one per command or pipeline)."""
        taken, original = [], redis_conn.connection_pool.get_connection

        def counting(*args, **kwargs):
            taken.append(1)
            return original(*args, **kwargs)

        redis_conn.connection_pool.get_connection = counting
        try:
            assert queue.enqueue_each(
                redis_conn, "tests.jobs.record_sign_in_reminder", jobs
            ) == len(jobs)
        finally:
            redis_conn.connection_pool.get_connection = original
        return len(taken)

    round_trips([(0, "inbound-0")])  # RQ asks Redis a few things once per connection
    # Not one per message: the intake's writer queues a whole committed batch at once.
    assert round_trips([(n, f"inbound-{n}") for n in range(1, 3)]) == round_trips(
        [(n, f"inbound-{n}") for n in range(3, 43)]
    )
    assert queue.work_queue(redis_conn).get_job_ids() == [f"inbound-{n}" for n in range(43)]
    stored = zlib.decompress(redis_conn.hget("rq:job:inbound-8", "data"))
    assert json.loads(stored)[2] == [8]
    with pytest.raises(TypeError, match="ids only"):
        queue.enqueue_each(redis_conn, "tests.jobs.record_sign_in_reminder", [(object(), "x")])
    assert queue.enqueue_each(redis_conn, "tests.jobs.record_sign_in_reminder", []) == 0


def test_an_unreachable_redis_is_one_line_with_the_fix():
    from app.core.errors import OperatorError

    connection = queue.connect("redis://127.0.0.1:1/0")
    with pytest.raises(OperatorError, match="FOREWARN_REDIS_URL"):
        queue.check(connection, "redis://127.0.0.1:1/0")
