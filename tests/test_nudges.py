"""The one reminder to answer an alert before the lift (#17), under a frozen clock: the silent
alone, 14 days before (or as configured), once, even from two workers at once; its mail; and
the team's dashboard line about who stayed silent."""

import json
import threading
from datetime import timedelta

import pytest

from app.core.config import ConfigError, load_settings
from app.disclosure import embargo_change
from app.models import AuditEvent, Delivery, PublicKey, Vulnerability
from app.outbox import letters, sending
from app.registry import alerts, answer_address, answers, nudges, subscriptions, vetting
from app.vulns import cves, lifecycle
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, Auth
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
TITLE = "Use after free in the frobnicator's reassembly"


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@m{n}.example", f"Maker {n}") for n in range(6)]


@pytest.fixture
def registrants(db, clock, makers):
    """Five approved product makers (the sixth is approved after the alert, in a test)."""
    return [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers[:5])
    ]


@pytest.fixture
def v(db, clock, settings, registrants):
    """Accepted, alerted to the five, its embargo ending in 30 days."""
    v = lifecycle.create(TITLE, "Details.", CLI, clock.at, settings, clock.at + timedelta(days=30))
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    alerts.send(v, None, "t", clock.at, settings)
    return v


def days_before(v, days: float, **more):
    return v.embargo_until - timedelta(days=days, **more)


def reminded() -> list[str]:
    return sorted(d.recipient for d in Delivery.select().where(Delivery.kind == answers.NUDGE_KIND))


def given(status, justification=None, statement="", consent=False):
    return answers.check(status, justification, statement, consent)


def with_nudge_days(env, days: str):
    return load_settings({**env, "FOREWARN_ANSWER_NUDGE_DAYS": days})


def test_the_silent_alone_are_reminded_14_days_before_the_lift_not_15(
    v, registrants, makers, clock, settings
):
    answers.record(registrants[0], v, given("under_investigation"), via="web", at=clock.at)
    subscriptions.stop(registrants[2], clock.at)  # unsubscribed since the alert
    vetting.decide(registrants[3], "suspended", None, "t", clock.at)
    vetting.add_by_admin(  # approved after the alert: never alerted about it
        makers[5].address, "Maker 5", makers[5].cert, None, "t", clock.at, approve=True
    )

    assert nudges.send_due(days_before(v, 15), settings) == 0
    assert nudges.send_due(days_before(v, 14, seconds=1), settings) == 0
    assert reminded() == []

    at = days_before(v, 14)
    assert nudges.send_due(at, settings) == 2
    assert reminded() == ["psirt@m1.example", "psirt@m4.example"]
    nudge = Delivery.get(Delivery.recipient == "psirt@m1.example", Delivery.kind == "answer-nudge")
    assert (nudge.vulnerability_id, nudge.user_id) == (v.id, registrants[1].user_id)
    assert json.loads(nudge.payload) == {"registrant": registrants[1].id}
    assert (nudge.state, nudge.next_attempt_at) == ("queued", at)
    [event] = AuditEvent.select().where(AuditEvent.action == "answer.nudge")
    assert event.target == v.tracking_id
    assert json.loads(event.details)["to"] == ["psirt@m1.example", "psirt@m4.example"]

    # The team's matrix says when each was reminded.
    rows = {r.email: r for r in answers.matrix([v])}
    assert rows["psirt@m1.example"].nudged_at == at
    assert rows["psirt@m0.example"].nudged_at is None


def test_each_is_reminded_once_however_often_the_pass_runs(v, registrants, clock, settings):
    at = days_before(v, 14)
    assert nudges.send_due(at, settings) == 5
    assert nudges.send_due(at, settings) == 0
    assert nudges.send_due(at + timedelta(days=7), settings) == 0
    assert nudges.send_due(days_before(v, 0, minutes=1), settings) == 0
    assert reminded() == sorted(r.user.email for r in registrants)


def test_any_answer_counts_as_one_so_only_the_silent_hear_from_us(v, registrants, clock, settings):
    for registrant, status in zip(registrants, answers.STATUSES, strict=False):
        justification = "component_not_present" if status == "not_affected" else None
        answers.record(registrant, v, given(status, justification), via="mail", at=clock.at)
    assert nudges.send_due(days_before(v, 14), settings) == 1
    assert reminded() == ["psirt@m4.example"]


def test_nothing_after_the_embargo_ended_or_for_published_or_rejected_ones(
    v, registrants, clock, settings
):
    assert nudges.send_due(v.embargo_until, settings) == 0  # ends now: too late to ask
    assert nudges.send_due(v.embargo_until + timedelta(days=1), settings) == 0
    lifecycle.set_status(v, "rejected", CLI, clock.at, reason="not a vulnerability")
    assert nudges.send_due(days_before(v, 14), settings) == 0
    assert reminded() == []


