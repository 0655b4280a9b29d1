"""The admins' registry list with 1,000 registrants (#17): small pages, search by organisation,
email or fingerprint, filters by status and key health, paging, pending applications first, the
same queries whatever the size; one page per registrant with its keys and the alerts it got."""

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.db import write_transaction
from app.models import (
    ALL_MODELS,
    Advisory,
    Answer,
    AuditEvent,
    Delivery,
    PublicKey,
    Registrant,
    User,
)
from app.registry import listing
from tests.conftest import PASSWORD, csrf_token

pytestmark = pytest.mark.db

N = 1000
LIMIT = 300 * 1024  # bytes: the bound for the list page


def fingerprint(n: int) -> str:
    return hashlib.sha256(f"registrant {n}".encode()).hexdigest()[:40].upper()


def status_of(n: int) -> str:
    """One in ten waits for review, a few are in every other state, the rest are approved."""
    if n % 10 == 0:
        return "pending_review"
    return {1: "unverified", 3: "suspended", 7: "rejected"}.get(n % 20, "approved")


def insert_registrants(count: int, at: datetime, start: int = 1) -> dict[int, dict]:
    """count registrants by bulk insert (no GnuPG): three shared key rows stand for a usable key,
    one that expires in 10 days and one marked unusable. Returns, by registrant id, what each
    was made as: status, key health at `at`, organisation, email, fingerprint."""
    keys = {
        "ok": PublicKey.create(fingerprint="0" * 40, armored="-", created_at=at),
        "expiring": PublicKey.create(
            fingerprint="1" * 40, armored="-", expires=at + timedelta(days=10), created_at=at
        ),
        "unusable": PublicKey.create(
            fingerprint="2" * 40, armored="-", usable=False, created_at=at
        ),
    }
    made: dict[str, dict] = {}
    users, registrants = [], []
    for n in range(start, start + count):
        status = status_of(n)
        email = f"psirt{n}@maker{n}.example"
        org = f"Maker {n:04d} Devices"
        health, key, ends = "ok", keys["ok"], at + timedelta(days=400)
        if status == "unverified":
            health, key, ends = "unusable", None, None
        elif n % 7 == 0:
            health, key = "expiring", keys["expiring"]  # the key ends first, not its subkey
        elif n % 11 == 0:
            health, key = "unusable", keys["unusable"]
        elif n % 13 == 0:
            health, ends = "unusable", at - timedelta(days=1)  # its encryption subkey expired
        elif n % 17 == 0:
            health, ends = "expiring", at + timedelta(days=29)
        users.append(
            {
                "email": email,
                "password_hash": "!unset",
                "role": "registrant",
                "session_token": f"t{n}",
                "created_at": at,
            }
        )
        registrants.append(
            {
                "organisation": org,
                "products": f"Gateway {n}",
                "justification": "We ship the project.",
                "status": status,
                "key": key.id if key else None,
                "pinned_fingerprint": fingerprint(n) if key else None,
                "encryption_expires": ends,
                "policy_version": "2026-11",
                "policy_agreed_at": at,
                "created_at": at - timedelta(minutes=n),
                "updated_at": at,
            }
        )
        made[email] = {
            "status": status,
            "health": health,
            "org": org,
            "email": email,
            "fingerprint": fingerprint(n) if key else None,
            "key": next((name for name, row in keys.items() if row is key), None),
        }
    with write_transaction():
        for first in range(0, len(users), 200):
            User.insert_many(users[first : first + 200]).execute()
        ids = dict(User.select(User.email, User.id).where(User.email.in_(list(made))).tuples())
        for row, user in zip(registrants, users, strict=True):
            row["user"] = ids[user["email"]]
        for first in range(0, len(registrants), 200):
            Registrant.insert_many(registrants[first : first + 200]).execute()
    rows = Registrant.select(Registrant.id, User.email).join(User).where(User.email.in_(list(made)))
    return {r.id: made[r.user.email] for r in rows}


@pytest.fixture
def registry(db, clock):
    return insert_registrants(N, clock.at)


