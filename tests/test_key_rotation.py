"""`forewarn key announce-rotation`: after a key rotation, every approved, subscribed
registrant gets one signed notice with both fingerprints and where to fetch the new key.
`forewarn key announce-compromise`: after a compromise, they and each reporter of an open
vulnerability get one signed notice with the old key's revocation attached."""

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.errors import Refused
from app.models import AuditEvent, Delivery, Registrant, Vulnerability
from app.outbox import letters, sending
from app.registry import vetting
from app.servicekey import rotation
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
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=n < 4)
        for n, m in enumerate(makers)
    ]
    vetting.decide(made[2], "suspended", None, "t", clock.at)
    Registrant.update(unsubscribed=True).where(Registrant.id == made[3].id).execute()
    vetting.decide(made[5], "rejected", None, "t", clock.at, reason="not a maker")
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
    rows = Delivery.select().where(Delivery.kind == rotation.KIND).order_by(Delivery.id)
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
    [event] = AuditEvent.select().where(AuditEvent.action == rotation.ACTION)
    assert event.target == new and event.actor_label.startswith("cli:")
    assert json.loads(event.details) == {"old": old_key, "new": new, "registrants": 2}


def test_the_notice_is_signed_by_the_new_key_not_encrypted_and_says_what_to_do(
    registrants, keyring, old_key, settings, clock, tmp_path
):
    assert keyring.certified_by(old_key)
    new = keyring.fingerprint()
    rotation.announce(old_key, new, new, True, "t", clock.at)
    delivery = Delivery.get(Delivery.kind == rotation.KIND)
    raw = sending.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
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
    assert sending.envelope_sender(delivery, settings).startswith(
        f"security-bounces+{delivery.id}-"
    )
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_without_a_certification_by_the_old_key_the_notice_does_not_claim_one(
    registrants, keyring, settings, clock
):
    old = mc.make_reporter("old@example.org", "Old").fingerprint  # never certified the new key
    new = keyring.fingerprint()
    assert not keyring.certified_by(old)
    done = rotation.announce(old, new, new, keyring.certified_by(old), "t", clock.at)
    assert done.line().endswith("(the new key carries no certification by the old)")
    delivery = Delivery.get(Delivery.kind == rotation.KIND)
    raw = sending.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
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


# -- after a compromise: `forewarn key announce-compromise` (docs/keys.md, 3.6) ----------------


@dataclass(frozen=True)
class CompromisedKey:
    fingerprint: str
    revoked: bytes  # the public key carrying its revocation, as docs/keys.md 3.2 exports it
    unrevoked: bytes
    bare_revocation: bytes  # gpg's .rev file, its ":" removed: a signature, no key


def compromised_key() -> CompromisedKey:
    """A key made and then revoked with gpg exactly as docs/keys.md 3.2 says."""
    with mc.scratch_dir() as home:
        mc.gpg_in(home, "--quick-gen-key", "Old <security@localhost>", "ed25519", "sign", "1y")
        listing = mc.gpg_in(home, "--with-colons", "--list-secret-keys").decode()
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        unrevoked = mc.gpg_in(home, "--armor", "--export", fpr)
        rev = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_bytes()
        rev = rev.replace(b":-----BEGIN", b"-----BEGIN")
        mc.gpg_in(home, "--import", input=rev)
        revoked = mc.gpg_in(home, "--armor", "--export", fpr)
    return CompromisedKey(fpr, revoked, unrevoked, rev)


@pytest.fixture(scope="module")
def old_compromised():
    return compromised_key()


@pytest.fixture
def reports(db, clock):
    """Open reports by rita (three, one under another case of her address) and by olga; closed
    ones by paul (published) and rob (rejected); one open report whose reporter was erased."""
    made = [
        ("rita@example.org", "new"),
        ("olga@example.net", "fixed"),
        ("paul@example.org", "published"),
        ("Rita@Example.org", "triage"),
        ("rob@example.org", "rejected"),
        ("", "accepted"),
        ("rita@example.org", "accepted"),
    ]
    return [
        Vulnerability.create(
            tracking_id=f"SEC-2026-{n:04d}",
            title=f"Report {n}",
            reporter_email=address,
            status=status,
            reported_at=clock.at,
            created_at=clock.at,
            updated_at=clock.at,
        )
        for n, (address, status) in enumerate(made, start=1)
    ]


