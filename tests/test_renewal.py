"""The registry's life cycle: key-expiry warnings, flagged registrants, yearly re-confirmation."""

import json
import re
from datetime import timedelta

import pytest

from app.accounts import team
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import AuditEvent, Delivery, PublicKey, Registrant
from app.outbox import sending
from app.registry import renewal, vetting
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@maker.example", "Maker PSIRT")


@pytest.fixture(scope="module")
def other():
    return mc.make_reporter("security@other.example", "Other PSIRT")


@pytest.fixture
def staff(db, clock, admin_user):
    """An admin (told) and a team member (not told)."""
    team.create_team_account("tess@example.org", PASSWORD, "team", clock.at, "t")
    return admin_user


def add(person, clock, expires_in: timedelta | None) -> Registrant:
    """An approved registrant whose encryption key expires after `expires_in` (None: never)."""
    added = vetting.add_by_admin(
        person.address, "Maker Ltd", person.cert, None, "t", clock.at, approve=True
    )
    expires = clock.at + expires_in if expires_in is not None else None
    Registrant.update(encryption_expires=expires).where(Registrant.id == added.id).execute()
    PublicKey.update(expires=expires).where(PublicKey.id == added.key_id).execute()
    return Registrant.get_by_id(added.id)


def sent(kind: str | None = None):
    query = Delivery.select().order_by(Delivery.id)
    if kind:
        query = query.where(Delivery.kind == kind)
    rows = []
    for d in query:
        payload = json.loads(d.payload)
        rows.append((d.kind, payload.get("step") or payload.get("event"), d.recipient))
    return rows


def read_mail(delivery: Delivery, keyring, settings, at, person=None, tmp_path=None):
    """Send over SMTP to a local sink; (raw, body), decrypted with the person's key if given."""
    sink = SmtpSink()
    try:
        transport = SmtpTransport("127.0.0.1", sink.port)
        assert sending.send(delivery.id, keyring, settings, transport, at) == "sent"
        raw = sink.received[0].data
    finally:
        sink.stop()
    if person is None:
        return raw, text_of(parts_as_sent(raw)[0])
    assert parse(raw).get_content_type() == "multipart/encrypted"
    key = tmp_path / "registrant.key"
    key.write_bytes(person.secret)
    entity = run("sqop", "decrypt", str(key), input=encrypted_payload(raw)).stdout
    return raw, text_of(parts_as_sent(entity)[0])


# -- key expiry -----------------------------------------------------------------------------------


def test_the_registrant_is_warned_at_30_14_and_3_days_and_admins_at_14_and_expiry(
    staff, clock, maker
):
    registrant = add(maker, clock, timedelta(days=40))
    expires = registrant.encryption_expires
    assert renewal.queue_due(expires - timedelta(days=31)) == 0
    assert renewal.queue_due(expires - timedelta(days=30)) == 1
    assert renewal.queue_due(expires - timedelta(days=29)) == 0  # once only
    assert renewal.queue_due(expires - timedelta(days=14)) == 2  # registrant and the admin
    assert renewal.queue_due(expires - timedelta(days=13)) == 0
    assert renewal.queue_due(expires - timedelta(days=3)) == 1
    assert renewal.queue_due(expires - timedelta(days=1)) == 0
    assert renewal.queue_due(expires + timedelta(minutes=1)) == 1  # admins: it has expired
    assert renewal.queue_due(expires + timedelta(days=5)) == 0
    assert sent() == [
        ("key-expiry", "30 days", "psirt@maker.example"),
        ("key-expiry", "14 days", "psirt@maker.example"),
        ("registry-admin", "key-expiring", "admin@example.org"),
        ("key-expiry", "3 days", "psirt@maker.example"),
        ("registry-admin", "key-expired", "admin@example.org"),
    ]
    marks = [
        (e.action, json.loads(e.details)["mark"])
        for e in AuditEvent.select()
        .where(AuditEvent.action.startswith("renewal."))
        .order_by(AuditEvent.id)
    ]
    assert marks[0] == ("renewal.key-expiry", f"{expires.isoformat()}:30 days")
    assert len(marks) == len(set(marks)) == 5


