"""The audit log: its query helpers, the admin's filtered and paged page, and the CSV export,
which is itself recorded."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.accounts import team
from app.core import audit
from app.models import AuditEvent
from tests.conftest import PASSWORD

DAY = datetime(2026, 11, 21, tzinfo=UTC)


def event(action, at, actor="bob@example.org", target="", details=None):
    return audit.record(None, action, at, target=target, details=details, actor_label=actor)


@pytest.fixture
def member(db, clock):
    return team.create_team_account("alice@example.org", PASSWORD, "team", clock.at, by="test").user


@pytest.fixture
def signed_in_admin(client, auth, admin_user):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    return client


@pytest.fixture
def some_events(db):
    """Four events around the day 2026-11-21 (UTC), by two actors, on two targets."""
    return [
        event("vuln.set", DAY - timedelta(minutes=1), target="SEC-2026-0001"),
        event("vuln.set", DAY, actor="carol@example.org", target="SEC-2026-0002"),
        event("registrant.approve", DAY + timedelta(hours=23, minutes=59), target="maker@x.org"),
        event("cve.assign", DAY + timedelta(days=1), target="SEC-2026-0001"),
    ]


def rows(response) -> list[list[str]]:
    """The audit table's rows as the text of their cells (none when there is no table),
    leaving out the viewing admin's own sign-in, which is audited too."""
    body = re.search(r"<tbody>(.*?)</tbody>", response.get_data(as_text=True), re.S)
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1) if body else "", re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]
        if cells[2:3] != ["auth.login"]:
            found.append(cells)
    return found


def actions_shown(response) -> list[str]:
    return [cells[2] for cells in rows(response)]


def older_link(response) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next">Older events</a>', response.get_data(True))
    return match.group(1).replace("&amp;", "&") if match else None


# -- the query helpers ----------------------------------------------------------------------------


def test_events_are_newest_first_and_each_filter_narrows_them(some_events):
    def actions(**filters):
        return [e.action for e in audit.events(**filters)]

    assert actions() == ["cve.assign", "registrant.approve", "vuln.set", "vuln.set"]
    assert actions(action="vuln.set") == ["vuln.set", "vuln.set"]
    assert [e.target for e in audit.events(actor=" Carol@Example.org ")] == ["SEC-2026-0002"]
    assert actions(target="SEC-2026-0001") == ["cve.assign", "vuln.set"]
    # since is inclusive, until exclusive.
    assert actions(since=DAY, until=DAY + timedelta(days=1)) == ["registrant.approve", "vuln.set"]
    assert actions(action="vuln.set", since=DAY) == ["vuln.set"]
    assert actions(limit=1) == ["cve.assign"]


def test_events_page_on_from_the_last_one_seen_even_at_the_same_instant(db):
    made = [event("x.same", DAY, target=str(n)) for n in range(5)]

    first = list(audit.events(limit=2))
    second = list(audit.events(before=first[-1].id, limit=2))
    third = list(audit.events(before=second[-1].id, limit=2))

    assert [e.target for e in first + second + third] == ["4", "3", "2", "1", "0"]
    assert {e.id for e in made} == {e.id for e in first + second + third}


def test_actions_lists_each_action_once(some_events):
    assert audit.actions() == ["cve.assign", "registrant.approve", "vuln.set"]


def test_already_finds_the_event_that_recorded_this_mark_for_this_action_and_target(db):
    first = event("renewal.key-expiry", DAY, target="a@vendor.example", details={"mark": "m:3"})
    event("renewal.key-expiry", DAY, target="b@vendor.example", details={"mark": "m:14"})
    event("renewal.reconfirm", DAY, target="a@vendor.example", details={"mark": "m:14"})
    event("renewal.key-expiry", DAY, target="a@vendor.example", details={"mark": "m:3"})
    assert audit.already("renewal.key-expiry", "a@vendor.example", mark="m:3") == first
    assert audit.already("renewal.key-expiry", "a@vendor.example", mark="m:14") is None
    assert audit.already("renewal.key-expiry", "c@vendor.example", mark="m:3") is None
    assert audit.already("renewal.key-expiry", "a@vendor.example", mark="m:3", step="x") is None


def test_csv_rows_start_with_a_header_and_defuse_formulas(db):
    event("vuln.set", DAY, target='=HYPERLINK("http://evil")', details={"field": "title"})

    produced = list(audit.csv_rows(audit.events()))

    assert produced == [
        ["at", "actor", "action", "target", "details"],
        [
            "2026-11-21T00:00:00Z",
            "bob@example.org",
            "vuln.set",
            '\'=HYPERLINK("http://evil")',
            '{"field": "title"}',
        ],
    ]


# -- who may see the page -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/audit", "/admin/audit.csv"])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == [path]


def test_a_team_member_is_forbidden_the_log_and_its_export(client, auth, member, some_events):
    assert auth.login(member.email, PASSWORD).status_code == 302

    page = client.get("/admin/audit")
    export = client.get("/admin/audit.csv")

    assert page.status_code == 403
    assert "vuln.set" not in page.get_data(as_text=True)
    assert export.status_code == 403
    assert not AuditEvent.select().where(AuditEvent.action == "audit.export").exists()


# -- the page -------------------------------------------------------------------------------------


