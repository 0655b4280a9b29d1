"""A real browser signs in to a real portal process (`forewarn web`), within a strict CSP."""

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import PASSWORD, ROOT, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.db]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _answers(url: str, process: subprocess.Popen, log_path) -> bool:
    if process.poll() is not None:
        raise AssertionError(
            f"`forewarn web` exited with {process.returncode}:\n{log_path.read_text()}"
        )
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):  # refused, reset, or slow to answer yet
        return False


@pytest.fixture
def portal_url(forewarn, env, tmp_path):
    """An initialised instance with one admin, served by `python -m app web` until teardown."""
    initialised = forewarn("init")
    assert initialised.returncode == 0, initialised.stderr
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    created = forewarn(
        "admin", "create", "admin@example.org", "--password-file", str(password_file)
    )
    assert created.returncode == 0, created.stderr

    url = f"http://{env['FOREWARN_WEB_LISTEN']}"
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "web", "--workers", "1"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, gunicorn's workers included
        )
    try:
        wait_for(lambda: _answers(f"{url}/login", process, log_path), what="`forewarn web`")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_admin_signs_in_with_the_keyboard_in_chromium_without_csp_violations(portal_url):
    console_errors: list[tuple[str, str]] = []
    page_errors: list[str] = []
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda message: (
                    console_errors.append((message.text, message.location["url"]))
                    if message.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("request", lambda request: requested.append(request.url))

            page.goto(f"{portal_url}/login")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.get_by_label("Email").fill("admin@example.org")
            page.get_by_label("Password").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_label("Password").press("Enter")

            expect(page.get_by_role("heading", name="Workspace")).to_be_visible()
            expect(page.get_by_role("status")).to_have_text("Signed in as admin@example.org.")
            assert page.url == f"{portal_url}/team/"
            # The stylesheet was allowed and parsed (one blocked by CSP has no CSSOM sheet).
            rules = page.evaluate("[...document.styleSheets].map(s => s.cssRules.length)")
            assert len(rules) == 1 and rules[0] > 0
        finally:
            browser.close()

    assert [text for text, _url in console_errors if "Content Security Policy" in text] == []
    # Chromium asks for /favicon.ico on its own and the portal has none: that 404 is harmless.
    others = [(text, url) for text, url in console_errors if not url.endswith("/favicon.ico")]
    assert others == [] and page_errors == []
    assert requested and all(url.startswith(portal_url) for url in requested), requested