@pytest.fixture
def admin(client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    return admin_user


def html(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, url
    return response.get_data(as_text=True)


def listed_ids(page: str) -> list[int]:
    return [
        int(i) for i in re.findall(r'<tr><th scope="row"><a href="/admin/registrants/(\d+)">', page)
    ]


def every_id(filters: listing.Filters, at) -> set[int]:
    found = listing.page(filters, 1, at, size=N + 1)
    assert found.pages == 1
    return {row.id for row in found.rows}


# -- the list page -------------------------------------------------------------------------------


def test_the_list_of_1000_stays_small_and_shows_one_page_of_rows(client, admin, registry):
    response = client.get("/admin/registrants/")
    assert response.status_code == 200
    assert len(response.data) < LIMIT
    page = response.get_data(as_text=True)
    assert len(listed_ids(page)) == listing.PAGE_SIZE
    assert f"{N} registrants" in page
    assert f"Page 1 of {N // listing.PAGE_SIZE}" in page
    assert '<form method="post" action="/admin/registrants/' not in page  # no per-row forms
    counts = {s: sum(1 for r in registry.values() if r["status"] == s) for s in ("approved",)}
    assert f"Approved ({counts['approved']})" in page


def test_pending_applications_come_first_then_organisations_in_order(client, admin, registry):
    pending = sorted(
        (r["org"].lower(), i) for i, r in registry.items() if r["status"] == "pending_review"
    )
    shown = []
    for number in range(1, 4):
        shown += listed_ids(html(client, f"/admin/registrants/?page={number}"))
    assert shown[: len(pending)] == [i for _, i in pending]
    rest = [registry[i]["org"].lower() for i in shown[len(pending) :]]
    assert rest and rest == sorted(rest)
    assert all(registry[i]["status"] != "pending_review" for i in shown[len(pending) :])


def test_paging_reaches_every_registrant_once_and_past_the_end_shows_the_last(
    client, admin, registry
):
    pages = N // listing.PAGE_SIZE
    first = html(client, "/admin/registrants/")
    second = html(client, "/admin/registrants/?page=2")
    assert set(listed_ids(first)).isdisjoint(listed_ids(second))
    assert 'href="/admin/registrants/?page=2" rel="next"' in first
    assert f'href="/admin/registrants/?page={pages}">Last' in first
    seen = []
    for number in range(1, pages + 1):
        seen += listed_ids(html(client, f"/admin/registrants/?page={number}"))
    assert sorted(seen) == sorted(registry)
    last = html(client, f"/admin/registrants/?page={pages}")
    assert 'rel="next"' not in last and 'rel="prev"' in last
    past = html(client, f"/admin/registrants/?page={pages + 5}")
    assert listed_ids(past) == listed_ids(last)
    assert f"There are only {pages} pages: this is the last one." in past
    for bad, said in (("0", "The page number starts at 1"), ("two", "not a whole number")):
        refused = html(client, f"/admin/registrants/?page={bad}", status=400)
        assert said in refused and not listed_ids(refused)


@pytest.mark.parametrize(
    "search",
    ["maker 0420 dev", "PSIRT420@MAKER420", "fingerprint", "fingerprint-spaced", "fingerprint-0x"],
)
def test_search_finds_the_one_by_organisation_email_or_fingerprint(client, admin, registry, search):
    wanted = next(i for i, r in registry.items() if r["email"] == "psirt420@maker420.example")
    fpr = registry[wanted]["fingerprint"]
    needle = {
        "fingerprint": fpr[-16:].lower(),
        "fingerprint-spaced": " ".join(fpr[i : i + 4] for i in range(0, 40, 4)),
        "fingerprint-0x": "0x" + fpr[-8:],
    }.get(search, search)
    page = html(client, f"/admin/registrants/?q={needle}")
    assert listed_ids(page) == [wanted]
    assert "1 registrant found" in page
    assert f'value="{needle}"' in page  # the search stays in its field, and in the address


def test_a_search_is_a_substring_not_a_pattern(client, admin, registry):
    assert len(listed_ids(html(client, "/admin/registrants/?q=maker42"))) == 11  # 42, 420..429
    nothing = html(client, "/admin/registrants/?q=%25")  # a literal %, not "anything"
    assert listed_ids(nothing) == [] and "Nobody matches" in nothing
    assert listed_ids(html(client, "/admin/registrants/?q=Maker_0420")) == []


def test_filters_by_status_and_key_health_count_and_list_the_right_ones(
    client, admin, registry, clock
):
    for health in listing.HEALTHS:
        expected = {i for i, r in registry.items() if r["health"] == health}
        assert expected and every_id(listing.Filters(health=health), clock.at) == expected
    expected = {
        i for i, r in registry.items() if r["status"] == "approved" and r["health"] == "expiring"
    }
    assert every_id(listing.Filters(status="approved", health="expiring"), clock.at) == expected
    page = html(client, "/admin/registrants/?status=approved&health=expiring")
    assert f"{len(expected)} registrants found" in page
    assert set(listed_ids(page)) <= expected
    soon = [f"expires {(clock.at + timedelta(days=d)):%Y-%m-%d}" for d in (10, 29)]
    cells = re.findall(r'<td class="key-expiring">([^<]+)</td>', page)
    assert len(cells) == len(listed_ids(page)) and set(cells) <= set(soon)
    unusable = html(client, "/admin/registrants/?health=unusable")
    assert unusable.count('<td class="key-unusable">no usable key</td>') == listing.PAGE_SIZE
    assert 'aria-current="page">Approved' in page
    # The status links keep the search and the key health, and drop the page.
    assert 'href="/admin/registrants/?status=suspended&amp;health=expiring"' in page
    for bad in ("status=gone", "health=great"):
        refused = html(client, f"/admin/registrants/?{bad}", status=400)
        assert "Unknown" in refused and not listed_ids(refused)


def test_key_health_moves_with_the_clock(db, clock, registry):
    ten_days = {i for i, r in registry.items() if r["key"] == "expiring"}
    assert ten_days <= every_id(listing.Filters(health="expiring"), clock.at)
    later = clock.at + timedelta(days=11)  # the 10-day key has expired by then
    assert ten_days <= every_id(listing.Filters(health="unusable"), later)
    assert not ten_days & every_id(listing.Filters(health="expiring"), later)
    before = clock.at - timedelta(days=400)  # nothing expires within 30 days of then
    assert not every_id(listing.Filters(health="expiring"), before)


def test_the_list_costs_the_same_queries_with_10_or_1000_registrants(
    client, admin, db, clock, caplog
):
    def queries() -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            assert client.get("/admin/registrants/?page=1").status_code == 200
        return sum(1 for r in caplog.records if r.name == "peewee")

    insert_registrants(10, clock.at)
    few = queries()
    insert_registrants(N - 10, clock.at, start=11)
    assert Registrant.select().count() == N
    assert queries() == few


# -- one registrant's page -----------------------------------------------------------------------


def test_a_registrants_page_shows_its_keys_decisions_and_the_alerts_it_received(
    client, admin, registry, clock, settings
):
    from app.vulns import lifecycle

    wanted = next(i for i, r in registry.items() if r["email"] == "psirt420@maker420.example")
    registrant = Registrant.get_by_id(wanted)
    old = PublicKey.create(
        fingerprint="ABCD" * 10,
        armored="-",
        owner=registrant.user_id,
        usable=False,
        created_at=clock.at - timedelta(days=300),
    )
    AuditEvent.create(
        actor_label="psirt420@maker420.example",
        action="registry.key_upload",
        target="psirt420@maker420.example",
        at=clock.at - timedelta(days=300),
        details='{"fingerprint": "' + old.fingerprint + '"}',
    )
    v = lifecycle.create("Overflow", "", lifecycle.Actor(None, "t"), clock.at, settings)
    advisory = Advisory.create(
        vulnerability=v, version=1, subject="s", text="t", created_at=clock.at
    )
    other = next(i for i in registry if i != wanted)
    rows = [
        {
            "kind": "alert-missed" if n == 3 else "alert",
            "advisory": advisory.id,
            "user": registrant.user_id,
            "recipient": "psirt420@maker420.example",
            "state": "sent" if n % 5 else "failed",
            "created_at": clock.at - timedelta(hours=n),
        }
        for n in range(25)
    ]
    rows.append({**rows[0], "user": Registrant.get_by_id(other).user_id, "recipient": "x@y"})
    rows.append({**rows[0], "kind": "reconfirm"})  # not an alert
    Delivery.insert_many(rows).execute()

    page = html(client, f"/admin/registrants/{wanted}")
    assert "Maker 0420 Devices" in page and "Gateway 420" in page
    assert registry[wanted]["fingerprint"] in page and old.fingerprint in page
    assert "registry.key_upload" in page
    assert "25 in all: 5 failed, 20 sent." in page
    assert page.count(f"{v.tracking_id} v1") == 20  # the latest 20
    assert "The latest 20, newest first" in page
    assert "missed (no usable key)" in page
    assert re.search(r'<h2 id="answers-heading">Answers</h2>\s*<p>No answers yet: ', page)
    assert client.get(f"/admin/registrants/{max(registry) + 1}").status_code == 404

    # Their answers: the current one about each vulnerability, linking to the team's matrix.
    for n, (status, justification) in enumerate(
        [("under_investigation", None), ("not_affected", "component_not_present")]
    ):
        Answer.create(
            registrant=registrant,
            vulnerability=v,
            status=status,
            justification=justification,
            statement="<b>No radio</b> in our boards" if n else "Looking",
            public_consent=bool(n),
            via="mail" if n else "web",
            at=clock.at + timedelta(minutes=n),
        )
    answers_part = html(client, f"/admin/registrants/{wanted}").partition('id="answers-heading"')[2]
    assert "Not affected: The component is not present" in answers_part
    assert "&lt;b&gt;No radio&lt;/b&gt; in our boards" in answers_part
    assert "Under investigation" not in answers_part and "Looking" not in answers_part
    assert f'href="/team/vulnerabilities/{v.tracking_id}/answers"' in answers_part
    assert "signed mail" in answers_part


def test_deciding_from_a_registrants_page_returns_to_it(client, admin, registry):
    wanted = next(i for i, r in registry.items() if r["status"] == "pending_review")
    page = html(client, f"/admin/registrants/{wanted}")
    response = client.post(
        f"/admin/registrants/{wanted}/decide",
        data={
            f"r{wanted}-csrf_token": csrf_token(page),
            f"r{wanted}-decision": "approved",
            f"r{wanted}-reason": "",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/registrants/{wanted}")
    assert Registrant.get_by_id(wanted).status == "approved"
    assert "is approved: the next alerts go to them" in html(client, response.headers["Location"])


# -- the migration -------------------------------------------------------------------------------


def test_the_schema_before_migrates_to_the_registry_indexes(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0017_follow_up")
    at = datetime(2026, 5, 1, 9, 0)
    with database.connection_context():
        database.execute_sql(
            'INSERT INTO "user" (email, password_hash, role, active, session_token, created_at,'
            " away) VALUES (?, ?, ?, ?, ?, ?, ?)".replace("?", database.param),
            ("a@b.example", "!", "registrant", True, "tok", at, False),
        )
        database.execute_sql(
            "INSERT INTO registrant (user_id, organisation, products, website, justification,"
            " status, notes, listed_publicly, unsubscribed, created_at, updated_at) VALUES"
            " ((SELECT id FROM \"user\"), ?, '', '', '', ?, '', ?, ?, ?, ?)".replace(
                "?", database.param
            ),
            ("Old Maker", "pending_review", False, False, at, at),
        )
    assert "0020_registry_indexes" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        names = {index.name for index in database.get_indexes("registrant")}
        assert "registrant_status" in names
        assert "audit_event_target" in {i.name for i in database.get_indexes("audit_event")}
        found = listing.page(listing.Filters(search="old"), 1, datetime(2026, 5, 2, tzinfo=UTC))
        assert [row.organisation for row in found.rows] == ["Old Maker"]
        assert found.counts["pending_review"] == 1
