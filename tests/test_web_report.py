"""The report form (/report): a report with nothing but a browser, encrypted to the service key's
public part before it is stored, committed before the answer, and processed as a mail report
under the tracking id its answer page gave."""

import io
import re
from dataclasses import replace

import peewee
import pytest
from playhouse import db_url

from app.models import (
    Correspondence,
    Delivery,
    FollowUpLink,
    InboundMessage,
    ReceivedFile,
    Vulnerability,
)
from app.reports import followup, processing
from app.vulns import lifecycle
from app.web import create_app, ratelimit
from app.web.report import GLOBAL, PER_ADDRESS
from app.workers import health, jobs
from app.workers.queue import inbound_queue
from tests import keyfactory
from tests import mailcorpus as mc
from tests.conftest import csrf_token, run_jobs
from tests.openpgp import decrypted, encrypted_payload, parse, run

pytestmark = pytest.mark.db

DESCRIPTION = "The **l2cap** length field is trusted: canary-description-77 overflows."
POC = b"#!/usr/bin/env python3\n# canary-poc-content-41\nprint('boom')\n"
LOG = b"\x00\x01binary canary-log-content-42\xff"
FOLLOW_UP = re.compile(r'id="follow-up-link"[^>]*><a href="([^"]+)"')


@pytest.fixture(scope="module")
def rita():
    return mc.make_reporter("rita@example.org", "Rita Reporter")


def form_page(client) -> str:
    page = client.get("/report")
    assert page.status_code == 200
    return csrf_token(page.get_data(as_text=True))


def send(client, **fields):
    """Post the form as a browser does (multipart), the answer's redirect followed."""
    data = {
        "csrf_token": form_page(client),
        "title": "Heap overflow in l2cap canary-title-76",
        "description": DESCRIPTION,
        **fields,
    }
    return client.post(
        "/report", data=data, content_type="multipart/form-data", follow_redirects=True
    )


def with_files(**fields):
    return {
        **fields,
        "attachments": [(io.BytesIO(POC), "poc.py"), (io.BytesIO(LOG), "crash log.bin")],
    }


def stored() -> InboundMessage:
    (message,) = InboundMessage.select()
    return message


def committed_web_reports(settings) -> int:
    """Counted over a connection of its own: what the answer's transaction committed."""
    url = settings.database_url
    if url.startswith("sqlite:"):
        other = peewee.SqliteDatabase(url.removeprefix("sqlite:///"))
    else:
        other = db_url.connect(url)
    try:
        cursor = other.execute_sql(
            "SELECT count(*) FROM inbound_message WHERE channel = 'web-report'"
        )
        return cursor.fetchone()[0]
    finally:
        other.close()


