"""The reporter's follow-up page (#16): their case without an account, nothing of anyone else's;
opening it changes nothing; tokens that open nothing get the generic 404; the credit they choose
is audited; a reply is stored encrypted and joins the thread through the worker; the team
revokes and reissues; erasure ends it; a mail report's ack carries a working link."""

import hashlib
import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from app.core import instance
from app.core.errors import Refused
from app.models import (
    AuditEvent,
    Correspondence,
    CveId,
    Delivery,
    FollowUpLink,
    InboundMessage,
    ReceivedFile,
    Vulnerability,
)
from app.outbox import letters
from app.privacy import erasure
from app.reports import attachments, followup, followup_view, processing
from app.vulns import duplicates, lifecycle, split
from mail.parse import Attachment
from tests.conftest import PASSWORD, Auth, csrf_token
from tests.openpgp import encrypted_payload, parts_as_sent, run, text_of
from tests.test_report_flow import acks, flow, relay, rita  # noqa: F401 (fixtures)

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "cli:test")
RITA = "rita@example.org"


def _file(name: str, content_type: str, data: bytes) -> Attachment:
    return Attachment(name, content_type, len(data), hashlib.sha256(data).hexdigest(), data, True)


class World:
    """Rita's case (a report, one vulnerability split from it with a CVE id), a stranger's mail
    into it, and Dan's report of the same thing marked a duplicate of it (credited there)."""

    def __init__(self, settings, at, admin):
        self.settings, self.at = settings, at
        self.root = lifecycle.create(
            "Overflow in the parser", "TEAM-DESCRIPTION-CANARY", CLI, at, settings
        )
        Vulnerability.update(
            reporter_email=RITA, reporter_name="Rita Reporter", assignee=admin, status="triage"
        ).where(Vulnerability.id == self.root.id).execute()
        self.root = Vulnerability.get_by_id(self.root.id)
        (self.part,) = split.split(self.root, ["Second flaw"], CLI, at, settings)
        cve = CveId.create(
            cve_id="CVE-2026-41234", block="2026", year=2026, number=41234, state="assigned"
        )
        Vulnerability.update(cve=cve, status="accepted").where(
            Vulnerability.id == self.part.id
        ).execute()
        self.mine = Correspondence.create(
            vulnerability=self.root,
            direction="in",
            at=at - timedelta(hours=2),
            subject="My report",
            text="REPORTER-TEXT: it overflows.",
            sender=RITA,
        )
        attachments.keep(self.mine, [_file("poc.py", "text/x-python", b"print('POC-BYTES')")], at)
        Correspondence.create(
            vulnerability=self.root,
            direction="out",
            at=at - timedelta(hours=1),
            subject="Re: My report",
            text="TEAM-REPLY: which version?",
        )
        stranger = Correspondence.create(
            vulnerability=self.root,
            direction="in",
            at=at - timedelta(minutes=30),
            subject="me too",
            text="STRANGER-TEXT",
            sender="mallory@example.net",
        )
        (self.stranger_file,) = attachments.keep(
            stranger, [_file("stranger.txt", "text/plain", b"STRANGER-BYTES")], at
        )
        self.dup = lifecycle.create("Same overflow", "DUP-DESCRIPTION", CLI, at, settings)
        Vulnerability.update(
            reporter_email="dan@example.com", reporter_name="Dan Finder", status="triage"
        ).where(Vulnerability.id == self.dup.id).execute()
        dup_entry = Correspondence.create(
            vulnerability=self.dup,
            direction="in",
            at=at,
            subject="dup",
            text="DUP-TEXT",
            sender="dan@example.com",
        )
        (self.dup_file,) = attachments.keep(
            dup_entry, [_file("dan.txt", "text/plain", b"DAN-BYTES")], at
        )
        duplicates.mark(self.dup, self.root, "same", True, CLI, at, settings)
        self.root = Vulnerability.get_by_id(self.root.id)
        secret = instance.secret_key(settings)
        _link, self.token = followup.issue(self.root.tracking_id, secret, at)
        _link, self.dup_token = followup.issue(self.dup.tracking_id, secret, at)
        self.my_file = ReceivedFile.get(ReceivedFile.name == "poc.py")

    @property
    def url(self) -> str:
        return f"/follow-up/{self.token}"


