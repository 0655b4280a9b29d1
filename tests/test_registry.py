"""The vulnerability registry: sign-up, proof of key possession, vetting, admin additions."""

import json
import re
from datetime import timedelta

import pytest

from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import AuditEvent, Delivery, PublicKey, Registrant
from app.outbox import sending
from app.registry import proof, vetting
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@maker.example", "Maker PSIRT")


@pytest.fixture(scope="module")
def other():
    return mc.make_reporter("security@other.example", "Other PSIRT")


def form(uploaded, **changes) -> vetting.SignUp:
    values = {
        "email": "psirt@maker.example",
        "password": PASSWORD,
        "organisation": "Maker Ltd",
        "products": "Maker gateway",
        "website": "https://maker.example",
        "justification": "We ship 2 million gateways running the project.",
        "key": uploaded,
        "agrees_to_policy": True,
    }
    values.update(changes)
    return vetting.SignUp(**values)


def signed_up(maker, clock):
    return vetting.sign_up(form(maker.cert), clock.at)


def proof_link(keyring, settings, clock, maker, tmp_path) -> str:
    """Send the verification mail over SMTP and read the link the way the registrant would:
    by decrypting it with their key (Sequoia)."""
    [proof] = Delivery.select().where(Delivery.kind == "verify-key").order_by(Delivery.id.desc())
    sink = SmtpSink()
    try:
        assert (
            sending.send(
                proof.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at
            )
            == "sent"
        )
        raw = sink.received[0].data
    finally:
        sink.stop()
    assert parse(raw).get_content_type() == "multipart/encrypted"
    assert b"/registry/verify/" not in raw  # the link travels encrypted only
    key = tmp_path / "maker.key"
    key.write_bytes(maker.secret)
    entity = run("sqop", "decrypt", str(key), input=encrypted_payload(raw)).stdout
    body = text_of(parts_as_sent(entity)[0])
    return re.search(r"/registry/verify/(\S+)", body).group(1)


def test_sign_up_keeps_the_key_unproven_and_sends_the_proof(db, clock, maker):
    registrant = signed_up(maker, clock)
    assert registrant.status == "unverified"
    assert registrant.policy_version == vetting.POLICY_VERSION
    assert registrant.policy_agreed_at == clock.at
    assert registrant.pinned_fingerprint is None
    [key] = PublicKey.select()
    assert (key.fingerprint, key.usable) == (maker.fingerprint, False)
    [proof] = Delivery.select().where(Delivery.kind == "verify-key")
    assert proof.recipient == "psirt@maker.example" and proof.fingerprint == maker.fingerprint
    assert AuditEvent.get(AuditEvent.action == "registry.sign_up").target == "psirt@maker.example"


def test_opening_the_encrypted_link_pins_the_key_and_asks_for_review(
    db, clock, maker, keyring, settings, tmp_path
):
    signed_up(maker, clock)
    token = proof_link(keyring, settings, clock, maker, tmp_path)
    registrant = proof.verify(token, secret_key(settings), clock.at + timedelta(hours=1))
    assert registrant.status == "pending_review"
    assert registrant.pinned_fingerprint == maker.fingerprint
    assert PublicKey.get_by_id(registrant.key_id).usable
    with pytest.raises(Refused, match="already used"):
        proof.verify(token, secret_key(settings), clock.at + timedelta(hours=2))


def test_tampered_and_expired_links_are_refused(db, clock, maker, settings):
    registrant = signed_up(maker, clock)
    key = PublicKey.get()
    token = proof.verification_token(secret_key(settings), registrant.id, key.id, clock.at)
    with pytest.raises(Refused, match="not valid"):
        proof.verify(token[:-3] + "abc", secret_key(settings), clock.at)
    with pytest.raises(Refused, match="expired"):
        proof.verify(token, secret_key(settings), clock.at + timedelta(hours=49))
    forged = proof.verification_token("another secret", registrant.id, key.id, clock.at)
    with pytest.raises(Refused, match="not valid"):
        proof.verify(forged, secret_key(settings), clock.at)
    assert Registrant.get_by_id(registrant.id).status == "unverified"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "not an address"}, "not an email"),
        ({"password": "short"}, "at least 12"),
        ({"organisation": " "}, "organisation"),
        ({"justification": ""}, "why you qualify"),
        ({"agrees_to_policy": False}, "embargo policy"),
        ({"key": b"garbage"}, "key was not"),
    ],
)
def test_a_sign_up_the_rules_refuse_creates_nothing(db, clock, maker, changes, message):
    with pytest.raises(Refused, match=message):
        vetting.sign_up(form(maker.cert, **changes), clock.at)
    assert Registrant.select().count() == 0 and PublicKey.select().count() == 0


