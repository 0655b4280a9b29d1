"""In a real browser, a team member triages a report, assigns a CVE id and sets the embargo."""

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, portal_url  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.db]


@pytest.fixture
def reported(portal_url, forewarn, tmp_path):  # noqa: F811
    description = tmp_path / "report.md"
    description.write_text("The L2CAP reassembly overflows a heap buffer.\n")
    created = forewarn(
        "vulns", "create", "--title", "Overflow in L2CAP", "--description-file", str(description)
    )
    assert created.returncode == 0, created.stderr
    assert forewarn("cve", "import-block", "CVE-2026-1000..CVE-2026-1099").returncode == 0
    return portal_url, created.stdout.strip()


def test_a_team_member_triages_assigns_a_cve_and_sets_the_embargo(reported, forewarn):
    url, tracking_id = reported
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Email").fill("admin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("navigation", name="Queues").get_by_role("link", name="all").click()
            page.get_by_role("link", name=tracking_id).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Overflow in L2CAP")

            page.get_by_label("New state").select_option("triage")
            page.get_by_role("button", name="Change state").click()
            expect(page.get_by_role("status")).to_contain_text(f"{tracking_id} is now triage")
            page.get_by_label("New state").select_option("accepted")
            page.get_by_role("button", name="Change state").click()
            expect(page.get_by_role("status")).to_contain_text("Assign a CVE id")

            page.get_by_role("button", name="Assign a CVE id").click()
            expect(page.get_by_role("status")).to_contain_text(
                f"CVE-2026-1000 is assigned to {tracking_id}"
            )

            page.get_by_label("Embargo until (UTC, e.g. 2027-02-23T14:00)").fill("2027-03-02")
            page.get_by_label("Reason (needed to extend an embargo or end it early)").fill(
                "The fix needs a second release."
            )
            page.get_by_role("button", name="Save dates").click()
            expect(page.get_by_role("status")).to_contain_text(
                "embargo until is 2027-03-02 14:00 UTC"
            )
        finally:
            browser.close()

    import json

    shown = json.loads(forewarn("vulns", "show", tracking_id, "--json").stdout)
    assert (shown["status"], shown["cve"]) == ("accepted", "CVE-2026-1000")
    assert shown["embargo_until"] == "2027-03-02T14:00:00+00:00"


def test_a_team_member_splits_a_report_and_sees_the_case_from_each_part(reported, forewarn):
    import json

    url, tracking_id = reported
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Email").fill("admin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{url}/team/vulnerabilities/{tracking_id}")
            expect(page.get_by_role("heading", name=f"Case {tracking_id}")).to_be_visible()

            page.get_by_label("Titles of the new vulnerabilities, one per line").fill(
                "ARM: stack overflow\nARC: stack overflow"
            )
            page.get_by_role("button", name="Split into new vulnerabilities").click()
            expect(page.get_by_role("status")).to_contain_text(f"in case {tracking_id}")
            case = page.get_by_role("table").filter(has_text="Findings")
            expect(case.get_by_role("row")).to_have_count(4)  # a header, the report, two new
            case.get_by_role("row").filter(has_text="ARM: stack overflow").get_by_role(
                "link"
            ).click()

            expect(page.get_by_role("heading", level=1)).to_contain_text("ARM: stack overflow")
            expect(page.get_by_role("heading", name=f"Case {tracking_id}")).to_be_visible()
            page.get_by_label("Findings", exact=False).fill("NCC-ZEP-001 NCC-ZEP-024")
            page.get_by_role("button", name="Save fields").click()
            expect(page.get_by_role("status")).to_contain_text("Saved: findings")
            expect(page.get_by_role("link", name=tracking_id)).to_be_visible()
        finally:
            browser.close()

    listed = {
        row["title"]: row["id"] for row in json.loads(forewarn("vulns", "list", "--json").stdout)
    }
    arm = json.loads(forewarn("vulns", "show", listed["ARM: stack overflow"], "--json").stdout)
    assert (arm["case"], arm["findings"]) == (tracking_id, ["NCC-ZEP-001", "NCC-ZEP-024"])


def test_a_team_member_withdraws_a_published_vulnerability(reported, forewarn):
    import json

    url, tracking_id = reported
    for args in (
        ("vulns", "set", tracking_id, "status", "accepted"),
        ("vulns", "set", tracking_id, "embargo_until", "2020-01-01", "--reason", "lift it now"),
    ):
        done = forewarn(*args)
        assert done.returncode == 0, done.stderr
    reason = "It needs a debug build with the length checks compiled out"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Email").fill("admin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{url}/team/vulnerabilities/{tracking_id}")
            page.get_by_label("Why it is not a vulnerability").fill(reason)
            page.get_by_label("I understand").focus()
            page.keyboard.press("Space")  # the confirmation, from the keyboard
            expect(page.get_by_label("I understand")).to_be_checked()
            page.get_by_role("button", name="Withdraw").click()
            expect(page.get_by_role("status")).to_contain_text(f"{tracking_id} is withdrawn")
            expect(page.get_by_role("button", name="Withdraw")).to_have_count(0)

            page.goto(f"{url}/vulnerabilities/{tracking_id}")
            expect(page.get_by_role("heading", level=1)).to_contain_text("Withdrawn:")
            expect(page.get_by_role("note")).to_contain_text(f"{reason}. This is not a")
        finally:
            browser.close()

    shown = json.loads(forewarn("vulns", "show", tracking_id, "--json").stdout)
    assert (shown["status"], shown["withdrawn"]["reason"]) == ("published", reason)
