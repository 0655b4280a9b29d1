"""Triage rotation: round-robin assignment of new reports, absences, reassignment, open load,
and the team's rotation page."""

import json
import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import peewee
import pytest

from app.accounts import team as accounts
from app.core import passwords
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import AuditEvent, User, Vulnerability
from app.reports import triage
from tests.conftest import PASSWORD, Auth, csrf_token, wait_for

MESSAGE = re.compile(r'<p class="message (\w+)">(.*?)</p>', re.S)


def person(clock, name, role="team", **fields) -> User:
    """An account named name@example.org; registrants are made directly (no team account)."""
    email = f"{name}@example.org"
    if role == "registrant":
        user = User.create(
            email=email,
            password_hash=passwords.hash_password(PASSWORD),
            role=role,
            session_token=accounts.new_session_token(),
            created_at=clock.at,
        )
    else:
        user = accounts.create_team_account(email, PASSWORD, role, clock.at, by="test").user
    if fields:
        User.update(**fields).where(User.id == user.id).execute()
    return User.get_by_id(user.id)


def vulnerability(clock, number: int, **fields) -> Vulnerability:
    return Vulnerability.create(
        tracking_id=f"SEC-2026-{number:04d}",
        title=f"Report {number}",
        reported_at=clock.at,
        created_at=clock.at,
        updated_at=clock.at,
        **fields,
    )


def emails(users) -> list[str]:
    return [u.email for u in users]


def audit_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.id))


