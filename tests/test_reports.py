"""From a stored message to a tracked report: decrypt, thread, acknowledge, forward, quarantine."""

import json
from datetime import timedelta

import pytest

from app.accounts import team
from app.models import (
    Correspondence,
    Delivery,
    InboundMessage,
    PublicKey,
    Vulnerability,
)
from app.outbox import letters
from app.reports import inbound, processing, replies, reporter_keys
from app.vulns import views
from tests import mailcorpus as mc
from tests.conftest import PASSWORD

SERVICE = "security@localhost"


@pytest.fixture(scope="module")
def rita():
    return mc.make_reporter()


def deliver(raw, clock, envelope_from="rita@example.org", to=SERVICE) -> int:
    return inbound.store(raw, envelope_from, [to], clock.at)


def process(message_id, keyring, settings, clock):
    return processing.process_inbound(message_id, keyring, settings, clock.at)


def deliveries(kind):
    return list(Delivery.select().where(Delivery.kind == kind).order_by(Delivery.id))


def test_a_plain_report_becomes_a_new_vulnerability_with_default_dates(
    db, keyring, settings, clock
):
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    raw = mc.plain("The BLE stack overflows.", subject="Overflow in BLE")
    message_id = deliver(raw, clock)
    assert process(message_id, keyring, settings, clock) == "new report"

    v = Vulnerability.get()
    assert v.tracking_id == "SEC-2026-0001"
    assert (v.status, v.title) == ("new", "Overflow in BLE")
    assert (v.reporter_email, v.reporter_name) == ("rita@example.org", "Rita Reporter")
    assert v.fix_due == clock.at + timedelta(days=30)
    assert v.embargo_until == clock.at + timedelta(days=90, hours=2)  # 14:00 UTC, a Tuesday
    entry = Correspondence.get()
    assert "The BLE stack overflows." in entry.text
    assert (entry.encrypted, entry.signature_status) == (False, "unsigned")
    [ack] = deliveries("ack")
    assert ack.recipient == "rita@example.org" and json.loads(ack.payload)["encrypted"] is False
    [forward] = deliveries("team-forward")
    assert forward.user_id == member.id
    assert InboundMessage.get_by_id(message_id).state == "processed"


def test_an_encrypted_signed_report_with_an_attached_key_is_read_verified_and_kept(
    db, keyring, settings, clock, rita
):
    service_cert = keyring.export_public()
    inner = mc.multipart(
        "mixed", [mc.text_part("Secret details here."), mc.key_part(rita.cert)], "inner"
    )
    inner = b"Subject: Real subject\r\n" + inner  # protected headers on the encrypted root
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(service_cert, inner, signer=rita))
    assert process(deliver(raw, clock), keyring, settings, clock) == "new report"
    v = Vulnerability.get()
    assert v.title == "Real subject"
    entry = Correspondence.get()
    assert "Secret details here." in entry.text
    assert entry.encrypted is True
    assert (entry.signature_status, entry.signer_fingerprint) == ("valid", rita.fingerprint)
    key = PublicKey.get_by_id(v.reporter_key_id)
    assert key.fingerprint == rita.fingerprint and key.usable
    assert json.loads(deliveries("ack")[0].payload)["encrypted"] is True


def test_reports_get_consecutive_tracking_ids(db, keyring, settings, clock):
    for n in range(3):
        raw = mc.plain(f"report {n}", subject=f"Report {n}", headers=[("X-N", str(n))])
        raw = raw.replace(b"<report-1@example.org>", f"<report-{n}@example.org>".encode())
        process(deliver(raw, clock), keyring, settings, clock)
    ids = [v.tracking_id for v in Vulnerability.select().order_by(Vulnerability.id)]
    assert ids == ["SEC-2026-0001", "SEC-2026-0002", "SEC-2026-0003"]


