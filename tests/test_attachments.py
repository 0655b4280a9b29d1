"""Reporters' attachments reach the team (issue 13, section 1): reports sent over a real SMTP
conversation to the intake, processed by real RQ jobs with real GnuPG, then read back from
`forewarn vulns show --json` and `vulns attachment`, the workspace (listing and downloads), and
the forward to the team member, opened with Sequoia (sqop) and RNP."""

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest

from app.accounts import team as accounts
from app.models import Correspondence, PublicKey, ReceivedFile, Vulnerability
from app.privacy import erasure, retention
from app.reports import processing
from app.vulns import lifecycle, views
from tests import mailcorpus as mc
from tests import test_report_flow as report_flow
from tests.conftest import PASSWORD, ROOT
from tests.openpgp import body_of, encrypted_payload, make_sqop_key, parse, parts_as_sent, run

# The report flow's fixtures: an in-process intake over real SMTP, its relay, a reporter.
flow, relay, rita = report_flow.flow, report_flow.relay, report_flow.rita

POC = b"#!/usr/bin/env python3\nimport socket\nsocket.socket().send(b'\\x00' * 70)\n"
CRASH_DUMP = bytes((i * 7919 + 13) % 256 for i in range(300 * 1024))  # 300 KiB of binary
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n"
HTML = b"<html><script>alert('run me')</script><p>findings</p></html>\n"
COVER = "Overflow in the BLE stack: details and proof of concept attached."
REPORT_TXT = "Findings NCC-ZEP-031\n\nThe L2CAP parser trusts the length field.\n"

FILES = [  # (name, content type as sent, bytes)
    ("poc.py", "text/x-python", POC),
    ("crash.dmp", "application/octet-stream", CRASH_DUMP),
    ("findings.pdf", "application/pdf", PDF),
    ("notes.html", "text/html", HTML),
]


