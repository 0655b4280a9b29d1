"""The lift: never a second early, exactly once, held when unvalidated, rescheduled when the
embargo moves, caught up by the reconciler, and followed by checked publication steps."""

import json
import threading
from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from werkzeug.serving import make_server

from app.disclosure import lift
from app.models import AuditEvent, Delivery, Publication, Vulnerability
from app.registry import alerts, vetting
from app.vulns import lifecycle
from app.workers import reconcile, scheduling
from app.workers.queue import work_queue
from tests import mailcorpus as mc
from tests.conftest import run_jobs

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def v(db, clock, settings, admin_user):
    v = lifecycle.create('Overflow in the "beacon" parser', "Details.", CLI, clock.at, settings)
    Vulnerability.update(reporter_email="finder@example.org", reporter_name="Finder").execute()
    return lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, clock.at)


def kinds() -> list[str]:
    return sorted(d.kind for d in Delivery.select())


def test_not_a_second_early_then_exactly_once(v, clock, settings):
    until = v.embargo_until
    clock.move(seconds=(until - clock.at).total_seconds() - 1)
    assert lift.lift(v.id, clock.at, settings) == "not-due"
    assert Vulnerability.get_by_id(v.id).status == "accepted"
    clock.move(seconds=1)
    assert clock.at == until
    assert lift.lift(v.id, clock.at, settings) == "lifted"
    lifted = Vulnerability.get_by_id(v.id)
    assert (lifted.status, lifted.published_at) == ("published", until)
    assert kinds() == ["publication"]  # the reporter; no announce list, nobody alerted
    assert Publication.get().state == "pending"
    assert lift.lift(v.id, clock.move(seconds=5), settings) == "already"
    assert kinds() == ["publication"]
    assert AuditEvent.select().where(AuditEvent.action == "vuln.published").count() == 1


def test_alerted_registrants_and_the_list_are_told_at_the_lift(v, clock, settings):
    from dataclasses import replace

    maker = mc.make_reporter("psirt@lifted.example", "Lifted PSIRT")
    vetting.add_by_admin(maker.address, "Lifted", maker.cert, None, "t", clock.at, approve=True)
    alerts.send(v, None, "t", clock.at, settings)
    settings = replace(settings, announce_address="announce@lists.example")
    assert lift.lift(v.id, v.embargo_until, settings) == "lifted"
    assert kinds() == ["alert", "announcement", "embargo-lifted", "publication"]


def test_an_unvalidated_one_is_held_and_the_team_told_once(
    db, clock, settings, admin_user, redis_conn
):
    v = lifecycle.create("Still in triage", "", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "triage", CLI, clock.at)
    at = v.embargo_until + timedelta(seconds=1)
    assert lift.lift(v.id, at, settings) == "held"
    assert lift.lift(v.id, at + timedelta(minutes=1), settings) == "held"
    held = Delivery.select().where(Delivery.kind == "lift-held")
    assert [d.recipient for d in held] == [admin_user.email]
    assert Vulnerability.get_by_id(v.id).status == "triage"
    # Accepting it now: its embargo has passed, so it is published at once.
    v = lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, at)
    assert scheduling.after_change(redis_conn, v, at + timedelta(minutes=2), settings) == "lifted"
    assert Vulnerability.get_by_id(v.id).status == "published"


def test_a_rejected_one_is_never_published(v, clock, settings):
    lifecycle.set_status(v, "rejected", CLI, clock.at, reason="not a bug")
    assert lift.lift(v.id, v.embargo_until, settings) == "not-public"
    assert Vulnerability.get_by_id(v.id).status == "rejected"


def test_an_embargo_end_in_the_past_lifts_now(v, clock, settings, redis_conn):
    v = lifecycle.set_date(
        v, "embargo_until", clock.at - timedelta(minutes=1), CLI, clock.at, "live"
    )
    assert scheduling.after_change(redis_conn, v, clock.at, settings) == "lifted"
    assert Vulnerability.get_by_id(v.id).published_at == clock.at
    # Its publication steps are queued for a worker.
    assert f"publication-{v.id}" in work_queue(redis_conn).job_ids


def test_the_lift_is_scheduled_for_the_instant_and_rescheduled_when_it_moves(
    v, clock, settings, redis_conn
):
    scheduled = ScheduledJobRegistry(queue=work_queue(redis_conn))
    assert scheduling.after_change(redis_conn, v, clock.at, settings) == "scheduled"
    first = scheduling.lift_job_id(v)
    assert scheduled.get_scheduled_time(first).replace(tzinfo=None) == v.embargo_until.replace(
        tzinfo=None
    )
    later = v.embargo_until + timedelta(days=7)
    v = lifecycle.set_date(v, "embargo_until", later, CLI, clock.at, "second release")
    assert scheduling.after_change(redis_conn, v, clock.at, settings) == "scheduled"
    assert scheduling.lift_job_id(v) != first
    assert scheduled.get_scheduled_time(scheduling.lift_job_id(v)).replace(
        tzinfo=None
    ) == later.replace(tzinfo=None)
    # The old job may still fire: it finds nothing due.
    assert lift.lift(v.id, later - timedelta(days=7), settings) == "not-due"