def test_an_embargo_moved_out_of_the_window_and_back_brings_no_second_reminder(
    v, registrants, clock, settings
):
    at = days_before(v, 14)
    assert nudges.send_due(at, settings) == 5
    later = v.embargo_until + timedelta(days=40)
    moved = embargo_change.change_embargo(v, later, "the fix slipped", CLI, at, settings)
    assert moved is not None
    assert nudges.send_due(later - timedelta(days=14), settings) == 0
    back = at + timedelta(days=10)
    v = Vulnerability.get_by_id(v.id)
    embargo_change.change_embargo(v, back, "the fix is out", CLI, at + timedelta(days=1), settings)
    then = at + timedelta(days=2)
    [near] = nudges.nearing(then, settings)  # back in the window, its silent already reminded
    assert (near.vulnerability.id, near.silent, near.reminded_at) == (v.id, 5, at)
    assert nudges.send_due(then, settings) == 0
    assert len(reminded()) == 5


def test_an_embargo_moved_later_before_the_reminder_moves_the_reminder(
    v, registrants, clock, settings
):
    later = v.embargo_until + timedelta(days=40)
    embargo_change.change_embargo(v, later, "the fix slipped", CLI, clock.at, settings)
    assert nudges.send_due(days_before(v, 14), settings) == 0  # the old end: no longer due
    assert nudges.send_due(later - timedelta(days=14), settings) == 5


def test_the_setting_turns_the_reminder_off_or_moves_it(v, registrants, env):
    off = with_nudge_days(env, "0")
    assert nudges.window(off) is None
    assert nudges.send_due(days_before(v, 1), off) == 0
    week = with_nudge_days(env, "7")
    assert nudges.send_due(days_before(v, 14), week) == 0
    assert nudges.send_due(days_before(v, 7, seconds=1), week) == 0
    assert nudges.send_due(days_before(v, 7), week) == 5
    assert load_settings(env).answer_nudge_days == 14  # the default


@pytest.mark.parametrize("value", ["-1", "two weeks", "366"])
def test_a_bad_setting_is_one_line_saying_what_to_write(env, value):
    with pytest.raises(ConfigError) as refused:
        with_nudge_days(env, value)
    message = str(refused.value)
    assert message.startswith("FOREWARN_ANSWER_NUDGE_DAYS=") and "0 to 365" in message
    assert "\n" not in message


def test_two_workers_at_once_queue_each_reminder_once(v, registrants, db, settings):
    """Two reconcilers run the pass at the same instant, each on its own connection (SQLite:
    the write lock; PostgreSQL: the vulnerability's advisory lock)."""
    at = days_before(v, 14)
    start = threading.Barrier(2)
    counts, errors = [], []

    def worker():
        try:
            with db.connection_context():
                start.wait(timeout=30)
                counts.append(nudges.send_due(at, settings))
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(counts) == [0, 5]
    assert reminded() == sorted(r.user.email for r in registrants)


# -- the mail ------------------------------------------------------------------------------------


def _compose(delivery, keyring, settings, at):
    return letters.text_for(delivery, keyring, settings, at)