@pytest.mark.parametrize("how", ["plus-address", "in-reply-to", "subject-tag"])
def test_a_reply_is_threaded_to_its_vulnerability(db, keyring, settings, clock, how):
    process(deliver(mc.plain("first", subject="Bug"), clock), keyring, settings, clock)
    v = Vulnerability.get()
    ack = deliveries("ack")[0]
    Delivery.update(message_id="<forewarn.delivery.1@localhost>", state="sent").execute()
    to, headers, subject = SERVICE, [], "More details"
    if how == "plus-address":
        to = f"security+{v.tracking_id}@localhost"
    elif how == "in-reply-to":
        headers = [("In-Reply-To", "<forewarn.delivery.1@localhost>")]
    else:
        subject = f"Re: [{v.tracking_id}] more"
    raw = mc.plain("second", subject=subject, headers=headers).replace(
        b"<report-1@example.org>", b"<report-2@example.org>"
    )
    assert process(deliver(raw, clock, to=to), keyring, settings, clock) == "reply"
    assert Vulnerability.select().count() == 1
    assert [c.text.strip() for c in v.correspondence.order_by(Correspondence.id)] == [
        "first",
        "second",
    ]
    assert len(deliveries("reply-ack")) == 1 and ack.kind == "ack"


def test_the_same_message_delivered_twice_is_one_report(db, keyring, settings, clock):
    raw = mc.plain("once", subject="Once")
    assert process(deliver(raw, clock), keyring, settings, clock) == "new report"
    retried = b"Received: from relay2\r\n" + raw  # the sender's MTA retried
    assert process(deliver(retried, clock), keyring, settings, clock) == "duplicate"
    assert Vulnerability.select().count() == 1
    assert len(deliveries("ack")) == 1


@pytest.mark.parametrize(
    ("headers", "envelope_from"),
    [
        ([("Auto-Submitted", "auto-replied")], "rita@example.org"),
        ([("Precedence", "bulk")], "rita@example.org"),
        ([("List-Id", "<dev.lists.example.org>")], "rita@example.org"),
        ([], ""),
    ],
)
def test_automatic_mail_is_junk_without_a_public_id_or_an_answer(
    db, keyring, settings, clock, headers, envelope_from
):
    raw = mc.plain("I am out of office", subject="Away", headers=headers)
    message_id = deliver(raw, clock, envelope_from=envelope_from)
    assert process(message_id, keyring, settings, clock) == "junk"
    assert InboundMessage.get_by_id(message_id).state == "junk"
    assert Vulnerability.select().count() == 0
    assert Delivery.select().count() == 0


def test_an_auto_reply_in_a_thread_is_kept_but_not_answered(db, keyring, settings, clock):
    process(deliver(mc.plain("first", subject="Bug"), clock), keyring, settings, clock)
    v = Vulnerability.get()
    raw = mc.plain(
        "I am away", subject="Auto: away", headers=[("Auto-Submitted", "auto-replied")]
    ).replace(b"<report-1@", b"<away-1@")
    to = f"security+{v.tracking_id}@localhost"
    assert process(deliver(raw, clock, to=to), keyring, settings, clock) == "reply"
    assert v.correspondence.count() == 2
    assert deliveries("reply-ack") == []


def test_acknowledgements_are_rate_limited_per_sender(db, keyring, settings, clock):
    for n in range(processing.ACKS_PER_SENDER_PER_HOUR + 2):
        raw = mc.plain(f"report {n}", subject=f"R{n}").replace(b"<report-1@", f"<r{n}@".encode())
        process(deliver(raw, clock), keyring, settings, clock)
    assert Vulnerability.select().count() == processing.ACKS_PER_SENDER_PER_HOUR + 2
    assert len(deliveries("ack")) == processing.ACKS_PER_SENDER_PER_HOUR


def test_an_undecryptable_report_is_quarantined_and_the_sender_told_generically(
    db, keyring, settings, clock, rita
):
    raw = mc.pgp_mime_encrypted(mc.sqop_encrypt(rita.cert, b"for someone else"))
    message_id = deliver(raw, clock)
    assert process(message_id, keyring, settings, clock) == "quarantined"
    kept = InboundMessage.get_by_id(message_id)
    assert kept.state == "quarantined" and kept.error
    assert bytes(kept.raw) == raw
    assert Vulnerability.select().count() == 0
    [notice] = deliveries("unreadable")
    assert notice.recipient == "rita@example.org"
    assert json.loads(notice.payload) == {"message": message_id}