def text_of(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def messages(response) -> list[str]:
    return [" ".join(t.split()) for _c, t in MESSAGE.findall(response.get_data(as_text=True))]


# -- who is next -----------------------------------------------------------------------------------


def test_order_puts_never_assigned_first_then_the_longest_waiting_and_breaks_ties_by_id(db, clock):
    recent = person(clock, "recent", last_assigned_at=clock.at - timedelta(hours=1))
    longest = person(clock, "longest", last_assigned_at=clock.at - timedelta(days=3))
    fresh_b = person(clock, "fresh-b")
    fresh_a = person(clock, "fresh-a", role="admin")  # created later: a higher id

    assert emails(triage.order(clock.at)) == emails([fresh_b, fresh_a, longest, recent])
    assert triage.next_assignee(clock.at).id == fresh_b.id


def test_order_skips_members_away_disabled_accounts_and_registrants(db, clock):
    person(clock, "away", away=True)
    person(clock, "disabled", active=False)
    person(clock, "maker", role="registrant")
    on_duty = person(clock, "on-duty")

    assert emails(triage.order(clock.at)) == [on_duty.email]


def test_nobody_on_duty_leaves_the_report_unassigned_and_records_nothing(db, clock):
    person(clock, "away", away=True)
    v = vulnerability(clock, 1)

    assert triage.next_assignee(clock.at) is None
    assert triage.assign_new(v, clock.at) is None
    assert Vulnerability.get_by_id(v.id).assignee is None
    assert audit_events("rotation.assign") == []


# -- round-robin -----------------------------------------------------------------------------------


def test_new_reports_go_round_robin_as_time_passes(db, clock):
    ann, bob, cat = (person(clock, n) for n in ("ann", "bob", "cat"))
    assigned = []
    for number in range(1, 7):
        clock.move(minutes=7)
        v = vulnerability(clock, number)
        assigned.append(triage.assign_new(v, clock.at).email)
        assert Vulnerability.get_by_id(v.id).assignee.email == assigned[-1]

    assert assigned == emails([ann, bob, cat, ann, bob, cat])
    assert User.get_by_id(cat.id).last_assigned_at == clock.at
    assert User.get_by_id(ann.id).last_assigned_at == clock.at - timedelta(minutes=14)
    events = audit_events("rotation.assign")
    assert [(e.actor_label, e.target) for e in events] == [
        ("system", f"SEC-2026-{n:04d}") for n in range(1, 7)
    ]
    assert [json.loads(e.details)["assignee"] for e in events] == assigned


def test_reports_arriving_at_the_same_instant_still_take_turns(db, clock):
    ann, bob, cat = (person(clock, n) for n in ("ann", "bob", "cat"))

    assigned = [triage.assign_new(vulnerability(clock, n), clock.at) for n in range(1, 8)]

    assert emails(assigned) == emails([ann, bob, cat, ann, bob, cat, ann])
    assert emails(triage.order(clock.at)) == emails([bob, cat, ann])


def test_a_member_away_is_skipped_and_back_in_turn_on_return(db, clock):
    ann = person(clock, "ann")
    bob = person(clock, "bob")
    triage.assign_new(vulnerability(clock, 1), clock.at)  # ann
    triage.set_away(bob, True, bob, clock.move(minutes=1))

    clock.move(minutes=1)
    during = [triage.assign_new(vulnerability(clock, n), clock.move(minutes=1)) for n in (2, 3)]
    triage.set_away(bob, False, bob, clock.move(minutes=1))
    after = triage.assign_new(vulnerability(clock, 4), clock.move(minutes=1))

    assert emails(during) == [ann.email, ann.email]
    assert after.id == bob.id  # he has waited longest: never given one


def test_assignment_is_part_of_the_callers_transaction(db, clock):
    ann = person(clock, "ann")
    v = vulnerability(clock, 1)

    with pytest.raises(RuntimeError), write_transaction():
        assert triage.assign_new(v, clock.at).id == ann.id
        raise RuntimeError("report processing failed after the assignment")

    assert Vulnerability.get_by_id(v.id).assignee is None
    assert User.get_by_id(ann.id).last_assigned_at is None
    assert audit_events("rotation.assign") == []


def test_two_reports_processed_at_once_go_to_two_members(db, clock):
    """PostgreSQL: the second worker waits for the first one's turn to commit, then takes the
    next member (SQLite serialises write transactions by itself)."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        pytest.skip("PostgreSQL only: SQLite's write transactions never overlap")
    ann, bob = person(clock, "ann"), person(clock, "bob")
    first, second = vulnerability(clock, 1), vulnerability(clock, 2)
    pid, taken = [], []

    def other_worker():
        with db.connection_context():
            pid.append(db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
            taken.append(triage.assign_new(second, clock.at))

    def waiting_for_a_lock():
        cursor = db.execute_sql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", pid)
        return cursor.fetchone()[0] == "Lock"

    with write_transaction():
        assert triage.assign_new(first, clock.at).id == ann.id
        worker = threading.Thread(target=other_worker)
        worker.start()
        wait_for(lambda: pid, what="the other worker's connection")
        wait_for(waiting_for_a_lock, what="the other worker to wait for the first turn")
    worker.join(20)

    assert emails(taken) == [bob.email]
    assert Vulnerability.get_by_id(second.id).assignee.id == bob.id


# -- reassigning and absence -----------------------------------------------------------------------


def test_reassigning_is_audited_with_before_after_and_reason(db, clock):
    ann, bob = person(clock, "ann"), person(clock, "bob")
    v = vulnerability(clock, 1)
    triage.assign_new(v, clock.at)
    at = clock.move(hours=2)

    triage.reassign(v, bob, by=ann, at=at, reason="  Bob knows the BLE stack ")

    stored = Vulnerability.get_by_id(v.id)
    assert (stored.assignee.id, stored.updated_at) == (bob.id, at)
    [event] = audit_events("rotation.reassign")
    assert (event.actor.id, event.target, event.at) == (ann.id, "SEC-2026-0001", at)
    assert json.loads(event.details) == {
        "before": ann.email,
        "after": bob.email,
        "reason": "Bob knows the BLE stack",
    }
    assert User.get_by_id(bob.id).last_assigned_at is None  # not one of his rotation turns


@pytest.mark.parametrize(
    ("target", "actor", "message"),
    [
        ("gone", "ann", "not an active security-team member"),
        ("maker", "ann", "not an active security-team member"),
        ("ann", "ann", "already assigned to ann@example.org"),
        ("bob", "maker", "only security-team members"),
    ],
    ids=["disabled-target", "registrant-target", "same-assignee", "registrant-actor"],
)
def test_reassigning_is_refused_outside_the_team(db, clock, target, actor, message):
    people = {
        "ann": person(clock, "ann"),
        "bob": person(clock, "bob"),
        "gone": person(clock, "gone", active=False),
        "maker": person(clock, "maker", role="registrant"),
    }
    v = vulnerability(clock, 1, assignee=people["ann"])

    with pytest.raises(Refused, match=message):
        triage.reassign(v, people[target], by=people[actor], at=clock.at)

    assert Vulnerability.get_by_id(v.id).assignee.id == people["ann"].id
    assert audit_events("rotation.reassign") == []


def test_members_set_themselves_away_admins_anyone_and_each_change_is_audited(db, clock):
    admin = person(clock, "lead", role="admin")
    ann, bob = person(clock, "ann"), person(clock, "bob")

    assert triage.set_away(ann, True, by=ann, at=clock.at) is True
    assert triage.set_away(bob, True, by=admin, at=clock.move(minutes=1)) is True
    assert triage.set_away(bob, True, by=admin, at=clock.move(minutes=1)) is False  # no change
    with pytest.raises(Refused, match="only admins"):
        triage.set_away(bob, False, by=ann, at=clock.at)

    assert [User.get_by_id(u.id).away for u in (ann, bob)] == [True, True]
    events = audit_events("rotation.set_away")
    assert [(e.actor_label, e.target, json.loads(e.details)) for e in events] == [
        (ann.email, ann.email, {"away": True}),
        (admin.email, bob.email, {"away": True}),
    ]
    assert emails(triage.order(clock.at)) == [admin.email]


# -- open load -------------------------------------------------------------------------------------


def test_open_load_counts_new_triage_accepted_and_fixed_per_member(db, clock):
    ann, bob = person(clock, "ann"), person(clock, "bob")
    gone = person(clock, "gone")
    idle_and_away = person(clock, "idle", away=True)
    statuses = ["new", "triage", "accepted", "fixed", "published", "rejected"]
    for number, status in enumerate(statuses, start=1):
        vulnerability(clock, number, status=status, assignee=ann)
    vulnerability(clock, 7, status="triage", assignee=bob)
    vulnerability(clock, 8, status="new", assignee=gone)
    vulnerability(clock, 9, status="new")  # unassigned
    User.update(active=False).where(User.id == gone.id).execute()

    load = triage.open_load()

    assert {user.email: count for user, count in load.items()} == {
        ann.email: 4,
        bob.email: 1,
        gone.email: 1,  # disabled, but still holding an open report
        idle_and_away.email: 0,
    }
    assert load[User.get_by_id(ann.id)] == 4  # keyed by account: any instance of it finds it


# -- the page --------------------------------------------------------------------------------------


@pytest.fixture
def team(db, clock):
    """Three members: ann (admin), bob and cat (team); bob was given a report most recently."""
    return {
        "ann": person(clock, "ann", role="admin", last_assigned_at=clock.at - timedelta(days=2)),
        "bob": person(clock, "bob", last_assigned_at=clock.at - timedelta(hours=1)),
        "cat": person(clock, "cat"),
    }


def sign_in_as(client, user) -> None:
    assert Auth(client).login(user.email, PASSWORD).status_code == 302


def away_form_token(client) -> str:
    return csrf_token(client.get("/team/rotation/").get_data(as_text=True))


def post_away(client, user, away: bool, token: str):
    return client.post(
        f"/team/rotation/members/{user.id}/away",
        data={"csrf_token": token, "away": "1" if away else "0"},
    )


def rows(html: str, caption: str) -> list[str]:
    """The rows of the table with this caption, as text."""
    table = re.search(rf"<caption>{caption}</caption>(.*?)</table>", html, re.S)
    assert table, f"no table {caption!r}"
    found = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)[1:]  # after the header row
    clean = [re.sub(r'<span class="visually-hidden">.*?</span>', "", row) for row in found]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in clean]


def test_anonymous_visitors_are_sent_to_sign_in(client, team):
    response = client.get("/team/rotation/")

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_registrants_may_neither_see_the_rotation_nor_change_it(client, team, clock):
    maker = person(clock, "maker", role="registrant")
    sign_in_as(client, maker)
    token = csrf_token(client.get("/").get_data(as_text=True))  # the sign-out form's

    assert client.get("/team/rotation/").status_code == 403
    assert post_away(client, team["cat"], True, token).status_code == 403
    assert User.get_by_id(team["cat"].id).away is False


def test_page_lists_members_next_first_with_load_and_who_is_away(client, team, clock):
    vulnerability(clock, 1, status="triage", assignee=team["bob"])
    vulnerability(clock, 2, status="fixed", assignee=team["bob"])
    vulnerability(clock, 3, status="published", assignee=team["ann"])
    dan = person(clock, "dan", away=True)
    vulnerability(clock, 4, status="new", assignee=dan)
    sign_in_as(client, team["bob"])

    response = client.get("/team/rotation/")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "Next report goes to cat@example.org ." in text_of(response)
    assert rows(html, "In the rotation, next first") == [
        "1 (next) cat@example.org 0 never no",
        "2 ann@example.org 0 2026-11-23 12:00 UTC no",
        "3 bob@example.org (you) 2 2026-11-25 11:00 UTC no Mark away",
    ]
    assert rows(html, "Skipped by the rotation until they are back") == [
        "dan@example.org 1 never yes"
    ]
    assert "style=" not in html and "<script" not in html


def test_a_member_marks_themself_away_and_back_and_is_told_what_comes_next(client, team, clock):
    bob = team["bob"]
    sign_in_as(client, bob)

    away = post_away(client, bob, True, away_form_token(client))

    assert away.status_code == 302
    assert away.headers["Location"] == "/team/rotation/"
    page = client.get("/team/rotation/")
    assert messages(page) == [
        "You are away: new reports skip you until you are back. "
        "The next report goes to cat@example.org."
    ]
    assert User.get_by_id(bob.id).away is True
    assert emails(triage.order(clock.at)) == ["cat@example.org", "ann@example.org"]
    assert rows(page.get_data(as_text=True), "Skipped by the rotation until they are back") == [
        "bob@example.org (you) 0 2026-11-25 11:00 UTC yes Mark back"
    ]

    post_away(client, bob, False, away_form_token(client))
    assert messages(client.get("/team/rotation/")) == [
        "You are back: new reports come to you again in turn. "
        "The next report goes to cat@example.org."
    ]
    assert User.get_by_id(bob.id).away is False
    assert [json.loads(e.details) for e in audit_events("rotation.set_away")] == [
        {"away": True},
        {"away": False},
    ]


def test_an_admin_marks_another_member_away(client, team):
    sign_in_as(client, team["ann"])

    response = post_away(client, team["cat"], True, away_form_token(client))

    assert response.status_code == 302
    assert messages(client.get("/team/rotation/")) == [
        "cat@example.org is away: new reports skip them until they are back. "
        "The next report goes to you."
    ]
    assert User.get_by_id(team["cat"].id).away is True
    [event] = audit_events("rotation.set_away")
    assert (event.actor_label, event.target) == ("ann@example.org", "cat@example.org")


def test_when_the_last_member_leaves_the_page_says_reports_stay_unassigned(client, db, clock):
    solo = person(clock, "solo")
    sign_in_as(client, solo)

    post_away(client, solo, True, away_form_token(client))
    page = client.get("/team/rotation/")

    assert messages(page) == [
        "You are away: new reports skip you until you are back. "
        "Everyone is away now: new reports stay unassigned until someone is back."
    ]
    assert "Everyone is away: new reports stay unassigned" in text_of(page)


def test_a_member_may_not_mark_another_member_away(client, team):
    sign_in_as(client, team["bob"])
    token = away_form_token(client)

    response = post_away(client, team["cat"], True, token)

    assert response.status_code == 403
    assert User.get_by_id(team["cat"].id).away is False
    assert audit_events("rotation.set_away") == []
    # Nor is the button offered for anyone but themself.
    html = client.get("/team/rotation/").get_data(as_text=True)
    assert re.findall(r'action="/team/rotation/members/(\d+)/away"', html) == [str(team["bob"].id)]


def test_the_away_form_needs_its_csrf_token(client, team):
    sign_in_as(client, team["bob"])

    response = client.post(f"/team/rotation/members/{team['bob'].id}/away", data={"away": "1"})

    assert response.status_code == 400
    assert User.get_by_id(team["bob"].id).away is False


def test_unknown_or_non_team_accounts_are_404(client, team, clock):
    maker = person(clock, "maker", role="registrant")
    sign_in_as(client, team["ann"])
    token = away_form_token(client)

    assert post_away(client, maker, True, token).status_code == 404
    missing = client.post("/team/rotation/members/99999/away", data={"csrf_token": token})
    assert missing.status_code == 404
    assert User.get_by_id(maker.id).away is False
