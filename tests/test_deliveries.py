"""One way into the outbox: every feature queues its mail through app.outbox.deliveries, in one
shape, and only kinds of mail the outbox knows how to write."""

import ast
import json
from datetime import timedelta

import pytest

from app.accounts import team
from app.models import Delivery, Registrant, User, Vulnerability
from app.outbox import deliveries
from app.registry import renewal, subscriptions
from tests.conftest import PASSWORD, ROOT


@pytest.fixture
def vulnerability(db, clock):
    return Vulnerability.create(
        tracking_id="SEC-2026-0001",
        title="Heap overflow in the packet parser",
        reporter_email="ada@example.net",
        reporter_name="Ada",
        reported_at=clock.at,
        embargo_until=clock.at + timedelta(days=90),
        fix_due=clock.at + timedelta(days=30),
        created_at=clock.at,
        updated_at=clock.at,
    )


@pytest.fixture
def people(db, clock):
    """Two admins (one of them disabled), a team member, and a registrant's account."""
    made = {
        role: team.create_team_account(f"{role}@example.org", PASSWORD, kind, clock.at, by="test")
        for role, kind in (("admin", "admin"), ("gone", "admin"), ("member", "team"))
    }
    User.update(active=False).where(User.id == made["gone"].user.id).execute()
    User.create(
        email="psirt@maker.example",
        password_hash="x",
        role="registrant",
        session_token="s",
        created_at=clock.at,
    )
    return {name: User.get_by_id(account.user.id) for name, account in made.items()}


def test_a_mail_of_a_kind_the_outbox_cannot_write_is_refused_and_nothing_is_queued(db, clock):
    with pytest.raises(ValueError, match="no such kind of delivery: 'acknowledgement'"):
        deliveries.queue("acknowledgement", "ada@example.net", clock.at)
    with pytest.raises(ValueError):
        deliveries.queue_to_admins("nonsense", clock.at, {})
    assert Delivery.select().count() == 0


def test_a_queued_mail_is_due_when_it_was_queued_with_its_payload_as_sorted_json(
    db, clock, vulnerability
):
    delivery = deliveries.queue(
        "reply",
        "ada@example.net",
        clock.at,
        vulnerability=vulnerability,
        payload={"z": 1, "correspondence": 7},
    )
    row = Delivery.get_by_id(delivery.id)
    assert (row.kind, row.recipient, row.state) == ("reply", "ada@example.net", "queued")
    assert row.vulnerability_id == vulnerability.id
    assert row.payload == '{"correspondence": 7, "z": 1}'
    assert row.created_at == row.next_attempt_at == clock.at
    bare = deliveries.queue("unreadable", "someone@example.org", clock.at)
    assert Delivery.get_by_id(bare.id).payload == "{}"


def test_a_mail_to_the_admins_goes_to_each_active_admin_and_nobody_else(db, clock, people):
    told = deliveries.queue_to_admins("service-key-expiry", clock.at, {"step": "30 days"})
    assert [u.email for u in told] == ["admin@example.org"]
    rows = list(Delivery.select().order_by(Delivery.id))
    assert [(d.recipient, d.user_id, d.payload) for d in rows] == [
        ("admin@example.org", people["admin"].id, '{"step": "30 days"}')
    ]


def test_a_mail_to_the_team_goes_to_each_active_member_and_admin(db, clock, people, vulnerability):
    told = deliveries.queue_to_team("lift-held", clock.at, {}, vulnerability=vulnerability)
    assert sorted(u.email for u in told) == ["admin@example.org", "member@example.org"]
    rows = Delivery.select().where(Delivery.kind == "lift-held")
    assert sorted((d.recipient, d.vulnerability_id) for d in rows) == [
        ("admin@example.org", vulnerability.id),
        ("member@example.org", vulnerability.id),
    ]


def test_the_registry_s_mails_are_written_in_one_shape(db, clock, people):
    """Whatever feature queues it, a delivery's payload is JSON with sorted keys and it is due
    when it was queued (before, the notice that alerts stopped was written unsorted)."""
    maker = User.get(User.email == "psirt@maker.example")
    registrant = Registrant.create(
        user=maker,
        organisation="Maker Ltd",
        status="approved",
        created_at=clock.at - timedelta(days=400),
        updated_at=clock.at - timedelta(days=400),
        last_confirmed_at=clock.at - timedelta(days=366),
    )
    subscriptions.stop(registrant, clock.at)
    assert renewal.queue_due(clock.at) == 1
    rows = list(Delivery.select().order_by(Delivery.id))
    assert [(d.kind, d.recipient, d.user_id) for d in rows] == [
        ("unsubscribed", maker.email, maker.id),
        ("reconfirm", maker.email, maker.id),
    ]
    for d in rows:
        assert d.payload == json.dumps(json.loads(d.payload), sort_keys=True), d.kind
        assert d.created_at == d.next_attempt_at == clock.at
        assert json.loads(d.payload)["registrant"] == registrant.id


def _hand_made_deliveries(path) -> list[int]:
    """Lines that create Delivery rows directly (Delivery.create / insert / insert_many /
    bulk_create, or Delivery(...))."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        constructed = isinstance(func, ast.Name) and func.id == "Delivery"
        inserted = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "Delivery"
            and func.attr in ("create", "insert", "insert_many", "bulk_create", "replace")
        )
        if constructed or inserted:
            lines.append(node.lineno)
    return lines


def test_no_feature_writes_a_delivery_by_hand():
    """Only app/outbox/deliveries.py makes Delivery rows: everything else calls queue()."""
    own = ROOT / "app" / "outbox" / "deliveries.py"
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "app").rglob("*.py"))
        if path != own and (lines := _hand_made_deliveries(path))
    }
    assert offenders == {}
    assert _hand_made_deliveries(own)  # the scan does see the one that exists
