"""Reports end to end: a real SMTP conversation with the intake, real RQ jobs on a real Redis,
acknowledgements over a real relay, checked with Sequoia."""

import re

import pytest

from app.accounts import team
from app.core import clock as app_clock
from app.models import Correspondence, InboundMessage, Vulnerability
from app.reports import inbound, replies
from app.workers import jobs, reconcile
from app.workers.queue import inbound_queue
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, run_jobs, wait_for
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, sqop_verifies
from tests.smtpsink import SmtpSink
from tests.test_intake import RunningIntake, send

SERVICE = "security@localhost"


@pytest.fixture(scope="module")
def rita():
    return mc.make_reporter()


@pytest.fixture
def relay():
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture
def flow(env, settings, db, redis_conn, keyring, relay, clock, monkeypatch):
    """An in-process intake whose jobs run in this process, sending over the test relay."""
    for name, value in {**env, "FOREWARN_SMTP_RELAY": f"127.0.0.1:{relay.port}"}.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()

    from mail.intake import IntakePolicy

    policy = IntakePolicy(security_address=SERVICE, max_message_bytes=settings.max_message_bytes)
    intake = RunningIntake(
        policy,
        inbound.committer(db, app_clock.now),
        lambda ids: reconcile.queue_new_inbound(redis_conn, ids),
    )

    class Flow:
        port = intake.port
        service_cert = keyring.export_public()

        def report(self, raw, sender="rita@example.org", to=SERVICE):
            assert send(intake.port, raw, to=to, sender=sender) == {}
            # The writer thread queues the job just after the 250.
            wait_for(lambda: inbound_queue(redis_conn).count, what="the processing job")
            run_jobs(redis_conn)
            return InboundMessage.select().order_by(InboundMessage.id.desc()).first()

    yield Flow()
    intake.stop()
    jobs._settings.cache_clear()


def acks(relay):
    return [r for r in relay.received if r.recipients == ["rita@example.org"]]


def service_cert_file(keyring, tmp_path):
    path = tmp_path / "service.asc"
    path.write_text(keyring.export_public())
    return path


@pytest.mark.parametrize("tool", ["gpg", "sqop"])
def test_a_pgp_mime_report_is_decrypted_and_acknowledged_encrypted_to_the_reporter(
    flow, relay, keyring, rita, tool, tmp_path
):
    inner = mc.multipart(
        "mixed", [mc.text_part("Overflow in l2cap."), mc.key_part(rita.cert)], "in"
    )
    if tool == "gpg":
        ciphertext = mc.gpg_encrypt(flow.service_cert, inner, signer_secret=rita.secret)
    else:
        ciphertext = mc.sqop_encrypt(flow.service_cert, inner, signer=rita)
    message = flow.report(mc.pgp_mime_encrypted(ciphertext, subject="..."))
    assert message.state == "processed"
    entry = Correspondence.get()
    assert "Overflow in l2cap." in entry.text
    assert entry.encrypted and entry.signature_status == "valid"

    [ack] = acks(relay)
    assert parse(ack.data).get_content_type() == "multipart/encrypted"
    assert parse(ack.data)["Subject"] == f"Security report {Vulnerability.get().tracking_id}"
    secret = tmp_path / "rita.key"
    secret.write_bytes(rita.secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(ack.data)).stdout
    text, signature = parts_as_sent(entity)
    assert sqop_verifies(text, body_of(signature), service_cert_file(keyring, tmp_path), tmp_path)
    assert parse(ack.data)["In-Reply-To"] == "<report-1@example.org>"


@pytest.mark.parametrize("tool", ["gpg", "sqop"])
def test_an_inline_pgp_report_is_decrypted(flow, relay, keyring, rita, tool):
    plaintext = b"Inline details: heap overflow.\n"
    if tool == "gpg":
        armored = mc.gpg_encrypt(flow.service_cert, plaintext)
    else:
        armored = mc.sqop_encrypt(flow.service_cert, plaintext, signer=rita)
    flow.report(mc.inline_pgp("Hello,", armored, "Thanks, Rita"))
    assert "Inline details: heap overflow." in Correspondence.get().text
    assert Correspondence.get().encrypted
    assert len(acks(relay)) == 1


def test_a_plaintext_report_is_accepted_flagged_and_answered_signed(flow, relay, keyring, tmp_path):
    flow.report(mc.plain("Plain details.", subject="Plain report"))
    assert Correspondence.get().encrypted is False
    [ack] = acks(relay)
    assert parse(ack.data).get_content_type() == "multipart/signed"
    text, signature = parts_as_sent(ack.data)
    assert sqop_verifies(text, body_of(signature), service_cert_file(keyring, tmp_path), tmp_path)
    assert keyring.fingerprint().encode() in text
    assert b"Plain details" not in ack.data