def test_a_missed_pass_sends_only_the_nearest_warning(staff, clock, maker):
    add(maker, clock, timedelta(days=10))  # added after the 30- and 14-day marks
    assert renewal.queue_due(clock.at) == 2
    assert sent() == [
        ("key-expiry", "14 days", "psirt@maker.example"),
        ("registry-admin", "key-expiring", "admin@example.org"),
    ]


def test_a_new_key_arms_the_warnings_again(staff, clock, maker):
    registrant = add(maker, clock, timedelta(days=30))
    assert renewal.queue_due(clock.at) == 1
    assert renewal.queue_due(clock.at) == 0
    renewed = clock.at + timedelta(days=25)  # a new key, expiring on another day
    Registrant.update(encryption_expires=renewed).where(Registrant.id == registrant.id).execute()
    assert renewal.queue_due(clock.at) == 1
    assert [row[1] for row in sent("key-expiry")] == ["30 days", "30 days"]
    expiry = [json.loads(d.payload)["expires"] for d in Delivery.select().order_by(Delivery.id)]
    assert expiry[-1] == renewed.isoformat()


def test_suspended_and_keyless_registrants_are_not_warned(staff, clock, maker, other):
    suspended = add(maker, clock, timedelta(days=3))
    vetting.decide(suspended, "suspended", None, "admin", clock.at)
    add(other, clock, None)  # a key that never expires
    assert renewal.queue_due(clock.at) == 0
    assert sent() == []


def test_flagged_lists_approved_registrants_alerts_could_not_reach(staff, clock, maker, other):
    expiring = add(maker, clock, timedelta(days=2))
    fine = add(other, clock, None)
    assert list(renewal.flagged(clock.at)) == []
    later = clock.at + timedelta(days=3)
    assert [r.id for r in renewal.flagged(later)] == [expiring.id]
    assert renewal.needs_key(Registrant.get_by_id(expiring.id), later)
    assert not renewal.needs_key(Registrant.get_by_id(fine.id), later)
    PublicKey.update(usable=False).where(PublicKey.id == fine.key_id).execute()
    assert [r.id for r in renewal.flagged(later)] == [expiring.id, fine.id]
    Registrant.update(key=None).where(Registrant.id == fine.id).execute()
    assert [r.id for r in renewal.flagged(clock.at)] == [fine.id]
    assert renewal.needs_key(Registrant.get_by_id(fine.id), clock.at)


def test_the_warning_travels_encrypted_to_the_registrants_key(
    staff, clock, maker, keyring, settings, tmp_path
):
    registrant = add(maker, clock, timedelta(days=14))
    renewal.queue_due(clock.at)
    [warning] = Delivery.select().where(Delivery.kind == "key-expiry")
    raw, body = read_mail(warning, keyring, settings, clock.at, maker, tmp_path)
    assert maker.fingerprint.encode() not in raw  # only inside the encryption
    assert "expires in 14 days" in body
    assert maker.fingerprint in body
    assert f"{settings.base_url}/registry/status" in body
    assert registrant.pinned_fingerprint == maker.fingerprint
    [notice] = Delivery.select().where(Delivery.kind == "registry-admin")
    raw, body = read_mail(notice, keyring, settings, clock.at)
    assert parse(raw)["Subject"] == "Registry: a registrant's key expires in 14 days"
    assert "psirt@maker.example" in body


# -- yearly re-confirmation -----------------------------------------------------------------------


def reconfirm_link(keyring, settings, at, person, tmp_path) -> str:
    [link_mail] = Delivery.select().where(Delivery.kind == "reconfirm").order_by(Delivery.id)
    raw, body = read_mail(link_mail, keyring, settings, at, person, tmp_path)
    assert b"/registry/reconfirm/" not in raw
    return re.search(r"/registry/reconfirm/(\S+)", body).group(1)


def test_a_year_after_confirmation_the_registrant_gets_a_link_once(staff, clock, maker):
    add(maker, clock, None)
    assert renewal.queue_due(clock.at + timedelta(days=364)) == 0
    year = clock.at + timedelta(days=365)
    assert renewal.queue_due(year) == 1
    assert renewal.queue_due(year + timedelta(days=1)) == 0
    assert sent() == [("reconfirm", None, "psirt@maker.example")]


