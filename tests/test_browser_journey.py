"""A reporter's whole journey in a real browser against a real `forewarn web` (#16): no account,
no OpenPGP. They report with two files, keep the follow-up link from the answer page, read the
team's replies there (one from the portal, one from `forewarn vulns reply`), and answer with a
file that joins the case's thread. The same form and page work with JavaScript off, every
control has a label, and a tampered link gets the generic 404. Processing runs the real worker
code (RQ burst, real GnuPG) in this process."""

import json
import re

import pytest
from playwright.sync_api import expect, sync_playwright

from app.core.config import load_settings
from app.workers import jobs
from tests.conftest import PASSWORD, run_jobs
from tests.openpgp import parse
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_browser import portal_url as portal_url  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.db]

MEMBER = "triage@example.org"
POC = b"#!/usr/bin/env python3\n# JOURNEY-POC-BYTES\nprint('boom')\n"
LOG = b"\x00\x01JOURNEY-LOG-BYTES\xff"
EXTRA = b"JOURNEY-EXTRA: the crash with 4.2-rc1\n"

# The CONTRACT's fields (Web addresses), each by the label a person reads.
REPORT_LABELS = {
    "title": "Title",
    "description": "Description",
    "name": "Your name",
    "email": "Your email address",
    "attachments": "Files (optional",
}
REPLY_LABELS = {"text": "Your message to the security team", "attachments": "Files to attach"}


@pytest.fixture
def env(env, monkeypatch):
    """Mail goes to the instance's Maildir, and links point at the portal under test."""
    monkeypatch.delenv("FOREWARN_SMTP_RELAY", raising=False)
    return {**env, "FOREWARN_BASE_URL": f"http://{env['FOREWARN_WEB_LISTEN']}"}