def as_sent(raw: bytes) -> bytes:
    """What SMTP carries: line ends made CRLF (as smtplib does), ending in CRLF."""
    raw = re.sub(rb"\r\n|\n|\r", b"\r\n", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


BAD_INPUTS = {
    "undecryptable": lambda f, r: mc.pgp_mime_encrypted(mc.sqop_encrypt(r.cert, b"not for us")),
    "corrupted armor": lambda f, r: mc.pgp_mime_encrypted(
        mc.corrupt_armor(mc.gpg_encrypt(f.service_cert, b"x" * 4000))
    ),
    "compression bomb": lambda f, r: mc.pgp_mime_encrypted(
        mc.compression_bomb(f.service_cert, size=80_000_000)
    ),
    "malformed mime": lambda f, r: mc.broken_multipart(),
    "nested 100 deep": lambda f, r: mc.nested_multipart(100),
    "binary garbage": lambda f, r: mc.binary_blob(),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_kept_quarantined_with_a_reason_and_answered_generically(
    flow, relay, rita, kind
):
    raw = BAD_INPUTS[kind](flow, rita)
    message = flow.report(raw)
    kept = bytes(message.raw)  # kept whole (binary data may be re-framed by SMTP itself)
    assert kept == as_sent(raw) or (kind == "binary garbage" and len(kept) >= len(raw))
    assert message.state == "quarantined"
    assert message.error and "\n" not in message.error
    assert Vulnerability.select().count() == 0
    for notice in relay.received:  # a generic notice at most, never internals
        assert b"Traceback" not in notice.data and message.error.encode() not in notice.data


@pytest.mark.parametrize(
    ("raw", "kept_text"),
    [
        (mc.garbage_8bit(), "Der Puffer"),
        (mc.plain("no sender here", sender=None), "no sender here"),
    ],
)
def test_odd_but_readable_input_becomes_a_report_without_crashing(flow, raw, kept_text):
    message = flow.report(raw)
    assert message.state == "processed"
    assert kept_text in Correspondence.get().text


def test_a_huge_attachment_is_noted_and_the_report_kept(flow):
    raw = mc.message(
        mc.multipart(
            "mixed",
            [
                mc.text_part("See the capture."),
                mc.attachment_part("capture.pcap", mc.binary_blob(6_000_000)),
            ],
            "big",
        )
    )
    message = flow.report(raw)
    assert message.state == "processed"
    assert "See the capture." in Correspondence.get().text


# -- who a message to a report's thread really comes from (issue 13, 2.1 and 2.4) -----------------


@pytest.fixture(scope="module")
def mallory():
    return mc.make_reporter("mallory@example.net", "Mallory")


def decrypts_with(person: mc.Reporter, raw: bytes, tmp_path) -> bool:
    """Whether this person's secret key opens the mail (it was encrypted to their key)."""
    if parse(raw).get_content_type() != "multipart/encrypted":
        return False
    secret = tmp_path / f"{person.address}.key"
    secret.write_bytes(person.secret)
    opened = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw), check=False)
    return opened.returncode == 0


def test_a_stranger_cannot_swap_the_reporters_key_and_read_the_case(
    flow, relay, redis_conn, clock, mallory, tmp_path, client, auth
):
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    flow.report(mc.plain("Overflow in l2cap.", subject="Overflow in l2cap"))
    v = Vulnerability.get()
    thread = f"security+{v.tracking_id}@localhost"
    # Mallory writes into the thread as Rita (From: Rita), with her own key attached...
    as_rita = mc.message(
        mc.multipart(
            "mixed", [mc.text_part("My new key is attached."), mc.key_part(mallory.cert)], "m"
        ),
        subject="New key",
        headers=[("In-Reply-To", "<report-1@example.org>")],
    ).replace(b"<report-1@example.org>\r\nMIME", b"<swap-1@example.net>\r\nMIME")
    flow.report(as_rita, sender=mallory.address, to=thread)
    # ...the team answers the reporter...
    replies.reply_to_reporter(Vulnerability.get(), member, "Fixed in 4.2, thanks.", clock.at)
    # ...and Mallory then writes as herself.
    as_mallory = mc.plain("Any news?", subject="Status", sender=mallory.sender).replace(
        b"<report-1@", b"<status-1@"
    )
    flow.report(as_mallory, sender=mallory.address, to=thread)
    reconcile.queue_due_deliveries(redis_conn, clock.at)
    run_jobs(redis_conn)

    assert Vulnerability.get().reporter_key is None  # not pinned
    assert len(relay.received) >= 4  # ack, reply-ack, the reply's notice, Mallory's answer
    for mail in relay.received:
        assert not decrypts_with(mallory, mail.data, tmp_path)
    [answer] = [m for m in relay.received if m.recipients == [mallory.address]]
    assert parse(answer.data).get_content_type() == "multipart/signed"
    assert parse(answer.data)["Subject"] == "Your message to the security team"
    assert parse(answer.data)["Reply-To"] == SERVICE
    assert b"Overflow in l2cap" not in answer.data and v.tracking_id.encode() not in answer.data
    # The workspace still says the reporter has no key, and shows who wrote what.
    assert auth.login(member.email, PASSWORD).status_code == 302
    page = " ".join(
        client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True).split()
    )
    assert "none usable on file: replies go out as a signed notice" in page
    assert mallory.fingerprint not in page
    assert "From mallory@example.net, not the reporter" in page
