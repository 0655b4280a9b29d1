"""`forewarn key announce-rotation`: after a key rotation, every approved, subscribed
registrant gets one signed notice with both fingerprints and where to fetch the new key."""

import json
from pathlib import Path

import pytest

from app import key_rotation, outbox, registry
from app.models import AuditEvent, Delivery, Registrant
from tests import mailcorpus as mc
from tests.openpgp import body_of, parse, parts_as_sent, sqop_verifies, text_of

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@maker{n}.example", f"Maker {n}") for n in range(6)]


@pytest.fixture
def registrants(db, clock, makers):
    """Makers 0 and 1 approved and subscribed (told); 2 suspended, 3 unsubscribed, 4 pending
    review, 5 rejected (none told)."""
    made = [
        registry.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=n < 4)
        for n, m in enumerate(makers)
    ]
    registry.decide(made[2], "suspended", None, "t", clock.at)
    Registrant.update(unsubscribed=True).where(Registrant.id == made[3].id).execute()
    registry.decide(made[5], "rejected", None, "t", clock.at, reason="not a maker")
    return made


@pytest.fixture
def old_key(keyring):
    """The retired key, in a home of its own, having certified the service key (the new one)
    as docs/keys.md 2.2 does."""
    with mc.scratch_dir() as home:
        mc.gpg_in(home, "--quick-gen-key", "Old <security@localhost>", "ed25519", "sign", "1y")
        listing = mc.gpg_in(home, "--with-colons", "--list-secret-keys").decode()
        old = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        new = keyring.fingerprint()
        mc.gpg_in(home, "--import", input=keyring.export_public().encode())
        mc.gpg_in(home, "--yes", "--quick-sign-key", new)
        mc.gpg_in(keyring.home, "--import", input=mc.gpg_in(home, "--export", new))
    return old


def told() -> list[str]:
    rows = Delivery.select().where(Delivery.kind == key_rotation.KIND).order_by(Delivery.id)
    return [d.recipient for d in rows]


def test_the_command_tells_each_approved_subscribed_registrant_once(
    forewarn, registrants, keyring, old_key
):
    new = keyring.fingerprint()
    dry = forewarn("key", "announce-rotation", "--old", old_key, "--new", new, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == f"would tell 2 registrants about {old_key} -> {new}\n"
    assert told() == []
    first = forewarn("key", "announce-rotation", "--old", old_key.lower(), "--new", new)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"queued the key-rotation notice to 2 registrants: {old_key} -> {new}\n"
    assert told() == ["psirt@maker0.example", "psirt@maker1.example"]
    again = forewarn("key", "announce-rotation", "--old", old_key, "--new", new)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already announced {old_key} -> {new} on ")
    assert "none queued" in again.stdout
    assert len(told()) == 2
    [event] = AuditEvent.select().where(AuditEvent.action == key_rotation.ACTION)
    assert event.target == new and event.actor_label.startswith("cli:")
    assert json.loads(event.details) == {"old": old_key, "new": new, "registrants": 2}


def test_the_notice_is_signed_by_the_new_key_not_encrypted_and_says_what_to_do(
    registrants, keyring, old_key, settings, clock, tmp_path
):
    assert keyring.certified_by(old_key)
    new = keyring.fingerprint()
    key_rotation.announce(old_key, new, new, True, "t", clock.at)
    delivery = Delivery.get(Delivery.kind == key_rotation.KIND)
    raw = outbox.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
    assert parse(raw).get_content_type() == "multipart/signed"
    text, signature = parts_as_sent(raw)
    cert = Path(tmp_path / "new.asc")
    cert.write_text(keyring.export_public())
    assert sqop_verifies(text, body_of(signature), cert, tmp_path)
    assert not sqop_verifies(
        text.replace(b"Old key", b"0ld key"), body_of(signature), cert, tmp_path
    )
    body = text_of(text)
    assert body.startswith("Please replace the")  # what the reader must do, first
    assert f"Old key:  {old_key}" in body and f"New key:  {new}" in body
    assert f"{settings.base_url}/key.asc" in body
    assert "/.well-known/security.txt" in body and "WKD" in body
    assert "certified by the old one" in body
    assert max(len(line) for line in body.splitlines()) <= 72
    # Registrant mail: a bounce maps back to its delivery (VERP), and one click unsubscribes.
    assert outbox.envelope_sender(delivery, settings).startswith(f"security-bounces+{delivery.id}@")
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_without_a_certification_by_the_old_key_the_notice_does_not_claim_one(
    registrants, keyring, settings, clock
):
    old = mc.make_reporter("old@example.org", "Old").fingerprint  # never certified the new key
    new = keyring.fingerprint()
    assert not keyring.certified_by(old)
    done = key_rotation.announce(old, new, new, keyring.certified_by(old), "t", clock.at)
    assert done.line().endswith("(the new key carries no certification by the old)")
    delivery = Delivery.get(Delivery.kind == key_rotation.KIND)
    raw = outbox.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
    assert "certified" not in text_of(parts_as_sent(raw)[0])


def test_it_refuses_when_the_new_key_is_not_yet_the_service_key(
    forewarn, registrants, keyring, old_key
):
    done = forewarn("key", "announce-rotation", "--old", keyring.fingerprint(), "--new", old_key)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"the service key is {keyring.fingerprint()}, not --new {old_key}" in done.stderr
    assert told() == []
    bad = forewarn("key", "announce-rotation", "--old", "nonsense", "--new", old_key)
    assert bad.returncode == 1 and "is not a key fingerprint" in bad.stderr
