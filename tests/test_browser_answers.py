"""In a real browser against a real `forewarn web`: an alerted registrant answers "not affected"
with a justification and consent on the advisory's page, and a team member finds the answer in
the matrix the vulnerability page links to."""

import pytest
from playwright.sync_api import expect, sync_playwright

from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, portal_url  # noqa: F401 (fixture)
from tests.test_browser_registry import sign_in, sign_out

pytestmark = [pytest.mark.browser, pytest.mark.db]

MAKER = "psirt@answers.example"
MAKER_PASSWORD = "a long enough password"


@pytest.fixture
def alerted(portal_url, forewarn, db, tmp_path):  # noqa: F811
    """An approved registrant (with a password) alerted about an accepted vulnerability."""
    from app.core import passwords
    from app.models import User

    maker = mc.make_reporter(MAKER, "Answers PSIRT")
    (tmp_path / "maker.asc").write_bytes(maker.cert)
    added = forewarn(
        "registrants", "add", "--email", MAKER, "--org", "Answers Ltd",
        "--key", str(tmp_path / "maker.asc"), "--approve",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    User.update(password_hash=passwords.hash_password(MAKER_PASSWORD)).where(
        User.email == MAKER
    ).execute()
    (tmp_path / "d.md").write_text("The mesh beacon parser overflows.\n")
    created = forewarn(
        "vulns", "create", "--title", "Overflow in the beacon", "--description-file",
        str(tmp_path / "d.md"),
    )  # fmt: skip
    tracking_id = created.stdout.strip()
    assert forewarn("vulns", "set", tracking_id, "status", "accepted").returncode == 0
    sent = forewarn("alert", "send", tracking_id)
    assert sent.returncode == 0, sent.stderr
    return portal_url, tracking_id


def test_a_registrant_answers_not_affected_and_the_team_sees_it_in_the_matrix(alerted, forewarn):
    url, tracking_id = alerted
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and "favicon" not in m.location["url"]
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))

            sign_in(page, url, MAKER, MAKER_PASSWORD)
            page.get_by_role("link", name="Advisories").click()
            expect(page.locator("td.answer-status")).to_contain_text("No answer")
            page.get_by_role("link", name=f"{tracking_id} v1").click()
            expect(
                page.get_by_role("heading", name=f"Your answer about {tracking_id}")
            ).to_be_visible()

            justification = page.get_by_label("Why not affected")
            expect(justification).to_be_hidden()  # until "Not affected" is chosen (CSS alone)
            page.get_by_label("Not affected", exact=True).check()
            expect(justification).to_be_visible()
            justification.select_option(label="The component is not present")
            page.get_by_role("textbox", name="Statement").fill("Our gateways ship no mesh stack.")
            consent = page.get_by_label("Publish my status and statement after the embargo lifts")
            expect(consent).not_to_be_checked()
            consent.check()
            with page.expect_navigation():
                page.get_by_role("button", name=f"Send this answer about {tracking_id}").click()
            expect(page.get_by_role("status")).to_contain_text(
                f"Recorded: {tracking_id} — Not affected (the component is not present). "
                "The security team sees it now; with your consent, your status and statement "
                "appear on the public page"
            )
            expect(page.locator(".answer-current")).to_contain_text("Not affected")
            expect(page.locator("table.answer-history tbody tr")).to_have_count(1)
            sign_out(page)

            sign_in(page, url, "admin@example.org", PASSWORD)
            page.goto(f"{url}/team/vulnerabilities/{tracking_id}")
            page.get_by_role("link", name="Answers: 1 not affected, 0 no answer").click()
            row = page.locator("table.answer-matrix tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Answers Ltd")
            expect(row).to_contain_text("The component is not present")
            expect(row).to_contain_text("Our gateways ship no mesh stack.")
            page.get_by_role("link", name="No answer (0)").click()
            expect(page.locator("table.answer-matrix")).to_have_count(0)
        finally:
            browser.close()
    assert problems == []
    import json

    [entry] = json.loads(forewarn("registrants", "answers", tracking_id, "--json").stdout)
    assert (entry["status"], entry["justification"], entry["via"]) == (
        "not_affected",
        "component_not_present",
        "web",
    )
