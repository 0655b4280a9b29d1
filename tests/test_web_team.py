"""The security team's report pages: the list, one report's thread and reply, held messages."""

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from app.accounts import team
from app.core import passwords
from app.models import Correspondence, Delivery, InboundMessage, PublicKey, User, Vulnerability
from app.reports import followup, inbound
from app.workers import queue, reconcile
from tests.conftest import PASSWORD, csrf_token

MESSAGE = re.compile(r'<p class="message (\w+)">(.*?)</p>', re.S)
FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
PAGES = ["/team/", "/team/vulnerabilities/SEC-2026-0001", "/team/messages/held"]


def messages(response) -> list[str]:
    """The flashed messages shown on a page, as text with runs of white space made one."""
    found = MESSAGE.findall(response.get_data(as_text=True))
    return [" ".join(text.split()) for _category, text in found]


def heading(response) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", response.get_data(as_text=True), re.S)
    assert match, "the page has no <h1>"
    return match.group(1).strip()


INLINE_TAG = re.compile(r"</?(?:a|b|code|span|strong|time)\b[^>]*>")


def text_of(response) -> str:
    """The page's text with tags dropped and white space collapsed, roughly as a reader sees it
    (block elements separate words, inline ones do not)."""
    html = INLINE_TAG.sub("", response.get_data(as_text=True))
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def member(db, clock):
    return team.create_team_account("alice@example.org", PASSWORD, "team", clock.at, by="test").user


@pytest.fixture
def signed_in(client, auth, member):
    assert auth.login(member.email, PASSWORD).status_code == 302
    return client


def report(clock, tracking_id="SEC-2026-0001", text="The BLE stack overflows.", **fields):
    """A vulnerability as report processing leaves it, with the reporter's first message."""
    at = fields.pop("at", clock.at)
    values = {
        "title": "Overflow in BLE",
        "reporter_email": "ada@example.net",
        "reporter_name": "Ada Reporter",
        "reported_at": at,
        "fix_due": at + timedelta(days=30),
        "embargo_until": at + timedelta(days=90),
        "created_at": at,
        "updated_at": at,
        **fields,
    }
    v = Vulnerability.create(tracking_id=tracking_id, **values)
    Correspondence.create(
        vulnerability=v,
        direction="in",
        at=at,
        subject=v.title,
        text=text,
        encrypted=False,
        sender=v.reporter_email,
    )
    return v


def reply_form(client, tracking_id="SEC-2026-0001"):
    page = client.get(f"/team/vulnerabilities/{tracking_id}")
    assert page.status_code == 200
    return csrf_token(page.get_data(as_text=True))


def send_reply(client, text, tracking_id="SEC-2026-0001"):
    token = reply_form(client, tracking_id)
    return client.post(
        f"/team/vulnerabilities/{tracking_id}/reply", data={"csrf_token": token, "text": text}
    )


