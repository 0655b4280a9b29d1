"""Around the lift: alerted registrants told when an embargo moves; at the lift the signed
announcement, the embargo-lifted notices and the reporter's publication notice; and the public
view every one of them is written from."""

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from app.disclosure import announcements, embargo_change, redaction
from app.models import Delivery, PublicKey, Registrant, Vulnerability
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
SECRET = "use-after-free in the mesh beacon cache"


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@n{n}.example", f"Notified {n}") for n in range(3)]


@pytest.fixture
def v(db, clock, settings):
    v = lifecycle.create(f"The {SECRET}", "Full details.", CLI, clock.at, settings)
    Vulnerability.update(
        reporter_email="finder@example.org", reporter_name="Jürgen Finder"
    ).execute()
    return lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, clock.at)


@pytest.fixture
def registrants(db, clock, makers):
    return [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers)
    ]


def deliver(kind, keyring, settings, at) -> dict[str, bytes]:
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.kind == kind):
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), at)
        return {r.recipients[0]: r.data for r in sink.received}
    finally:
        sink.stop()


def publish(v, at):
    Vulnerability.update(status="published", published_at=at).where(
        Vulnerability.id == v.id
    ).execute()
    return Vulnerability.get_by_id(v.id)


def test_an_embargo_move_reaches_the_alerted_registrants_encrypted(
    v, registrants, makers, clock, settings, keyring, tmp_path
):
    alerts.send(v, None, "t", clock.at, settings)  # makers 0, 1, 2 are alerted
    vetting.decide(registrants[1], "suspended", None, "t", clock.at)  # no longer gets alerts
    later = vetting.add_by_admin(
        "psirt@late.example",
        "Late",
        mc.make_reporter("psirt@late.example").cert,
        None,
        "t",
        clock.at,
        approve=True,
    )  # approved after the alert: was never told anything
    before = v.embargo_until
    embargo_change.change_embargo(
        v, before + timedelta(days=14), "fix slipped", CLI, clock.at, settings
    )
    notices = Delivery.select().where(Delivery.kind == "alert-embargo")
    assert sorted(d.recipient for d in notices) == ["psirt@n0.example", "psirt@n2.example"]
    assert later.user.email not in [d.recipient for d in notices]
    sent = deliver("alert-embargo", keyring, settings, clock.at)
    raw = sent["psirt@n0.example"]
    message = parse(raw)
    assert message["Subject"] == f"Security advisory {v.tracking_id} (embargoed)"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert b"fix slipped" not in raw and SECRET.encode() not in raw
    secret = tmp_path / "n0.key"
    secret.write_bytes(makers[0].secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    text = text_of(parts_as_sent(entity)[0])
    assert f"The embargo of {v.tracking_id} has been extended." in text
    assert (before + timedelta(days=14)).strftime("%Y-%m-%d %H:%M UTC") in text
    assert "fix slipped" not in text  # the team's reason stays with the team


def test_a_registrant_whose_key_broke_gets_the_dates_signed_without_details(
    v, registrants, clock, settings, keyring
):
    alerts.send(v, None, "t", clock.at, settings)
    PublicKey.update(usable=False).where(PublicKey.id == registrants[0].key_id).execute()
    embargo_change.change_embargo(
        v, clock.at + timedelta(days=3), "found live", CLI, clock.at, settings
    )
    raw = deliver("alert-embargo", keyring, settings, clock.at)["psirt@n0.example"]
    assert parse(raw).get_content_type() == "multipart/signed"
    assert SECRET.encode() not in raw and b"found live" not in raw
    assert "Fix your key now" in text_of(parts_as_sent(raw)[0])


def test_no_notice_when_nobody_was_alerted(v, registrants, clock, settings):
    embargo_change.change_embargo(
        v, clock.at + timedelta(days=200), "later", CLI, clock.at, settings
    )
    assert not Delivery.select().where(Delivery.kind == "alert-embargo").exists()


def test_the_lift_queues_each_mail_once(v, registrants, clock, settings):
    settings = replace(settings, announce_address="announce@lists.example")
    alerts.send(v, None, "t", clock.at, settings)
    Registrant.update(unsubscribed=True).where(Registrant.id == registrants[2].id).execute()
    v = publish(v, clock.at)
    assert announcements.queue(v, clock.at, settings) == 4
    assert announcements.queue(v, clock.at, settings) == 0  # idempotent
    queued = {
        (d.kind, d.recipient)
        for d in Delivery.select().where(Delivery.kind.in_(announcements.KINDS))
    }
    assert queued == {
        ("announcement", "announce@lists.example"),
        ("embargo-lifted", "psirt@n0.example"),
        ("embargo-lifted", "psirt@n1.example"),
        ("publication", "finder@example.org"),
    }


def test_without_an_announce_address_only_people_are_told(v, registrants, clock, settings):
    v = publish(v, clock.at)
    assert announcements.queue(v, clock.at, settings) == 1  # the reporter; nobody was alerted


def test_the_announcement_is_signed_public_and_names_no_reporter_address(
    v, clock, settings, keyring, tmp_path
):
    settings = replace(settings, announce_address="announce@lists.example")
    lifecycle.set_field(v, "mitigation", "Turn off the beacon cache.", CLI, clock.at)
    lifecycle.set_field(
        v, "severity", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", CLI, clock.at
    )
    lifecycle.set_field(v, "fix_refs", "https://git.example/fix/1", CLI, clock.at)
    v = publish(Vulnerability.get_by_id(v.id), clock.at)
    announcements.queue(v, clock.at, settings)
    raw = deliver("announcement", keyring, settings, clock.at)["announce@lists.example"]
    message = parse(raw)
    assert message.get_content_type() == "multipart/signed"
    assert message["Subject"] == f"[{v.tracking_id}] The {SECRET}"
    text_part, signature = parts_as_sent(raw)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    sig = tmp_path / "sig.asc"
    sig.write_bytes(signature.split(b"\r\n\r\n", 1)[1])
    assert run("sqop", "verify", str(sig), str(cert), input=text_part).returncode == 0
    text = text_of(text_part)
    for shown in ("Turn off the beacon cache.", "Critical 9.8", "https://git.example/fix/1"):
        assert shown in text
    assert "Credits: Jürgen Finder" in text
    assert "finder@example.org" not in text


def test_the_reporter_is_told_of_the_publication_with_their_credit(v, clock, settings, keyring):
    v = publish(v, clock.at)
    announcements.queue(v, clock.at, settings)
    raw = deliver("publication", keyring, settings, clock.at)["finder@example.org"]
    text = text_of(parts_as_sent(raw)[0])
    assert f"Your report {v.tracking_id} is public now" in text
    assert "It credits: Jürgen Finder" in text


def test_nothing_of_the_lift_is_composed_before_publication(v, clock, settings, keyring):
    announcements.queue(v, clock.at, settings)  # a bug elsewhere queued it early
    [delivery] = Delivery.select().where(Delivery.kind == "publication")
    result = sending.send(delivery.id, keyring, settings, SmtpTransport("127.0.0.1", 9), clock.at)
    assert result == "retry"
    assert "internal error" in Delivery.get_by_id(delivery.id).last_answer


def test_the_public_view_is_a_placeholder_until_published(v, clock, settings):
    new = lifecycle.create("Not yet triaged", "", CLI, clock.at, settings)
    assert redaction.public_view(new, clock.at) is None
    placeholder = redaction.public_view(v, clock.at)
    assert isinstance(placeholder, redaction.Placeholder)
    assert placeholder.id == v.tracking_id and placeholder.embargo_until == v.embargo_until
    assert SECRET not in json.dumps(placeholder.__dict__, default=str)
    assert redaction.public_view(v, clock.at, show_embargo_date=False).embargo_until is None
    v = publish(v, clock.at + timedelta(hours=1))
    assert isinstance(redaction.public_view(v, clock.at), redaction.Placeholder)  # not yet
    shown = redaction.public_view(v, clock.at + timedelta(hours=1))
    assert isinstance(shown, redaction.Published) and SECRET in shown.title
    assert "finder@example.org" not in json.dumps(shown.__dict__, default=str)


@pytest.mark.parametrize(
    ("score", "rating"),
    [
        (None, "not rated"),
        (0.0, "None"),
        (3.9, "Low"),
        (4.0, "Medium"),
        (8.9, "High"),
        (9.0, "Critical"),
    ],
)
def test_cvss_ratings(score, rating):
    assert redaction.rating(score) == rating
