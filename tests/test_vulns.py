"""The vulnerability life cycle: states and guards, field rules, embargo edits, audit."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.accounts import team
from app.core.errors import NotFound, Refused
from app.disclosure import embargo_change
from app.models import AuditEvent, Delivery, Vulnerability
from app.vulns import affected, lifecycle
from tests.conftest import PASSWORD

CLI = lifecycle.Actor(None, "cli:test")


@pytest.fixture
def v(db, clock, settings):
    return lifecycle.create("Overflow in L2CAP", "Details.", CLI, clock.at, settings)


def audit_of(action):
    return [json.loads(e.details) for e in AuditEvent.select().where(AuditEvent.action == action)]


def test_creating_gives_the_next_tracking_id_and_policy_dates(v, clock, settings):
    assert v.tracking_id == "SEC-2026-0001"
    assert v.status == "new"
    assert v.fix_due == clock.at + timedelta(days=30)
    assert v.embargo_until == datetime(2027, 2, 23, 14, 0, tzinfo=UTC)
    second = lifecycle.create("Another", "", CLI, clock.at, settings)
    assert second.tracking_id == "SEC-2026-0002"
    assert audit_of("vuln.create")[0] == {"title": "Overflow in L2CAP"}


def test_the_team_moves_new_to_fixed_and_the_lift_alone_publishes(v, clock):
    for status in ("triage", "accepted", "fixed"):
        v = lifecycle.set_status(v, status, CLI, clock.at)
    with pytest.raises(Refused, match="published by the lift when its embargo ends"):
        lifecycle.set_status(v, "published", CLI, clock.at)
    assert [e["after"] for e in audit_of("vuln.status")] == ["triage", "accepted", "fixed"]


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("new", "fixed"),
        ("new", "published"),
        ("triage", "fixed"),
        ("fixed", "rejected"),
        ("published", "accepted"),
        ("rejected", "new"),
    ],
)
def test_transitions_outside_the_life_cycle_are_refused(v, clock, start, target):
    Vulnerability.update(status=start).execute()
    with pytest.raises(Refused, match="from there it can go to"):
        lifecycle.set_status(Vulnerability.get_by_id(v.id), target, CLI, clock.at, reason="r")
    assert Vulnerability.get_by_id(v.id).status == start


def test_rejecting_needs_a_reason_and_tells_the_reporter(v, clock):
    Vulnerability.update(reporter_email="ada@example.net").execute()
    v = Vulnerability.get_by_id(v.id)
    with pytest.raises(Refused, match="needs a reason"):
        lifecycle.set_status(v, "rejected", CLI, clock.at)
    v = lifecycle.set_status(v, "rejected", CLI, clock.at, reason="Works as documented.")
    assert (v.status, v.rejection_reason) == ("rejected", "Works as documented.")
    [notice] = Delivery.select().where(Delivery.kind == "rejected")
    assert notice.recipient == "ada@example.net"
    assert json.loads(notice.payload) == {"reason": "Works as documented."}


def test_severity_takes_a_cvss_vector_and_computes_its_score(v, clock):
    v = lifecycle.set_field(
        v, "severity", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", CLI, clock.at
    )
    assert v.cvss_score == 9.8
    v = lifecycle.set_field(
        v,
        "severity",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        CLI,
        clock.at,
    )
    assert v.cvss_score == 9.3
    with pytest.raises(Refused, match="not a valid CVSS vector"):
        lifecycle.set_field(v, "severity", "CVSS:3.1/AV:Q", CLI, clock.at)
    with pytest.raises(Refused, match="not a CVSS 3.1 or 4.0 vector"):
        lifecycle.set_field(v, "severity", "high", CLI, clock.at)


def test_affected_is_parsed_and_normalised(v, clock):
    v = lifecycle.set_field(
        v, "affected", " zephyr  >=3.0 <4.2 ;zephyr =3.7.0;mcuboot <=2.1", CLI, clock.at
    )
    assert v.affected == "zephyr >=3.0 <4.2; zephyr =3.7.0; mcuboot <=2.1"
    items = affected.parse(v.affected)
    assert items[0] == affected.Affected("zephyr", introduced="3.0", fixed="4.2")
    assert items[2] == affected.Affected("mcuboot", last_affected="2.1")
    with pytest.raises(Refused, match="PRODUCT RANGE"):
        lifecycle.set_field(v, "affected", "zephyr 3.x", CLI, clock.at)


def test_fix_references_must_be_urls_and_cwe_an_id(v, clock):
    v = lifecycle.set_field(
        v, "fix_refs", "https://github.com/z/z/pull/1 https://g/c/abc", CLI, clock.at
    )
    assert v.fix_refs.split() == ["https://github.com/z/z/pull/1", "https://g/c/abc"]
    with pytest.raises(Refused, match="not an http"):
        lifecycle.set_field(v, "fix_refs", "commit abc123", CLI, clock.at)
    assert lifecycle.set_field(v, "cwe", "cwe-787", CLI, clock.at).cwe == "CWE-787"
    with pytest.raises(Refused, match="CWE-787"):
        lifecycle.set_field(v, "cwe", "buffer overflow", CLI, clock.at)


def test_the_reporter_is_credited_by_name_never_address_unless_they_opt_out(v, clock):
    Vulnerability.update(reporter_name="Ada L.", reporter_email="ada@example.net").execute()
    v = Vulnerability.get_by_id(v.id)
    assert lifecycle.credits(v) == "Ada L."
    Vulnerability.update(credit_reporter=False).execute()
    assert lifecycle.credits(Vulnerability.get_by_id(v.id)) == ""
    v = lifecycle.set_field(v, "credits", "Ada L. and Bob", CLI, clock.at)
    assert lifecycle.credits(v) == "Ada L. and Bob"


def test_assignee_must_be_an_active_team_member(v, clock):
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    assert lifecycle.set_field(v, "assignee", "Bob@example.org", CLI, clock.at).assignee_id == (
        member.id
    )
    with pytest.raises(Refused, match="not an active security-team member"):
        lifecycle.set_field(v, "assignee", "maker@example.com", CLI, clock.at)
    assert lifecycle.set_field(v, "assignee", "none", CLI, clock.at).assignee_id is None


def test_extending_or_ending_an_embargo_early_needs_a_reason_and_is_audited(v, clock):
    later = v.embargo_until + timedelta(days=14)
    with pytest.raises(Refused, match="Extending needs a reason"):
        lifecycle.set_date(v, "embargo_until", later, CLI, clock.at)
    v = lifecycle.set_date(v, "embargo_until", later, CLI, clock.at, reason="vendor needs time")
    assert v.embargo_until == later
    with pytest.raises(Refused, match="Ending an embargo early needs a reason"):
        lifecycle.set_date(v, "embargo_until", clock.at, CLI, clock.at)
    lifecycle.set_date(v, "embargo_until", clock.at, CLI, clock.at, reason="exploited in the wild")
    kinds = [(e["kind"], e["reason"]) for e in audit_of("vuln.embargo_until")]
    assert kinds == [("extend", "vendor needs time"), ("early-lift", "exploited in the wild")]


def test_dates_given_as_text_are_utc_with_a_date_meaning_the_publication_hour(v, clock):
    v = lifecycle.set_field(v, "embargo_until", "2027-03-02", CLI, clock.at, reason="r")
    assert v.embargo_until == datetime(2027, 3, 2, 14, 0, tzinfo=UTC)
    v = lifecycle.set_field(v, "fix_due", "2027-01-10T09:00+01:00", CLI, clock.at)
    assert v.fix_due == datetime(2027, 1, 10, 8, 0, tzinfo=UTC)


def test_every_field_change_is_audited_with_before_and_after(v, clock):
    lifecycle.set_field(v, "title", "Heap overflow in L2CAP", CLI, clock.at)
    [event] = audit_of("vuln.set.title")
    assert event == {
        "before": {"title": "Overflow in L2CAP"},
        "after": {"title": "Heap overflow in L2CAP"},
    }


def test_unknown_fields_and_vulnerabilities_are_refused_clearly(v, clock):
    with pytest.raises(Refused, match="use one of title, description"):
        lifecycle.set_field(v, "reporter_email", "x", CLI, clock.at)
    with pytest.raises(NotFound, match="forewarn vulns list"):
        lifecycle.get("SEC-2026-9999")


def test_moving_an_embargo_tells_the_team_and_the_reporter(v, clock, keyring, settings):
    from app.outbox import sending
    from tests.openpgp import parts_as_sent, text_of
    from tests.smtpsink import SmtpSink

    team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t")
    Vulnerability.update(reporter_email="ada@example.net").execute()
    v = Vulnerability.get_by_id(v.id)
    later = v.embargo_until + timedelta(days=14)
    embargo_change.change_embargo(v, later, "Vendor X ships in March.", CLI, clock.at, settings)
    told = Delivery.select().where(Delivery.kind == "embargo-changed").order_by(Delivery.id)
    assert [d.recipient for d in told] == ["bob@example.org", "ada@example.net"]
    sink = SmtpSink()
    try:
        from mail.transport import SmtpTransport

        for d in told:
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
        team_mail, reporter_mail = (text_of(parts_as_sent(r.data)[0]) for r in sink.received)
    finally:
        sink.stop()
    assert "has been extended" in team_mail and "2027-03-09 14:00 UTC" in team_mail
    assert "Vendor X" not in team_mail  # no key on file: the reason stays in the workspace
    assert "The planned publication of your report" in reporter_mail