# -- who may see the pages -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, db, clock, path):
    report(clock)

    response = client.get(path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert "next=" in location.query


def test_a_registrant_is_forbidden_every_team_page_and_the_reply(client, auth, db, clock):
    report(clock)
    User.create(
        email="maker@example.com",
        password_hash=passwords.hash_password(PASSWORD),
        role="registrant",
        session_token=team.new_session_token(),
        created_at=clock.at,
    )
    assert auth.login("maker@example.com", PASSWORD).status_code == 302
    token = csrf_token(client.get("/").get_data(as_text=True))  # the sign-out form's

    for path in PAGES:
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert heading(refused) == "Not for this account"  # the site's layout, not Flask's
    forged = client.post(
        "/team/vulnerabilities/SEC-2026-0001/reply", data={"csrf_token": token, "text": "hi"}
    )
    assert forged.status_code == 403
    assert Correspondence.select().where(Correspondence.direction == "out").count() == 0


# -- the list --------------------------------------------------------------------------------------


def test_workspace_lists_reports_newest_first_with_reporter_name_and_message_count(
    signed_in, clock
):
    older = report(clock, "SEC-2026-0001", at=clock.at - timedelta(days=2), title="Old one")
    Correspondence.create(vulnerability=older, direction="in", at=clock.at, text="more")
    report(clock, "SEC-2026-0002", title="New <b>one</b>", reporter_name="Grace Hopper")

    response = signed_in.get("/team/?view=all")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert heading(response) == "Workspace"
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</tr>", html, re.S)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]
    assert [c.split(" new ")[0] for c in cells] == [
        "SEC-2026-0002 New &lt;b&gt;one&lt;/b&gt;",
        "SEC-2026-0001 Old one",
    ]
    assert cells[0].endswith("Grace Hopper 2026-11-25 12:00 UTC 1")
    assert cells[1].endswith("Ada Reporter 2026-11-23 12:00 UTC 2")
    assert " new – nobody " in cells[0]  # no CVE yet, unassigned
    assert 'href="/team/vulnerabilities/SEC-2026-0002"' in html
    assert "ada@example.net" not in html
    assert '<th scope="col">Received</th>' in html


def test_workspace_counts_held_messages_and_links_to_them(signed_in, clock):
    for state, how_many in (("quarantined", 2), ("junk", 1), ("processed", 3)):
        for _ in range(how_many):
            message_id = inbound.store(b"x", "s@example.net", ["security@localhost"], clock.at)
            inbound.finish(InboundMessage.get_by_id(message_id), state, clock.at, "why")

    response = signed_in.get("/team/")

    assert "Held messages: 2 need a human (quarantined), 1 junk." in text_of(response)
    assert 'href="/team/messages/held"' in response.get_data(as_text=True)


# -- one report ------------------------------------------------------------------------------------


def test_report_page_shows_dates_reporter_and_the_thread_oldest_first_escaped(
    signed_in, member, clock
):
    key = PublicKey.create(fingerprint=FINGERPRINT, armored="-", usable=True, created_at=clock.at)
    v = report(clock, text="Steps:\n  <script>alert(1)</script>\n", reporter_key=key)
    Correspondence.update(signature_status="valid", signer_fingerprint=FINGERPRINT).execute()
    failed = Delivery.create(
        kind="reply",
        vulnerability=v,
        recipient=v.reporter_email,
        state="failed",
        attempts=1,
        last_answer="550 5.1.1 <ada@example.net>: no such user",
        created_at=clock.at,
    )
    Correspondence.create(
        vulnerability=v,
        direction="out",
        author=member,
        delivery=failed,
        at=clock.at + timedelta(hours=1),
        subject="Re: Overflow in BLE",
        text="Thanks, we are looking.",
        signature_status="signed",
        encrypted=True,
    )

    response = signed_in.get("/team/vulnerabilities/SEC-2026-0001")
    html = response.get_data(as_text=True)
    text = text_of(response)

    assert response.status_code == 200
    assert heading(response) == "SEC-2026-0001: Overflow in BLE"
    assert "Reporter Ada Reporter &lt;ada@example.net&gt;" in text
    assert "Reported 2026-11-25 12:00 UTC" in text
    assert "Fix due 2026-12-25 12:00 UTC" in text
    assert "Embargo until 2027-02-23 12:00 UTC" in text
    assert '<time datetime="2027-02-23T12:00:00Z">' in html
    # The reporter's text is shown as text: escaped, never run.
    assert "<script>alert(1)" not in html
    assert '<pre class="text">Steps:\n  &lt;script&gt;alert(1)&lt;/script&gt;\n</pre>' in html
    incoming, outgoing = text.split("From the reporter", 1)[1].split("To the reporter, by ", 1)
    assert incoming.startswith(", ada@example.net Time")
    assert f"Signature signed by the reporter's key {FINGERPRINT}" in incoming
    assert "Encryption not encrypted" in incoming
    assert outgoing.startswith("alice@example.org Time 2026-11-25 13:00 UTC")
    assert "Encryption encrypted to the reporter's key" in outgoing
    assert "Delivery failed last answer: 550 5.1.1 &lt;ada@example.net&gt;: no such user" in (
        outgoing
    )
    assert "Thanks, we are looking." in outgoing


def test_report_page_labels_its_reply_box_and_has_no_inline_code(signed_in, clock):
    report(clock)

    html = signed_in.get("/team/vulnerabilities/SEC-2026-0001").get_data(as_text=True)

    assert re.search(r'<label for="text">[^<]+</label>', html)
    assert re.search(r'<textarea[^>]*id="text"', html)
    assert re.search(r'<form[^>]*action="/team/vulnerabilities/SEC-2026-0001/reply"', html)
    assert "style=" not in html and "<style" not in html and "<script" not in html


def test_unknown_tracking_id_is_404(signed_in, clock):
    report(clock)
    token = reply_form(signed_in)

    page = signed_in.get("/team/vulnerabilities/SEC-2026-9999")
    posted = signed_in.post(
        "/team/vulnerabilities/SEC-2026-9999/reply", data={"csrf_token": token, "text": "hi"}
    )

    assert (page.status_code, heading(page)) == (404, "Not found")
    assert posted.status_code == 404
    assert Correspondence.select().where(Correspondence.direction == "out").count() == 0


# -- replying --------------------------------------------------------------------------------------


def test_reply_without_csrf_token_is_refused_and_nothing_is_queued(signed_in, clock):
    report(clock)

    response = signed_in.post("/team/vulnerabilities/SEC-2026-0001/reply", data={"text": "hi"})

    assert response.status_code == 400
    assert heading(response) == "Form expired"
    assert Correspondence.select().where(Correspondence.direction == "out").count() == 0
    assert Delivery.select().count() == 0


@pytest.mark.parametrize("with_key", [True, False], ids=["reporter-key", "no-key"])
def test_reply_is_kept_in_the_thread_queued_and_the_flash_says_how_it_goes(
    signed_in, member, clock, redis_conn, with_key
):
    v = report(clock)
    if with_key:
        key = PublicKey.create(
            fingerprint=FINGERPRINT, armored="(not used here)", usable=True, created_at=clock.at
        )
        Vulnerability.update(reporter_key=key).where(Vulnerability.id == v.id).execute()

    response = send_reply(signed_in, "We reproduced it.\n<b>Thanks</b>")

    assert response.status_code == 302
    assert response.headers["Location"] == "/team/vulnerabilities/SEC-2026-0001"
    entry = Correspondence.get(Correspondence.direction == "out")
    assert (entry.author_id, entry.text, entry.encrypted) == (
        member.id,
        "We reproduced it.\n<b>Thanks</b>",
        with_key,
    )
    delivery = Delivery.get_by_id(entry.delivery_id)
    assert (delivery.kind, delivery.recipient, delivery.state) == (
        "reply",
        "ada@example.net",
        "queued",
    )
    # Queued for a worker now, not at the reconciler's next pass.
    assert reconcile.delivery_job_id(delivery.id) in queue.work_queue(redis_conn).job_ids
    page = signed_in.get(response.headers["Location"])
    if with_key:
        assert messages(page) == [
            f"Reply queued to ada@example.net, encrypted to their key {FINGERPRINT}. "
            "Its delivery state shows beside it in the thread."
        ]
    else:
        assert messages(page) == [
            "Reply queued to ada@example.net: they have no usable key on file, so they get a "
            "signed notice asking for one (your text is not sent unencrypted). When their key "
            "arrives with their answer, confirm it in the thread, then send your reply again."
        ]
    thread = text_of(page).split("To the reporter, by ", 1)[1]
    assert thread.startswith("alice@example.org")
    assert "Delivery queued" in thread
    assert "We reproduced it. &lt;b&gt;Thanks&lt;/b&gt;" in thread


def test_a_reporter_without_a_key_but_with_a_follow_up_link_reads_the_reply_there(
    signed_in, member, clock, redis_conn, settings
):
    v = report(clock)
    followup.issue(v.tracking_id, "test secret", clock.at)

    response = send_reply(signed_in, "We reproduced it.")

    assert messages(signed_in.get(response.headers["Location"])) == [
        "Reply queued to ada@example.net: they have no usable key on file, so they get a "
        "signed notice (your text is not sent unencrypted) pointing to their follow-up page, "
        "where they read your reply and can answer it."
    ]


@pytest.mark.parametrize("text", ["", "  \n\t "], ids=["empty", "blank"])
def test_empty_reply_is_400_with_the_reason_and_sends_nothing(signed_in, clock, text):
    report(clock)

    response = send_reply(signed_in, text)

    assert response.status_code == 400
    assert messages(response) == ["Your reply was not sent; see the reply form below."]
    assert re.search(
        r'<p class="error" id="text-error">Write a reply before sending it.</p>',
        response.get_data(as_text=True),
    )
    assert heading(response) == "SEC-2026-0001: Overflow in BLE"
    assert Delivery.select().count() == 0


def test_reply_the_rules_refuse_is_400_with_their_reason_and_keeps_the_text(signed_in, clock):
    report(clock, reporter_email="")

    response = send_reply(signed_in, "Draft that must not be lost")

    assert response.status_code == 400
    assert messages(response) == [
        "Your reply was not sent: SEC-2026-0001 has no reporter address to reply to."
    ]
    assert "Draft that must not be lost</textarea>" in response.get_data(as_text=True)
    assert Correspondence.select().where(Correspondence.direction == "out").count() == 0
    assert Delivery.select().count() == 0


# -- held messages ---------------------------------------------------------------------------------


def test_held_messages_show_the_reason_newest_first_but_never_the_raw_message(signed_in, clock):
    def held(raw, sender, state, reason):
        message_id = inbound.store(raw, sender, ["security@localhost"], clock.at)
        inbound.finish(InboundMessage.get_by_id(message_id), state, clock.at, reason)
        return message_id

    quarantined = held(
        b"Subject: x\r\n\r\nRAW-SECRET-BODY <script>alert(1)</script>",
        "eve@example.net",
        "quarantined",
        "the message could not be decrypted: no secret key for <ABCD>",
    )
    clock.move(hours=1)
    junk = held(b"RAW-JUNK-BODY", "", "junk", "a bounce or delivery report")
    clock.move(hours=1)
    held(b"RAW-PROCESSED-BODY", "ok@example.net", "processed", "")

    response = signed_in.get("/team/messages/held")
    html = response.get_data(as_text=True)
    text = text_of(response)

    assert response.status_code == 200
    assert heading(response) == "Held messages"
    assert re.findall(r'<th scope="row">#(\d+)</th>', html) == [str(junk), str(quarantined)]
    assert (
        f"#{quarantined} 2026-11-25 12:00 UTC eve@example.net quarantined "
        "the message could not be decrypted: no secret key for &lt;ABCD&gt;"
    ) in text
    assert f"#{junk} 2026-11-25 13:00 UTC (none: a bounce) junk a bounce or delivery report" in text
    assert "ok@example.net" not in html
    assert "RAW-" not in html and "<script" not in html


# -- who a message in the thread is from (issue 13, 2.1 and 2.4) ----------------------------------


@pytest.fixture(scope="module")
def people():
    from tests import mailcorpus as mc

    return mc.make_reporter(), mc.make_reporter("mallory@example.net", "Mallory")


def received(raw, keyring, settings, clock, to="security@localhost", envelope_from="r@x.org"):
    from app.reports import processing

    message_id = inbound.store(raw, envelope_from, [to], clock.at)
    return processing.process_inbound(message_id, keyring, settings, clock.at)


def test_thread_shows_a_strangers_signed_post_as_the_strangers(
    signed_in, keyring, settings, clock, people
):
    from tests import mailcorpus as mc

    rita, mallory = people
    inner = mc.multipart("mixed", [mc.text_part("Details."), mc.key_part(rita.cert)], "i")
    report_raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(keyring.export_public(), inner, rita))
    received(report_raw, keyring, settings, clock)
    v = Vulnerability.get()
    signed = mc.signed_entity(mc.text_part("I am the reporter, honest."), mallory)
    body = mc.multipart("mixed", [signed, mc.key_part(mallory.cert)], "s")
    raw = mc.message(body, sender=mallory.sender).replace(b"<report-1@", b"<m-1@")
    received(raw, keyring, settings, clock, to=f"security+{v.tracking_id}@localhost")

    text = text_of(signed_in.get(f"/team/vulnerabilities/{v.tracking_id}"))

    first, stranger = text.split("Correspondence, oldest first", 1)[1].split("Details.", 1)
    assert "From the reporter, rita@example.org" in first
    assert f"signed by the reporter's key {rita.fingerprint}" in first
    assert "From mallory@example.net, not the reporter" in stranger
    assert f"signed by a key that is not the reporter's: {mallory.fingerprint}" in stranger
    assert "signed by the reporter's key" not in stranger
    assert "valid signature" not in stranger
    assert f"{v.reporter_key.fingerprint}: replies are encrypted to it" in text
    assert v.reporter_key.fingerprint == rita.fingerprint