def listed(name, ctype, data) -> dict:
    return {
        "name": name,
        "content_type": ctype,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@pytest.fixture
def tess(db, clock, tmp_path):
    """The team member on triage duty, with a Sequoia-made key of her own."""
    member = accounts.create_team_account("tess@example.org", PASSWORD, "team", clock.at, "t").user
    key = make_sqop_key(tmp_path / "tess", "Tess <tess@example.org>")
    PublicKey.create(
        fingerprint=key.fingerprint,
        armored=key.cert.read_text(),
        owner=member,
        usable=True,
        created_at=clock.at,
    )
    return key


def cli(env, *args):
    """`forewarn ARGS` as an operator runs it; stdout as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )


def shown(env, tracking_id) -> dict:
    result = cli(env, "vulns", "show", tracking_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pgp_mime_report(flow, rita):
    parts = [mc.text_part(COVER)] + [mc.attachment_part(n, d, t) for n, t, d in FILES]
    inner = mc.multipart("mixed", parts, "inner")
    return mc.pgp_mime_encrypted(
        mc.sqop_encrypt(flow.service_cert, inner, signer=rita), subject="BLE overflow"
    )


def cover_note_with_encrypted_report(flow):
    sealed = mc.gpg_encrypt(flow.service_cert, REPORT_TXT.encode(), armor=False)
    body = mc.multipart(
        "mixed",
        [
            mc.text_part("Hello, my report is attached, encrypted to your key."),
            mc.attachment_part("report.txt.gpg", sealed),
        ],
        "cover",
    )
    return mc.message(body, subject="Report for the security team")


def forward_to(relay, address):
    found = [r for r in relay.received if r.recipients == [address]]
    assert len(found) == 1, [r.recipients for r in relay.received]
    return found[0].data


def open_forward(raw, key, tool, service_cert, tmp_path):
    """Decrypt with sqop or RNP, verify the service's signature with the same tool: the signed
    entity's first part (as sent)."""
    assert parse(raw).get_content_type() == "multipart/encrypted"
    payload = encrypted_payload(raw)
    if tool == "sqop":
        entity = run("sqop", "decrypt", str(key.secret), input=payload).stdout
    else:
        home = tmp_path / "rnp-tess"
        if not home.exists():
            home.mkdir(mode=0o700)
            run("rnpkeys", "--homedir", str(home), "--import", str(key.secret))
            run("rnpkeys", "--homedir", str(home), "--import", str(service_cert))
        (tmp_path / "forward.asc").write_bytes(payload)
        entity = run(
            *("rnp", "--homedir", str(home), "--decrypt", str(tmp_path / "forward.asc")),
            *("--output", "-"),
        ).stdout
    signed, signature = parts_as_sent(entity)
    (tmp_path / "sig.asc").write_bytes(body_of(signature))
    if tool == "sqop":
        ok = run("sqop", "verify", str(tmp_path / "sig.asc"), str(service_cert), input=signed)
    else:
        (tmp_path / "signed").write_bytes(signed)
        ok = run(
            *("rnp", "--homedir", str(tmp_path / "rnp-tess"), "--verify"),
            *(str(tmp_path / "sig.asc"), "--source", str(tmp_path / "signed")),
        )
    assert ok.returncode == 0
    return parse(signed)


def signed_in_team(client, auth):
    assert auth.login("tess@example.org", PASSWORD).status_code == 302
    return client


# -- (a) a PGP/MIME report with a proof of concept, a crash dump, a PDF ------------------------


def test_attachments_of_an_encrypted_report_are_kept_listed_downloadable_and_forwarded(
    flow, relay, rita, tess, env, keyring, client, auth, tmp_path
):
    message = flow.report(pgp_mime_report(flow, rita))
    assert message.state == "processed"
    tid = Vulnerability.get().tracking_id

    # vulns show --json: each file after decryption, as the reporter meant it.
    [entry] = shown(env, tid)["correspondence"]
    assert COVER in entry["text"]
    assert entry["attachments"] == [listed(n, t, d) for n, t, d in FILES]
    assert entry["encrypted"] is True and entry["unencrypted_parts"] == []
    assert entry["attached_text"] == []  # the cover text is the report here

    text = cli(env, "vulns", "show", tid).stdout.decode()
    sha = hashlib.sha256(POC).hexdigest()
    assert f"attachment: poc.py (text/x-python, {len(POC)} bytes) sha256 {sha}" in text

    # vulns attachment: the exact bytes on stdout; a one-line error otherwise.
    for name, _, data in FILES:
        got = cli(env, "vulns", "attachment", tid, hashlib.sha256(data).hexdigest())
        assert got.returncode == 0, got.stderr
        assert got.stdout == data, name
    unknown = cli(env, "vulns", "attachment", tid, "0" * 64)
    assert unknown.returncode == 1 and unknown.stdout == b""
    assert unknown.stderr.decode().count("\n") == 1 and "no attachment" in unknown.stderr.decode()

    # The workspace lists them and serves each as a download, byte for byte, never inline.
    team = signed_in_team(client, auth)
    page = team.get(f"/team/vulnerabilities/{tid}").get_data(as_text=True)
    links = re.findall(r'href="(/team/vulnerabilities/[^"]+/attachments/\d+)"', page)
    assert len(links) == len(FILES)
    served_as = {
        "poc.py": "application/octet-stream",
        "crash.dmp": "application/octet-stream",
        "findings.pdf": "application/pdf",
        "notes.html": "application/octet-stream",  # never rendered as a page
    }
    for link, (name, _, data) in zip(links, FILES, strict=True):
        assert name in page and hashlib.sha256(data).hexdigest() in page
        assert f"{len(data):,} bytes" in page
        response = team.get(link)
        assert response.status_code == 200
        assert response.get_data() == data
        assert response.headers["Content-Disposition"] == f"attachment; filename={name}"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == served_as[name]
        assert "no-store" in response.headers["Cache-Control"]
    assert page.count("<td>encrypted</td>") == len(FILES)

    # The forward to the member on duty carries every file inside the encryption.
    raw = forward_to(relay, "tess@example.org")
    assert POC not in raw and b"findings.pdf" not in raw and b"crash.dmp" not in raw
    for tool in ("sqop", "rnp"):
        inner = open_forward(raw, tess, tool, tmp_path / "service.asc", tmp_path)
        assert inner.get_content_type() == "multipart/mixed"
        text, *files = inner.get_payload()
        body = text.get_content()
        assert COVER in body
        for name, _, data in FILES:
            assert name in body and hashlib.sha256(data).hexdigest() in body
        assert [(f.get_filename(), f.get_payload(decode=True)) for f in files] == [
            (n, d) for n, _, d in FILES
        ], tool


@pytest.fixture(autouse=True)
def _service_cert(keyring, tmp_path):
    (tmp_path / "service.asc").write_text(keyring.export_public())


def test_a_member_without_a_key_gets_the_signed_notice_never_the_files(
    flow, relay, rita, db, clock
):
    accounts.create_team_account("kim@example.org", PASSWORD, "team", clock.at, "t")
    flow.report(pgp_mime_report(flow, rita))
    raw = forward_to(relay, "kim@example.org")
    assert parse(raw).get_content_type() == "multipart/signed"
    text, _signature = parts_as_sent(raw)
    assert parse(text).get_content_type() == "text/plain"
    for name, _, _data in FILES:
        assert name.encode() not in raw
    assert POC not in raw and b"%PDF" not in raw
    assert b"no usable OpenPGP key" in raw


# -- (b) a plain cover note with report.txt.gpg ----------------------------------------------------


def test_an_encrypted_report_txt_beside_a_plain_cover_note_is_shown_as_the_report(
    flow, relay, tess, env, client, auth, tmp_path
):
    flow.report(cover_note_with_encrypted_report(flow))
    tid = Vulnerability.get().tracking_id

    [entry] = shown(env, tid)["correspondence"]
    assert entry["encrypted"] is True  # the content arrived encrypted; the cover note did not
    assert entry["unencrypted_parts"] == ["the text"]
    assert entry["attachments"] == [listed("report.txt", "text/plain", REPORT_TXT.encode())]
    assert entry["attached_text"] == [{"name": "report.txt", "text": REPORT_TXT, "cut": False}]

    page = signed_in_team(client, auth).get(f"/team/vulnerabilities/{tid}")
    html = page.get_data(as_text=True)
    assert "The L2CAP parser trusts the length field." in html  # shown, not only downloadable
    assert "but these parts were not: the text" in html

    inner = open_forward(
        forward_to(relay, "tess@example.org"), tess, "sqop", tmp_path / "service.asc", tmp_path
    )
    text, report = inner.get_payload()
    assert "The L2CAP parser trusts the length field." in text.get_content()
    assert "Arrived unencrypted: the text." in text.get_content()
    assert report.get_filename() == "report.txt"
    assert report.get_payload(decode=True) == REPORT_TXT.encode()


# -- limits, access, retention, erasure ------------------------------------------------------------


def _process(raw, keyring, settings, at):
    from app.reports import inbound

    message_id = inbound.store(raw, "rita@example.org", [settings.security_address], at)
    return processing.process_inbound(message_id, keyring, settings, at)


def test_an_oversize_attachment_is_listed_with_its_sha256_and_the_reason(
    db, keyring, settings, clock, env, client, auth, tess
):
    from app.reports import attachments
    from mail.parse import parse as parse_mail

    body = mc.multipart(
        "mixed",
        [mc.text_part("See the dump."), mc.attachment_part("crash.dmp", CRASH_DUMP)],
        "big",
    )
    v = lifecycle.create("Dump", "", lifecycle.Actor(None, "t"), clock.at, settings)
    parsed = parse_mail(mc.message(body), keyring, max_attachment_bytes=200_000)
    entry = Correspondence.create(vulnerability=v, direction="in", at=clock.at, text=parsed.text)
    attachments.keep(entry, parsed.attachments, clock.at)

    [entry] = views.details(v)["correspondence"]
    assert entry["attachments"] == [listed("crash.dmp", "application/octet-stream", CRASH_DUMP)]
    assert entry["dropped_attachments"] == [
        {
            "name": "crash.dmp",
            "sha256": hashlib.sha256(CRASH_DUMP).hexdigest(),
            "reason": "larger than 200000 bytes, the limit per attachment",
        }
    ]
    page = signed_in_team(client, auth).get(f"/team/vulnerabilities/{v.tracking_id}")
    html = page.get_data(as_text=True)
    assert "crash.dmp<br><em>not kept: larger than 200000 bytes" in html
    assert hashlib.sha256(CRASH_DUMP).hexdigest() in html and "/attachments/" not in html
    refused = cli(env, "vulns", "attachment", v.tracking_id, hashlib.sha256(CRASH_DUMP).hexdigest())
    assert refused.returncode == 1
    assert refused.stderr.decode() == (
        "forewarn: the content of crash.dmp was not kept: "
        "larger than 200000 bytes, the limit per attachment\n"
    )


def test_plain_parts_are_named_as_unencrypted(db, keyring, settings, clock):
    body = mc.multipart("mixed", [mc.text_part("x"), mc.attachment_part("a.bin", PDF)], "m")
    _process(mc.message(body), keyring, settings, clock.at)
    [entry] = views.details(Vulnerability.get())["correspondence"]
    assert entry["encrypted"] is False
    assert entry["unencrypted_parts"] == ["the text", "the attachment a.bin"]


def test_a_file_is_downloadable_only_through_its_own_vulnerability(
    db, keyring, settings, clock, client, auth, tess
):
    body = mc.multipart("mixed", [mc.text_part("x"), mc.attachment_part("a.bin", PDF)], "m")
    _process(mc.message(body), keyring, settings, clock.at)
    other = lifecycle.create("Other", "", lifecycle.Actor(None, "t"), clock.at, settings)
    received = ReceivedFile.get()
    own = Vulnerability.get_by_id(received.correspondence.vulnerability_id).tracking_id
    anonymous = client.get(f"/team/vulnerabilities/{own}/attachments/{received.id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    team = signed_in_team(client, auth)
    assert team.get(f"/team/vulnerabilities/{own}/attachments/{received.id}").status_code == 200
    wrong = team.get(f"/team/vulnerabilities/{other.tracking_id}/attachments/{received.id}")
    assert wrong.status_code == 404


def test_retention_purges_attachments_when_it_purges_the_text(
    db, keyring, settings, clock, env, admin_user
):
    body = mc.multipart("mixed", [mc.text_part("x"), mc.attachment_part("poc.py", POC)], "m")
    _process(mc.message(body), keyring, settings, clock.at)
    v = Vulnerability.get()
    Vulnerability.update(status="published", published_at=clock.at).where(
        Vulnerability.id == v.id
    ).execute()
    assert retention.purge_due(clock.at + timedelta(days=364), 365).total == 0
    assert bytes(ReceivedFile.get().content) == POC

    later = clock.move(days=366)
    retention.purge_due(later, 365)
    purged = ReceivedFile.get()
    assert purged.content is None and purged.name == retention.marker(later)
    assert Correspondence.get().text == retention.marker(later)
    assert purged.sha256 == hashlib.sha256(POC).hexdigest()  # the row stays, as the entry's
    refused = cli(env, "vulns", "attachment", v.tracking_id, purged.sha256)
    assert refused.returncode == 1 and b"was not kept" in refused.stderr


def test_erasing_a_reporter_erases_their_files(db, keyring, settings, clock):
    body = mc.multipart("mixed", [mc.text_part("x"), mc.attachment_part("rita-poc.py", POC)], "m")
    _process(mc.message(body), keyring, settings, clock.at)
    assert bytes(ReceivedFile.get().content) == POC

    erasure.erase_reporter("rita@example.org", "test", clock.at)

    erased = ReceivedFile.get()
    assert erased.content is None and "rita" not in erased.name
    [entry] = views.details(Vulnerability.get())["correspondence"]
    assert all("rita" not in f["name"] for f in entry["attachments"])


def test_a_forwarded_message_travels_in_the_team_forward_as_bytes(flow, relay, tess, tmp_path):
    """RFC 2046: message/rfc822 may not be base64-encoded, so the forward carries it as bytes."""
    forwarded = b"From: someone@example.net\r\nSubject: crash log\r\n\r\nSegfault at 0x0.\r\n"
    body = mc.multipart(
        "mixed",
        [
            mc.text_part("Forwarding what I got."),
            mc.entity([("Content-Type", "message/rfc822")], forwarded),
        ],
        "fw",
    )
    flow.report(mc.message(body))
    [received] = ReceivedFile.select()
    assert (received.name, received.content_type) == ("forwarded-message.eml", "message/rfc822")
    inner = open_forward(
        forward_to(relay, "tess@example.org"), tess, "sqop", tmp_path / "service.asc", tmp_path
    )
    _text, eml = inner.get_payload()
    assert eml.get_content_type() == "application/octet-stream"
    assert eml.get_filename() == "forwarded-message.eml"
    assert eml.get_payload(decode=True) == bytes(received.content)
