"""Reminders before dates slip: 7 days, 1 day, past; each once; the team when overdue."""

import json
from datetime import timedelta

import pytest

from app.accounts import team as accounts
from app.models import Delivery, Vulnerability
from app.outbox import sending
from app.vulns import lifecycle, reminders
from tests.conftest import PASSWORD
from tests.openpgp import parse, parts_as_sent, text_of
from tests.smtpsink import SmtpSink

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def team(db, clock):
    ada = accounts.create_team_account("ada@example.org", PASSWORD, "team", clock.at, "t").user
    bob = accounts.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    return ada, bob


@pytest.fixture
def v(team, clock, settings):
    v = lifecycle.create("Secret title", "", CLI, clock.at, settings)
    Vulnerability.update(assignee=team[0]).execute()
    return Vulnerability.get_by_id(v.id)


def sent():
    return [
        (json.loads(d.payload)["field"], json.loads(d.payload)["step"], d.recipient)
        for d in Delivery.select().where(Delivery.kind == "reminder").order_by(Delivery.id)
    ]


def test_nothing_is_due_early(v, clock):
    assert reminders.queue_due(clock.at) == 0


def test_each_reminder_goes_once_to_the_assignee_then_the_team_when_overdue(v, clock):
    clock.at = v.fix_due - timedelta(days=7)
    assert reminders.queue_due(clock.at) == 1
    assert reminders.queue_due(clock.at + timedelta(hours=1)) == 0  # once only
    reminders.queue_due(v.fix_due - timedelta(hours=20))
    reminders.queue_due(v.fix_due + timedelta(minutes=1))
    assert sent() == [
        ("fix_due", "7 days", "ada@example.org"),
        ("fix_due", "1 day", "ada@example.org"),
        ("fix_due", "past", "ada@example.org"),
        ("fix_due", "past", "bob@example.org"),
    ]


def test_a_changed_date_arms_its_reminders_again(v, clock):
    reminders.queue_due(v.fix_due - timedelta(days=6))
    v = lifecycle.set_field(
        v, "fix_due", (v.fix_due + timedelta(days=3)).isoformat(), CLI, clock.at
    )
    assert reminders.queue_due(v.fix_due - timedelta(days=6)) == 1
    assert len(sent()) == 2


def test_fixed_vulnerabilities_get_no_fix_reminder_but_embargo_ones(v, clock):
    Vulnerability.update(status="fixed").execute()
    reminders.queue_due(v.fix_due + timedelta(days=1))
    dates = [r for r in sent() if r[0] != "lead_time"]  # (no alert yet: that warning is apart)
    assert dates == []
    reminders.queue_due(v.embargo_until - timedelta(days=1))
    dates = [r for r in sent() if r[0] != "lead_time"]
    assert dates == [("embargo_until", "1 day", "ada@example.org")]


def test_unassigned_ones_remind_the_whole_team(v, clock):
    Vulnerability.update(assignee=None).execute()
    reminders.queue_due(v.embargo_until - timedelta(days=7))
    embargo = [r[2] for r in sent() if r[0] == "embargo_until"]
    assert embargo == ["ada@example.org", "bob@example.org"]


def test_the_reminder_mail_names_the_date_not_the_details(v, clock, keyring, settings):
    at = v.fix_due - timedelta(days=7)
    reminders.queue_due(at)
    sink = SmtpSink()
    try:
        from mail.transport import SmtpTransport

        [reminder] = Delivery.select().where(Delivery.kind == "reminder")
        assert (
            sending.send(reminder.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), at)
            == "sent"
        )
        raw = sink.received[0].data
    finally:
        sink.stop()
    assert b"Secret title" not in raw
    assert parse(raw)["Subject"] == f"[{v.tracking_id}] the fix is due in 7 days"
    body = text_of(parts_as_sent(raw)[0])
    assert f"The fix is due for {v.tracking_id} in 7 days: " in body
    assert f"/team/vulnerabilities/{v.tracking_id}" in body


def test_the_team_is_told_when_no_alert_has_gone_out_within_the_deployment_window(
    v, clock, settings
):

    Vulnerability.update(status="accepted").execute()
    early = v.embargo_until - reminders.DEPLOY_WINDOW - timedelta(days=1)
    reminders.queue_due(early)
    assert [r for r in sent() if r[0] == "lead_time"] == []
    late = v.embargo_until - reminders.DEPLOY_WINDOW + timedelta(hours=1)
    reminders.queue_due(late)
    reminders.queue_due(late + timedelta(hours=1))  # once only
    assert [r for r in sent() if r[0] == "lead_time"] == [
        ("lead_time", "alert", "ada@example.org"),
        ("lead_time", "alert", "bob@example.org"),
    ]


def test_no_lead_time_warning_once_an_alert_went_out(v, clock, settings):
    from app.registry import alerts

    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    alerts.send(v, None, "t", clock.at, settings)
    reminders.queue_due(v.embargo_until - timedelta(days=30))
    assert [r for r in sent() if r[0] == "lead_time"] == []
