"""Cases (#15): one report, several vulnerabilities. Splitting, the case's one thread, the
reporter's finding labels (many-to-many), and the schema migrating with today's rows."""

import json
from datetime import UTC, datetime

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.errors import Refused
from app.models import ALL_MODELS, AuditEvent, Correspondence, Finding, Vulnerability
from app.vulns import cases, lifecycle, split, views

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "cli:test")


@pytest.fixture
def report(db, clock, settings, admin_user):
    """A report as the intake files it: a reporter, a thread, dates, an assignee."""
    v = lifecycle.create("NCC audit of Zephyr", "25 findings.", CLI, clock.at, settings)
    Vulnerability.update(
        reporter_email="auditor@ncc.example",
        reporter_name="NCC Group",
        credits="NCC Group (J. Doe)",
        assignee=admin_user,
        status="triage",
    ).where(Vulnerability.id == v.id).execute()
    Correspondence.create(
        vulnerability=v,
        direction="in",
        at=clock.at,
        subject="NCC audit of Zephyr",
        text="NCC-ZEP-001 ... NCC-ZEP-031",
        sender="auditor@ncc.example",
    )
    return Vulnerability.get_by_id(v.id)


def test_split_makes_one_vulnerability_per_title_in_the_same_case(report, clock, settings):
    clock.move(days=2)
    made = split.split(
        report, ["ARM: stack overflow", "ARC: stack overflow"], CLI, clock.at, settings
    )

    assert [n.title for n in made] == ["ARM: stack overflow", "ARC: stack overflow"]
    for new in made:
        assert new.case_root_id == report.id and cases.case_id(new) == report.tracking_id
        assert new.status == "new"
        assert (new.reporter_email, new.reporter_name) == (report.reporter_email, "NCC Group")
        assert new.credits == report.credits and new.assignee_id == report.assignee_id
        assert (new.reported_at, new.fix_due, new.embargo_until) == (
            report.reported_at,
            report.fix_due,
            report.embargo_until,
        )
        assert new.created_at == clock.at
    again = Vulnerability.get_by_id(report.id)
    assert (again.title, again.status, again.case_root_id) == (report.title, "triage", None)
    assert cases.case_id(again) == report.tracking_id
    assert [m.id for m in cases.members(made[1])] == [report.id, made[0].id, made[1].id]
    logged = AuditEvent.get(AuditEvent.action == "vuln.split")
    assert logged.target == report.tracking_id
    assert json.loads(logged.details)["created"] == [n.tracking_id for n in made]


def test_splitting_a_split_one_stays_in_the_first_reports_case(report, clock, settings):
    (first,) = split.split(report, ["one"], CLI, clock.at, settings)
    (second,) = split.split(first, ["two"], CLI, clock.at, settings)
    assert second.case_root_id == report.id
    assert len(cases.member_ids(report)) == 3


def test_a_bad_title_makes_nothing(report, clock, settings):
    with pytest.raises(Refused, match="one line"):
        split.split(report, ["fine", "bad\x07title"], CLI, clock.at, settings)
    with pytest.raises(Refused, match="at least one title"):
        split.split(report, ["  "], CLI, clock.at, settings)
    assert Vulnerability.select().count() == 1


def test_the_thread_is_the_cases_from_every_vulnerability(report, clock, settings):
    (arm,) = split.split(report, ["ARM: stack overflow"], CLI, clock.at, settings)
    clock.move(hours=1)
    Correspondence.create(
        vulnerability=arm,
        direction="in",
        at=clock.at,
        subject="Re: ARM",
        text="more on the ARM one",
        sender="auditor@ncc.example",
    )
    for v in (report, arm):
        shown = views.details(v)
        assert shown["case"] == report.tracking_id
        assert [e["text"] for e in shown["correspondence"]] == [
            "NCC-ZEP-001 ... NCC-ZEP-031",
            "more on the ARM one",
        ]
        assert [e["vulnerability"] for e in shown["correspondence"]] == [
            report.tracking_id,
            arm.tracking_id,
        ]


def test_show_json_has_case_findings_and_duplicate_of(report, clock, settings):
    shown = views.details(report)
    assert shown["case"] == report.tracking_id
    assert shown["findings"] == []
    assert shown["duplicate_of"] is None


def test_findings_are_many_to_many_audited_and_searchable(report, clock, settings):
    arm, arc = split.split(report, ["ARM", "ARC"], CLI, clock.at, settings)
    lifecycle.set_field(arm, "findings", "NCC-ZEP-001 NCC-ZEP-024", CLI, clock.at)
    lifecycle.set_field(arc, "findings", "NCC-ZEP-001", CLI, clock.at)

    assert cases.labels(arm) == ["NCC-ZEP-001", "NCC-ZEP-024"]
    assert views.details(arc)["findings"] == ["NCC-ZEP-001"]
    found = views.queue("all", None, clock.at, "ncc-zep-001")
    assert sorted(v.tracking_id for v in found) == sorted([arm.tracking_id, arc.tracking_id])
    assert [v.tracking_id for v in views.queue("all", None, clock.at, "NCC-ZEP-024")] == [
        arm.tracking_id
    ]
    logged = AuditEvent.get(
        AuditEvent.action == "vuln.set.findings", AuditEvent.target == arm.tracking_id
    )
    assert json.loads(logged.details) == {"before": [], "after": ["NCC-ZEP-001", "NCC-ZEP-024"]}

    lifecycle.set_field(arm, "findings", "NCC-ZEP-024", CLI, clock.at)
    assert cases.labels(arm) == ["NCC-ZEP-024"]
    assert Finding.select().count() == 2
    with pytest.raises(Refused, match="not a finding label"):
        lifecycle.set_field(arm, "findings", "x" * 101, CLI, clock.at)
    assert cases.labels(arm) == ["NCC-ZEP-024"]