def test_a_second_account_for_an_email_or_a_key_in_use_is_refused(db, clock, maker, other):
    vetting.add_by_admin("psirt@maker.example", "Maker", maker.cert, None, "t", clock.at)
    with pytest.raises(Refused, match="already exists"):
        signed_up(maker, clock)
    with pytest.raises(Refused, match="already registered for another account"):
        vetting.add_by_admin(
            "security@other.example", "Other", maker.cert, None, "t", clock.at, allow_other_uid=True
        )


def test_vetting_follows_the_states_and_rejection_is_mailed_with_its_reason(
    db, clock, maker, keyring, settings, tmp_path
):
    signed_up(maker, clock)
    registrant = proof.verify(
        proof_link(keyring, settings, clock, maker, tmp_path), secret_key(settings), clock.at
    )
    with pytest.raises(Refused, match="needs a reason"):
        vetting.decide(registrant, "rejected", None, "admin", clock.at)
    approved = vetting.decide(registrant, "approved", None, "admin", clock.at)
    assert approved.status == "approved" and approved.last_confirmed_at == clock.at
    suspended = vetting.decide(approved, "suspended", None, "admin", clock.at)
    assert vetting.decide(suspended, "approved", None, "admin", clock.at).status == "approved"
    actions = [
        e.action
        for e in AuditEvent.select()
        .where(AuditEvent.action.startswith("registry."))
        .order_by(AuditEvent.id)
    ]
    assert actions[-3:] == ["registry.approved", "registry.suspended", "registry.approved"]
    with pytest.raises(Refused, match="it can become: removed, suspended"):
        vetting.decide(approved, "rejected", None, "admin", clock.at, reason="late")


def test_an_unverified_registrant_cannot_be_approved(db, clock, maker):
    registrant = signed_up(maker, clock)
    with pytest.raises(Refused, match="it can become: removed"):
        vetting.decide(registrant, "approved", None, "admin", clock.at)


def test_an_admin_adds_a_registrant_with_the_key_pinned_without_proof(db, clock, maker):
    added = vetting.add_by_admin(
        "PSIRT@maker.example", "Maker Ltd", maker.cert, None, "cli:root", clock.at, approve=True
    )
    assert (added.status, added.pinned_fingerprint) == ("approved", maker.fingerprint)
    assert Delivery.select().count() == 0  # no proof mail
    event = AuditEvent.get(AuditEvent.action == "registry.admin_add")
    assert json.loads(event.details)["without_proof"] is True
    assert event.actor_label == "cli:root"
    assert vetting.summary(added) == {
        "id": added.id,
        "email": "psirt@maker.example",
        "org": "Maker Ltd",
        "status": "approved",
        "fingerprint": maker.fingerprint,
        "key_expires": added.encryption_expires.isoformat() if added.encryption_expires else None,
    }


def test_only_approved_organisations_that_opted_in_are_listed_publicly(db, clock, maker, other):
    vetting.add_by_admin(
        "psirt@maker.example", "Maker Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    vetting.add_by_admin("security@other.example", "Other Inc", other.cert, None, "t", clock.at)
    Registrant.update(listed_publicly=True).execute()
    assert [r.organisation for r in vetting.public_members()] == ["Maker Ltd"]


def test_removing_a_registrant_disables_the_account_and_keeps_the_history(db, clock, maker):
    from app.accounts import team
    from app.models import User

    added = vetting.add_by_admin(
        "psirt@maker.example", "Maker Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    removed = vetting.decide(added, "removed", None, "admin", clock.at)
    assert removed.status == "removed" and removed.unsubscribed
    assert User.get_by_id(added.user_id).active is False
    assert not PublicKey.get_by_id(added.key_id).usable
    with pytest.raises(team.LoginFailed):
        team.authenticate("psirt@maker.example", "x" * 20, "", clock.at, False)
    assert AuditEvent.get(AuditEvent.action == "registry.removed").target == "psirt@maker.example"
    with pytest.raises(Refused, match="it can become: nothing"):
        vetting.decide(removed, "approved", None, "admin", clock.at)
