"""The pre-flight before a lift, under a frozen clock: nothing 25 hours before, once at 24 hours
and once at 1 hour; each missing or broken field reported with a one-line fix; mailed to the
team, shown on the dashboard, cleared when fixed; a moved end gets its own; the lift on time."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.accounts import team as accounts
from app.disclosure import lift, preflight
from app.models import Delivery, Vulnerability
from app.vulns import cves, lifecycle
from app.workers import reconcile
from tests.conftest import PASSWORD, Auth, run_jobs
from tests.test_cli import one_line_error

pytestmark = pytest.mark.db

ORG_ID = "8254265b-2729-46b6-b9e3-3dfca2d5bfca"
ACTOR = lifecycle.Actor(None, "test")


@pytest.fixture
def env(env):
    return {**env, "FOREWARN_CNA_ORG_ID": ORG_ID, "FOREWARN_VENDOR": "Zephyr Project"}


@pytest.fixture
def ada(db, clock):
    return accounts.create_team_account("ada@example.org", PASSWORD, "team", clock.at, "t").user


@pytest.fixture
def v(db, clock, settings, admin_user, ada):
    """An accepted vulnerability ready for its lift in 30 hours: CVE id, description, affected."""
    v = lifecycle.create(
        "Heap overflow in L2CAP reassembly",
        "A crafted **L2CAP** frame overflows the reassembly buffer.",
        ACTOR,
        clock.at - timedelta(days=40),
        settings,
        embargo_until=clock.at + timedelta(hours=30),
    )
    v = lifecycle.set_field(v, "affected", "zephyr >=3.0 <4.2", ACTOR, clock.at)
    v = lifecycle.set_field(v, "assignee", ada.email, ACTOR, clock.at)
    v = lifecycle.set_status(v, "accepted", ACTOR, clock.at)
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)
    cves.allocate(v, None, "test", clock.at)
    return Vulnerability.get_by_id(v.id)


def before(v, **delta):
    return Vulnerability.get_by_id(v.id).embargo_until - timedelta(**delta)


def mails():
    return list(Delivery.select().where(Delivery.kind == "preflight").order_by(Delivery.id))


def documents(findings) -> list[str]:
    return [f.document for f in findings]


def test_a_ready_vulnerability_passes_every_document(v, clock, settings):
    assert preflight.check(v, clock.at, settings) == []


def test_nothing_at_25_hours_then_once_at_24_and_once_at_1(v, clock, settings):
    Vulnerability.update(cve=None).execute()  # something to report, so each run mails
    assert preflight.run_due(before(v, hours=25), settings) == 0
    assert preflight.run_due(before(v, hours=24), settings) == 1
    assert preflight.run_due(before(v, hours=23), settings) == 0  # once per window
    assert preflight.run_due(before(v, hours=2), settings) == 0
    assert preflight.run_due(before(v, hours=1), settings) == 1
    assert preflight.run_due(before(v, minutes=30), settings) == 0
    windows = [json.loads(d.payload)["window"] for d in mails()]
    assert windows == ["24 hours", "24 hours", "1 hour", "1 hour"]  # to admin and ada, twice


def test_a_missed_window_runs_late_and_the_farther_one_is_skipped(v, clock, settings):
    Vulnerability.update(cve=None).execute()
    assert preflight.run_due(before(v, minutes=40), settings) == 1  # the worker was down
    assert preflight.run_due(before(v, minutes=20), settings) == 0
    assert {json.loads(d.payload)["window"] for d in mails()} == {"1 hour"}


def test_a_missing_cve_id_is_reported_with_the_command_that_fixes_it(v, clock, settings):
    Vulnerability.update(cve=None).execute()
    (finding,) = preflight.check(v, clock.at, settings)
    assert finding.document == "CVE id"
    assert finding.fix == f"forewarn cve assign {v.tracking_id}"
    assert "\n" not in finding.line()


def test_an_empty_description_is_reported(v, clock, settings):
    Vulnerability.update(description="  ").execute()
    found = preflight.check(v, clock.at, settings)
    assert documents(found) == ["description"]
    assert found[0].fix.startswith(f"forewarn vulns set {v.tracking_id} description ")


def test_unparseable_affected_is_reported_once_with_the_parsers_words(v, clock, settings):
    Vulnerability.update(affected="zephyr versions before 4.2").execute()
    found = preflight.check(v, clock.at, settings)
    assert documents(found) == ["affected"]  # the records, which cannot be made, not again
    assert "zephyr >=3.0 <4.2" in found[0].fix
    assert "'zephyr versions before 4.2' is not PRODUCT RANGE" in found[0].detail
    # The detail quotes the private field: the mail says the fix alone.
    assert "versions before" not in json.dumps(found[0].for_mail(v))


def test_no_affected_entry_is_reported_and_the_cve_record_not_again(v, clock, settings):
    Vulnerability.update(affected="").execute()
    found = preflight.check(v, clock.at, settings)
    assert documents(found) == ["affected"]
    assert found[0].what == "no product or version given"


def test_an_export_failing_its_schema_is_reported_with_where(v, clock, settings):
    # A vector the form would refuse, as an older version of the desk might have stored.
    Vulnerability.update(severity="CVSS:3.1/AV:Q", cvss_score=11.0).execute()
    found = preflight.check(v, clock.at, settings)
    invalid = [f for f in found if f.document in ("cve", "osv", "csaf")]
    assert invalid, found
    for finding in invalid:
        assert finding.what.startswith(f"the {finding.document} record would not validate (at $")
        assert finding.detail  # the validator's words, for the dashboard and the command
        assert f"forewarn preflight {v.tracking_id}" in finding.fix


def test_a_record_that_cannot_be_made_says_how_to_fix_it(v, clock, settings):
    from dataclasses import replace

    found = preflight.check(v, clock.at, replace(settings, cna_org_id=None))
    assert documents(found) == ["cve"]
    assert "FOREWARN_CNA_ORG_ID" in found[0].fix


def test_the_team_is_mailed_what_to_fix_and_by_when(v, clock, settings, admin_user, ada):
    Vulnerability.update(cve=None, description="").execute()
    preflight.run_due(before(v, hours=24), settings)
    sent = mails()
    assert sorted(d.recipient for d in sent) == sorted([admin_user.email, ada.email])
    payload = json.loads(sent[0].payload)
    assert payload["embargo_until"] == Vulnerability.get_by_id(v.id).embargo_until.isoformat()
    assert [f[0] for f in payload["findings"]] == ["CVE id", "description"]


def test_all_clear_sends_nothing_but_records_the_run(v, clock, settings):
    assert preflight.run_due(before(v, hours=24), settings) == 1
    assert mails() == []
    assert preflight.last_run(Vulnerability.get_by_id(v.id))[0] == "24 hours"


def test_fixing_the_field_clears_it_on_the_next_run_and_says_all_clear(v, clock, settings):
    Vulnerability.update(cve=None).execute()
    preflight.run_due(before(v, hours=24), settings)
    cves.allocate(Vulnerability.get_by_id(v.id), None, "test", before(v, hours=20))
    assert preflight.check(v, before(v, hours=20), settings) == []
    preflight.run_due(before(v, hours=1), settings)
    last = [json.loads(d.payload) for d in mails()][-1]
    assert (last["window"], last["findings"]) == ("1 hour", [])  # all clear, after a warning


def test_a_moved_embargo_gets_new_preflights(v, clock, settings):
    Vulnerability.update(cve=None).execute()
    preflight.run_due(before(v, hours=24), settings)
    moved = before(v, hours=-48)  # two days later
    at = before(v, hours=20)
    lifecycle.set_field(
        Vulnerability.get_by_id(v.id), "embargo_until", moved.isoformat(), ACTOR, at, "more time"
    )
    assert preflight.run_due(moved - timedelta(hours=25), settings) == 0
    assert preflight.run_due(moved - timedelta(hours=24), settings) == 1
    ends = {json.loads(d.payload)["embargo_until"] for d in mails()}
    assert len(ends) == 2


def test_the_reconciler_runs_them(v, clock, settings):
    Vulnerability.update(cve=None).execute()
    reconcile._preflights(before(v, hours=24), settings)
    assert len(mails()) == 2


def test_a_failing_preflight_never_holds_the_lift(v, clock, settings):
    Vulnerability.update(cve=None, description="", affected="").execute()
    preflight.run_due(before(v, hours=1), settings)
    assert mails()
    until = Vulnerability.get_by_id(v.id).embargo_until
    assert lift.lift(v.id, until, settings) == "lifted"
    lifted = Vulnerability.get_by_id(v.id)
    assert (lifted.status, lifted.published_at) == ("published", until)
    steps = lift.complete(v.id, until, settings)
    assert steps["cve-record"].startswith("skipped: ")


def test_the_dashboard_shows_the_findings_within_24_hours(v, clock, settings, client, admin_user):
    Vulnerability.update(cve=None).execute()
    Auth(client).login(admin_user.email, PASSWORD)
    page = client.get("/team/dashboard").get_data(as_text=True)
    assert "Pre-flight" not in page  # 30 hours away: not yet
    clock.move(hours=7)
    page = client.get("/team/dashboard").get_data(as_text=True)
    assert "Pre-flight: lifts in the next 24 hours" in page
    assert f"forewarn cve assign {v.tracking_id}" in page
    cves.allocate(Vulnerability.get_by_id(v.id), None, "test", clock.at)
    page = client.get("/team/dashboard").get_data(as_text=True)
    assert f"forewarn cve assign {v.tracking_id}" not in page
    assert "all clear" in page


def test_the_command_prints_the_findings_and_exits_1(v, clock, settings, forewarn):
    # The command runs on the real clock.
    Vulnerability.update(embargo_until=datetime.now(UTC) + timedelta(days=2)).execute()
    result = forewarn("preflight", v.tracking_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("all clear")
    Vulnerability.update(cve=None).execute()
    result = forewarn("preflight")
    assert result.returncode == 1
    assert "CVE id: none assigned" in result.stdout
    assert f"Fix: forewarn cve assign {v.tracking_id}" in result.stdout


def test_the_command_refuses_what_has_no_lift_in_one_line(v, clock, settings, forewarn):
    Vulnerability.update(status="triage").execute()
    result = forewarn("preflight", v.tracking_id)
    assert result.returncode != 0
    assert one_line_error(result)
    assert "no lift to prepare" in result.stderr


def test_reconcilers_running_at_once_run_one_preflight_and_mail_once(db, v, clock, settings):
    """Workers on several machines each run a reconciler: one pre-flight per window still."""
    Vulnerability.update(cve=None).execute()
    at = before(v, hours=24)
    barrier = threading.Barrier(4, timeout=30)
    ran: list = []

    def reconciler():
        with db.connection_context():
            barrier.wait()
            ran.append(preflight.run_due(at, settings))

    threads = [threading.Thread(target=reconciler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(ran) == [0, 0, 0, 1]
    assert len(mails()) == 2  # the admin and ada, once each


def test_the_worker_lifts_on_time_after_a_failing_preflight(
    v, clock, settings, env, redis_conn, monkeypatch
):
    from app.workers import jobs

    for name, value in env.items():  # the jobs read the worker's environment
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    Vulnerability.update(cve=None, description="").execute()
    until = Vulnerability.get_by_id(v.id).embargo_until
    clock.move(seconds=(until - timedelta(hours=1) - clock.at).total_seconds())
    reconcile._preflights(clock.at, settings)
    assert mails()
    clock.move(hours=1)
    assert clock.at == until
    assert reconcile.run(redis_conn, clock.at) >= 1  # the lift, due now
    run_jobs(redis_conn)
    jobs._settings.cache_clear()
    lifted = Vulnerability.get_by_id(v.id)
    assert (lifted.status, lifted.published_at) == ("published", until)
