"""Pre-disclosure alerts: who gets one, versions, and the message each registrant receives."""

import pytest

from app.core.errors import Refused
from app.models import AuditEvent, Delivery, Registrant, Vulnerability
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

CLI = lifecycle.Actor(None, "test")
SECRET = "heap overflow in the L2CAP reassembly"


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@m{n}.example", f"Maker {n}") for n in range(4)]


@pytest.fixture
def v(db, clock, settings):
    v = lifecycle.create(f"The {SECRET}", "Details.", CLI, clock.at, settings)
    return lifecycle.set_status(v, "accepted", CLI, clock.at)


@pytest.fixture
def registrants(db, clock, makers):
    made = [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers)
    ]
    vetting.decide(made[1], "suspended", None, "t", clock.at)
    Registrant.update(unsubscribed=True).where(Registrant.id == made[2].id).execute()
    return made


def sent_to(sink, address):
    return [r.data for r in sink.received if r.recipients == [address]]


def test_only_accepted_or_fixed_vulnerabilities_can_be_alerted(db, clock, settings):
    new = lifecycle.create("New one", "", CLI, clock.at, settings)
    with pytest.raises(Refused, match="accepted or fixed"):
        alerts.send(new, None, "t", clock.at, settings)


def test_sending_queues_one_delivery_per_approved_subscribed_registrant(
    v, registrants, clock, settings
):
    advisory = alerts.send(v, None, "t", clock.at, settings)
    assert advisory.version == 1
    to = sorted(d.recipient for d in Delivery.select().where(Delivery.advisory == advisory))
    assert to == ["psirt@m0.example", "psirt@m3.example"]  # m1 suspended, m2 unsubscribed
    assert alerts.progress(advisory) == {"queued": 2, "sent": 0, "failed": 0, "bounced": 0}
    second = alerts.send(v, None, "t", clock.at, settings)
    assert second.version == 2 and second.text.startswith("Updates in this version")
    assert AuditEvent.select().where(AuditEvent.action == "alert.send").count() == 2


def test_each_alert_is_signed_then_encrypted_to_the_registrant_alone(
    v, registrants, makers, clock, settings, keyring, tmp_path
):
    advisory = alerts.send(v, None, "t", clock.at, settings)
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.advisory == advisory):
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
        [raw] = sent_to(sink, "psirt@m0.example")
        envelope = sink.received[0].envelope_from
    finally:
        sink.stop()
    message = parse(raw)
    assert message["Subject"] == f"Security advisory {v.tracking_id} v1 (embargoed)"
    assert message.get_content_type() == "multipart/encrypted"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/registry/unsubscribe/")
    assert envelope.startswith("security-bounces+") and envelope.endswith("@localhost")
    assert SECRET.encode() not in raw
    secret = tmp_path / "m0.key"
    secret.write_bytes(makers[0].secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    assert parse(entity).get_content_type() == "multipart/signed"  # the nested RFC 3156 form
    text, signature = parts_as_sent(entity)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    sig = tmp_path / "sig.asc"
    sig.write_bytes(body_of(signature))
    assert run("sqop", "verify", str(sig), str(cert), input=text).returncode == 0
    assert SECRET in parse(text)["Subject"]  # the real subject, protected
    assert SECRET in text_of(text)
    # Another registrant's key cannot read it.
    other = tmp_path / "m3.key"
    other.write_bytes(makers[3].secret)
    assert (
        run("sqop", "decrypt", str(other), input=encrypted_payload(raw), check=False).returncode
        != 0
    )


def test_an_old_title_with_a_line_break_no_longer_stops_its_alerts(
    v, registrants, makers, clock, settings, keyring, tmp_path
):
    # Written before titles were checked (app.core.oneline): as old data would hold it.
    Vulnerability.update(title=f"The {SECRET}\r\nBcc: everyone@example.org").where(
        Vulnerability.id == v.id
    ).execute()
    advisory = alerts.send(Vulnerability.get_by_id(v.id), None, "t", clock.at, settings)
    sink = SmtpSink()
    try:
        outcomes = [
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
            for d in Delivery.select().where(Delivery.advisory == advisory)
        ]
        [raw] = sent_to(sink, "psirt@m0.example")
    finally:
        sink.stop()
    assert outcomes == ["sent", "sent"]
    secret = tmp_path / "m0.key"
    secret.write_bytes(makers[0].secret)
    text, _ = parts_as_sent(
        run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    )
    protected = parse(text)
    assert protected["Subject"] == f"{v.tracking_id} v1: The {SECRET} Bcc: everyone@example.org"
    assert "Bcc" not in protected and "Bcc" not in parse(raw)


def test_a_registrant_whose_key_cannot_be_used_gets_a_notice_never_the_advisory(
    v, registrants, clock, settings, keyring
):
    from app.models import PublicKey

    PublicKey.update(usable=False).where(PublicKey.id == registrants[0].key_id).execute()
    advisory = alerts.send(v, None, "t", clock.at, settings)
    kinds = {d.recipient: d.kind for d in Delivery.select().where(Delivery.advisory == advisory)}
    assert kinds == {"psirt@m0.example": "alert-missed", "psirt@m3.example": "alert"}
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.kind == "alert-missed"):
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
        [raw] = sent_to(sink, "psirt@m0.example")
    finally:
        sink.stop()
    assert SECRET.encode() not in raw
    assert parse(raw).get_content_type() == "multipart/signed"
    assert "You missed a pre-disclosure advisory" in text_of(parts_as_sent(raw)[0])