def test_the_link_confirms_once_and_starts_the_year_again(
    staff, clock, maker, keyring, settings, tmp_path
):
    registrant = add(maker, clock, None)
    year = clock.at + timedelta(days=365)
    renewal.queue_due(year)
    token = reconfirm_link(keyring, settings, year, maker, tmp_path)
    answered = year + timedelta(days=2)
    confirmed = renewal.confirm(token, secret_key(settings), answered)
    assert confirmed.last_confirmed_at == answered and confirmed.status == "approved"
    event = AuditEvent.get(AuditEvent.action == "registry.reconfirmed")
    assert event.target == "psirt@maker.example"
    with pytest.raises(Refused, match="already used"):
        renewal.confirm(token, secret_key(settings), answered + timedelta(hours=1))
    assert renewal.queue_due(year + timedelta(days=40)) == 0  # no suspension after the grace
    assert Registrant.get_by_id(registrant.id).status == "approved"
    assert renewal.queue_due(answered + timedelta(days=365)) == 1  # next year's link


def test_tampered_and_expired_links_are_refused(staff, clock, maker, settings):
    registrant = add(maker, clock, None)
    token = renewal.reconfirm_token(
        secret_key(settings), registrant.id, registrant.last_confirmed_at, clock.at
    )
    with pytest.raises(Refused, match="not valid"):
        renewal.confirm(token[:-3] + "abc", secret_key(settings), clock.at)
    with pytest.raises(Refused, match="expired"):
        renewal.confirm(token, secret_key(settings), clock.at + timedelta(days=31))
    forged = renewal.reconfirm_token(
        "another secret", registrant.id, registrant.last_confirmed_at, clock.at
    )
    with pytest.raises(Refused, match="not valid"):
        renewal.confirm(forged, secret_key(settings), clock.at)
    assert Registrant.get_by_id(registrant.id).last_confirmed_at == clock.at


def test_unconfirmed_after_the_grace_is_suspended_and_admins_are_told(
    staff, clock, maker, settings, keyring
):
    registrant = add(maker, clock, None)
    year = clock.at + timedelta(days=365)
    renewal.queue_due(year)
    assert renewal.queue_due(year + timedelta(days=29)) == 0
    assert Registrant.get_by_id(registrant.id).status == "approved"
    assert renewal.queue_due(year + timedelta(days=30)) == 1
    assert renewal.queue_due(year + timedelta(days=31)) == 0
    assert Registrant.get_by_id(registrant.id).status == "suspended"
    assert sent("registry-admin") == [("registry-admin", "suspended", "admin@example.org")]
    event = AuditEvent.get(AuditEvent.action == "registry.suspended")
    assert (event.actor_label, event.target) == ("system", "psirt@maker.example")
    assert json.loads(event.details)["reason"] == "not re-confirmed within 30 days"
    [notice] = Delivery.select().where(Delivery.kind == "registry-admin")
    _, body = read_mail(notice, keyring, settings, year + timedelta(days=30))
    assert "suspended: not re-confirmed within 30 days" in body
    token = renewal.reconfirm_token(
        secret_key(settings), registrant.id, clock.at, year + timedelta(days=30)
    )
    with pytest.raises(Refused, match="suspended"):
        renewal.confirm(token, secret_key(settings), year + timedelta(days=31))


def test_the_reconfirm_link_shows_a_button_and_confirms_on_post(client, db, clock, settings):
    from app.core.instance import secret_key
    from app.registry import renewal
    from tests.conftest import csrf_token

    maker = mc.make_reporter("psirt@web.example", "Web PSIRT")
    registrant = vetting.add_by_admin(
        "psirt@web.example", "Web Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    token = renewal.reconfirm_token(secret_key(settings), registrant.id, clock.at, clock.at)
    page = client.get(f"/registry/reconfirm/{token}")
    assert page.status_code == 200 and "We still qualify" in page.get_data(as_text=True)
    assert Registrant.get_by_id(registrant.id).last_confirmed_at == clock.at  # not consumed
    clock.move(days=2)
    done = client.post(
        f"/registry/reconfirm/{token}", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert done.status_code == 200 and "stays in the registry" in done.get_data(as_text=True)
    assert Registrant.get_by_id(registrant.id).last_confirmed_at == clock.at
    again = client.post(
        f"/registry/reconfirm/{token}", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert again.status_code == 400