def test_a_message_that_crashes_processing_three_times_is_quarantined(db, keyring, settings, clock):
    message_id = deliver(mc.plain("crash me", subject="Crash"), clock)
    db.execute_sql("ALTER TABLE correspondence RENAME TO correspondence_away")  # now fails
    for attempt in range(1, inbound.MAX_ATTEMPTS + 1):
        with pytest.raises(Exception):  # noqa: B017  (the job fails; RQ records it)
            process(message_id, keyring, settings, clock)
        assert InboundMessage.get_by_id(message_id).attempts == attempt
        clock.move(seconds=1)
    assert process(message_id, keyring, settings, clock) == "quarantined"
    kept = InboundMessage.get_by_id(message_id)
    assert kept.state == "quarantined"
    assert "processing failed 3 times" in kept.error


def test_a_claimed_message_is_not_processed_twice_at_once(db, keyring, settings, clock):
    message_id = deliver(mc.plain("once", subject="Once"), clock)
    assert inbound.claim(message_id, clock.at) is not None
    assert process(message_id, keyring, settings, clock) == "skipped"
    clock.move(minutes=6)  # the first worker died; its lease ran out
    assert process(message_id, keyring, settings, clock) == "new report"


def test_a_team_reply_is_kept_in_the_thread_queued_and_audited(db, keyring, settings, clock):
    from app.core.errors import Refused
    from app.models import AuditEvent

    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    process(deliver(mc.plain("first", subject="Bug"), clock), keyring, settings, clock)
    v = Vulnerability.get()
    entry = replies.reply_to_reporter(v, member, "  Thanks, confirmed.  ", clock.at)
    assert (entry.direction, entry.text, entry.author_id) == (
        "out",
        "Thanks, confirmed.",
        member.id,
    )
    assert entry.encrypted is False  # no reporter key: they get a notice, not the text
    [reply] = deliveries("reply")
    assert reply.recipient == "rita@example.org"
    assert Correspondence.get_by_id(entry.id).delivery_id == reply.id
    assert AuditEvent.get(AuditEvent.action == "report.reply").target == v.tracking_id
    with pytest.raises(Refused, match="write a reply"):
        replies.reply_to_reporter(v, member, "   ", clock.at)


def test_a_new_report_goes_to_the_member_on_triage_duty_alone(db, keyring, settings, clock):
    ada = team.create_team_account("ada@example.org", PASSWORD, "team", clock.at, "t").user
    bob = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    process(deliver(mc.plain("first", subject="One"), clock), keyring, settings, clock)
    raw = mc.plain("second", subject="Two").replace(b"<report-1@", b"<report-2@")
    clock.move(minutes=1)
    process(deliver(raw, clock), keyring, settings, clock)
    first, second = Vulnerability.select().order_by(Vulnerability.id)
    assert (first.assignee_id, second.assignee_id) == (ada.id, bob.id)  # round-robin
    forwards = [(d.vulnerability_id, d.recipient) for d in deliveries("team-forward")]
    assert forwards == [(first.id, "ada@example.org"), (second.id, "bob@example.org")]


# -- who a message to a report's thread really comes from (issue 13, 2.1 and 2.4) -----------------


@pytest.fixture(scope="module")
def mallory():
    return mc.make_reporter("mallory@example.net", "Mallory")


@pytest.fixture(scope="module")
def rita_lookalike():
    """A key anyone can make: Rita's name and address, someone else's secret."""
    return mc.make_reporter("rita@example.org", "Rita Reporter")


def with_key(text: str, cert: bytes, message_id: str, **kwargs) -> bytes:
    body = mc.multipart("mixed", [mc.text_part(text), mc.key_part(cert)], "k")
    return mc.message(body, **kwargs).replace(b"<report-1@example.org>", message_id.encode())


def encrypted_report(keyring, reporter, signer=None) -> bytes:
    """Rita's report, encrypted to the service and carrying `reporter`'s key."""
    inner = mc.multipart(
        "mixed", [mc.text_part("Secret details."), mc.key_part(reporter.cert)], "i"
    )
    inner = b"Subject: Overflow in l2cap\r\n" + inner
    ciphertext = mc.sqop_encrypt(keyring.export_public(), inner, signer=signer)
    return mc.pgp_mime_encrypted(ciphertext)


