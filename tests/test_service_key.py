"""The service key over time: expiry warnings to admins at 60 and 30 days and once it has
expired, `forewarn key renew`."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from app.accounts import team
from app.models import AuditEvent, Delivery
from app.outbox import letters, sending
from app.servicekey import expiry
from keys.keyring import KeyringError, ServiceKeyring
from mail.compose import Outgoing, unsigned
from tests.conftest import PASSWORD
from tests.mailcorpus import gpg_in, gpg_key
from tests.openpgp import parse, parts_as_sent, text_of

pytestmark = pytest.mark.db


@pytest.fixture
def admins(db, clock, admin_user):
    """Two active admins (told), a team member and an inactive admin (not told)."""
    team.create_team_account("ada@example.org", PASSWORD, "admin", clock.at, "t")
    team.create_team_account("tess@example.org", PASSWORD, "team", clock.at, "t")
    gone = team.create_team_account("gone@example.org", PASSWORD, "admin", clock.at, "t")
    gone.user.active = False
    gone.user.save()
    return ["admin@example.org", "ada@example.org"]


def warnings():
    return [
        (d.recipient, json.loads(d.payload)["step"])
        for d in Delivery.select()
        .where(Delivery.kind == "service-key-expiry")
        .order_by(Delivery.id)
    ]


def test_admins_are_warned_once_at_60_and_once_at_30_days(admins, clock, keyring):
    fingerprint, expires = keyring.fingerprint(), keyring.expiry()
    assert expires is not None
    steps = ((61, 0), (60, 2), (59, 0), (45, 0), (30, 2), (29, 0), (1, 0), (0, 2), (-1, 0))
    for days, queued in steps:
        clock.at = expires - timedelta(days=days)
        assert expiry.check(keyring, clock.at) == queued, days
    assert warnings() == [
        ("admin@example.org", "60 days"),
        ("ada@example.org", "60 days"),
        ("admin@example.org", "30 days"),
        ("ada@example.org", "30 days"),
        ("admin@example.org", "expired"),
        ("ada@example.org", "expired"),
    ]
    events = AuditEvent.select().where(AuditEvent.action == expiry.ACTION)
    marks = sorted(json.loads(e.details)["mark"] for e in events)
    assert marks == [
        f"{expires.isoformat()}:30 days",
        f"{expires.isoformat()}:60 days",
        f"{expires.isoformat()}:expired",
    ]
    assert {e.target for e in events} == {fingerprint}


def test_a_missed_pass_sends_only_the_nearest_warning(admins, clock):
    expires = clock.at + timedelta(days=20)
    assert expiry.queue_due("F" * 40, expires, clock.at) == 2
    assert expiry.queue_due("F" * 40, expires, clock.at + timedelta(days=1)) == 0
    assert {step for _, step in warnings()} == {"30 days"}


def test_a_renewed_key_arms_the_warnings_again_and_a_key_without_expiry_none(admins, clock):
    first = clock.at + timedelta(days=60)
    assert expiry.queue_due("F" * 40, first, clock.at) == 2
    renewed = first + timedelta(days=730)
    assert expiry.queue_due("F" * 40, renewed, renewed - timedelta(days=60)) == 2
    assert expiry.queue_due("F" * 40, None, clock.at) == 0
    assert len(warnings()) == 4


def test_the_warning_is_a_signed_mail_that_says_what_to_do_and_by_when(
    admins, clock, keyring, settings
):
    expires = datetime(2027, 1, 24, 12, 0, tzinfo=UTC)
    expiry.queue_due(keyring.fingerprint(), expires, expires - timedelta(days=30))
    delivery = Delivery.select().where(Delivery.kind == "service-key-expiry").first()
    raw = sending.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
    assert parse(raw).get_content_type() == "multipart/signed"
    body = text_of(parts_as_sent(raw)[0])
    assert "forewarn key renew" in body
    assert "2027-01-24 12:00 UTC" in body  # when it expires
    assert "2027-01-17 12:00 UTC" in body  # renew by: a week before
    assert keyring.fingerprint() in body
    assert "expires in 30 days" in parse(raw)["Subject"]


def test_key_renew_extends_primary_and_subkeys(forewarn, db, keyring):
    before = keyring.expiry()
    done = forewarn("key", "renew", "--years", "5")
    assert done.returncode == 0, done.stderr
    after = keyring.expiry()  # read back from gpg
    assert after > before + timedelta(days=365 * 2)
    assert abs(after - (datetime.now(UTC) + timedelta(days=365 * 5))) < timedelta(days=3)
    listing = keyring.describe()
    expiries = [listing["expires"]] + [s["expires"] for s in listing["subkey_info"].values()]
    assert all(int(e) >= int(after.timestamp()) for e in expiries)
    assert done.stdout.strip().splitlines() == [
        f"service key {keyring.fingerprint()} now expires {after:%Y-%m-%d %H:%M} UTC"
    ]
    assert AuditEvent.select().where(AuditEvent.action == "service-key.renew").count() == 1


def test_key_renew_without_a_key_is_a_one_line_error(forewarn):
    done = forewarn("key", "renew")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "forewarn: there is no service key yet: run `forewarn init`"
    ]


def test_key_renew_refuses_a_silly_period(forewarn):
    done = forewarn("key", "renew", "--years", "0")
    assert done.returncode != 0
    assert "--years" in done.stderr


# -- once it has expired -------------------------------------------------------------------------


@pytest.fixture
def expired_keyring(settings):
    """A real service key made on 2020-01-01 for one year: expired for gpg's clock too, so gpg
    really refuses to sign with it."""
    secret, _ = gpg_key(settings.security_address, faked_time="20200101T000000", expire="1y")
    ring = ServiceKeyring(settings.gnupg_home)
    ring.ensure_home()
    gpg_in(ring.home, "--import", input=secret)
    yield ring
    ring.stop_agent()


def test_an_expired_key_cannot_sign_and_admins_are_told_once_per_expiry(
    admins, clock, expired_keyring, caplog
):
    expires = expired_keyring.expiry()
    assert expires < clock.at
    with pytest.raises(KeyringError):
        expired_keyring.sign_detached(b"anything")  # why this warning cannot be signed
    assert expiry.check(expired_keyring, clock.at) == 2
    assert expiry.check(expired_keyring, clock.move(hours=1)) == 0
    assert warnings() == [("admin@example.org", "expired"), ("ada@example.org", "expired")]
    mark = AuditEvent.get(AuditEvent.action == expiry.ACTION).details
    assert json.loads(mark)["mark"] == f"{expires.isoformat()}:expired"


def test_the_reconcilers_tick_logs_one_error_line_while_the_key_is_expired(
    admins, clock, expired_keyring, settings, monkeypatch, caplog
):
    monkeypatch.setattr(expiry, "_last_check", None)
    with caplog.at_level(logging.ERROR, logger="forewarn.service_key"):
        assert expiry.tick(clock.at, settings, lambda: expired_keyring) == 2
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    line = record.getMessage()
    assert "\n" not in line
    assert expired_keyring.fingerprint() in line
    assert "expired" in line and "forewarn key renew" in line


def test_no_error_is_logged_while_the_key_is_valid(admins, clock, keyring, caplog):
    with caplog.at_level(logging.ERROR, logger="forewarn.service_key"):
        expiry.check(keyring, clock.at)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def _expired_warning(expired_keyring, clock):
    expiry.check(expired_keyring, clock.at)
    return Delivery.select().where(Delivery.kind == "service-key-expiry").first()


def test_the_expired_warning_is_plain_text_saying_it_is_unsigned_and_what_to_run(
    admins, clock, expired_keyring, settings
):
    delivery = _expired_warning(expired_keyring, clock)
    text = letters.text_for(delivery, expired_keyring, settings, clock.at)
    assert text.unsigned and text.certificate is None
    raw = unsigned(
        Outgoing(
            sender=settings.from_address,
            recipient=delivery.recipient,
            subject=text.subject,
            outer_subject=text.outer_subject,
            body=text.body,
            message_id="<t@example.org>",
            date=clock.at,
        )
    )
    message = parse(raw)
    assert message.get_content_type() == "text/plain"
    assert b"pgp-signature" not in raw and b"BEGIN PGP" not in raw
    assert "EXPIRED" in message["Subject"]
    body = message.get_content()
    assert body.startswith("The service's OpenPGP key has EXPIRED")
    assert "NOT signed, because the expired key cannot sign" in body
    assert "forewarn key renew" in body
    assert "acknowledgements" in body and "alerts" in body
    assert expired_keyring.fingerprint() in body
    assert f"{expired_keyring.expiry():%Y-%m-%d %H:%M} UTC" in body
    assert max(len(line) for line in body.splitlines()) <= 72


def test_the_warnings_before_expiry_are_still_signed(admins, clock, keyring, settings):
    expiry.queue_due(keyring.fingerprint(), clock.at + timedelta(days=30), clock.at)
    delivery = Delivery.select().where(Delivery.kind == "service-key-expiry").first()
    assert not letters.text_for(delivery, keyring, settings, clock.at).unsigned


def test_the_outbox_sends_the_expired_warning_although_the_key_cannot_sign(
    admins, clock, expired_keyring, settings
):
    delivery = _expired_warning(expired_keyring, clock)
    raw = sending.compose(delivery, "<t@example.org>", expired_keyring, settings, clock.at)
    assert parse(raw).get_content_type() == "text/plain"
    assert "forewarn key renew" in parse(raw).get_content()


def test_renewing_an_expired_key_lets_it_sign_again(clock, expired_keyring):
    renewed = expired_keyring.renew(years=2)
    assert renewed > datetime.now(UTC) + timedelta(days=365)
    assert expired_keyring.sign_detached(b"signed again").armored.startswith(
        "-----BEGIN PGP SIGNATURE"
    )