def test_a_report_is_stored_encrypted_under_a_reserved_id_and_answered_with_its_link(
    client, settings, keyring, clock, rita
):
    answer = send(
        client,
        **with_files(
            name="Rita Reporter", email="rita@example.org", key_text=rita.cert.decode(), credit="y"
        ),
    )
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    message = stored()
    assert message.channel == "web-report" and message.state == "received"
    assert message.tracking_id == "SEC-2026-0001"
    assert "Report received: SEC-2026-0001" in page
    assert committed_web_reports(settings) == 1  # before any worker ran
    # The private link works, and is the one live link of the reserved id.
    (url,) = FOLLOW_UP.findall(page)
    assert url.startswith(f"{settings.base_url}/follow-up/")
    link = followup.find(url.rsplit("/", 1)[1])
    assert link is not None and link.tracking_id == "SEC-2026-0001"
    assert FollowUpLink.select().count() == 1
    assert "acknowledge your report by mail" in page

    # Stored only encrypted: not the title, the text, a file, the name or the key.
    raw = bytes(message.raw)
    for secret in (b"canary-title-76", b"canary-description-77", b"canary-poc", b"canary-log"):
        assert secret not in raw
    assert b"Rita Reporter" not in raw and rita.cert.strip()[40:120] not in raw
    outer = parse(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    assert outer["From"] == "rita@example.org" and outer["Subject"] == "..."

    # The service key decrypts it (gpg, as the worker does; and Sequoia independently).
    entity = decrypted(keyring, encrypted_payload(raw))
    secret_file = settings.instance / "service-secret.asc"
    secret_file.write_bytes(
        run(
            "gpg", "--homedir", str(settings.gnupg_home), "--batch", "--armor",
            "--export-secret-keys", keyring.fingerprint(),
        ).stdout
    )  # fmt: skip
    assert run("sqop", "decrypt", str(secret_file), input=encrypted_payload(raw)).stdout == entity
    inner = parse(entity)
    assert inner["Subject"] == "Heap overflow in l2cap canary-title-76"
    assert inner.get_content_type() == "multipart/mixed"
    kinds = [part.get_content_type() for part in inner.iter_parts()]
    assert kinds == [
        "text/plain",
        "application/pgp-keys",
        "text/x-python",
        "application/octet-stream",
    ]
    text = next(inner.iter_parts()).get_content()
    assert DESCRIPTION in text and "Credit: yes, as Rita Reporter" in text
    files = {p.get_filename(): p.get_payload(decode=True) for p in list(inner.iter_parts())[2:]}
    assert files == {"poc.py": POC, "crash log.bin": LOG}


def test_processing_files_it_under_the_reserved_id_with_its_files_key_and_ack(
    client, settings, keyring, clock, rita
):
    # A case already open, named in the report's title: the report is not threaded into it.
    other = lifecycle.create("Older", "x", lifecycle.Actor(None, "cli:t"), clock.at, settings)
    send(
        client,
        **with_files(
            title=f"Like {other.tracking_id}, but worse",
            name="Rita Reporter",
            email="rita@example.org",
            key_text=rita.cert.decode(),
            credit="y",
        ),
    )
    message = stored()
    assert message.tracking_id == "SEC-2026-0002"
    assert processing.process_inbound(message.id, keyring, settings, clock.at) == "new report"
    v = Vulnerability.get(Vulnerability.tracking_id == "SEC-2026-0002")
    assert v.title == f"Like {other.tracking_id}, but worse"
    assert (v.reporter_email, v.reporter_name, v.credit_reporter) == (
        "rita@example.org",
        "Rita Reporter",
        True,
    )
    assert v.reporter_key is not None and v.reporter_key.fingerprint == rita.fingerprint
    assert Correspondence.select().where(Correspondence.vulnerability == other).count() == 0
    entry = Correspondence.get(Correspondence.vulnerability == v)
    assert entry.encrypted and "canary-description-77" in entry.text
    kept = {f.name: bytes(f.content) for f in ReceivedFile.select() if f.name != "reporter-key.asc"}
    assert kept == {"poc.py": POC, "crash log.bin": LOG}
    kinds = [(d.kind, d.recipient) for d in Delivery.select().where(Delivery.vulnerability == v)]
    assert ("ack", "rita@example.org") in kinds
    assert not Delivery.select().where(Delivery.kind == "receipt").exists()
    assert InboundMessage.get_by_id(message.id).state == "processed"


def test_without_an_email_there_is_no_ack_and_without_consent_no_credit(
    client, settings, keyring, clock
):
    page = send(client, name="Anon Finder").get_data(as_text=True)
    assert "we cannot write to you" in page
    message = stored()
    assert message.envelope_from == ""
    assert processing.process_inbound(message.id, keyring, settings, clock.at) == "new report"
    v = Vulnerability.get(Vulnerability.tracking_id == message.tracking_id)
    assert (v.reporter_email, v.reporter_name, v.credit_reporter) == ("", "Anon Finder", False)
    assert v.reporter_key is None
    assert not Delivery.select().where(Delivery.kind.in_(("ack", "receipt"))).exists()


def test_the_answer_is_shown_once(client, keyring, clock):
    first = send(client).get_data(as_text=True)
    assert 'id="follow-up-link"' in first
    again = client.get("/report/sent").get_data(as_text=True)
    assert 'id="follow-up-link"' not in again and "/follow-up/" not in again
    assert "Nothing more to show" in again
    assert InboundMessage.select().count() == 1


def test_the_row_is_committed_and_answered_with_redis_down(settings, db, keyring, clock):
    app = create_app(
        replace(settings, redis_url="redis://127.0.0.1:1/0"), test_config={"TESTING": True}
    )
    page = send(app.test_client())
    assert page.status_code == 200 and 'id="follow-up-link"' in page.get_data(as_text=True)
    assert committed_web_reports(settings) == 1


def small_limits_app(settings, **limits):
    return create_app(replace(settings, **limits), test_config={"TESTING": True})


def test_a_file_over_the_limit_is_refused_with_a_clear_message(settings, db, redis_conn, keyring):
    client = small_limits_app(
        settings, report_max_file_bytes=1000, report_max_bytes=1500
    ).test_client()
    answer = send(client, attachments=[(io.BytesIO(b"x" * 1001), "big.bin")])
    assert answer.status_code == 400
    assert "big.bin is larger than 1000 bytes, the limit for one file" in answer.get_data(
        as_text=True
    )
    answer = send(
        client,
        attachments=[(io.BytesIO(b"x" * 800), "a.bin"), (io.BytesIO(b"y" * 800), "b.bin")],
    )
    assert answer.status_code == 400
    assert "The files together are 1.6 KB" in answer.get_data(as_text=True)
    assert "at most 1.5 KB" in answer.get_data(as_text=True)
    assert InboundMessage.select().count() == 0 and FollowUpLink.select().count() == 0


def test_a_report_larger_than_a_request_may_be_is_refused_with_the_limits(client, keyring):
    answer = send(client, attachments=[(io.BytesIO(b"z" * (17 * 1024 * 1024)), "huge.bin")])
    assert answer.status_code == 413
    body = answer.get_data(as_text=True)
    assert "Report too large" in body and "15.0 MB, the limit for one report" in body
    assert InboundMessage.select().count() == 0


def test_a_filled_honeypot_looks_like_success_but_stores_nothing(client, redis_conn, keyring):
    page = send(client, homepage="http://spam.example", email="bot@spam.example")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Report received: SEC-2026-9" in body and 'id="follow-up-link"' in body
    assert InboundMessage.select().count() == 0 and FollowUpLink.select().count() == 0
    assert int(redis_conn.get(health.REPORT_TRAPPED)) == 1


def test_too_many_reports_from_one_address_get_a_429_that_says_when(client, redis_conn):
    token = form_page(client)
    for _ in range(PER_ADDRESS.attempts):  # refused ones count too: each costs the server
        assert client.post("/report", data={"csrf_token": token}).status_code == 400
    answer = client.post("/report", data={"csrf_token": token})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3600"
    assert "Try again in 60 minutes, after" in answer.get_data(as_text=True)


def test_too_many_reports_from_everyone_get_a_429(client, redis_conn):
    for _ in range(GLOBAL.attempts):
        ratelimit.hit(redis_conn, GLOBAL, "all")
    answer = client.post("/report", data={"csrf_token": form_page(client)})
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 3000


def test_a_report_without_its_csrf_token_is_refused(client):
    answer = client.post("/report", data={"title": "t", "description": "d"})
    assert answer.status_code == 400
    assert "Form expired" in answer.get_data(as_text=True)
    assert InboundMessage.select().count() == 0


def test_a_key_that_cannot_encrypt_is_refused_with_a_message(client, keyring):
    signing_only = keyfactory.gpg_key("Rita <rita@example.org>", subkeys=())
    answer = send(client, email="rita@example.org", key_text=signing_only.public.decode())
    assert answer.status_code == 400
    body = answer.get_data(as_text=True)
    assert "The key was not accepted" in body and "has no encryption subkey" in body
    answer = send(client, key_file=(io.BytesIO(signing_only.public), "key.asc"))
    assert "Give your email address with your key" in answer.get_data(as_text=True)
    assert InboundMessage.select().count() == 0


def test_the_form_labels_every_field_and_links_the_policy(client):
    page = client.get("/report").get_data(as_text=True)
    for name in ("title", "description", "name", "email", "key_text", "key_file", "attachments"):
        assert f'<label for="{name}"' in page, name
    assert '<label for="credit"' in page and '<label for="homepage"' in page
    assert 'href="/registry/policy"' in page
    assert "<script" not in page


def test_the_reporters_page_says_how_to_report(client, keyring):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/report"' in page and 'href="/key.asc"' in page
    assert keyring.fingerprint() in page
    assert "gpg --locate-keys security@localhost" in page


def test_the_reporters_page_answers_before_there_is_a_service_key(client):
    page = client.get("/")
    assert page.status_code == 200 and 'href="/report"' in page.get_data(as_text=True)


def test_the_web_encrypts_to_the_public_part_alone(keyring):
    """keys.keyring.encrypt_to_certificate needs no keyring: a certificate and a scratch home."""
    from keys.keyring import encrypt_to_certificate

    armored = encrypt_to_certificate(keyring.export_public(), keyring.fingerprint(), b"hello")
    assert decrypted(keyring, armored.encode()) == b"hello"


def test_the_form_queues_the_processing_job_as_the_intake_does(
    client, env, settings, redis_conn, keyring, clock, monkeypatch
):
    """The job the answer queued runs in a real (burst) worker: the report is filed."""
    send(client, email="rita@example.org")
    message = stored()
    assert inbound_queue(redis_conn).get_job_ids() == [f"inbound-{message.id}"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    try:
        run_jobs(redis_conn)
    finally:
        jobs._settings.cache_clear()
    assert InboundMessage.get_by_id(message.id).state == "processed"
    assert Vulnerability.get(Vulnerability.tracking_id == message.tracking_id).reporter_email == (
        "rita@example.org"
    )


def test_the_form_needs_only_the_public_part_of_the_service_key(app, client, settings, keyring):
    """With the certificate known and the service's GnuPG home out of reach, a report is still
    encrypted and stored; the worker, which has the home, then reads it."""
    app.extensions["forewarn.key_cache"] = {"armored": keyring.export_public()}
    keyring.stop_agent()
    away = settings.gnupg_home.with_name("gpg-away")
    settings.gnupg_home.rename(away)
    try:
        answer = send(client)
    finally:
        away.rename(settings.gnupg_home)
    assert answer.status_code == 200 and 'id="follow-up-link"' in answer.get_data(as_text=True)
    entity = decrypted(keyring, encrypted_payload(bytes(stored().raw)))
    assert b"canary-description-77" in entity


def test_a_mail_cannot_set_the_form_s_fields(settings, db, keyring, clock):
    """Forewarn-* protected headers mean something only in what the portal stored: a mail
    carrying them is a mail report like any other."""
    from app.reports import inbound
    from keys.keyring import encrypt_to_certificate
    from mail.submission import Submission, sealed

    mail = Submission(
        subject="By mail",
        text="Details.",
        recipient=settings.security_address,
        message_id="<by-mail@example.org>",
        date=clock.at,
        sender="rita@example.org",
        sender_name="Rita Reporter",
        fields={"Name": "Someone Else", "Credit": "no"},
    )
    certificate, fingerprint = keyring.export_public(), keyring.fingerprint()
    raw = sealed(mail, lambda data: encrypt_to_certificate(certificate, fingerprint, data))
    message_id = inbound.store(raw, "rita@example.org", [settings.security_address], clock.at)
    assert processing.process_inbound(message_id, keyring, settings, clock.at) == "new report"
    v = Vulnerability.get()
    assert v.credit_reporter is True
    assert v.reporter_name == ""  # the outer From carries the address alone


def test_a_title_of_several_lines_is_refused(client, keyring):
    answer = send(client, title="Overflow\x1b[2J in l2cap")
    assert answer.status_code == 400
    assert "The title must be one line without control characters." in answer.get_data(as_text=True)
    assert InboundMessage.select().count() == 0
