"""Moving an embargo is one step: the date recorded and audited, the team, the reporter and
every alerted registrant told in the same transaction, the lift done at once when the end has
passed; the queue is left to the workers, who (re)schedule the lift from what the step says."""

from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry

from app.core.errors import Refused
from app.disclosure import embargo_change, lift
from app.models import AuditEvent, Delivery, Vulnerability
from app.registry import alerts, vetting
from app.vulns import lifecycle
from app.workers import scheduling
from app.workers.queue import work_queue
from tests import mailcorpus as mc

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def v(db, clock, settings, admin_user):
    v = lifecycle.create("Overflow in the mesh relay", "Details.", CLI, clock.at, settings)
    Vulnerability.update(reporter_email="finder@example.org").execute()
    return lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, clock.at)


@pytest.fixture
def alerted(v, clock, settings):
    maker = mc.make_reporter("psirt@moved.example", "Moved PSIRT")
    vetting.add_by_admin(maker.address, "Moved", maker.cert, None, "t", clock.at, approve=True)
    alerts.send(v, None, "t", clock.at, settings)
    return maker.address


def told() -> list[tuple[str, str]]:
    """Who was told the embargo moved."""
    moved = ("alert-embargo", "embargo-changed")
    rows = Delivery.select().where(Delivery.kind.in_(moved)).order_by(Delivery.id)
    return [(d.kind, d.recipient) for d in rows]


def test_an_extension_tells_everyone_and_leaves_the_rescheduling_to_the_workers(
    v, alerted, clock, settings, admin_user, redis_conn
):
    later = v.embargo_until + timedelta(days=14)
    change = embargo_change.change_embargo(v, later, "fix slipped", CLI, clock.at, settings)
    assert change.outcome == lift.SCHEDULE
    assert change.vulnerability.embargo_until == later
    assert told() == [
        ("alert-embargo", alerted),
        ("embargo-changed", admin_user.email),
        ("embargo-changed", "finder@example.org"),
    ]
    [event] = AuditEvent.select().where(AuditEvent.action == "vuln.embargo_until")
    assert '"kind": "extend"' in event.details and "fix slipped" in event.details
    scheduled = ScheduledJobRegistry(queue=work_queue(redis_conn))
    assert scheduled.get_job_ids() == []  # the domain step touched no queue
    assert scheduling.follow(redis_conn, change, clock.at) == "scheduled"
    job = scheduling.lift_job_id(change.vulnerability)
    assert scheduled.get_job_ids() == [job]
    assert scheduled.get_scheduled_time(job).replace(tzinfo=None) == later.replace(tzinfo=None)


def test_an_end_moved_into_the_past_lifts_at_once_and_the_workers_finish_the_publication(
    v, alerted, clock, settings, redis_conn
):
    change = embargo_change.change_embargo(
        v, clock.at - timedelta(minutes=1), "exploited in the wild", CLI, clock.at, settings
    )
    assert change.outcome == "lifted"
    assert Vulnerability.get_by_id(v.id).status == "published"
    assert ("alert-embargo", alerted) in told()
    assert scheduling.follow(redis_conn, change, clock.at) == "lifted"
    assert f"publication-{v.id}" in work_queue(redis_conn).job_ids


def test_without_a_reason_nothing_moves_and_nobody_is_told(v, alerted, clock, settings):
    later = v.embargo_until + timedelta(days=14)
    with pytest.raises(Refused, match="Extending needs a reason"):
        embargo_change.change_embargo(v, later, "  ", CLI, clock.at, settings)
    assert Vulnerability.get_by_id(v.id).embargo_until == v.embargo_until
    assert told() == []