def test_schema_with_todays_rows_migrates_to_cases(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0014_resubscribed_at")
    at = datetime(2026, 5, 1, 9, 0)
    with database.connection_context():
        database.execute_sql(
            "INSERT INTO vulnerability (tracking_id, title, description, severity, affected, cwe,"
            " status, rejection_reason, reporter_email, reporter_name, credit_reporter, credits,"
            " fix_refs, mitigation, deploy_before_lift, reported_at, reminders_sent, created_at,"
            " updated_at) VALUES (%s)".replace("%s", ", ".join([database.param] * 19)),
            (
                "SEC-2026-0007",
                "old report",
                "",
                "",
                "",
                "",
                "triage",
                "",
                "r@example.org",
                "R",
                True,
                "",
                "",
                "",
                True,
                at,
                "{}",
                at,
                at,
            ),
        )
    assert "0015_cases" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        old = Vulnerability.get(Vulnerability.tracking_id == "SEC-2026-0007")
        assert old.case_root_id is None and old.duplicate_of_id is None
        assert old.reported_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
        assert cases.case_id(old) == "SEC-2026-0007"
        assert cases.labels(old) == []
        Finding.create(vulnerability=old, label="Issue-7")
        assert [
            v.id
            for v in Vulnerability.select().where(Vulnerability.id.in_(cases.labelled("issue-7")))
        ] == [old.id]


def test_a_reporters_reply_to_a_split_one_joins_the_case(db, keyring, settings, clock):
    from app.models import Delivery
    from app.reports import inbound, processing
    from tests import mailcorpus as mc

    first = inbound.store(
        mc.plain("NCC-ZEP-001 and NCC-ZEP-002", subject="Audit"),
        "rita@example.org",
        ["security@localhost"],
        clock.at,
    )
    assert processing.process_inbound(first, keyring, settings, clock.at) == "new report"
    report = Vulnerability.get()
    arm, arc = split.split(report, ["ARM", "ARC"], CLI, clock.at, settings)
    clock.move(hours=3)
    raw = mc.plain("about the ARC one", subject="Re: ARC").replace(
        b"<report-1@example.org>", b"<report-2@example.org>"
    )
    second = inbound.store(
        raw, "rita@example.org", [f"security+{arc.tracking_id}@localhost"], clock.at
    )
    assert processing.process_inbound(second, keyring, settings, clock.at) == "reply"

    assert Vulnerability.select().count() == 3  # no new case: it joined this one
    reply = Correspondence.get(Correspondence.text.contains("about the ARC one"))
    assert reply.vulnerability_id == arc.id  # kept on the one it was addressed to
    for v in (report, arm, arc):
        texts = [e["text"].strip() for e in views.details(v)["correspondence"]]
        assert texts == ["NCC-ZEP-001 and NCC-ZEP-002", "about the ARC one"]
    acks = Delivery.select().where(Delivery.kind == "reply-ack")
    assert [d.vulnerability_id for d in acks] == [arc.id]  # the reporter is the case's reporter


def test_cli_split_prints_the_new_ids_and_show_has_the_case(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    description = tmp_path / "d.md"
    description.write_text("An audit with findings.\n")
    tracking = forewarn(
        "vulns", "create", "--title", "Audit", "--description-file", str(description)
    ).stdout.strip()

    result = forewarn("vulns", "split", tracking, "--title", "ARM overflow", "--title", "ARC")
    assert result.returncode == 0, result.stderr
    made = result.stdout.splitlines()
    assert len(made) == 2 and tracking not in made
    assert forewarn("vulns", "set", made[0], "findings", "NCC-ZEP-001 NCC-ZEP-024").returncode == 0
    assert forewarn("vulns", "set", made[1], "findings", "NCC-ZEP-001").returncode == 0

    shown = json.loads(forewarn("vulns", "show", made[0], "--json").stdout)
    assert shown["case"] == tracking and shown["title"] == "ARM overflow"
    assert shown["findings"] == ["NCC-ZEP-001", "NCC-ZEP-024"]
    assert shown["duplicate_of"] is None
    text = forewarn("vulns", "show", made[0]).stdout
    assert f"case:           {tracking} ({tracking}, {made[0]}, {made[1]})" in text
    assert "findings:       NCC-ZEP-001 NCC-ZEP-024" in text
    root = json.loads(forewarn("vulns", "show", tracking, "--json").stdout)
    assert (root["case"], root["findings"], root["status"]) == (tracking, [], "new")

    refused = forewarn("vulns", "split", tracking, "--title", " ")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "at least one title" in refused.stderr
    missing = forewarn("vulns", "split", tracking)
    assert missing.returncode != 0 and "--title" in missing.stderr


@pytest.fixture
def signed_in(client, auth, admin_user):
    from tests.conftest import PASSWORD

    auth.login(admin_user.email, PASSWORD)
    return client


def _post(client, v, action, prefix, **data):
    from tests.conftest import csrf_token

    page = client.get(f"/team/vulnerabilities/{v.tracking_id}")
    form = {f"{prefix}-{name}": value for name, value in data.items()}
    form[f"{prefix}-csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post(
        f"/team/vulnerabilities/{v.tracking_id}/{action}", data=form, follow_redirects=True
    )


def test_the_team_splits_on_the_page_and_each_shows_the_case(signed_in, report):
    answer = _post(
        signed_in, report, "split", "split", titles="ARM: overflow\n\n  ARC: overflow \n"
    )
    assert answer.status_code == 200
    arm, arc = (
        Vulnerability.select().where(Vulnerability.case_root == report).order_by(Vulnerability.id)
    )
    said = answer.get_data(as_text=True)
    assert f"Created {arm.tracking_id}, {arc.tracking_id} in case {report.tracking_id}" in said
    assert "accept or reject it on its own page" in said
    assert (arm.title, arc.title) == ("ARM: overflow", "ARC: overflow")

    page = signed_in.get(f"/team/vulnerabilities/{arc.tracking_id}").get_data(as_text=True)
    assert f"Case {report.tracking_id}" in page
    for member in (report, arm):
        assert f'href="/team/vulnerabilities/{member.tracking_id}"' in page
    assert "NCC-ZEP-001 ... NCC-ZEP-031" in page  # the report's thread, from a split one
    assert f"About {report.tracking_id}" in page


def test_a_split_without_titles_or_token_makes_nothing(signed_in, report):
    answer = _post(signed_in, report, "split", "split", titles="   \n")
    assert "The split was not saved" in answer.get_data(as_text=True)
    forged = signed_in.post(
        f"/team/vulnerabilities/{report.tracking_id}/split", data={"split-titles": "x"}
    )
    assert forged.status_code == 400
    assert Vulnerability.select().count() == 1


def test_findings_are_set_on_the_page_and_the_search_finds_them(signed_in, report, clock, settings):
    arm, arc = split.split(report, ["ARM", "ARC"], CLI, clock.at, settings)
    values = {
        "title": "ARM",
        "description": "",
        "severity": "",
        "affected": "",
        "cwe": "",
        "credits": arm.credits,
        "fix_refs": "",
        "mitigation": "",
        "credit_reporter": "y",
        "deploy_before_lift": "y",
    }
    answer = _post(
        signed_in, arm, "fields", "fields", findings="NCC-ZEP-001  NCC-ZEP-024", **values
    )
    assert "Saved: findings." in answer.get_data(as_text=True)
    assert cases.labels(arm) == ["NCC-ZEP-001", "NCC-ZEP-024"]
    lifecycle.set_field(arc, "findings", "NCC-ZEP-001", CLI, clock.at)

    found = signed_in.get("/team/?view=all&q=ncc-zep-001").get_data(as_text=True)
    assert arm.tracking_id in found and arc.tracking_id in found
    assert f'href="/team/vulnerabilities/{report.tracking_id}"' not in found
    assert found.count(f"case {report.tracking_id}") == 2  # the queues show the case
    only = signed_in.get("/team/?view=all&q=NCC-ZEP-024").get_data(as_text=True)
    assert arm.tracking_id in only and arc.tracking_id not in only


def test_a_key_the_team_confirms_in_a_split_ones_thread_is_the_whole_cases(
    db, keyring, settings, clock, admin_user
):
    from app.reports import inbound, processing, reporter_keys
    from tests import mailcorpus as mc
    from tests.test_reports import with_key

    rita = mc.make_reporter()
    first = inbound.store(
        mc.plain("two bugs", subject="Audit"), rita.address, ["security@localhost"], clock.at
    )
    processing.process_inbound(first, keyring, settings, clock.at)
    report = Vulnerability.get()
    (arc,) = split.split(report, ["ARC"], CLI, clock.at, settings)
    raw = with_key("Here is my key.", rita.cert, "<key-1@example.org>")
    second = inbound.store(raw, rita.address, [f"security+{arc.tracking_id}@localhost"], clock.at)
    assert processing.process_inbound(second, keyring, settings, clock.at) == "reply"
    entry = Correspondence.get(Correspondence.vulnerability == arc)
    assert entry.offered_key.fingerprint == rita.fingerprint

    reporter_keys.confirm_reporter_key(arc, entry.id, admin_user, clock.at)
    for v in (report, arc):
        assert Vulnerability.get_by_id(v.id).reporter_key.fingerprint == rita.fingerprint