def test_the_reconciler_catches_a_lift_that_redis_lost(
    v, clock, settings, redis_conn, env, monkeypatch
):
    from app.workers import jobs

    for name, value in env.items():  # the jobs read the worker's environment
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    scheduling.after_change(redis_conn, v, clock.at, settings)
    redis_conn.flushall()  # the scheduled job is gone
    after = v.embargo_until + timedelta(seconds=30)
    clock.move(seconds=(after - clock.at).total_seconds())
    assert reconcile.run(redis_conn, clock.at) >= 1
    run_jobs(redis_conn)
    jobs._settings.cache_clear()
    assert Vulnerability.get_by_id(v.id).status == "published"
    assert Vulnerability.get_by_id(v.id).published_at == after


def test_the_reconciler_schedules_lifts_coming_within_its_horizon(v, clock, settings, redis_conn):
    reconcile.run(redis_conn, v.embargo_until - scheduling.HORIZON - timedelta(minutes=1))
    scheduled = ScheduledJobRegistry(queue=work_queue(redis_conn))
    assert scheduling.lift_job_id(v) not in scheduled.get_job_ids()
    reconcile.run(redis_conn, v.embargo_until - timedelta(minutes=5))
    assert scheduling.lift_job_id(v) in scheduled.get_job_ids()


@pytest.fixture
def portal(app, settings):
    """The real portal on a loopback port, for the page step to fetch."""
    from dataclasses import replace

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield replace(settings, base_url=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()


def test_publication_steps_are_retried_until_they_succeed(v, clock, settings, portal):
    from dataclasses import replace

    down = replace(settings, base_url="http://127.0.0.1:9")  # nothing listens there
    lift.lift(v.id, v.embargo_until, down)
    at = v.embargo_until
    steps = lift.complete(v.id, at, down)
    assert steps["page"].startswith("failed: ")
    assert steps["exports"].startswith("done")
    assert steps["cve-record"].startswith("skipped")
    publication = Publication.get()
    assert (publication.state, publication.attempts) == ("pending", 1)
    assert publication.next_attempt_at == at + timedelta(minutes=1)
    assert [p.id for p in lift.pending(at)] == []  # not before its next attempt
    assert [p.id for p in lift.pending(at + timedelta(minutes=1))] == [publication.id]
    clock.move(seconds=(at + timedelta(minutes=1) - clock.at).total_seconds())  # the portal's now
    steps = lift.complete(v.id, clock.at, portal)
    assert steps["page"] == "done"
    publication = Publication.get()
    assert (publication.state, publication.completed_at) == ("complete", at + timedelta(minutes=1))
    done = AuditEvent.get(AuditEvent.action == "vuln.publication_complete")
    assert json.loads(done.details)["page"] == "done"


def test_the_team_sees_a_failing_publication(v, clock, settings, client, auth, admin_user):
    from dataclasses import replace

    from tests.conftest import PASSWORD

    down = replace(settings, base_url="http://127.0.0.1:9")
    lift.lift(v.id, v.embargo_until, down)
    lift.complete(v.id, v.embargo_until, down)
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert "a step has not succeeded yet" in page
    assert "failed: " in page


def test_lift_due_on_the_command_line(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    (tmp_path / "d.md").write_text("Details.\n")
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(tmp_path / "d.md")
    ).stdout.strip()
    assert forewarn("lift-due").stdout == "nothing to lift\n"
    assert forewarn("vulns", "set", tracking, "status", "accepted").returncode == 0
    ended = forewarn("vulns", "set", tracking, "embargo_until", "2020-01-01")
    assert ended.returncode == 0, ended.stderr
    assert (
        ended.stdout
        == f"{tracking}: embargo_until set; published now (the announcement is queued)\n"
    )
    shown = json.loads(forewarn("vulns", "show", tracking, "--json").stdout)
    assert shown["status"] == "published"
    assert forewarn("lift-due").stdout == "nothing to lift\n"


def test_a_lift_still_held_by_the_scheduler_after_its_instant_is_queued_again(
    v, clock, settings, redis_conn
):
    """A killed worker's scheduler lock can keep a scheduled lift from moving for minutes: once
    the instant has passed only a lift in the queue counts as waiting, and the reconciler
    queues it (a second run finds it already published)."""
    assert scheduling.after_change(redis_conn, v, clock.at, settings) == "scheduled"
    scheduled = ScheduledJobRegistry(queue=work_queue(redis_conn))
    assert scheduled.get_job_ids() == [scheduling.lift_job_id(v)]
    after = v.embargo_until + timedelta(seconds=30)  # no scheduler ran meanwhile
    assert scheduling.schedule_lift(redis_conn, v, after) == "queued"
    assert scheduling.lift_job_id(v) in work_queue(redis_conn).job_ids
    assert scheduling.schedule_lift(redis_conn, v, after) == "waiting"
