"""Working a vulnerability in the portal: fields, state, dates, assignee, with clear messages."""

import json
import re
from datetime import UTC, datetime

import pytest

from app.models import AuditEvent, Vulnerability
from app.vulns import lifecycle
from tests.conftest import PASSWORD, csrf_token

CLI = lifecycle.Actor(None, "test")


def messages(response) -> list[str]:
    return [
        m.strip()
        for m in re.findall(
            r'<p class="message [a-z]+">(.*?)</p>', response.get_data(as_text=True), re.S
        )
    ]


@pytest.fixture
def v(db, clock, settings):
    return lifecycle.create("Overflow in L2CAP", "It **overflows**.", CLI, clock.at, settings)


@pytest.fixture
def signed_in(client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    return client


PREFIXES = {
    "fields": "fields",
    "status": "state",
    "dates": "dates",
    "assignee": "assign",
    "cve": "cve",
}


def post(client, v, action, **data):
    """Post one of the page's forms (each has its own field prefix, so ids stay unique)."""
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}")
    prefix = PREFIXES[action]
    data = {f"{prefix}-{name}": value for name, value in data.items()}
    data[f"{prefix}-csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post(
        f"/team/vulnerabilities/{v.tracking_id}/{action}", data=data, follow_redirects=True
    )


def fields(v, **changes):
    values = {
        "title": v.title,
        "description": v.description,
        "severity": v.severity,
        "affected": v.affected,
        "cwe": v.cwe,
        "credits": v.credits,
        "fix_refs": v.fix_refs,
        "introduced_commit": v.introduced_commit,
        "mitigation": v.mitigation,
        "credit_reporter": "y",
        "deploy_before_lift": "y",
    }
    values.update(changes)
    return values


def test_the_page_renders_markdown_safely(signed_in, v):
    Vulnerability.update(description="**bold** <script>alert(1)</script>").execute()
    page = signed_in.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert "<strong>bold</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_saving_fields_changes_only_what_changed_and_says_so(signed_in, v):
    response = post(
        signed_in,
        v,
        "fields",
        **fields(
            v, severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", affected="zephyr <4.2"
        ),
    )
    assert response.status_code == 200
    assert messages(response) == ["Saved: severity, affected. The change is in the audit log."]
    v = Vulnerability.get_by_id(v.id)
    assert (v.cvss_score, v.affected) == (9.8, "zephyr <4.2")
    assert "(score 9.8)" in response.get_data(as_text=True)


def test_mitigation_and_deployment_rule_are_saved_and_audited(signed_in, v):
    changes = fields(v, mitigation="Disable mesh provisioning.")
    del changes["deploy_before_lift"]  # an unticked box is not sent
    response = post(signed_in, v, "fields", **changes)
    assert messages(response) == [
        "Saved: mitigation, deployment before the lift. The change is in the audit log."
    ]
    v = Vulnerability.get_by_id(v.id)
    assert (v.mitigation, v.deploy_before_lift) == ("Disable mesh provisioning.", False)
    audited = AuditEvent.get(AuditEvent.action == "vuln.set.deploy_before_lift")
    assert json.loads(audited.details)["after"] == {"deploy_before_lift": False}


def test_the_introducing_commit_is_a_full_hash_saved_and_shown(signed_in, v):
    response = post(signed_in, v, "fields", **fields(v, introduced_commit="abc1234"))
    (message,) = messages(response)
    assert "is not a full commit hash; give all 40 hex digits" in message
    assert Vulnerability.get_by_id(v.id).introduced_commit == ""
    sha = "ab" * 20
    response = post(signed_in, v, "fields", **fields(v, introduced_commit=sha.upper()))
    assert messages(response) == ["Saved: introduced commit. The change is in the audit log."]
    assert Vulnerability.get_by_id(v.id).introduced_commit == sha
    page = response.get_data(as_text=True)
    assert f"<code>{sha}</code>" in page and 'id="fields-introduced_commit"' in page


def test_a_field_the_rules_refuse_is_not_saved_and_the_reason_shown(signed_in, v):
    response = post(signed_in, v, "fields", **fields(v, affected="zephyr 3.x"))
    [message] = messages(response)
    assert "not saved" in message and "PRODUCT RANGE" in message
    assert Vulnerability.get_by_id(v.id).affected == ""


@pytest.mark.parametrize("title", ["Overflow\r\nBcc: list@example.org", "Overflow\x1b[2J"])
def test_a_title_with_a_line_break_or_control_character_is_refused(signed_in, v, title):
    response = post(signed_in, v, "fields", **fields(v, title=title))
    [message] = messages(response)
    assert "not saved" in message
    assert "the title must be one line without control characters" in message
    assert Vulnerability.get_by_id(v.id).title == "Overflow in L2CAP"


def test_changing_state_follows_the_life_cycle_and_says_what_comes_next(signed_in, v):
    response = post(signed_in, v, "status", status="accepted")
    assert "is now accepted" in messages(response)[0]
    assert "Assign a CVE id" in messages(response)[0]
    response = post(signed_in, v, "status", status="rejected")
    assert "needs a reason" in messages(response)[0]
    assert Vulnerability.get_by_id(v.id).status == "accepted"


def test_extending_the_embargo_needs_a_reason(signed_in, v):
    response = post(signed_in, v, "dates", embargo_until="2027-03-02", fix_due="")
    assert "needs a reason" in messages(response)[0]
    response = post(
        signed_in,
        v,
        "dates",
        embargo_until="2027-03-02",
        fix_due="",
        reason="The fix needs a second release.",
    )
    assert messages(response)[0].startswith("Saved: embargo until is 2027-03-02 14:00 UTC.")
    assert Vulnerability.get_by_id(v.id).embargo_until == datetime(2027, 3, 2, 14, tzinfo=UTC)
    event = AuditEvent.get(AuditEvent.action == "vuln.embargo_until")
    assert "The fix needs a second release." in event.details


def test_assigning_a_member(signed_in, v, admin_user):
    response = post(signed_in, v, "assignee", assignee=admin_user.email)
    assert messages(response) == [f"{v.tracking_id} is now assigned to {admin_user.email}."]
    assert Vulnerability.get_by_id(v.id).assignee_id == admin_user.id


def test_only_the_lift_publishes_and_accepting_says_when(signed_in, v):
    response = post(signed_in, v, "status", status="accepted")
    assert messages(response)[0].endswith("It will be published at 2027-02-23 14:00 UTC.")
    assert '<option value="published">' not in response.get_data(as_text=True)
    response = post(signed_in, v, "status", status="published")
    assert "Not a valid choice" in messages(response)[0]
    assert Vulnerability.get_by_id(v.id).status == "accepted"


def test_assigning_a_cve_id_takes_the_next_free_one(signed_in, v, clock):
    from app.vulns import cves

    response = post(signed_in, v, "cve")
    assert "No CVE id was assigned" in messages(response)[0]
    assert "forewarn cve import-block" in messages(response)[0]
    cves.import_block("CVE-2026-1000..CVE-2026-1002", None, "test", clock.at)
    response = post(signed_in, v, "cve")
    assert messages(response)[0].startswith(f"CVE-2026-1000 is assigned to {v.tracking_id}.")
    assert "Admins: only 2 CVE ids left" in messages(response)[1]
    assert Vulnerability.get_by_id(v.id).cve.cve_id == "CVE-2026-1000"