def thread_of(v: Vulnerability) -> str:
    return f"security+{v.tracking_id}@localhost"


@pytest.mark.parametrize("whose", ["own", "another address's"])
def test_a_report_pins_only_a_key_whose_user_id_is_its_sender(
    db, keyring, settings, clock, rita, mallory, whose
):
    key = rita if whose == "own" else mallory
    process(deliver(encrypted_report(keyring, key, signer=rita), clock), keyring, settings, clock)
    v = Vulnerability.get()
    [ack] = deliveries("ack")
    text = letters.text_for(ack, keyring, settings, clock.at)
    if whose == "own":
        assert v.reporter_key.fingerprint == rita.fingerprint
        assert text.certificate.fingerprint == rita.fingerprint  # the ack is encrypted to it
        assert views.details(v)["correspondence"][0]["signed_by_reporter"] is True
    else:
        assert v.reporter_key is None
        assert text.certificate is None  # signed only: nobody else's key
        assert PublicKey.select().where(PublicKey.fingerprint == mallory.fingerprint).count() == 0


def test_a_key_in_a_later_message_is_offered_to_the_team_not_pinned(
    db, keyring, settings, clock, rita
):
    process(deliver(mc.plain("first", subject="Bug"), clock), keyring, settings, clock)
    v = Vulnerability.get()
    raw = with_key("Here is my key.", rita.cert, "<key-1@example.org>")
    assert process(deliver(raw, clock, to=thread_of(v)), keyring, settings, clock) == "reply"
    v = Vulnerability.get()
    assert v.reporter_key is None
    entry = Correspondence.select().order_by(Correspondence.id.desc()).first()
    assert entry.offered_key.fingerprint == rita.fingerprint
    assert views.details(v)["correspondence"][1]["offered_key"] == rita.fingerprint


def test_a_reporters_address_without_their_signature_cannot_change_their_key(
    db, keyring, settings, clock, rita, rita_lookalike
):
    from app.models import AuditEvent

    process(deliver(encrypted_report(keyring, rita, rita), clock), keyring, settings, clock)
    v = Vulnerability.get()
    raw = with_key("My key changed.", rita_lookalike.cert, "<key-2@example.org>")
    process(
        deliver(raw, clock, envelope_from="x@example.net", to=thread_of(v)),
        keyring,
        settings,
        clock,
    )
    v = Vulnerability.get()
    assert v.reporter_key.fingerprint == rita.fingerprint  # unchanged
    shown = views.details(v)["correspondence"][1]
    assert (shown["from_reporter"], shown["signed_by_reporter"]) == (True, False)
    assert shown["offered_key"] == rita_lookalike.fingerprint  # for the team to judge
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    entry = Correspondence.select().order_by(Correspondence.id.desc()).first()
    reporter_keys.confirm_reporter_key(v, entry.id, member, clock.at)  # the team decides, audited
    assert Vulnerability.get().reporter_key.fingerprint == rita_lookalike.fingerprint
    event = AuditEvent.get(AuditEvent.action == "report.key-confirm")
    assert (event.target, event.actor_label) == (v.tracking_id, "bob@example.org")
    assert json.loads(event.details)["previous"] == rita.fingerprint


def test_a_strangers_post_into_a_thread_is_recorded_as_the_strangers(
    db, keyring, settings, clock, mallory
):
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    process(deliver(mc.plain("first", subject="Bug"), clock), keyring, settings, clock)
    v = Vulnerability.get()
    raw = mc.plain("I found it too.", subject="Re: Bug", sender=mallory.sender)
    raw = raw.replace(b"<report-1@", b"<m-1@")
    process(
        deliver(raw, clock, envelope_from=mallory.address, to=thread_of(v)),
        keyring,
        settings,
        clock,
    )
    first, second = views.details(v)["correspondence"]
    assert (first["sender"], first["from_reporter"]) == ("rita@example.org", True)
    assert (second["sender"], second["from_reporter"]) == (mallory.address, False)
    assert "I found it too." in second["text"]
    # Still the team's to read: forwarded like any message in the thread.
    assert [(d.recipient, d.user_id) for d in deliveries("team-forward")][-1] == (
        "bob@example.org",
        member.id,
    )
    assert deliveries("reply-ack") == []
    PublicKey.create(
        owner=member, fingerprint="F" * 40, armored="-", usable=True, created_at=clock.at
    )
    forward = letters.text_for(deliveries("team-forward")[-1], keyring, settings, clock.at)
    assert forward.body.startswith(
        f"Someone else's message on {v.tracking_id}: read and triage it."
    )
    assert f"From:       {mallory.address}, NOT the reporter\n" in forward.body