def test_a_key_offered_later_is_used_only_once_the_team_confirms_it(
    signed_in, client, keyring, settings, clock, people
):
    from app.models import AuditEvent
    from tests import mailcorpus as mc

    rita, _ = people
    received(mc.plain("Plain report.", subject="Bug"), keyring, settings, clock)
    v = Vulnerability.get()
    body = mc.multipart("mixed", [mc.text_part("My key."), mc.key_part(rita.cert)], "k")
    raw = mc.message(body).replace(b"<report-1@", b"<k-1@")
    received(raw, keyring, settings, clock, to=f"security+{v.tracking_id}@localhost")
    page = signed_in.get(f"/team/vulnerabilities/{v.tracking_id}")
    assert "none usable on file" in text_of(page)
    assert f"Key offered {rita.fingerprint} for the reporter's address" in text_of(page)
    entry = Correspondence.get(Correspondence.offered_key.is_null(False))
    url = f"/team/vulnerabilities/{v.tracking_id}/reporter-key"

    forged = signed_in.post(url, data={"key-correspondence": entry.id})
    assert forged.status_code == 400  # no CSRF token
    assert Vulnerability.get().reporter_key is None

    token = csrf_token(page.get_data(as_text=True))
    done = signed_in.post(url, data={"csrf_token": token, "key-correspondence": entry.id})
    assert done.status_code == 302
    assert Vulnerability.get().reporter_key.fingerprint == rita.fingerprint
    assert [html.unescape(m) for m in messages(signed_in.get(done.headers["Location"]))] == [
        f"The reporter's key is now {rita.fingerprint}: replies, rejections and embargo changes "
        "are encrypted to it. The change is in the audit log."
    ]
    event = AuditEvent.get(AuditEvent.action == "report.key-confirm")
    assert (event.target, event.actor_label) == (v.tracking_id, "alice@example.org")
