"""The service key over time: expiry warnings to admins at 60 and 30 days, `forewarn key renew`."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from app import accounts, outbox, service_key
from app.models import AuditEvent, Delivery
from tests.conftest import PASSWORD
from tests.openpgp import parse, parts_as_sent, text_of

pytestmark = pytest.mark.db


@pytest.fixture
def admins(db, clock, admin_user):
    """Two active admins (told), a team member and an inactive admin (not told)."""
    accounts.create_team_account("ada@example.org", PASSWORD, "admin", clock.at, "t")
    accounts.create_team_account("tess@example.org", PASSWORD, "team", clock.at, "t")
    gone = accounts.create_team_account("gone@example.org", PASSWORD, "admin", clock.at, "t")
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
    for days, queued in ((61, 0), (60, 2), (59, 0), (45, 0), (30, 2), (29, 0), (1, 0), (-1, 0)):
        clock.at = expires - timedelta(days=days)
        assert service_key.check(keyring, clock.at) == queued, days
    assert warnings() == [
        ("admin@example.org", "60 days"),
        ("ada@example.org", "60 days"),
        ("admin@example.org", "30 days"),
        ("ada@example.org", "30 days"),
    ]
    events = AuditEvent.select().where(AuditEvent.action == service_key.ACTION)
    marks = sorted(json.loads(e.details)["mark"] for e in events)
    assert marks == [f"{expires.isoformat()}:30 days", f"{expires.isoformat()}:60 days"]
    assert {e.target for e in events} == {fingerprint}


def test_a_missed_pass_sends_only_the_nearest_warning(admins, clock):
    expires = clock.at + timedelta(days=20)
    assert service_key.queue_due("F" * 40, expires, clock.at) == 2
    assert service_key.queue_due("F" * 40, expires, clock.at + timedelta(days=1)) == 0
    assert {step for _, step in warnings()} == {"30 days"}


def test_a_renewed_key_arms_the_warnings_again_and_a_key_without_expiry_none(admins, clock):
    first = clock.at + timedelta(days=60)
    assert service_key.queue_due("F" * 40, first, clock.at) == 2
    renewed = first + timedelta(days=730)
    assert service_key.queue_due("F" * 40, renewed, renewed - timedelta(days=60)) == 2
    assert service_key.queue_due("F" * 40, None, clock.at) == 0
    assert len(warnings()) == 4


def test_the_warning_is_a_signed_mail_that_says_what_to_do_and_by_when(
    admins, clock, keyring, settings
):
    expires = datetime(2027, 1, 24, 12, 0, tzinfo=UTC)
    service_key.queue_due(keyring.fingerprint(), expires, expires - timedelta(days=30))
    delivery = Delivery.select().where(Delivery.kind == "service-key-expiry").first()
    raw = outbox.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
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