@pytest.fixture
def world(db, settings, clock, admin_user):
    return World(settings, clock.at, admin_user)


def test_the_page_shows_the_reporters_case_and_nothing_of_anyone_elses(client, world):
    response = client.get(world.url)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for shown in (
        world.root.tracking_id,
        world.part.tracking_id,
        "being assessed",  # the report, in triage
        "confirmed",  # the part, accepted
        "CVE-2026-41234",
        "REPORTER-TEXT",
        "TEAM-REPLY",
        "poc.py",
        "Rita Reporter",  # the credit as it will appear
    ):
        assert shown in page, shown
    assert page.index("REPORTER-TEXT") < page.index("TEAM-REPLY")  # oldest first
    for hidden in (
        world.dup.tracking_id,  # another reporter's case
        "Dan Finder",  # credited on Rita's report, but another reporter
        "dan@example.com",
        "DUP-TEXT",
        "dan.txt",
        "STRANGER-TEXT",  # someone else wrote into the case
        "stranger.txt",
        "mallory",
        "TEAM-DESCRIPTION-CANARY",  # the team's field
        "admin@",  # the assignee
    ):
        assert hidden not in page, hidden
    assert "Dan Finder" in lifecycle.credits(world.root)  # there, and filtered out


def test_a_duplicate_shows_the_id_it_is_tracked_under(client, world):
    page = client.get(f"/follow-up/{world.dup_token}").get_data(as_text=True)
    assert f"a duplicate of a report we track as {world.root.tracking_id}" in page
    for hidden in ("REPORTER-TEXT", "Rita", "poc.py", world.part.tracking_id, "CVE-2026-41234"):
        assert hidden not in page, hidden
    assert "DUP-TEXT" in page


def _snapshot():
    return (
        AuditEvent.select().count(),
        Delivery.select().count(),
        InboundMessage.select().count(),
        [(v.id, v.updated_at, v.reporter_name, v.credit_reporter) for v in Vulnerability.select()],
        [(f.id, f.revoked_at) for f in FollowUpLink.select()],
    )


def test_opening_the_page_changes_nothing(client, world):
    before = _snapshot()
    for _ in range(3):
        assert client.get(world.url).status_code == 200
    assert client.get(f"{world.url}/files/{world.my_file.id}").status_code == 200
    assert _snapshot() == before


def _not_found_body(client) -> str:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    return response.get_data(as_text=True)


def test_altered_unknown_and_revoked_tokens_get_the_generic_404(client, world, clock):
    generic = _not_found_body(client)
    altered = world.token[:-1] + ("A" if world.token[-1] != "A" else "B")
    for token in (altered, world.token[:-1], "x" * 43, "not-a-token"):
        response = client.get(f"/follow-up/{token}")
        assert (response.status_code, response.get_data(as_text=True)) == (404, generic)
        assert client.get(f"/follow-up/{token}/files/{world.my_file.id}").status_code == 404
    followup.revoke(world.root.tracking_id, clock.at)
    response = client.get(world.url)
    assert (response.status_code, response.get_data(as_text=True)) == (404, generic)


