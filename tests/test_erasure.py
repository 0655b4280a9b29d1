"""Erasure on request: `forewarn registrants erase ID` and `forewarn reporters erase ADDRESS`.

The whole database is searched for the address afterwards. The one exception, by design: audit
events recorded before the erasure (the log is append-only, refused changes by a trigger) keep
what they recorded; the erasure's own event holds no personal data.
"""

import json
from datetime import timedelta

import pytest

from app.core.errors import Refused
from app.models import (
    ALL_MODELS,
    AuditEvent,
    Correspondence,
    Delivery,
    InboundMessage,
    PublicKey,
    Registrant,
    User,
    Vulnerability,
)
from app.privacy import erasure
from app.registry import renewal, vetting
from tests import mailcorpus as mc

pytestmark = pytest.mark.db

MAKER = "psirt@maker.example"
REPORTER = "Rita.Reporter@example.org"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


def places(needle: str, audit_before: int | None = None) -> list[str]:
    """Every table.column.row holding `needle` (any case), in text or bytes; audit events with
    an id up to `audit_before` are left out (written before the erasure, append-only)."""
    needle = needle.lower()
    found = []
    for model in ALL_MODELS:
        for row in model.select().dicts():
            if model is AuditEvent and audit_before is not None and row["id"] <= audit_before:
                continue
            for column, value in row.items():
                if isinstance(value, memoryview | bytes):
                    value = bytes(value).decode("utf-8", "replace")
                if needle in str(value).lower():
                    found.append(f"{model._meta.table_name}.{column}#{row['id']}")
    return found


def last_audit_id() -> int:
    last = AuditEvent.select().order_by(AuditEvent.id.desc()).first()
    return last.id if last is not None else 0


def add_registrant(maker, clock, admin_user) -> Registrant:
    added = vetting.add_by_admin(
        MAKER,
        "Maker Ltd",
        maker.cert,
        None,
        "t",
        clock.at,
        approve=True,
        products="Widget OS",
        package_urls="pkg:github/maker-ltd/widget-os",
    )
    Registrant.update(
        notes="met them at a conference", encryption_expires=clock.at + timedelta(days=10)
    ).where(Registrant.id == added.id).execute()
    renewal.queue_due(clock.at)  # mails to them and about them (admins told of the key)
    return Registrant.get_by_id(added.id)


def test_registrant_erase_removes_their_personal_data(db, clock, admin_user, maker):
    registrant = add_registrant(maker, clock, admin_user)
    assert Delivery.select().where(Delivery.recipient == MAKER).count() == 1
    assert any("delivery.payload" in p for p in places(MAKER))
    before = last_audit_id()
    erased = erasure.erase_registrant(registrant.id, "cli:test", clock.at)
    assert places(MAKER, audit_before=before) == []
    assert places("Widget OS", audit_before=before) == []
    assert places("maker-ltd/widget-os", audit_before=before) == []
    assert places("met them at a conference", audit_before=before) == []
    assert places("BEGIN PGP PUBLIC KEY", audit_before=before) == []
    # The audit trail before the erasure is kept as it was (and documented as such).
    assert places(MAKER) and all(p.startswith("audit_event.") for p in places(MAKER))
    registrant = Registrant.get_by_id(registrant.id)
    user = User.get_by_id(registrant.user_id)
    assert (registrant.status, registrant.organisation, user.active) == (
        "removed",
        "[erased]",
        False,
    )
    assert user.email == f"erased-{user.id}@erased.invalid"
    assert registrant.pinned_fingerprint == maker.fingerprint  # a non-personal fact stays
    key = PublicKey.get_by_id(registrant.key_id)
    assert (key.armored, key.usable) == ("", False)
    # The queued warning to them is not sent to the placeholder.
    assert Delivery.select().where(Delivery.state == "queued", Delivery.user == user).count() == 0
    event = AuditEvent.select().where(AuditEvent.action == "registrant.erase").get()
    assert event.actor_label == "cli:test" and event.target == f"registrant:{registrant.id}"
    assert "maker" not in (event.details + event.target).lower()
    assert erased.line().startswith(f"erased registrant {registrant.id}: ")
    with pytest.raises(Refused, match="already erased"):
        erasure.erase_registrant(registrant.id, "cli:test", clock.at)


def reported(number: int, clock, sender: str = REPORTER) -> Vulnerability:
    name = "Rita Reporter" if sender == REPORTER else "Someone Else"
    key = PublicKey.create(
        fingerprint="A" * 40,
        armored=f"-----BEGIN PGP PUBLIC KEY BLOCK----- {sender}",
        created_at=clock.at,
    )
    v = Vulnerability.create(
        tracking_id=f"SEC-{number}",
        title="overflow",
        reporter_email=sender,
        reporter_name=name,
        reporter_key=key,
        reported_at=clock.at,
        created_at=clock.at,
        updated_at=clock.at,
    )
    inbound = InboundMessage.create(
        raw=f"From: {name} <{sender}>\r\n\r\nthe bug\r\n".encode(),
        sha256="0" * 64,
        envelope_from=sender,
        received_at=clock.at,
        state="processed",
    )
    Correspondence.create(
        vulnerability=v,
        direction="in",
        message=inbound,
        at=clock.at,
        subject="bug",
        text=f"From {sender}: the bug",
        sender=sender,
    )
    Correspondence.create(vulnerability=v, direction="out", at=clock.at, text="Thanks, fixed")
    Delivery.create(
        kind="ack",
        vulnerability=v,
        recipient=sender,
        payload="{}",
        state="sent",
        created_at=clock.at,
    )
    return v


