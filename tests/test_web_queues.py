"""The team's queues, search, and the embargo dashboard."""

import re
from datetime import timedelta

import pytest

from app.accounts import team
from app.models import CveId, Vulnerability
from app.vulns import lifecycle
from tests.conftest import PASSWORD

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def board(db, clock, settings, client, auth, admin_user):
    bob = team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t").user
    mine = lifecycle.create("Mine: overflow", "", CLI, clock.at, settings)
    theirs = lifecycle.create("Bob's: race", "", CLI, clock.at, settings)
    loose = lifecycle.create("Unassigned: leak of keys", "The key leaks.", CLI, clock.at, settings)
    late = lifecycle.create("Late one", "", CLI, clock.at - timedelta(days=40), settings)
    done = lifecycle.create("Done", "", CLI, clock.at, settings)
    Vulnerability.update(assignee=admin_user).where(
        Vulnerability.id.in_([mine.id, late.id, done.id])
    ).execute()
    Vulnerability.update(assignee=bob).where(Vulnerability.id == theirs.id).execute()
    Vulnerability.update(status="published").where(Vulnerability.id == done.id).execute()
    cve = CveId.create(cve_id="CVE-2026-1234", block="b", year=2026, number=1234)
    Vulnerability.update(cve=cve).where(Vulnerability.id == theirs.id).execute()
    auth.login(admin_user.email, PASSWORD)
    return {"mine": mine, "theirs": theirs, "loose": loose, "late": late, "done": done}


def listed(client, query: str) -> list[str]:
    html = client.get(f"/team/?{query}").get_data(as_text=True)
    return re.findall(r'<th scope="row"><a href="/team/vulnerabilities/([^"]+)"', html)


def ids(board, *names):
    return sorted(board[name].tracking_id for name in names)


def test_mine_is_the_default_and_shows_only_open_ones_assigned_to_me(client, board):
    assert sorted(listed(client, "")) == ids(board, "mine", "late")


def test_unassigned_overdue_and_all(client, board):
    assert sorted(listed(client, "view=unassigned")) == ids(board, "loose")
    assert sorted(listed(client, "view=overdue")) == ids(board, "late")  # fix was due 10 days ago
    assert len(listed(client, "view=all")) == 5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SEC-2026-0003", ["loose"]),
        ("cve-2026-1234", ["theirs"]),
        ("leaks", ["loose"]),
        ("OVERFLOW", ["mine"]),
    ],
)
def test_search_by_tracking_id_cve_or_text(client, board, query, expected):
    assert listed(client, f"view=all&q={query}") == ids(board, *expected)


def test_the_dashboard_draws_open_embargoes_as_bars_with_today_marked(client, board, clock):
    html = client.get("/team/dashboard").get_data(as_text=True)
    assert "<svg" in html and "<script" not in html and "style=" not in html
    bars = re.findall(
        r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="16"\s+fill="(#[0-9a-f]+)"', html
    )
    assert len(bars) == 4  # the published one is not open
    assert bars.count("#a3161b") == 1  # the late one is red
    assert ">now</text>" in html
    assert board["done"].tracking_id not in html
