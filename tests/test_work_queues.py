"""Alerts, replies and lifts never wait behind a slow inbound message, and a job that runs out
of time ends (no fallback on the way may take the timeout for a bad header and go on)."""

import logging
import mailbox
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from rq.serializers import JSONSerializer

from app.models import Delivery, InboundMessage, Vulnerability
from app.reports import inbound, processing
from app.workers import queue, reconcile, scheduling, startup
from tests import mailcorpus as mc
from tests.conftest import ROOT, run_jobs, wait_for

SERVICE = "security@localhost"


@pytest.fixture
def worker_env(env, monkeypatch):
    """The jobs read the worker's environment, as `forewarn worker` would."""
    from app.workers import jobs

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    yield
    jobs._settings.cache_clear()


def queued(connection) -> dict[str, set[str]]:
    return {q.name: set(q.job_ids) for q in queue.worker_queues(connection)}


def overdue_vulnerability(clock) -> Vulnerability:
    return Vulnerability.create(
        tracking_id="SEC-2026-0007",
        title="Overflow in BLE",
        status="accepted",
        reporter_email="rita@example.org",
        reported_at=clock.at - timedelta(days=90),
        fix_due=clock.at - timedelta(days=60),
        embargo_until=clock.at - timedelta(minutes=1),
        created_at=clock.at - timedelta(days=90),
        updated_at=clock.at - timedelta(days=90),
    )


def test_deliveries_and_lifts_go_to_a_queue_that_inbound_processing_is_not_on(
    db, keyring, settings, clock, redis_conn
):
    first = inbound.store(mc.plain("A report."), "rita@example.org", [SERVICE], clock.at)
    processing.process_inbound(first, keyring, settings, clock.at)  # its acknowledgement is due
    second = inbound.store(mc.plain("Another."), "rita@example.org", [SERVICE], clock.at)
    reconcile.queue_new_inbound(redis_conn, [second])
    assert reconcile.queue_due_deliveries(redis_conn, clock.at) >= 1
    v = overdue_vulnerability(clock)
    assert scheduling.schedule_lift(redis_conn, v, clock.at) == "queued"

    jobs = queued(redis_conn)
    assert jobs[queue.INBOUND_QUEUE] == {f"inbound-{second}"}
    urgent = jobs[queue.QUEUE_NAME]
    assert scheduling.lift_job_id(v) in urgent
    assert any(job.startswith("deliveries-") for job in urgent)
    assert not any(job.startswith("inbound-") for job in urgent)
    # The reconciler looks for the inbound job where it waits, and does not queue it twice.
    reconcile.run(redis_conn, clock.at)
    assert queue.inbound_queue(redis_conn).job_ids == [f"inbound-{second}"]


def test_a_worker_sends_due_mail_before_it_processes_waiting_messages(
    db, keyring, settings, clock, redis_conn, worker_env
):
    first = inbound.store(mc.plain("A report."), "rita@example.org", [SERVICE], clock.at)
    processing.process_inbound(first, keyring, settings, clock.at)
    waiting = inbound.store(mc.plain("Another."), "rita@example.org", [SERVICE], clock.at)
    reconcile.queue_new_inbound(redis_conn, [waiting])  # queued first
    reconcile.queue_due_deliveries(redis_conn, clock.at)  # queued after

    queue.Worker(
        queue.worker_queues(redis_conn), connection=redis_conn, serializer=JSONSerializer
    ).work(burst=True, max_jobs=1)

    assert InboundMessage.get_by_id(waiting).state == "received"  # still waiting
    ack = Delivery.get(Delivery.kind == "ack")
    assert ack.state == "sent"
    assert len(mailbox.Maildir(settings.mail_out)) >= 1
    run_jobs(redis_conn)
    assert InboundMessage.get_by_id(waiting).state == "processed"