def test_reporter_erase_removes_them_from_every_vulnerability(db, clock):
    first, second = reported(1, clock), reported(2, clock)
    other = reported(3, clock, sender="someone@else.example")
    junk = InboundMessage.create(
        raw=b"spam",
        sha256="1" * 64,
        envelope_from=REPORTER.lower(),
        received_at=clock.at,
        state="junk",
    )
    before = last_audit_id()
    erased = erasure.erase_reporter(REPORTER.lower(), "cli:test", clock.at)  # any case
    assert erased.counts == {
        "vulnerabilities": 2,
        "correspondence": 2,
        "messages": 3,
        "keys": 2,
        "deliveries": 2,
    }
    assert places("rita.reporter", audit_before=before) == []
    assert places("Rita Reporter", audit_before=before) == []
    for v in (first, second):
        v = Vulnerability.get_by_id(v.id)
        assert (v.reporter_email, v.reporter_name, v.reporter_key) == ("", "", None)
        rows = {c.direction: c for c in v.correspondence}
        assert rows["in"].text.startswith("[purged ") and bytes(rows["in"].message.raw) == b""
        assert rows["out"].text == "Thanks, fixed"  # ours, not theirs
    assert bytes(InboundMessage.get_by_id(junk.id).raw) == b""
    assert Vulnerability.get_by_id(other.id).reporter_email == "someone@else.example"
    event = AuditEvent.select().where(AuditEvent.action == "reporter.erase").get()
    assert json.loads(event.details)["vulnerabilities"] == 2
    assert "rita" not in (event.details + event.target).lower()
    assert erased.line().startswith("erased reporter: 2 vulnerabilities")
    assert erased.credits_to_edit == ()


def test_reporter_erase_removes_what_they_wrote_into_someone_elses_thread(db, clock):
    theirs = reported(1, clock, sender="someone@else.example")
    offered = PublicKey.create(fingerprint="B" * 40, armored=f"KEY {REPORTER}", created_at=clock.at)
    Correspondence.create(
        vulnerability=theirs,
        direction="in",
        at=clock.at,
        subject="me too",
        text="Rita here: I found it too.",
        sender=REPORTER,
        offered_key=offered,
    )
    before = last_audit_id()
    erased = erasure.erase_reporter(REPORTER, "cli:test", clock.at)
    assert erased.counts["correspondence"] == 1
    assert places("rita", audit_before=before) == []
    assert Vulnerability.get_by_id(theirs.id).reporter_email == "someone@else.example"
    assert "the bug" in Correspondence.get(Correspondence.sender == "someone@else.example").text


def test_reporter_erase_stops_crediting_them_and_names_credits_that_still_do(db, clock):
    first, second, third = (reported(n, clock) for n in (1, 2, 3))
    Vulnerability.update(credits="Found by RITA REPORTER of Example Labs").where(
        Vulnerability.id == first.id
    ).execute()
    Vulnerability.update(credits=f"Thanks to {REPORTER}").where(
        Vulnerability.id == third.id
    ).execute()

    erased = erasure.erase_reporter(REPORTER, "cli:test", clock.at)

    assert erased.credits_to_edit == ("SEC-1", "SEC-3")
    assert erased.line().endswith(
        "; the credits of SEC-1, SEC-3 still name them: edit them on the workspace page"
    )
    assert "\n" not in erased.line()
    for v in (first, second, third):
        assert not Vulnerability.get_by_id(v.id).credit_reporter
    event = AuditEvent.select().where(AuditEvent.action == "reporter.erase").get()
    assert "rita" not in event.details.lower()


def test_unknown_ids_and_addresses_are_refused(db, clock):
    with pytest.raises(Refused, match="no registrant with id 42"):
        erasure.erase_registrant(42, "t", clock.at)
    with pytest.raises(Refused, match="no registrant"):
        erasure.erase_registrant("x", "t", clock.at)
    with pytest.raises(Refused, match="no vulnerability or message"):
        erasure.erase_reporter("nobody@example.org", "t", clock.at)
    with pytest.raises(Refused, match="not an e-mail address"):
        erasure.erase_reporter("nobody", "t", clock.at)
    assert AuditEvent.select().where(AuditEvent.action.endswith(".erase")).count() == 0


def test_erase_commands_print_one_line_and_refuse_in_one_line(
    forewarn, db, clock, admin_user, maker
):
    registrant = add_registrant(maker, clock, admin_user)
    reported(1, clock)
    done = forewarn("registrants", "erase", str(registrant.id))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "erased registrant" in done.stdout
    done = forewarn("reporters", "erase", REPORTER)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("erased reporter: 1 vulnerabilities")
    assert len(done.stdout.splitlines()) == 1
    for args, error in (
        (("registrants", "erase", "999"), "forewarn: no registrant with id 999"),
        (
            ("registrants", "erase", str(registrant.id)),
            f"forewarn: registrant {registrant.id} was already erased",
        ),
        (
            ("reporters", "erase", "nobody@example.org"),
            "forewarn: no vulnerability or message from that address",
        ),
    ):
        done = forewarn(*args)
        assert done.returncode == 1
        assert done.stderr.splitlines() == [error]