def test_a_message_signed_by_a_strangers_attached_key_is_not_signed_by_the_reporter(
    db, keyring, settings, clock, rita, mallory
):
    process(deliver(encrypted_report(keyring, rita, rita), clock), keyring, settings, clock)
    v = Vulnerability.get()
    signed = mc.signed_entity(mc.text_part("Trust me, I am Rita."), mallory)
    body = mc.multipart("mixed", [signed, mc.key_part(mallory.cert)], "s")
    raw = mc.message(body).replace(b"<report-1@", b"<s-1@")
    process(deliver(raw, clock, to=thread_of(v)), keyring, settings, clock)
    report, stranger = views.details(v)["correspondence"]
    assert (stranger["signature_status"], stranger["signer_fingerprint"]) == (
        "valid",
        mallory.fingerprint,
    )
    assert stranger["signed_by_reporter"] is False
    assert report["signed_by_reporter"] is True
    member = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    PublicKey.create(
        owner=member, fingerprint="F" * 40, armored="-", usable=True, created_at=clock.at
    )
    latest = Correspondence.select().order_by(Correspondence.id.desc()).first()
    forward = Delivery.create(
        kind="team-forward",
        vulnerability=v,
        user=member,
        recipient=member.email,
        payload=json.dumps({"correspondence": latest.id}),
        created_at=clock.at,
    )
    body = letters.text_for(forward, keyring, settings, clock.at).body
    assert f"Signature:  valid ({mallory.fingerprint}): NOT the reporter's key\n" in body


def answer_as_sent(delivery, keyring, settings, clock) -> tuple:
    """What the recipient of an automatic answer sees of it (not its own Message-ID)."""
    from app.outbox import sending
    from tests.openpgp import parse, parts_as_sent, text_of

    raw = sending.compose(delivery, "<x@localhost>", keyring, settings, clock.at)
    message = parse(raw)
    headers = tuple(
        (name, message[name]) for name in ("Subject", "Reply-To", "From", "Auto-Submitted")
    )
    text = (
        text_of(parts_as_sent(raw)[0]) if message.get_content_type() == "multipart/signed" else ""
    )
    return headers, message.get_content_type(), text, raw


@pytest.mark.parametrize("status", ["new", "triage"])
def test_a_strangers_answer_is_the_same_for_an_existing_case_and_an_unknown_one(
    db, keyring, settings, clock, rita, mallory, status
):
    process(deliver(encrypted_report(keyring, rita, rita), clock), keyring, settings, clock)
    v = Vulnerability.get()
    Vulnerability.update(status=status).execute()
    answers = []
    for n, tracking_id in enumerate([v.tracking_id, "SEC-2026-0099"]):
        raw = mc.plain("Is this yours?", subject="Hello", sender=mallory.sender)
        raw = raw.replace(b"<report-1@", f"<probe-{n}@".encode())
        to = f"security+{tracking_id}@localhost"
        process(deliver(raw, clock, envelope_from=mallory.address, to=to), keyring, settings, clock)
        [answer] = (
            Delivery.select()
            .where(Delivery.recipient == mallory.address)
            .order_by(Delivery.id.desc())
            .limit(1)
        )
        answers.append(answer_as_sent(answer, keyring, settings, clock))
        clock.move(minutes=1)
    (headers, ctype, text, raw), unknown = answers
    assert (headers, ctype, text) == unknown[:3]  # nothing tells the two apart
    assert ctype == "multipart/signed"  # not encrypted (to the reporter's key or any)
    assert dict(headers)["Subject"] == "Your message to the security team"
    assert dict(headers)["Reply-To"] == SERVICE
    for secret in (b"Overflow in l2cap", v.tracking_id.encode(), b"SEC-2026-0099"):
        assert secret not in raw and secret not in unknown[3]