def test_an_urgent_only_worker_never_takes_inbound_work(db, clock, redis_conn):
    message_id = inbound.store(mc.plain("A report."), "rita@example.org", [SERVICE], clock.at)
    reconcile.queue_new_inbound(redis_conn, [message_id])
    urgent = queue.worker_queues(redis_conn, urgent_only=True)
    assert [q.name for q in urgent] == [queue.QUEUE_NAME]
    queue.Worker(urgent, connection=redis_conn, serializer=JSONSerializer).work(burst=True)
    assert queue.inbound_queue(redis_conn).job_ids == [f"inbound-{message_id}"]
    assert InboundMessage.get_by_id(message_id).state == "received"


def test_forewarn_up_runs_a_worker_for_urgent_work_beside_the_one_for_all_work():
    argvs = {child.name: child.argv[-2:] for child in startup.children()}
    assert argvs["worker"][-1] == "worker"  # `forewarn worker`, all work, urgent first
    assert argvs["urgent worker"] == ["worker", "--urgent-only"]
    assert {"web", "intake"} <= set(argvs)


def test_forewarn_worker_offers_the_urgent_only_mode(forewarn):
    result = forewarn("worker", "--help")
    assert result.returncode == 0 and "--urgent-only" in result.stdout


def test_a_job_that_runs_out_of_time_ends_instead_of_being_taken_for_a_bad_header(redis_conn):
    job = queue.work_queue(redis_conn).enqueue(
        "tests.jobs.spin_in_header_fallback", 5, job_timeout=1
    )
    queue.Worker(
        queue.worker_queues(redis_conn), connection=redis_conn, serializer=JSONSerializer
    ).work(burst=True)
    job.refresh()
    assert job.get_status() == "failed"
    assert job.return_value() is None  # not "taken for a bad header"
    assert "OutOfTime" in job.latest_result().exc_string


@pytest.mark.slow
def test_mail_goes_out_while_a_slow_inbound_message_holds_the_other_worker(
    db, keyring, env, settings, redis_conn, tmp_path
):
    """The workers `forewarn up` runs, as real processes: one busy with a slow inbound job,
    the urgent one sends the delivery queued meanwhile."""
    slow = queue.inbound_queue(redis_conn).enqueue(
        "tests.jobs.hold_until_released", "slow", job_timeout=120
    )
    workers = []
    for child in startup.children():
        if child.name.endswith("worker"):
            with open(tmp_path / f"{child.name}.log", "wb") as log:
                workers.append(
                    subprocess.Popen(
                        child.argv,
                        cwd=ROOT,
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
    try:
        wait_for(lambda: redis_conn.get("slow-started"), what="the slow inbound job to start")
        notice = Delivery.create(
            kind="unreadable", recipient="registrant@example.org", created_at=datetime.now(UTC)
        )
        reconcile.queue_due_deliveries(redis_conn, datetime.now(UTC))

        wait_for(
            lambda: Delivery.get_by_id(notice.id).state == "sent",
            what="the delivery to be sent while the inbound job holds its worker",
        )
        assert len(mailbox.Maildir(settings.mail_out)) == 1
        assert slow.get_status(refresh=True) == "started"  # its worker is still busy with it
    finally:
        redis_conn.rpush("slow", 1)
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_failed_job_is_logged_in_one_line_without_its_traceback(redis_conn, caplog):
    caplog.set_level(logging.INFO, logger="rq.worker")
    job = queue.work_queue(redis_conn).enqueue("tests.jobs.recurse_forever", 0)
    queue.Worker(
        queue.worker_queues(redis_conn), connection=redis_conn, serializer=JSONSerializer
    ).work(burst=True)
    assert job.get_status(refresh=True) == "failed"
    [failure] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure.getMessage().startswith(f"job {job.id} failed: RecursionError at jobs.py:")
    assert "\n" not in failure.getMessage() and "Traceback" not in caplog.text
    assert "RecursionError" in job.latest_result().exc_string  # kept with the job for a human