@pytest.fixture
def worker(env, redis_conn, monkeypatch):
    """`forewarn worker`'s work, in this process: every queued job runs (processing, then the
    deliveries it queues), with the settings of the portal's environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    yield lambda: run_jobs(redis_conn)
    jobs._settings.cache_clear()
    from app.models import database as database_proxy

    database_proxy.initialize(None)


@pytest.fixture
def portal(redis_conn, portal_url, forewarn, tmp_path):  # noqa: F811
    """The portal, with a team member (role team) besides the first admin."""
    password_file = tmp_path / "member-password"
    password_file.write_text(PASSWORD + "\n")
    created = forewarn(
        "admin", "create", MEMBER, "--password-file", str(password_file), "--role", "team"
    )
    assert created.returncode == 0, created.stderr
    return portal_url


def controls_without_a_label(page) -> list[str]:
    """Every form control a person can reach, named by its name, that has no <label>."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
            .filter(el => el.type !== 'hidden' && !el.closest('[aria-hidden="true"]'))
            .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map(el => el.name)"""
    )


def assert_labelled(page, labels: dict[str, str]) -> None:
    for name, label in labels.items():
        control = page.get_by_label(label)
        expect(control).to_have_count(1)
        expect(control).to_have_attribute("name", name)
    assert controls_without_a_label(page) == []


def fill_the_report(page, title: str, name: str = "", email: str = "", files=()) -> None:
    page.get_by_label("Title").fill(title)
    page.get_by_label("Description").fill(
        "The l2cap length field is trusted: a crafted packet overflows the heap.\n"
    )
    if name:
        page.get_by_label("Your name").fill(name)
    if email:
        page.get_by_label("Your email address").fill(email)
    if files:
        page.get_by_label("Files (optional").set_input_files(list(files))


def sign_in(page, url: str, email: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_contain_text(f"Signed in as {email}")


def messages(page):
    return page.get_by_role("article")


def test_a_reporter_without_openpgp_reports_follows_and_answers_the_team(
    portal, worker, forewarn, tmp_path
):
    url = portal
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            reporter = browser.new_context().new_page()
            reporter.goto(f"{url}/")
            reporter.get_by_role("link", name="fill in the report form").click()
            expect(reporter.get_by_role("heading", level=1)).to_have_text("Report a vulnerability")
            assert reporter.url == f"{url}/report"
            fill_the_report(
                reporter,
                "Heap overflow in l2cap reassembly",
                name="Rita Reporter",
                email="rita@example.org",
                files=[
                    {"name": "poc.py", "mimeType": "text/x-python", "buffer": POC},
                    {"name": "crash.log", "mimeType": "application/octet-stream", "buffer": LOG},
                ],
            )
            reporter.get_by_role("button", name="Send the report").click()

            heading = reporter.get_by_role("heading", level=1)
            expect(heading).to_contain_text("Report received: ")
            tracking_id = heading.inner_text().removeprefix("Report received: ").strip()
            assert re.fullmatch(r"SEC-\d{4}-\d{4}", tracking_id), tracking_id
            link = reporter.locator("#follow-up-link a")
            follow_up = link.get_attribute("href")
            assert follow_up.startswith(f"{url}/follow-up/") and link.inner_text() == follow_up

            # At once, before any worker ran: the link opens the report, received.
            link.click()
            assert reporter.url == follow_up
            expect(reporter.get_by_role("heading", level=1)).to_have_text(
                f"Your report {tracking_id}"
            )
            expect(reporter.get_by_role("row").filter(has_text=tracking_id)).to_contain_text(
                "received"
            )

            worker()  # the report is decrypted, filed under its id, acknowledged
            reporter.reload()
            row = reporter.get_by_role("row").filter(has_text=tracking_id)
            expect(row).to_contain_text("received")
            report = messages(reporter).filter(has_text="You wrote")
            expect(report).to_have_count(1)
            expect(report).to_contain_text("a crafted packet overflows the heap")
            expect(report.get_by_role("link", name="poc.py")).to_be_visible()
            expect(report.get_by_role("link", name="crash.log")).to_be_visible()

            # The team answers twice: from the portal, and from the command line.
            team = browser.new_context().new_page()
            sign_in(team, url, MEMBER)
            team.goto(f"{url}/team/vulnerabilities/{tracking_id}")
            expect(team.get_by_role("heading", level=1)).to_contain_text(
                "Heap overflow in l2cap reassembly"
            )
            team.get_by_label("Your reply to the reporter").fill(
                "PORTAL-REPLY: thanks, which version did you test?"
            )
            team.get_by_role("button", name="Send reply").click()
            expect(team.get_by_role("status")).to_contain_text("Reply queued to rita@example.org")
            text_file = tmp_path / "reply.txt"
            text_file.write_text("CLI-REPLY: we can reproduce it on main.\n")
            replied = forewarn("vulns", "reply", tracking_id, "--text-file", str(text_file))
            assert replied.returncode == 0, replied.stderr
            worker()  # the notices go out

            reporter.reload()
            team_wrote = messages(reporter).filter(has_text="The security team wrote")
            expect(team_wrote).to_have_count(2)
            expect(team_wrote.nth(0)).to_contain_text("PORTAL-REPLY")
            expect(team_wrote.nth(1)).to_contain_text("CLI-REPLY")

            # The reporter answers with a file.
            reporter.get_by_label("Your message to the security team").fill(
                "REPORTER-ANSWER: 4.2-rc1, log attached."
            )
            reporter.get_by_label("Files to attach").set_input_files(
                [{"name": "rc1.txt", "mimeType": "text/plain", "buffer": EXTRA}]
            )
            reporter.get_by_role("button", name="Send", exact=True).click()
            expect(reporter.get_by_role("status")).to_contain_text("Your reply was received")
            worker()

            team.reload()
            answer = messages(team).filter(has_text="REPORTER-ANSWER")
            expect(answer).to_have_count(1)
            expect(answer).to_contain_text("From the reporter, rita@example.org")
            expect(answer.get_by_role("link", name="rc1.txt")).to_be_visible()
            expect(answer).to_contain_text(f"{len(EXTRA)} bytes")

            reporter.reload()
            mine = messages(reporter).filter(has_text="REPORTER-ANSWER")
            expect(mine).to_contain_text("You wrote")
            expect(mine.get_by_role("link", name="rc1.txt")).to_be_visible()
            order = [
                messages(reporter).nth(i).inner_text() for i in range(messages(reporter).count())
            ]
            assert [m.split(",")[0] for m in order] == [
                "You wrote",
                "The security team wrote",
                "The security team wrote",
                "You wrote",
            ]

            # One character changed: the generic 404, nothing of the case.
            token = follow_up.rsplit("/", 1)[1]
            tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
            generic = reporter.goto(f"{url}/no/such/page")
            generic_body = reporter.content()
            answered = reporter.goto(f"{url}/follow-up/{tampered}")
            assert (answered.status, generic.status) == (404, 404)
            assert reporter.content() == generic_body
            for hidden in (tracking_id, "Rita", "l2cap", "poc.py", "REPORTER-ANSWER"):
                assert hidden not in reporter.content(), hidden
        finally:
            browser.close()


def test_without_javascript_the_form_and_the_follow_up_page_work_and_every_control_is_labelled(
    portal, worker, forewarn, env, tmp_path
):
    """A reporter with JavaScript off and no email address: the answer page still gives the
    link, no mail goes to them, and their page takes a reply."""
    url = portal
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False).new_page()
            page.goto(f"{url}/report")
            assert_labelled(page, REPORT_LABELS)
            fill_the_report(
                page,
                "Use after free in the shell",
                files=[{"name": "uaf.c", "mimeType": "text/x-c", "buffer": b"int main(){}\n"}],
            )
            page.get_by_role("button", name="Send the report").click()
            heading = page.get_by_role("heading", level=1)
            expect(heading).to_contain_text("Report received: ")
            tracking_id = heading.inner_text().removeprefix("Report received: ").strip()
            expect(page.get_by_text("we cannot write to you")).to_be_visible()
            follow_up = page.locator("#follow-up-link a").get_attribute("href")
            assert follow_up.startswith(f"{url}/follow-up/")

            worker()
            page.goto(follow_up)
            expect(page.get_by_role("heading", level=1)).to_have_text(f"Your report {tracking_id}")
            assert_labelled(page, REPLY_LABELS)
            expect(messages(page).filter(has_text="You wrote")).to_contain_text("uaf.c")

            page.get_by_label("Your message to the security team").fill("NOJS-REPLY: more.")
            page.get_by_label("Files to attach").set_input_files(
                [{"name": "more.txt", "mimeType": "text/plain", "buffer": b"NOJS-FILE\n"}]
            )
            page.get_by_role("button", name="Send", exact=True).click()
            expect(page.get_by_role("status")).to_contain_text("Your reply was received")
            worker()
            page.reload()
            reply = messages(page).filter(has_text="NOJS-REPLY")
            expect(reply).to_contain_text("You wrote")
            expect(reply.get_by_role("link", name="more.txt")).to_be_visible()

            # The team answers on the page: there is no address to mail.
            text_file = tmp_path / "reply.txt"
            text_file.write_text("NOJS-TEAM-ANSWER: which board?\n")
            replied = forewarn("vulns", "reply", tracking_id, "--text-file", str(text_file))
            assert replied.returncode == 0, replied.stderr
            assert "follow-up page" in replied.stdout and "nothing is mailed" in replied.stdout
            worker()
            page.reload()
            answer = messages(page).filter(has_text="NOJS-TEAM-ANSWER")
            expect(answer).to_contain_text("The security team wrote")
        finally:
            browser.close()

    # No mail to the reporter (they gave no address): only the team is told.
    shown = json.loads(forewarn("vulns", "show", tracking_id, "--json").stdout)
    texts = [e["text"].split(":")[0] for e in shown["correspondence"]]
    assert texts[1:] == ["NOJS-REPLY", "NOJS-TEAM-ANSWER"]
    assert [a["name"] for a in shown["correspondence"][1]["attachments"]] == ["more.txt"]
    recipients = [
        parse(m.read_bytes())["To"] for m in (load_settings(env).mail_out / "new").iterdir()
    ]
    assert recipients and all(r in (MEMBER, "admin@example.org") for r in recipients), recipients
