"""Product makers answer alerts by signed mail (#17): real SMTP to the intake, real jobs on a
real Redis, keys made and answers signed by Sequoia (sqop), replies checked with sqop."""

import itertools

import pytest

from app.core import clock as app_clock
from app.core.errors import Refused
from app.models import Answer, Correspondence, Delivery, InboundMessage, Vulnerability
from app.registry import alerts, answer_address, mail_answers, vetting
from app.reports import inbound
from app.vulns import lifecycle
from app.workers import jobs, reconcile
from app.workers.queue import inbound_queue
from tests import mailcorpus as mc
from tests.conftest import run_jobs, wait_for
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, sqop_verifies
from tests.smtpsink import SmtpSink
from tests.test_intake import RunningIntake, send

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
MAKER = "psirt@maker.example"
ANSWER = (
    "Hello,\n\n"
    "Status: not_affected\n"
    "Justification: vulnerable_code_not_present\n"
    "Statement: Our appliances build the frobnicator\n"
    "without the packet parser.\n"
    "Consent: yes\n\n"
    "> Status: affected (quoted: never read)\n"
    "-- \n"
    "Status: fixed (a signature: never read)\n"
)
_ids = itertools.count(1)


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

    policy = IntakePolicy(
        security_address=settings.security_address,
        max_message_bytes=settings.max_message_bytes,
        refuse_plaintext=True,  # answers need not be encrypted: their address is exempt
        plaintext_refusal="encrypt it",
    )
    intake = RunningIntake(
        policy,
        inbound.committer(db, app_clock.now),
        lambda ids: reconcile.queue_new_inbound(redis_conn, ids),
    )

    class Flow:
        service_cert = keyring.export_public()

        def report(self, raw, sender=MAKER, to=None):
            assert send(intake.port, raw, to=to, sender=sender) == {}
            wait_for(lambda: inbound_queue(redis_conn).count, what="the processing job")
            run_jobs(redis_conn)
            return InboundMessage.select().order_by(InboundMessage.id.desc()).first()

    yield Flow()
    intake.stop()
    jobs._settings.cache_clear()


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


@pytest.fixture(scope="module")
def impostor():
    """Another key, with the maker's address in its user id."""
    return mc.make_reporter(MAKER, "Not Maker")