def compromise_told() -> list[tuple[str, str, dict]]:
    kinds = (rotation.COMPROMISE_KIND, rotation.COMPROMISE_REPORTER_KIND)
    rows = Delivery.select().where(Delivery.kind.in_(kinds)).order_by(Delivery.id)
    return [(d.kind, d.recipient, json.loads(d.payload)) for d in rows]


def signed_content(raw: bytes) -> tuple[str, dict[str, bytes]]:
    """The text of a signed message's signed part and its attachments (name: bytes)."""
    text, _signature = parts_as_sent(raw)
    part = parse(text)
    if part.get_content_type() == "text/plain":
        return part.get_content().replace("\r\n", "\n"), {}
    body = part.get_body(("plain",)).get_content().replace("\r\n", "\n")
    files = {a.get_filename(): a.get_content() for a in part.iter_attachments()}
    return body, files


def test_the_compromise_command_tells_registrants_and_each_open_reporter_once(
    forewarn, registrants, reports, keyring, old_compromised, tmp_path
):
    old, new = old_compromised.fingerprint, keyring.fingerprint()
    revocation = tmp_path / "old-revoked.asc"
    revocation.write_bytes(old_compromised.revoked)
    args = ("key", "announce-compromise", "--old", old, "--new", new)
    args += ("--revocation", str(revocation))
    dry = forewarn(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == (
        f"would tell 2 registrants and 2 reporters about the compromise {old} -> {new}\n"
    )
    assert compromise_told() == []
    first = forewarn(*args, "--since", "2026-11-20T14:00Z")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"queued the key-compromise notice to 2 registrants and 2 reporters: {old} -> {new}, "
        "untrusted since 2026-11-20 14:00 UTC\n"
    )
    told = compromise_told()
    assert [(kind, to) for kind, to, _ in told] == [
        ("key-compromise", "psirt@maker0.example"),
        ("key-compromise", "psirt@maker1.example"),
        ("key-compromise-reporter", "rita@example.org"),
        ("key-compromise-reporter", "olga@example.net"),
    ]
    assert [p["registrant"] for _, _, p in told[:2]] == [r.id for r in registrants[:2]]
    assert all("registrant" not in p for _, _, p in told[2:])  # no List-Unsubscribe for them
    assert told[2][2]["reports"] == ["SEC-2026-0001", "SEC-2026-0004", "SEC-2026-0007"]
    assert told[3][2]["reports"] == ["SEC-2026-0002"]
    assert {p["since"] for _, _, p in told} == {"2026-11-20T14:00:00+00:00"}
    again = forewarn(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already announced the compromise {old} -> {new} on ")
    assert again.stdout.endswith(": none queued\n")
    assert len(compromise_told()) == 4
    [event] = AuditEvent.select().where(AuditEvent.action == rotation.COMPROMISE_ACTION)
    assert event.target == new and event.actor_label.startswith("cli:")
    assert json.loads(event.details) == {
        "old": old,
        "new": new,
        "since": "2026-11-20T14:00:00+00:00",
        "registrants": 2,
        "reporters": 2,
    }
    # The planned rotation's notice for the same pair is another matter: still possible.
    assert rotation.announced_at(old, new) is None


def test_a_revocation_of_another_key_or_without_revocation_is_refused(
    forewarn, registrants, reports, keyring, old_compromised, tmp_path, clock
):
    old, new = old_compromised.fingerprint, keyring.fingerprint()
    unrevoked = tmp_path / "old.asc"
    unrevoked.write_bytes(old_compromised.unrevoked)
    done = forewarn(
        "key", "announce-compromise", "--old", old, "--new", new, "--revocation", str(unrevoked)
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"the key {old} in it carries no revocation" in done.stderr
    assert "docs/keys.md 3.2" in done.stderr
    assert f"--export --armor {old} > old-revoked.asc" in done.stderr
    other = compromised_key()
    cases = {
        other.revoked: f"it is the key {other.fingerprint}, not {old}",
        old_compromised.bare_revocation: "it is not an OpenPGP public key",
        old_compromised.revoked + other.revoked: f"it holds 2 keys, not the key {old} alone",
        mc.run("gpg", "--dearmor", input=old_compromised.revoked): "not an ASCII-armored",
    }
    for data, why in cases.items():
        with pytest.raises(Refused, match=re.escape(why)):
            rotation.announce_compromise(old, new, new, data, "f.asc", None, "t", clock.at)
    assert compromise_told() == []
    assert not AuditEvent.select().where(AuditEvent.action == rotation.COMPROMISE_ACTION)
    with pytest.raises(Refused, match="is in the future"):
        rotation.announce_compromise(
            old,
            new,
            new,
            old_compromised.revoked,
            "f.asc",
            clock.at + timedelta(hours=1),
            "t",
            clock.at,
        )


@pytest.fixture
def compromise_mail(registrants, reports, keyring, old_compromised, settings, clock):
    """The registrant's and the reporter's message as the outbox composes them."""
    old, new = old_compromised.fingerprint, keyring.fingerprint()
    since = clock.at - timedelta(days=3)
    rotation.announce_compromise(
        old, new, new, old_compromised.revoked, "old-revoked.asc", since, "t", clock.at
    )
    mails = {}
    for kind in (rotation.COMPROMISE_KIND, rotation.COMPROMISE_REPORTER_KIND):
        delivery = Delivery.select().where(Delivery.kind == kind).order_by(Delivery.id).first()
        raw = sending.compose(delivery, "<t@example.org>", keyring, settings, clock.at)
        mails[kind] = (delivery, raw)
    return mails


def test_the_compromise_notice_is_signed_by_the_new_key_and_leads_with_the_action(
    compromise_mail, keyring, old_compromised, settings, tmp_path
):
    old, new = old_compromised.fingerprint, keyring.fingerprint()
    cert = tmp_path / "new.asc"
    cert.write_text(keyring.export_public())
    bodies = {}
    for kind, (_delivery, raw) in compromise_mail.items():
        assert parse(raw).get_content_type() == "multipart/signed"  # signed, not encrypted
        text, signature = parts_as_sent(raw)
        assert sqop_verifies(text, body_of(signature), cert, tmp_path)
        assert not sqop_verifies(
            text.replace(old.encode(), new.encode()), body_of(signature), cert, tmp_path
        )
        body, _files = signed_content(raw)
        bodies[kind] = body
        assert body.startswith(
            "Stop trusting our old OpenPGP key now"
        )  # what the reader must do, first
        assert body.index(old) < body.index("2026-11-22 12:00 UTC") < body.index(new)
        assert f"gpg --import revocation-{old}.asc" in body
        assert f"{settings.base_url}/key.asc" in body
        assert "/.well-known/security.txt" in body and "WKD" in body
        assert "certif" not in body.lower()  # a compromised key's certification proves nothing
        assert max(len(line) for line in body.splitlines()) <= 72
    registrant_body = bodies[rotation.COMPROMISE_KIND]
    reporter_body = bodies[rotation.COMPROMISE_REPORTER_KIND]
    assert "SEC-2026" not in registrant_body and "your registration" in registrant_body
    assert "reporter of SEC-2026-0001, SEC-2026-0004, SEC-2026-0007" in " ".join(
        reporter_body.split()
    )
    # A reporter subscribed to nothing: no list headers, the plain envelope sender.
    delivery, raw = compromise_mail[rotation.COMPROMISE_REPORTER_KIND]
    assert parse(raw)["List-Unsubscribe"] is None
    assert sending.envelope_sender(delivery, settings) == settings.from_address


def test_the_letter_carries_the_revocation_byte_for_byte(
    compromise_mail, keyring, old_compromised, settings, clock
):
    for delivery, _raw in compromise_mail.values():
        text = letters.text_for(delivery, keyring, settings, clock.at)
        assert text.certificate is None and not text.unsigned
        [attachment] = text.attachments
        assert attachment.filename == f"revocation-{old_compromised.fingerprint}.asc"
        assert attachment.content == old_compromised.revoked
        assert attachment.content_type == "application/pgp-keys"


def test_the_signed_message_carries_the_revocation_byte_for_byte(compromise_mail, old_compromised):
    for _delivery, raw in compromise_mail.values():
        _body, files = signed_content(raw)
        assert files == {f"revocation-{old_compromised.fingerprint}.asc": old_compromised.revoked}


def test_the_registrant_compromise_notice_is_registrant_mail(compromise_mail, settings):
    delivery, raw = compromise_mail[rotation.COMPROMISE_KIND]
    assert sending.envelope_sender(delivery, settings).startswith(
        f"security-bounces+{delivery.id}-"
    )
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