def test_the_mail_leads_with_what_to_do_by_when_and_names_the_ids_alone(
    v, registrants, makers, clock, settings, keyring, tmp_path
):
    cves.import_block("CVE-2026-5000..CVE-2026-5009", None, "test", clock.at)
    cve_id = cves.allocate(v, None, "test", clock.at).cve.cve_id
    at = days_before(v, 14)
    nudges.send_due(at, settings)
    nudge = Delivery.get(Delivery.recipient == "psirt@m0.example", Delivery.kind == "answer-nudge")

    text = _compose(nudge, keyring, settings, at)
    assert text.certificate is not None
    assert text.certificate.fingerprint == makers[0].fingerprint  # encrypted to theirs alone
    lines = text.body.splitlines()
    assert " ".join(lines[:2]) == (
        "Please tell us by 2026-12-25 12:00 UTC whether your products are affected "
        f"by {v.tracking_id} ({cve_id})."
    )
    assert TITLE not in text.body and TITLE not in text.subject and "Details" not in text.body
    assert cve_id not in text.outer_subject and TITLE not in text.outer_subject
    advisory = v.advisories.get()
    assert f"    http://127.0.0.1:8000/registry/advisories/{advisory.id}" in lines
    assert "  - reply to this reminder or to the alert, from your registered" in lines
    assert "        Status: not_affected" in lines  # indented: never read back as an answer
    assert "only if your answer says you agree" in " ".join(lines)
    assert max(len(line) for line in lines if "://" not in line) <= 72

    # It reaches the outbox and the registrant: signed, then encrypted to their key.
    sink = SmtpSink()
    try:
        transport = SmtpTransport("127.0.0.1", sink.port)
        result = sending.send(nudge.id, keyring, settings, transport, at)
        [received] = [r for r in sink.received if r.recipients == ["psirt@m0.example"]]
    finally:
        sink.stop()
    assert result == "sent"
    raw = received.data
    message = parse(raw)
    assert message.get_content_type() == "multipart/encrypted"
    assert message["Subject"] == f"Reminder: your answer about {v.tracking_id} (embargoed)"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.envelope_from.startswith("security-bounces+")
    # A reply is an answer (the newest version's answers address), never the reporter's case.
    assert message["Reply-To"] == answer_address.address(advisory.id, settings)
    assert TITLE.encode() not in raw and cve_id.encode() not in raw
    secret = tmp_path / "m0.key"
    secret.write_bytes(makers[0].secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    assert parse(entity).get_content_type() == "multipart/signed"
    assert "Please tell us by 2026-12-25 12:00 UTC" in text_of(parts_as_sent(entity)[0])


def test_without_a_usable_key_the_reminder_is_signed_and_names_the_tracking_id_alone(
    v, registrants, clock, settings, keyring
):
    cves.import_block("CVE-2026-5000..CVE-2026-5009", None, "test", clock.at)
    cve_id = cves.allocate(v, None, "test", clock.at).cve.cve_id
    nudges.send_due(days_before(v, 14), settings)
    PublicKey.update(usable=False).where(PublicKey.id == registrants[1].key_id).execute()
    nudge = Delivery.get(Delivery.recipient == "psirt@m1.example", Delivery.kind == "answer-nudge")
    text = _compose(nudge, keyring, settings, days_before(v, 14))
    assert text.certificate is None  # signed only: ids and a date, nothing embargoed
    assert text.body.startswith("Please tell us by 2026-12-25 12:00 UTC whether your products")
    assert v.tracking_id in text.body and cve_id not in text.body + text.subject
    assert TITLE not in text.body
    assert "http://127.0.0.1:8000/registry/status" in text.body


def test_one_who_only_missed_the_alert_is_pointed_to_the_list_of_their_alerts(
    db, clock, settings, keyring, makers
):
    maker = vetting.add_by_admin(
        makers[0].address, "Maker 0", makers[0].cert, None, "t", clock.at, approve=True
    )
    PublicKey.update(usable=False).where(PublicKey.id == maker.key_id).execute()
    v = lifecycle.create(TITLE, "", CLI, clock.at, settings, clock.at + timedelta(days=30))
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    alerts.send(v, None, "t", clock.at, settings)  # the missed notice: they cannot read it
    assert nudges.send_due(days_before(v, 14), settings) == 1
    [nudge] = Delivery.select().where(Delivery.kind == "answer-nudge")
    body = _compose(nudge, keyring, settings, days_before(v, 14)).body
    assert "http://127.0.0.1:8000/registry/advisories/\n" in body


# -- the team sees who stayed silent ------------------------------------------------------------


def test_the_dashboard_says_how_many_stayed_silent_and_when_they_were_reminded(
    v, registrants, clock, settings, app, client, admin_user
):
    answers.record(registrants[0], v, given("affected"), via="web", at=clock.at)
    Auth(client).login(admin_user.email, PASSWORD)

    clock.move(days=10)  # 20 days before the lift: not yet near
    page = client.get("/team/dashboard").get_data(as_text=True)
    assert "have not answered" not in page

    at = clock.move(days=6)  # 14 days before
    nudges.send_due(at, settings)
    answers.record(registrants[1], v, given("fixed"), via="web", at=at)
    page = client.get("/team/dashboard").get_data(as_text=True)
    assert "3 product makers have not answered (reminded on 2026-12-11 12:00 UTC)" in page
    link = f"/team/vulnerabilities/{v.tracking_id}/answers?status=no_answer"
    assert f'href="{link}"' in page
    silent = client.get(link)
    assert silent.status_code == 200
    listed = silent.get_data(as_text=True)
    assert "psirt@m2.example" in listed and "psirt@m4.example" in listed
    assert "psirt@m0.example" not in listed and "psirt@m1.example" not in listed


def test_the_workers_reconciler_sends_the_reminders_when_due(
    v, registrants, db, settings, redis_conn
):
    """The reconciler thread of every worker runs the pass each minute, as it runs the team's
    date reminders."""
    from app.workers import reconcile
    from tests.conftest import wait_for

    stop = threading.Event()
    at = days_before(v, 14)
    thread = threading.Thread(
        target=reconcile.run_forever, args=(redis_conn, db, lambda: at, stop, settings)
    )
    thread.start()
    try:
        wait_for(lambda: len(reminded()) == 5, what="the reminders queued by the reconciler")
    finally:
        stop.set()
        thread.join(30)
    assert reminded() == sorted(r.user.email for r in registrants)