@pytest.fixture
def alerted(db, clock, settings, maker):
    registrant = vetting.add_by_admin(MAKER, "Maker Ltd", maker.cert, None, "t", clock.at, True)
    v = lifecycle.create("Overflow in the parser", "Details.", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    advisory = alerts.send(v, None, "t", clock.at, settings)
    return registrant, v, advisory, answer_address.address(advisory.id, settings)


def mail(body: bytes, to: str, sender: str = f"Maker PSIRT <{MAKER}>", headers=()) -> bytes:
    """A whole message around a MIME entity, with a Message-ID of its own."""
    outer = [("From", sender), ("To", to), ("Subject", "Re: Security advisory")]
    outer += [("Date", "Wed, 25 Nov 2026 12:00:00 +0000")]
    outer += [("Message-ID", f"<answer-{next(_ids)}@maker.example>"), ("MIME-Version", "1.0")]
    outer += list(headers)
    return mc.CRLF.join(f"{n}: {v}".encode() for n, v in outer) + mc.CRLF + body


def clearsigned(signer, text: str = ANSWER) -> bytes:
    return mc.text_part(mc.sqop_clearsign(signer, text.encode()).decode())


def pgp_mime_signed(signer, text: str = ANSWER) -> bytes:
    return mc.signed_entity(mc.text_part(text), signer)


def pgp_mime_encrypted(service_cert: str, entity: bytes) -> bytes:
    version = mc.entity([("Content-Type", "application/pgp-encrypted")], "Version: 1\n")
    data = mc.entity(
        [("Content-Type", 'application/octet-stream; name="encrypted.asc"')],
        mc.sqop_encrypt(service_cert, entity),
    )
    params = '; protocol="application/pgp-encrypted"'
    return mc.multipart("encrypted", [version, data], "enc-boundary", params)


def to(relay, address: str) -> list:
    return [r for r in relay.received if r.recipients == [address]]


def replies(relay, address: str) -> list:
    """What was sent to address but alerts (which go out from a bounce address, VERP)."""
    return [r for r in to(relay, address) if "-bounces+" not in r.envelope_from]


def decrypted_entity(message: bytes, who, tmp_path) -> bytes:
    secret = tmp_path / "maker.key"
    secret.write_bytes(who.secret)
    return run("sqop", "decrypt", str(secret), input=encrypted_payload(message)).stdout


def verified_text(entity: bytes, keyring, tmp_path) -> str:
    """The text of a multipart/signed entity, once sqop has verified the service's signature."""
    text, signature = parts_as_sent(entity)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    assert sqop_verifies(text, body_of(signature), cert, tmp_path)
    return parse(text).get_content().replace("\r\n", "\n")


def nothing_reached_a_case():
    assert Vulnerability.select().count() == 1
    assert Correspondence.select().count() == 0
    assert not Delivery.select().where(Delivery.kind == "team-forward").exists()


# -- the alert ---------------------------------------------------------------------------------


def test_the_alert_replies_to_the_answers_address_inside_its_signature_and_says_how_to_answer(
    flow, relay, alerted, maker, keyring, tmp_path
):
    registrant, v, advisory, address = alerted
    flow.report(mail(clearsigned(maker), address), to=address)  # its job sends the alert too
    [alert, _reply] = to(relay, MAKER)
    assert parse(alert.data)["Reply-To"] == address  # outside, for clients that read only that
    entity = decrypted_entity(alert.data, maker, tmp_path)
    assert parse(entity).get_content_type() == "multipart/signed"
    inner = parse(parts_as_sent(entity)[0])
    assert inner["Reply-To"] == address  # a protected header: under the signature
    assert f"+{v.tracking_id}@" not in (inner["Reply-To"] + parse(alert.data)["Reply-To"])
    text = verified_text(decrypted_entity(alert.data, maker, tmp_path), keyring, tmp_path)
    assert "How to answer" in text
    assert "    Status: not_affected\n    Justification: vulnerable_code_not_present" in text
    assert "vulnerable_code_cannot_be_controlled_by_adversary" in text
    assert "Consent: yes" in text
    assert f"/registry/advisories/{advisory.id}" in text
    assert address in text


# -- recorded ------------------------------------------------------------------------------------


FORMS = ["clear-signed", "pgp-mime", "pgp-mime-encrypted", "inline-signed-and-encrypted"]


@pytest.mark.parametrize("form", FORMS)
def test_a_signed_answer_from_the_registered_address_is_recorded_and_confirmed(
    flow, relay, alerted, maker, keyring, tmp_path, form
):
    registrant, v, advisory, address = alerted
    entity = clearsigned(maker) if form == "clear-signed" else pgp_mime_signed(maker)
    if form == "pgp-mime-encrypted":
        entity = pgp_mime_encrypted(flow.service_cert, entity)
    if form == "inline-signed-and-encrypted":
        armored = mc.sqop_encrypt(flow.service_cert, ANSWER.encode(), signer=maker)
        entity = mc.text_part(armored.decode())
    message = flow.report(mail(entity, address), sender=MAKER, to=address)

    assert message.state == "answer" and message.error.startswith("answer recorded")
    [answer] = Answer.select()
    assert (answer.registrant_id, answer.vulnerability_id) == (registrant.id, v.id)
    assert (answer.status, answer.justification) == ("not_affected", "vulnerable_code_not_present")
    assert answer.statement == "Our appliances build the frobnicator\nwithout the packet parser."
    assert answer.public_consent is True
    assert answer.via == "mail" and answer.advisory_id == advisory.id
    nothing_reached_a_case()

    [_alert, reply] = to(relay, MAKER)
    assert parse(reply.data).get_content_type() == "multipart/encrypted"  # to the maker's key
    assert parse(reply.data)["Reply-To"] == address  # replying again changes the answer
    assert parse(reply.data)["Auto-Submitted"] == "auto-replied"
    assert parse(reply.data)["In-Reply-To"] == message.message_id_header
    text = verified_text(decrypted_entity(reply.data, maker, tmp_path), keyring, tmp_path)
    assert "We recorded your answer" in text
    assert f"{v.tracking_id} v1\n    Status: not_affected" in text
    assert "Published after the lift: yes" in text


def test_a_bundle_is_answered_per_vulnerability_in_blocks(
    flow, relay, db, clock, settings, maker, keyring, tmp_path
):
    vetting.add_by_admin(MAKER, "Maker Ltd", maker.cert, None, "t", clock.at, True)
    vulns = []
    for title in ("Overflow", "Traversal"):
        v = lifecycle.create(title, "Details.", CLI, clock.at, settings)
        vulns.append(lifecycle.set_status(v, "accepted", CLI, clock.at))
    versions = alerts.send_many(vulns, None, "t", clock.at, settings)
    address = answer_address.address(versions[0].id, settings)
    text = (
        f"Vulnerability: {vulns[1].tracking_id}\nStatus: affected\n\n"
        f"Vulnerability: {vulns[0].tracking_id}\nStatus: fixed\nConsent: no\n"
    )
    message = flow.report(mail(pgp_mime_signed(maker, text), address), sender=MAKER, to=address)
    assert message.state == "answer"
    got = {a.vulnerability_id: (a.status, a.advisory_id) for a in Answer.select()}
    assert got == {
        vulns[0].id: ("fixed", versions[0].id),
        vulns[1].id: ("affected", versions[1].id),
    }
    assert len(to(relay, MAKER)) == 2  # the bundle, then the confirmation


@pytest.mark.parametrize("form", ["pgp-mime", "clear-signed"])
def test_only_the_signed_part_is_read_never_unsigned_text_beside_it(
    flow, relay, alerted, maker, form
):
    registrant, v, advisory, address = alerted
    if form == "pgp-mime":
        cover = mc.text_part("Status: affected\n")  # not signed: could be anyone's
        entity = mc.multipart(
            "mixed", [cover, pgp_mime_signed(maker, "Status: fixed\n")], "mixed-boundary"
        )
    else:  # unsigned lines around the clear-signed block, in the same text part
        block = mc.sqop_clearsign(maker, b"Status: fixed\n").decode()
        entity = mc.text_part(f"Status: affected\n\n{block}\nConsent: yes\n")
    flow.report(mail(entity, address), sender=MAKER, to=address)
    assert [(a.status, a.public_consent) for a in Answer.select()] == [("fixed", False)]


def test_a_retried_delivery_of_one_answer_is_recorded_once(flow, relay, alerted, maker):
    registrant, v, advisory, address = alerted
    raw = mail(clearsigned(maker), address)
    flow.report(raw, sender=MAKER, to=address)
    again = flow.report(raw, sender=MAKER, to=address)
    assert again.state == "answer" and "retried" in again.error
    assert Answer.select().count() == 1
    assert len(replies(relay, MAKER)) == 1


# -- refused ---------------------------------------------------------------------------------------


def refused(flow, relay, keyring, tmp_path, raw, address, sender=MAKER):
    """Send raw; nothing may be recorded; the one reply (signed, verified by sqop) is returned."""
    message = flow.report(raw, sender=sender, to=address)
    assert message.state == "answer" and message.error.startswith("answer refused")
    assert Answer.select().count() == 0
    nothing_reached_a_case()
    [reply] = replies(relay, sender)
    assert parse(reply.data).get_content_type() == "multipart/signed"
    assert parse(reply.data)["Subject"] == "Your answer was not recorded"
    return verified_text(reply.data, keyring, tmp_path)


def test_an_unsigned_answer_is_refused_with_the_key_to_sign_with(
    flow, relay, alerted, keyring, tmp_path, maker
):
    registrant, v, advisory, address = alerted
    text = refused(flow, relay, keyring, tmp_path, mail(mc.text_part(ANSWER), address), address)
    assert "not signed" in text
    assert maker.fingerprint.upper() in text.replace("\n", "")


def test_an_answer_signed_with_another_key_is_refused_even_with_that_key_attached(
    flow, relay, alerted, keyring, tmp_path, impostor
):
    registrant, v, advisory, address = alerted
    entity = mc.multipart(
        "mixed", [pgp_mime_signed(impostor), mc.key_part(impostor.cert)], "mixed-boundary"
    )
    text = refused(flow, relay, keyring, tmp_path, mail(entity, address), address)
    assert "signed with another key" in text


def test_an_answer_from_another_address_is_refused_without_a_word_about_the_advisory(
    flow, relay, alerted, keyring, tmp_path, maker
):
    registrant, v, advisory, address = alerted
    stranger = "someone@maker.example"
    raw = mail(clearsigned(maker), address, sender=f"Someone <{stranger}>")
    text = refused(flow, relay, keyring, tmp_path, raw, address, sender=stranger)
    assert "from approved product makers only" in text
    assert (
        v.tracking_id not in text and "advisories/" not in text and "security-answers" not in text
    )
    [reply] = to(relay, stranger)
    assert v.tracking_id.encode() not in reply.data and b"security-answers" not in reply.data


@pytest.mark.parametrize(
    "lines, says",
    [
        ("Status: maybe\n", "Unknown status 'maybe': write one of affected"),
        ("Status: not_affected\n", "'not_affected' needs a justification: one of"),
        ("Status: affected\nConsent: perhaps\n", "neither yes nor no"),
        ("Hello, we are looking into it.\n", "No Status: line found"),
        ("Vulnerability: SEC-1999-0001\nStatus: fixed\n", "is not one this advisory covers"),
    ],
)
def test_a_malformed_answer_is_refused_saying_how_to_fix_it(
    flow, relay, alerted, keyring, tmp_path, maker, lines, says
):
    registrant, v, advisory, address = alerted
    text = refused(
        flow, relay, keyring, tmp_path, mail(clearsigned(maker, lines), address), address
    )
    assert says in text.replace("\n", " ")
    assert f"/registry/advisories/{advisory.id}" in text  # the web page, as another way


def test_a_wrong_token_is_kept_for_a_human_and_answered_not_at_all(flow, relay, alerted, maker):
    registrant, v, advisory, address = alerted
    forged = address.replace(address.split("-")[-1].split("@")[0], "a" * 16)
    message = flow.report(mail(clearsigned(maker), forged), sender=MAKER, to=forged)
    assert message.state == "quarantined" and "wrong token" in message.error
    assert Answer.select().count() == 0
    nothing_reached_a_case()
    assert not Delivery.select().where(Delivery.kind.startswith("answer-")).exists()


def test_automatic_mail_to_the_answers_address_is_not_answered(flow, relay, alerted, maker):
    registrant, v, advisory, address = alerted
    raw = mail(mc.text_part("I am away."), address, headers=[("Auto-Submitted", "auto-replied")])
    message = flow.report(raw, sender=MAKER, to=address)
    assert message.state == "junk"
    assert not Delivery.select().where(Delivery.kind.startswith("answer-")).exists()


def test_refusals_to_one_address_are_limited_per_hour(flow, relay, alerted):
    registrant, v, advisory, address = alerted
    for _ in range(mail_answers.REFUSALS_PER_ADDRESS_PER_HOUR + 2):
        flow.report(mail(mc.text_part("Status: fixed\n"), address), sender=MAKER, to=address)
    sent = Delivery.select().where(Delivery.kind == "answer-refused").count()
    assert sent == mail_answers.REFUSALS_PER_ADDRESS_PER_HOUR
    last = InboundMessage.select().order_by(InboundMessage.id.desc()).first()
    assert "too many replies" in last.error


def test_a_reply_to_the_old_case_address_still_joins_the_case_and_is_no_answer(
    flow, relay, alerted, maker
):
    """Alerts sent before answers by mail named the case address: a reply there is mail to
    the case, as before, for the team to read; it is not read as an answer."""
    registrant, v, advisory, address = alerted
    case = f"security+{v.tracking_id}@localhost"
    entity = pgp_mime_encrypted(flow.service_cert, pgp_mime_signed(maker))  # the intake asks so
    message = flow.report(mail(entity, case), sender=MAKER, to=case)
    assert message.state == "processed"
    assert Answer.select().count() == 0
    assert Correspondence.get().vulnerability_id == v.id


# -- the lines ---------------------------------------------------------------------------------


def test_the_lines_skip_quotes_and_signatures_and_a_statement_runs_to_its_paragraph_end():
    [block] = mail_answers.read(ANSWER)
    assert block.status == "not_affected"
    assert block.justification == "vulnerable_code_not_present"
    assert block.statement == "Our appliances build the frobnicator\nwithout the packet parser."
    assert block.consent == "yes"


def test_quoted_instructions_without_a_quote_mark_are_not_read_as_lines():
    """Clients that quote without ">" keep the alert's indented example lines indented."""
    blocks = mail_answers.read("Status: fixed\n\n-----Original Message-----\nStatus: affected\n")
    assert [b.status for b in blocks] == ["fixed"]
    with pytest.raises(Refused, match="No Status: line found"):
        mail_answers.read("Thanks!\n\n    Status: not_affected\n")


def test_fields_before_the_first_vulnerability_block_or_written_twice_are_refused():
    with pytest.raises(Refused, match="under its Vulnerability: line"):
        mail_answers.read("Status: fixed\nVulnerability: SEC-2026-0001\nStatus: affected\n")
    with pytest.raises(Refused, match="written twice"):
        mail_answers.read("Status: fixed\nStatus: affected\n")
