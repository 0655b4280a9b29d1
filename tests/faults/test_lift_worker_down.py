"""An embargo's end passes while no worker runs: several accepted vulnerabilities have their
lifts scheduled for a few seconds ahead (the real clock), the worker is killed with -9 before
the instant (and, in one variant, Redis loses everything too), the instant passes, then the
worker starts again. Each is lifted within one reconciler period of the restart, never before
its embargo end, exactly once: one vuln.published audit event and one announcement each.
"""

import os
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from rq import Worker

from app.core import clock
from app.core.config import load_settings
from app.models import AuditEvent, Delivery, Vulnerability
from app.outbox import sending
from app.vulns import lifecycle
from app.workers import reconcile, scheduling
from tests.conftest import wait_for
from tests.faults.harness import CountingSink, Workers, received_by_message_id

pytestmark = pytest.mark.faults

FULL = os.environ.get("FOREWARN_FAULTS_FULL", "") == "1"
VULNERABILITIES = 8 if FULL else 3
LEAD_SECONDS = 4  # the first embargo ends this long after scheduling; one more second each
SLACK_SECONDS = 5  # the worker's start-up and the lift itself, on a shared machine
ANNOUNCE = "announce@lists.example.org"
CLI = lifecycle.Actor(None, "faults")


def accepted(settings, n: int, until):
    v = lifecycle.create(
        f"Use after free in the codec, part {n}", "Details.", CLI, clock.now(), settings
    )
    v = lifecycle.set_status(v, "accepted", CLI, clock.now())
    return lifecycle.set_date(v, "embargo_until", until, CLI, clock.now(), "now")


@pytest.mark.parametrize(
    "flush",
    [
        pytest.param(False, id="kill"),
        pytest.param(True, id="kill-and-flush"),
    ],
)
def test_embargoes_that_end_while_the_worker_is_down_are_lifted_once_it_is_back(
    flush, env, forewarn, db, settings, redis_url, tmp_path
):
    assert forewarn("init").returncode == 0
    sink = CountingSink()
    env = {
        **env,
        "FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}",
        "FOREWARN_ANNOUNCE_ADDRESS": ANNOUNCE,
    }
    settings = load_settings(env)  # with the announcement address
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    workers = Workers(env, 1, tmp_path)
    try:
        workers.start()
        wait_for(lambda: Worker.all(connection=connection), timeout=30, what="the worker")
        first = (clock.now() + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
        created = []
        for n in range(VULNERABILITIES):
            v = accepted(settings, n, first + timedelta(seconds=n))
            assert scheduling.after_change(connection, v, clock.now(), settings) == "scheduled"
            created.append(v)
        workers.kill()
        killed_ahead = (first - clock.now()).total_seconds()
        assert killed_ahead > 0, "the worker was killed after the first instant"
        if flush:
            connection.flushall()  # the scheduled jobs are gone with everything else
        last = created[-1].embargo_until
        wait_for(lambda: clock.now() > last + timedelta(seconds=1), timeout=LEAD_SECONDS + 30)
        published_while_down = (
            Vulnerability.select().where(Vulnerability.status == "published").count()
        )

        restarted = clock.now()
        workers.start()
        wait_for(
            lambda: (
                Vulnerability.select().where(Vulnerability.status == "published").count()
                == VULNERABILITIES
            ),
            timeout=reconcile.PERIOD_SECONDS + SLACK_SECONDS + 2,
            interval=0.1,
            what=lambda: f"every lift after the restart\n{workers.logs()}",
        )
        wait_for(
            lambda: (
                Delivery.select()
                .where(Delivery.kind == "announcement", Delivery.state == "sent")
                .count()
                >= VULNERABILITIES
            ),
            timeout=60,
            what=lambda: f"the announcements\n{workers.logs()}",
        )
        time.sleep(2)  # a second lift or announcement, if one were coming, has had its chance
    finally:
        workers.stop()
        sink.stop()
        connection.close()

    rows = {v.id: Vulnerability.get_by_id(v.id) for v in created}
    lags = {r.tracking_id: (r.published_at - restarted).total_seconds() for r in rows.values()}
    late = {
        r.tracking_id: (r.published_at - r.embargo_until).total_seconds() for r in rows.values()
    }
    events = Counter(
        e.target for e in AuditEvent.select().where(AuditEvent.action == "vuln.published")
    )
    announcements = list(Delivery.select().where(Delivery.kind == "announcement"))
    per_vulnerability = Counter(d.vulnerability_id for d in announcements)
    got = received_by_message_id(sink.received)
    mailed = {
        d.id: got[(sending.message_id_for(d, settings), (d.recipient,))] for d in announcements
    }
    print(
        f"\nlift with the worker down ({'kill and Redis flush' if flush else 'kill'}): "
        f"{VULNERABILITIES} embargoes, worker killed {killed_ahead:.1f} s before the first, "
        f"restarted {(restarted - last).total_seconds():.1f} s after the last; "
        f"{published_while_down} published while down; lifted "
        f"{min(lags.values()):.2f}-{max(lags.values()):.2f} s after the restart "
        f"(bound {reconcile.PERIOD_SECONDS + SLACK_SECONDS} s), "
        f"{min(late.values()):.1f}-{max(late.values()):.1f} s after their embargo ends; "
        f"vuln.published events {sorted(events[r.tracking_id] for r in rows.values())}, "
        f"announcements {sorted(per_vulnerability[i] for i in rows)}, "
        f"mailed {sorted(mailed.values())}"
    )
    assert published_while_down == 0
    assert all(r.status == "published" for r in rows.values())
    assert all(r.published_at >= r.embargo_until for r in rows.values())  # never early
    assert all(0 <= lag <= reconcile.PERIOD_SECONDS + SLACK_SECONDS for lag in lags.values())
    assert all(events[r.tracking_id] == 1 for r in rows.values())
    assert sum(events.values()) == VULNERABILITIES
    assert all(per_vulnerability[i] == 1 for i in rows) and len(announcements) == VULNERABILITIES
    assert {d.recipient for d in announcements} == {ANNOUNCE}
    assert {d.state for d in Delivery.select().where(Delivery.kind == "announcement")} == {"sent"}
    assert sorted(mailed.values()) == [1] * VULNERABILITIES
