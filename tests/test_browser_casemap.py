"""In a real browser, a team member reads a case's finding map, splits the report and labels
the new vulnerability from the map, and sees the map change."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect, sync_playwright

from app.core.config import load_settings
from app.models import Correspondence, Vulnerability
from app.models import database as database_proxy
from app.workers import runtime
from tests.conftest import PASSWORD
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, portal_url  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.db]


@pytest.fixture
def audit_report(portal_url, forewarn, env, tmp_path):  # noqa: F811
    """An auditor's report (created as the intake would file it: a reporter and the report's
    text in the thread) whose first finding the team has labelled."""
    description = tmp_path / "report.md"
    description.write_text("Findings of the audit, in the thread.\n")
    created = forewarn(
        "vulns", "create", "--title", "NCC audit of Zephyr", "--description-file", str(description)
    )
    assert created.returncode == 0, created.stderr
    tracking_id = created.stdout.strip()
    database = runtime.open_db(load_settings(env))
    try:
        with database.connection_context():
            v = Vulnerability.get(Vulnerability.tracking_id == tracking_id)
            Vulnerability.update(reporter_email="auditor@ncc.example").where(
                Vulnerability.id == v.id
            ).execute()
            Correspondence.create(
                vulnerability=v,
                direction="in",
                at=datetime.now(UTC),
                subject="NCC audit of Zephyr",
                text="NCC-ZEP-001: stack overflow on ARM and ARC.\n"
                "NCC-ZEP-007: timer race (compare CVE-2020-10024, CWE-362).\n",
                sender="auditor@ncc.example",
            )
    finally:
        database_proxy.initialize(None)
    labelled = forewarn("vulns", "set", tracking_id, "findings", "NCC-ZEP-001")
    assert labelled.returncode == 0, labelled.stderr
    return portal_url, tracking_id


def test_the_case_page_shows_the_finding_map_and_follows_a_split_and_new_labels(audit_report):
    url, tracking_id = audit_report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Email").fill("admin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{url}/team/vulnerabilities/{tracking_id}")
            page.get_by_role("link", name="Open the case page").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text(f"Case {tracking_id}")

            by_label = page.get_by_role("table", name="Finding label → vulnerabilities")
            by_vuln = page.get_by_role("table", name="Vulnerability → finding labels")
            expect(by_label.get_by_role("row").filter(has_text="NCC-ZEP-001")).to_contain_text(
                tracking_id
            )
            expect(by_vuln.get_by_role("row").filter(has_text=tracking_id)).to_contain_text(
                "NCC-ZEP-001"
            )
            unclaimed = page.get_by_role("note").filter(
                has_text="mentioned in the report, not on any vulnerability yet"
            )
            expect(unclaimed).to_contain_text("NCC-ZEP-007")
            expect(unclaimed).not_to_contain_text("CVE-2020-10024")
            expect(unclaimed).not_to_contain_text("CWE-362")

            page.get_by_label("Titles of the new vulnerabilities, one per line").fill("Timer race")
            page.get_by_role("button", name="Split into new vulnerabilities").click()
            expect(page.get_by_role("status")).to_contain_text(
                "The reporter gets the case's finding map by mail from"
            )
            page.get_by_role("link", name="Open the case page").click()
            by_vuln = page.get_by_role("table", name="Vulnerability → finding labels")
            timer_row = by_vuln.get_by_role("row").filter(has_text="none: no label yet")
            expect(timer_row).to_have_count(1)
            new_id = timer_row.get_by_role("link").inner_text()
            assert new_id != tracking_id

            page.get_by_label(f"Finding labels of {new_id}", exact=False).fill("NCC-ZEP-007")
            page.get_by_role("button", name=f"Set labels of {new_id}").click()
            expect(page.get_by_role("status")).to_contain_text(f"{new_id} now covers NCC-ZEP-007")

            by_label = page.get_by_role("table", name="Finding label → vulnerabilities")
            expect(by_label.get_by_role("row").filter(has_text="NCC-ZEP-007")).to_contain_text(
                new_id
            )
            expect(
                page.get_by_role("note").filter(has_text="not on any vulnerability yet")
            ).to_have_count(0)
            expect(page.locator(".mapping-mail")).to_contain_text("Due ")
        finally:
            browser.close()