def test_an_admin_sees_the_events_newest_first_with_utc_times(signed_in_admin, some_events):
    response = signed_in_admin.get("/admin/audit")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert rows(response) == [
        [
            "2026-11-25 12:00 UTC",
            "test",
            "account.create",
            "admin@example.org",
            "{ &#34;role&#34;: &#34;admin&#34; }",
        ],
        ["2026-11-22 00:00 UTC", "bob@example.org", "cve.assign", "SEC-2026-0001", ""],
        ["2026-11-21 23:59 UTC", "bob@example.org", "registrant.approve", "maker@x.org", ""],
        ["2026-11-21 00:00 UTC", "carol@example.org", "vuln.set", "SEC-2026-0002", ""],
        ["2026-11-20 23:59 UTC", "bob@example.org", "vuln.set", "SEC-2026-0001", ""],
    ]
    assert '<time datetime="2026-11-22T00:00:00Z">' in page
    for name in ("actor", "action", "target", "since", "until"):
        assert f'<label for="{name}">' in page, name
        assert f'id="{name}"' in page, name
    assert '<option value="registrant.approve">registrant.approve</option>' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=vuln.set", ["vuln.set", "vuln.set"]),
        ("actor=carol%40example.org", ["vuln.set"]),
        ("target=SEC-2026-0001", ["cve.assign", "vuln.set"]),
        ("since=2026-11-21&until=2026-11-21", ["registrant.approve", "vuln.set"]),
        ("since=2026-11-22", ["account.create", "cve.assign"]),
        ("until=2026-11-20&action=vuln.set", ["vuln.set"]),
        ("actor=nobody%40example.org", []),
    ],
)
def test_filters_narrow_the_events(signed_in_admin, some_events, query, expected):
    response = signed_in_admin.get(f"/admin/audit?{query}")

    assert response.status_code == 200
    assert actions_shown(response) == expected


def test_details_are_shown_indented_and_html_in_them_is_escaped(signed_in_admin, db, clock):
    event(
        "vuln.set",
        clock.at,
        target="<b>SEC</b>",
        details={"title": "<script>alert(1)</script>", "field": "title"},
    )

    page = signed_in_admin.get("/admin/audit?action=vuln.set").get_data(as_text=True)

    assert "<script>alert(1)" not in page
    assert "<b>SEC</b>" not in page
    assert "&lt;b&gt;SEC&lt;/b&gt;" in page
    assert (
        '<pre class="details">{\n  &#34;field&#34;: &#34;title&#34;,\n'
        "  &#34;title&#34;: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;\n}</pre>"
    ) in page


def test_bad_filters_are_explained_not_applied(signed_in_admin, some_events):
    bad_date = signed_in_admin.get("/admin/audit?since=2026-11-31")
    backwards = signed_in_admin.get("/admin/audit?since=2026-11-22&until=2026-11-21")
    unknown = signed_in_admin.get("/admin/audit?action=no.such.action")

    for response in (bad_date, backwards, unknown):
        assert response.status_code == 400
        assert 'aria-invalid="true"' in response.get_data(as_text=True)
        assert rows(response) == []
    assert "The end date comes before the start date." in backwards.get_data(as_text=True)


def test_the_log_is_paged_by_a_hundred_with_a_link_to_older_events(signed_in_admin, db, clock):
    for n in range(150):
        event("x.bulk", clock.at - timedelta(minutes=n), target=f"t{n:03}")
    event("x.other", clock.at + timedelta(minutes=1))

    first = signed_in_admin.get("/admin/audit?action=x.bulk")
    link = older_link(first)
    second = signed_in_admin.get(link)

    assert [cells[3] for cells in rows(first)] == [f"t{n:03}" for n in range(100)]
    assert parse_qs(urlsplit(link).query)["action"] == ["x.bulk"]  # the filter carries over
    assert second.status_code == 200
    assert [cells[3] for cells in rows(second)] == [f"t{n:03}" for n in range(100, 150)]
    assert older_link(second) is None
    assert 'href="/admin/audit?action=x.bulk">Newest events</a>' in second.get_data(True)


# -- the CSV export -------------------------------------------------------------------------------


def test_the_csv_has_a_header_and_the_filtered_rows_and_is_a_download(signed_in_admin, some_events):
    response = signed_in_admin.get("/admin/audit.csv?target=SEC-2026-0001")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="forewarn-audit-20261125T120000Z.csv"'
    )
    assert list(csv.reader(io.StringIO(response.get_data(as_text=True)))) == [
        ["at", "actor", "action", "target", "details"],
        ["2026-11-22T00:00:00Z", "bob@example.org", "cve.assign", "SEC-2026-0001", "{}"],
        ["2026-11-20T23:59:00Z", "bob@example.org", "vuln.set", "SEC-2026-0001", "{}"],
    ]


def test_the_export_is_itself_audited_with_who_what_and_how_many(
    signed_in_admin, admin_user, some_events, clock
):
    signed_in_admin.get("/admin/audit.csv?action=vuln.set&since=2026-11-21")

    (exported,) = AuditEvent.select().where(AuditEvent.action == "audit.export")
    assert exported.actor_id == admin_user.id
    assert exported.actor_label == "admin@example.org"
    assert exported.at == clock.at
    assert json.loads(exported.details) == {
        "filters": {"action": "vuln.set", "since": "2026-11-21"},
        "rows": 1,
    }
    # ...and the next export carries the first one.
    again = signed_in_admin.get("/admin/audit.csv?action=audit.export")
    assert [row[2] for row in csv.reader(io.StringIO(again.get_data(as_text=True)))] == [
        "action",
        "audit.export",
    ]


def test_a_csv_with_bad_filters_is_refused_and_not_recorded(signed_in_admin, some_events):
    response = signed_in_admin.get("/admin/audit.csv?until=soon")

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert not AuditEvent.select().where(AuditEvent.action == "audit.export").exists()