def test_guessing_tokens_is_stopped_per_address(client, world, redis_conn):
    for n in range(30):
        assert client.get(f"/follow-up/guess{n}").status_code == 404
    response = client.get(world.url)  # even the right one, from that address, for a while
    assert response.status_code == 429
    assert "Try again in an hour" in response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "3600"
    other = client.get(world.url, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


def test_the_reporter_changes_their_credit_and_it_is_audited(client, world):
    token = csrf_token(client.get(world.url).get_data(as_text=True))
    response = client.post(
        f"{world.url}/credit", data={"credit-csrf_token": token, "credit-name": "R. Researcher"}
    )
    assert response.status_code == 302
    root = Vulnerability.get_by_id(world.root.id)
    part = Vulnerability.get_by_id(world.part.id)
    assert (root.reporter_name, part.reporter_name) == ("R. Researcher", "R. Researcher")
    # The credits text (Rita by name, then Dan) keeps Dan and names Rita as she asked.
    assert lifecycle.credits(root).splitlines() == ["R. Researcher", "Dan Finder"]
    events = AuditEvent.select().where(AuditEvent.action == "vuln.set.credit")
    assert {e.target for e in events} == {root.tracking_id, part.tracking_id}
    assert {e.actor_label for e in events} == {followup_view.REPORTER}
    page = client.get(world.url).get_data(as_text=True)
    assert "you will be credited as R. Researcher" in page
    assert "Dan Finder" not in page

    client.post(f"{world.url}/credit", data={"credit-csrf_token": token, "credit-anonymous": "y"})
    root = Vulnerability.get_by_id(world.root.id)
    assert root.credit_reporter is False
    assert lifecycle.credits(root).splitlines() == ["Dan Finder"]
    assert "you will not be credited by name" in client.get(world.url).get_data(as_text=True)


def test_posts_need_the_csrf_token_and_the_right_token(client, world):
    response = client.post(f"{world.url}/credit", data={"credit-name": "X"})
    assert response.status_code == 400
    assert Vulnerability.get_by_id(world.root.id).reporter_name == "Rita Reporter"
    token = csrf_token(client.get(world.url).get_data(as_text=True))
    wrong = client.post("/follow-up/not-a-token/reply", data={"csrf_token": token, "text": "x"})
    assert wrong.status_code == 404
    assert InboundMessage.select().count() == 0


def test_a_reply_is_stored_encrypted_and_joins_the_thread_as_a_mailed_one(
    client, world, keyring, settings, clock, io_bytes
):
    token = csrf_token(client.get(world.url).get_data(as_text=True))
    response = client.post(
        f"{world.url}/reply",
        data={
            "csrf_token": token,
            "text": "WEB-REPLY-CANARY: version 2.3.",
            "attachments": [(io_bytes(b"LOG-BYTES-CANARY\n"), "crash.log")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    message = InboundMessage.get()
    assert (message.channel, message.tracking_id, message.state) == (
        "web-reply",
        world.root.tracking_id,
        "received",
    )
    raw = bytes(message.raw)
    assert b"-----BEGIN PGP MESSAGE-----" in raw
    for plain in (b"WEB-REPLY-CANARY", b"LOG-BYTES-CANARY", b"crash.log", b"TkxPRy1"):
        assert plain not in raw
    assert world.root.tracking_id.encode() not in raw  # not even in the outer headers

    assert processing.process_inbound(message.id, keyring, settings, clock.at) == "reply"
    entry = Correspondence.select().order_by(Correspondence.id.desc()).first()
    assert (entry.vulnerability_id, entry.direction, entry.sender) == (world.root.id, "in", RITA)
    assert "WEB-REPLY-CANARY" in entry.text and entry.encrypted
    (received,) = attachments.of_entry(entry)
    assert received.name == "crash.log"
    queued = {
        (d.kind, d.recipient) for d in Delivery.select().where(Delivery.created_at == clock.at)
    }
    assert ("reply-ack", RITA) in queued
    assert any(kind == "team-forward" for kind, _ in queued)
    page = client.get(world.url).get_data(as_text=True)
    assert "WEB-REPLY-CANARY" in page and "crash.log" in page
    download = client.get(f"{world.url}/files/{received.id}")
    assert download.data == b"LOG-BYTES-CANARY\n"


@pytest.fixture
def io_bytes():
    from io import BytesIO

    return BytesIO


def test_files_download_with_the_right_token_alone_and_only_that_cases(client, world):
    own = client.get(f"{world.url}/files/{world.my_file.id}")
    assert own.status_code == 200 and own.data == b"print('POC-BYTES')"
    assert own.headers["Content-Disposition"].startswith("attachment")
    assert own.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    for file_id in (world.dup_file.id, world.stranger_file.id, 999999):
        assert client.get(f"{world.url}/files/{file_id}").status_code == 404
    dup_url = f"/follow-up/{world.dup_token}/files/{world.my_file.id}"
    assert client.get(dup_url).status_code == 404
    assert (
        client.get(f"/follow-up/{world.dup_token}/files/{world.dup_file.id}").data == b"DAN-BYTES"
    )


def test_the_team_reissues_the_link_the_reporter_is_mailed_the_new_one_the_old_dies(
    app, client, world, admin_user, keyring, settings, clock
):
    team = app.test_client()
    Auth(team).login(admin_user.email, PASSWORD)
    case_page = team.get(f"/team/cases/{world.part.tracking_id}").get_data(as_text=True)
    assert "The reporter has a live private link" in case_page
    response = team.post(
        f"/team/cases/{world.part.tracking_id}/follow-up",
        data={"followup-csrf_token": csrf_token(case_page), "action": "reissue"},
        follow_redirects=True,
    )
    assert "being mailed to the reporter" in response.get_data(as_text=True)
    assert client.get(world.url).status_code == 404
    delivery = Delivery.get(Delivery.kind == "follow-up-link")
    assert (delivery.recipient, delivery.vulnerability_id) == (RITA, world.root.id)
    text = letters.text_for(delivery, keyring, settings, clock.at)
    (url,) = re.findall(r"https?://\S+/follow-up/\S+", text.body)
    new = url.split("/follow-up/", 1)[1]
    assert new != world.token
    assert client.get(f"/follow-up/{new}").status_code == 200
    assert AuditEvent.get(AuditEvent.action == "followup.reissue").target == world.root.tracking_id

    team.post(
        f"/team/cases/{world.root.tracking_id}/follow-up",
        data={"followup-csrf_token": csrf_token(case_page), "action": "revoke"},
    )
    assert client.get(f"/follow-up/{new}").status_code == 404
    assert "withdrawn" in letters.text_for(delivery, keyring, settings, clock.at).body


def test_the_command_line_reissues_and_revokes(world, forewarn, clock):
    done = forewarn("vulns", "follow-up", world.part.tracking_id, "--reissue")
    assert done.returncode == 0, done.stderr
    assert "mailed to the reporter" in done.stdout
    assert followup.find(world.token) is None
    live = followup.live(world.root.tracking_id)
    assert live is not None
    done = forewarn("vulns", "follow-up", world.root.tracking_id, "--revoke")
    assert done.returncode == 0, done.stderr
    assert followup.live(world.root.tracking_id) is None
    again = forewarn("vulns", "follow-up", world.root.tracking_id, "--revoke")
    assert again.returncode != 0 and "no live follow-up link" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_erasure_kills_the_link(client, world, clock):
    erasure.erase_reporter(RITA, "cli:test", clock.at)
    assert client.get(world.url).status_code == 404
    assert client.get(f"/follow-up/{world.dup_token}").status_code == 200  # Dan's stays


def test_later_mail_to_the_reporter_ends_with_the_link(world, keyring, settings, clock):
    entry = Correspondence.get(Correspondence.direction == "out")
    delivery = Delivery.create(
        kind="reply",
        recipient=RITA,
        vulnerability=world.root,
        payload=json.dumps({"correspondence": entry.id}),
        created_at=clock.at,
    )
    body = letters.text_for(delivery, keyring, settings, clock.at).body
    assert body.rstrip().endswith(f"/follow-up/{world.token}")
    stranger = Delivery.create(
        kind="receipt", recipient="mallory@example.net", payload="{}", created_at=clock.at
    )
    assert "/follow-up/" not in letters.text_for(stranger, keyring, settings, clock.at).body


def test_a_mail_reports_ack_carries_a_working_link(flow, relay, rita, app, tmp_path):  # noqa: F811
    from tests import mailcorpus as mc

    inner = mc.multipart(
        "mixed", [mc.text_part("Overflow in l2cap."), mc.key_part(rita.cert)], "in"
    )
    flow.report(mc.pgp_mime_encrypted(mc.sqop_encrypt(flow.service_cert, inner, signer=rita)))
    [ack] = acks(relay)
    secret = tmp_path / "rita.key"
    secret.write_bytes(rita.secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(ack.data)).stdout
    text, _signature = parts_as_sent(entity)
    (url,) = re.findall(r"https?://\S+/follow-up/[A-Za-z0-9_-]+", text_of(text))
    assert b"/follow-up/" not in ack.data  # inside the encryption only
    page = app.test_client().get(urlsplit(url).path)
    assert page.status_code == 200
    assert Vulnerability.get().tracking_id in page.get_data(as_text=True)
    assert "Overflow in l2cap." in page.get_data(as_text=True)


def test_a_web_reports_link_works_at_once_before_a_worker_filed_it(
    client, keyring, settings, clock
):
    """The answer page's link, followed at once: the report is received (nothing of it is
    readable yet: the web cannot decrypt it); once filed, the full page."""
    from tests.test_web_report import FOLLOW_UP, send, stored

    before = _snapshot()
    (url,) = FOLLOW_UP.findall(send(client, email=RITA).get_data(as_text=True))
    path = urlsplit(url).path
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    page = " ".join(response.get_data(as_text=True).split())
    message = stored()
    assert f"Your report {message.tracking_id}" in page
    assert f'<th scope="row">{message.tracking_id}</th> <td>received</td>' in page
    for hidden in ("canary-title-76", "canary-description-77", RITA, "<form"):
        assert hidden not in page, hidden
    # Nothing to post to yet, and opening it changed nothing but the stored report.
    token = csrf_token(client.get("/report").get_data(as_text=True))
    assert client.post(f"{path}/reply", data={"csrf_token": token, "text": "x"}).status_code == 404
    assert _snapshot()[2] == before[2] + 1

    assert processing.process_inbound(message.id, keyring, settings, clock.at) == "new report"
    page = client.get(path).get_data(as_text=True)
    assert "canary-description-77" in page and 'name="text"' in page


def test_a_reporter_without_an_address_reads_the_teams_reply_on_their_page(
    client, keyring, settings, clock, admin_user
):
    """Nothing is mailed (there is no address), the reply is kept for their page; without a
    live link there is nowhere to reply to, and the team is told so."""
    from app.reports import replies
    from tests.test_web_report import FOLLOW_UP, send, stored

    (url,) = FOLLOW_UP.findall(send(client, name="Anon Finder").get_data(as_text=True))
    message = stored()
    assert processing.process_inbound(message.id, keyring, settings, clock.at) == "new report"
    v = Vulnerability.get(Vulnerability.tracking_id == message.tracking_id)
    entry = replies.reply_to_reporter(v, admin_user, "TEAM-ANSWER: which board?", clock.at)
    assert entry.delivery_id is None
    assert not Delivery.select().where(Delivery.kind == "reply").exists()
    assert AuditEvent.select().where(AuditEvent.action == "report.reply").count() == 1
    page = client.get(urlsplit(url).path).get_data(as_text=True)
    assert "The security team wrote" in page and "TEAM-ANSWER: which board?" in page

    # From the portal, the team is told where the reply goes.
    team = client.application.test_client()
    assert Auth(team).login(admin_user.email, PASSWORD).status_code == 302
    team_page = f"/team/vulnerabilities/{v.tracking_id}"
    token = csrf_token(team.get(team_page).get_data(as_text=True))
    answered = team.post(f"{team_page}/reply", data={"csrf_token": token, "text": "PORTAL-ANSWER"})
    assert answered.status_code == 302
    shown = " ".join(team.get(team_page).get_data(as_text=True).split())
    assert "Reply kept: the reporter gave no email address, so nothing is mailed" in shown
    assert "not mailed: the reporter gave no address, and reads it on their follow-up page" in shown
    assert "PORTAL-ANSWER" in client.get(urlsplit(url).path).get_data(as_text=True)

    followup.revoke(v.tracking_id, clock.at)
    with pytest.raises(Refused, match="has no reporter address to reply to"):
        replies.reply_to_reporter(v, admin_user, "Again", clock.at)
