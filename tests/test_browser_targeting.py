"""Targeting by product in a real browser against a real `forewarn web`: the team narrows an
alert, sees who is left out, ticks one back with the keyboard and confirms (#17)."""

import pytest
from playwright.sync_api import expect, sync_playwright

from app.core.config import load_settings
from app.models import Advisory, Delivery
from app.models import database as database_proxy
from app.workers import runtime
from tests.conftest import PASSWORD
from tests.faults.harness import registrant_certificates
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_browser import portal_url as portal_url  # noqa: F401 (the fixture)
from tests.test_browser_registry import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.db]

DECLARED = {
    "psirt@zephyr.example": ["--purl", "pkg:github/zephyrproject-rtos/zephyr"],
    "psirt@words.example": ["--product", "Gateways on Zephyr"],
    "psirt@routers.example": ["--product", "Routers", "--purl", "pkg:deb/debian/openssl"],
}


def test_the_team_narrows_an_alert_and_adds_a_left_out_registrant_back_in_chromium(  # noqa: F811
    portal_url, forewarn, env, tmp_path
):
    for address, cert in registrant_certificates(list(DECLARED)).items():
        key = tmp_path / f"{address}.asc"
        key.write_bytes(cert)
        added = forewarn(
            "registrants", "add", "--email", address, "--org", address.split("@")[1],
            "--key", str(key), "--approve", *DECLARED[address],
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    (tmp_path / "d.md").write_text("Details.\n")
    tracking = forewarn(
        "vulns", "create", "--title", "Overflow", "--description-file", str(tmp_path / "d.md")
    ).stdout.strip()
    assert forewarn("vulns", "set", tracking, "affected", "zephyr <4.2").returncode == 0
    assert forewarn("vulns", "set", tracking, "status", "accepted").returncode == 0

    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    console_errors.append(m.text)
                    if m.type == "error" and "favicon" not in m.location["url"]
                    else None
                ),
            )
            sign_in(page, portal_url, "admin@example.org", PASSWORD)
            page.goto(f"{portal_url}/team/vulnerabilities/{tracking}/alerts")
            page.get_by_label("Advisory text").fill("Line one.\nLine two.")
            page.get_by_label("Only registrants whose declared products match").check()
            with page.expect_navigation():
                page.get_by_role("button", name="Send (or, when narrowed").click()

            expect(page.get_by_role("heading", name=f"Who gets {tracking} v1")).to_be_visible()
            expect(page.locator("#recipients")).to_contain_text("psirt@zephyr.example")
            expect(page.locator("#recipients")).to_contain_text("psirt@words.example")
            left_out = page.locator("#left-out")
            expect(left_out).to_contain_text("Will NOT receive it (1 approved registrant)")
            expect(left_out).not_to_contain_text("zephyr.example")
            routers = page.get_by_label("routers.example <psirt@routers.example> declares")
            expect(routers).not_to_be_checked()
            routers.focus()
            page.keyboard.press("Space")
            expect(routers).to_be_checked()
            with page.expect_navigation():
                page.get_by_role("button", name="Send to the registrants listed").click()

            expect(page.get_by_role("status")).to_contain_text(
                f"{tracking} v1 is queued to 3 of 3 approved registrants (0 left out"
            )
            expect(page.locator("#narrowed")).to_contain_text("nobody left out")
            expect(page.locator("#narrowed")).to_contain_text(
                "Added back by the team: routers.example <psirt@routers.example>"
            )
        finally:
            browser.close()
    assert console_errors == []

    settings = load_settings(env)
    database = runtime.open_db(settings)
    try:
        with database.connection_context():
            advisory = Advisory.get()
            assert advisory.text.replace("\r\n", "\n") == "Line one.\nLine two."
            assert sorted(
                d.recipient for d in Delivery.select().where(Delivery.kind == "alert")
            ) == [
                "psirt@routers.example",
                "psirt@words.example",
                "psirt@zephyr.example",
            ]
    finally:
        database_proxy.initialize(None)
