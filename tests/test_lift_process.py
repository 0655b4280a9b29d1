"""The lift by the real worker and RQ's scheduler, on the real clock: published at the instant
(never before), by the job scheduled for it; and by the reconciler when Redis lost the job."""

from datetime import timedelta

import pytest

from app.core import clock
from app.models import Vulnerability
from app.vulns import lifecycle
from app.workers import scheduling
from tests.conftest import wait_for
from tests.faults.harness import Workers

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def workers(env, tmp_path, db):
    running = Workers(env, 1, tmp_path)
    running.start()
    yield running
    running.stop()


def accepted(settings, until):
    v = lifecycle.create("Lifted by the scheduler", "Details.", CLI, clock.now(), settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.now())
    return lifecycle.set_date(v, "embargo_until", until, CLI, clock.now(), "now")


def published(v) -> bool:
    return Vulnerability.get_by_id(v.id).status == "published"


def test_the_scheduled_job_lifts_at_the_instant_never_before(settings, redis_conn, workers):
    until = (clock.now() + timedelta(seconds=4)).replace(microsecond=0)
    v = accepted(settings, until)
    assert scheduling.after_change(redis_conn, v, clock.now(), settings) == "scheduled"
    wait_for(lambda: published(v), timeout=30, what=lambda: f"the lift\n{workers.logs()}")
    lifted_at = Vulnerability.get_by_id(v.id).published_at
    lag = (lifted_at - until).total_seconds()
    print(f"\nlift: {lag:.2f} s after the instant")
    assert lifted_at >= until  # never a second early


def test_a_lift_whose_job_redis_lost_is_caught_up_when_the_worker_starts(
    settings, redis_conn, env, tmp_path, db
):
    v = accepted(settings, clock.now() + timedelta(seconds=1))
    scheduling.after_change(redis_conn, v, clock.now(), settings)
    redis_conn.flushall()  # the scheduled job is lost, and no worker is running
    wait_for(lambda: clock.now() > v.embargo_until, timeout=5, what="the instant")
    assert not published(v)
    workers = Workers(env, 1, tmp_path)
    workers.start()  # its reconciler's first pass finds the lift overdue
    try:
        wait_for(lambda: published(v), timeout=60, what=lambda: f"the catch-up\n{workers.logs()}")
    finally:
        workers.stop()
