"""A product maker's whole journey in a real browser against a real `forewarn web`: sign up with
a Sequoia key, decrypt the proof mail from the instance's Maildir, confirm, get approved; and an
admin finding one application among 1,000 registrants by search and approving it."""

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from app.core import clock
from app.core.config import load_settings
from app.models import Delivery
from app.models import database as database_proxy
from app.outbox import sending
from app.workers import runtime
from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_browser import portal_url as portal_url  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.db]

MAKER = "psirt@maker.example"
MAKER_PASSWORD = "a long enough password"


@pytest.fixture
def env(env, monkeypatch):
    """Mail goes to the instance's Maildir, and links point at the portal under test."""
    monkeypatch.delenv("FOREWARN_SMTP_RELAY", raising=False)
    return {**env, "FOREWARN_BASE_URL": f"http://{env['FOREWARN_WEB_LISTEN']}"}


def send_the_proof(env) -> None:
    """What the worker does for the queued verify-key delivery, done in this process."""
    settings = load_settings(env)
    assert settings.smtp_relay is None
    database = runtime.open_db(settings)
    keyring = runtime.service_keyring(settings)
    try:
        with database.connection_context():
            [proof] = Delivery.select().where(Delivery.kind == "verify-key")
            assert proof.recipient == MAKER
            result = sending.send(
                proof.id, keyring, settings, sending.transport_for(settings), clock.now()
            )
            assert result == "sent", Delivery.get_by_id(proof.id).last_answer
    finally:
        keyring.stop_agent()
        database_proxy.initialize(None)


def link_from_the_mail(env, secret: bytes, tmp_path) -> str:
    [mail] = list((load_settings(env).mail_out / "new").iterdir())
    raw = mail.read_bytes()
    assert parse(raw).get_content_type() == "multipart/encrypted"
    key = tmp_path / "maker.key"
    key.write_bytes(secret)
    entity = run("sqop", "decrypt", str(key), input=encrypted_payload(raw)).stdout
    body = text_of(parts_as_sent(entity)[0])
    return re.search(r"(http://\S+/registry/verify/\S+)", body).group(1)


def sign_in(page, portal_url, email, password):  # noqa: F811 (not the fixture)
    page.goto(f"{portal_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_contain_text(f"Signed in as {email}.")


def sign_out(page):
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def test_a_product_maker_signs_up_confirms_and_is_approved_in_chromium(  # noqa: F811
    portal_url, env, tmp_path
):
    maker = mc.make_reporter(MAKER, "Maker PSIRT")
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

            page.goto(portal_url)
            page.get_by_role("link", name="Register", exact=True).click()
            expect(page.get_by_role("heading", name="Register as a product maker")).to_be_visible()
            page.get_by_label("Email address for alerts").fill(MAKER)
            page.get_by_label("Password").fill(MAKER_PASSWORD)
            page.get_by_label("Organisation", exact=True).fill("Maker Ltd")
            page.get_by_label("Products you build on the project").fill("Maker gateway 3000")
            page.get_by_label("Website").fill("https://maker.example")
            page.get_by_label("Why you qualify").fill("2 million gateways run the project.")
            page.get_by_label("OpenPGP public key (paste it, armored)").fill(maker.cert.decode())
            page.get_by_label("I agree to the embargo policy").check()
            page.get_by_label("List my organisation publicly").check()
            with page.expect_navigation():
                page.get_by_role("button", name="Register", exact=True).click()
            expect(page.locator(".next-step")).to_have_text(
                f"We sent a mail to {MAKER}. For a new registration it holds a link encrypted to "
                f"your key {maker.fingerprint}. Decrypt it and open it within 48 hours; then an "
                "admin reviews your application."
            )

            send_the_proof(env)
            link = link_from_the_mail(env, maker.secret, tmp_path)
            assert link.startswith(f"{portal_url}/registry/verify/")

            page.goto(link)
            with page.expect_navigation():
                page.get_by_role("button", name="Confirm my key").click()
            expect(page.locator(".next-step")).to_contain_text(
                f"Your key {maker.fingerprint} is confirmed. An admin reviews your application"
            )

            sign_in(page, portal_url, "admin@example.org", PASSWORD)
            page.get_by_role("link", name="Registrants", exact=True).click()
            with page.expect_navigation():
                page.get_by_role("link", name="Maker Ltd", exact=True).click()
            application = page.locator("article.registrant", has_text="Maker Ltd")
            expect(application).to_contain_text("a role address")
            expect(application).to_contain_text(maker.fingerprint)
            with page.expect_navigation():
                application.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("status")).to_contain_text(
                "Maker Ltd (psirt@maker.example) is approved"
            )
            sign_out(page)

            sign_in(page, portal_url, MAKER, MAKER_PASSWORD)
            page.get_by_role("link", name="My registration").click()
            expect(page.locator("#status")).to_have_text("approved")
            expect(page.locator("#explain")).to_contain_text("You are approved since")

            page.goto(f"{portal_url}/registry/members")
            expect(page.get_by_role("listitem").filter(has_text="Maker Ltd")).to_be_visible()
        finally:
            browser.close()
    assert console_errors == []


def test_an_admin_finds_one_of_1000_registrants_by_search_and_approves_it_in_chromium(  # noqa: F811
    portal_url, env
):
    from tests.test_admin_registry_scale import N, insert_registrants

    database = runtime.open_db(load_settings(env))
    try:
        with database.connection_context():
            made = insert_registrants(N, clock.now())
    finally:
        database_proxy.initialize(None)
    [(wanted, maker)] = [
        (i, r) for i, r in made.items() if r["email"] == "psirt420@maker420.example"
    ]
    assert maker["status"] == "pending_review"
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
                    console_errors.append(f"{m.text} {m.location['url']}")
                    if m.type == "error" and "favicon" not in m.location["url"]
                    else None
                ),
            )
            sign_in(page, portal_url, "admin@example.org", PASSWORD)
            page.get_by_role("link", name="Registrants", exact=True).click()
            expect(page.get_by_role("heading", name=f"{N} registrants")).to_be_visible()
            search = page.get_by_label("Search by organisation, email or fingerprint")
            search.fill(maker["fingerprint"][-16:].lower())
            with page.expect_navigation():
                search.press("Enter")
            expect(page.get_by_role("heading", name="1 registrant found")).to_be_visible()
            rows = page.locator("table.registrants tbody tr")
            expect(rows).to_have_count(1)
            expect(rows).to_contain_text("psirt420@maker420.example")
            expect(rows).to_contain_text("pending review")
            with page.expect_navigation():
                rows.get_by_role("link", name="Maker 0420 Devices").click()
            assert page.url == f"{portal_url}/admin/registrants/{wanted}"
            expect(page.get_by_role("heading", name="Answers")).to_be_visible()
            with page.expect_navigation():
                page.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("status")).to_contain_text(
                "Maker 0420 Devices (psirt420@maker420.example) is approved"
            )
            expect(page.locator("h1")).to_contain_text("(approved)")
            with page.expect_navigation():
                page.get_by_role("link", name="Registrants", exact=True).first.click()
            page.get_by_label("Status", exact=True).select_option("approved")
            page.get_by_label("Search by organisation, email or fingerprint").fill("maker 0420")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            expect(page.locator("table.registrants tbody tr")).to_have_count(1)
            assert "status=approved" in page.url and "q=maker+0420" in page.url
        finally:
            browser.close()
    assert console_errors == []