def test_a_version_is_signed_once_and_each_registrant_gets_it_encrypted_alone(
    v, registrants, makers, clock, settings, keyring, tmp_path
):
    advisory = alerts.send(v, None, "t", clock.at, settings)
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.advisory == advisory):
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
        raws = [sent_to(sink, f"psirt@m{n}.example")[0] for n in (0, 3)]
    finally:
        sink.stop()
    entities = []
    for n, raw in zip((0, 3), raws, strict=True):
        secret = tmp_path / f"m{n}.key"
        secret.write_bytes(makers[n].secret)
        entities.append(run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout)
    assert entities[0] == entities[1]  # the same signed bytes, two encryptions
    assert parse(raws[0])["Message-ID"] != parse(raws[1])["Message-ID"]
    from app.models import Advisory

    assert bytes(Advisory.get_by_id(advisory.id).signed_entity) == entities[0]


def test_a_registrant_stops_alerts_from_the_status_page(registrants, client, clock):
    from app.core import passwords
    from app.models import User
    from tests.conftest import PASSWORD, csrf_token

    registrant = registrants[0]
    User.update(password_hash=passwords.hash_password(PASSWORD)).where(
        User.id == registrant.user_id
    ).execute()
    client.post(
        "/login",
        data={
            "csrf_token": csrf_token(client.get("/login").get_data(as_text=True)),
            "email": registrant.user.email,
            "password": PASSWORD,
        },
    )
    page = client.get("/registry/status").get_data(as_text=True)
    response = client.post(
        "/registry/status/unsubscribe",
        data={"csrf_token": csrf_token(page)},
        follow_redirects=True,
    )
    assert "You receive no more alerts." in response.get_data(as_text=True)
    assert Registrant.get_by_id(registrant.id).unsubscribed


def test_a_registrant_whose_primary_key_expired_gets_the_missed_notice_though_the_subkey_lives(
    v, registrants, clock, settings
):
    """gpg will not encrypt to a certificate whose primary key has expired, however long its
    encryption subkey has left (tests/test_key_usability.py shows it with real gpg): the alert
    and the registry's key warnings judge a key by the same rule."""
    from datetime import timedelta

    from app.models import PublicKey
    from app.registry import renewal

    m0 = Registrant.get(Registrant.id == registrants[0].id)
    PublicKey.update(expires=clock.at - timedelta(days=1)).where(PublicKey.id == m0.key).execute()
    Registrant.update(encryption_expires=clock.at + timedelta(days=3650)).where(
        Registrant.id == m0.id
    ).execute()
    m0 = Registrant.get(Registrant.id == m0.id)
    assert renewal.needs_key(m0, clock.at)

    advisory = alerts.send(v, None, "t", clock.at, settings)
    kinds = {d.recipient: d.kind for d in Delivery.select().where(Delivery.advisory == advisory)}
    assert kinds == {"psirt@m0.example": "alert-missed", "psirt@m3.example": "alert"}
