"""CVE ids for a whole case in one action (#15): every accepted or fixed vulnerability of the
case that has none gets one, in the case's order, in one transaction, all or none; from the
blocks or from CVE Services (the stand-in); by the domain, the CLI and the case page; and under
concurrent case-wide and single allocations (several processes, SQLite and PostgreSQL)."""

import html as html_lib
import json
import re
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from app.core.db import write_transaction
from app.core.errors import OperatorError
from app.models import AuditEvent, CveId, Delivery, Vulnerability
from app.vulns import cve_services, cves, lifecycle, split
from tests.conftest import PASSWORD, PG_URL, ROOT, csrf_token, wait_for
from tests.cve_services_standin import CveServicesStandIn

CLI = lifecycle.Actor(None, "test")


@pytest.fixture(autouse=True)
def _block_mode(monkeypatch):
    """Block mode unless a test says otherwise, whatever the machine's environment holds."""
    for name in (
        cve_services.URL_VAR,
        cve_services.USER_VAR,
        cve_services.KEY_VAR,
        cve_services.ORG_VAR,
    ):
        monkeypatch.delenv(name, raising=False)


def make_case(settings, clock, *statuses: str, title: str = "NCC audit") -> list[Vulnerability]:
    """A report split into len(statuses) - 1 more; member i gets statuses[i]."""
    root = lifecycle.create(title, "Findings NCC-ZEP-001 ...", CLI, clock.at, settings)
    titles = [f"{title}: finding {n}" for n in range(1, len(statuses))]
    made = split.split(root, titles, CLI, clock.at, settings) if titles else []
    members = [root, *made]
    for member, status in zip(members, statuses, strict=True):
        Vulnerability.update(status=status).where(Vulnerability.id == member.id).execute()
    return [Vulnerability.get_by_id(m.id) for m in members]


def events(action: str) -> list[dict]:
    rows = AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.id)
    return [{"target": e.target, "by": e.actor_label, **json.loads(e.details)} for e in rows]


def cve_of(v: Vulnerability) -> str | None:
    again = Vulnerability.get_by_id(v.id)
    return again.cve.cve_id if again.cve_id else None


# -- the domain ---------------------------------------------------------------------------------


def test_ids_go_to_the_accepted_and_fixed_members_in_the_cases_order(db, clock, settings):
    cves.import_block("CVE-2026-1000..CVE-2026-1019", None, "test", clock.at)
    case = make_case(
        settings, clock, "accepted", "triage", "fixed", "rejected", "accepted", "new", "accepted"
    )
    root, triage, fixed, rejected, holder, new, last = case
    cves.allocate(holder, None, "test", clock.at)  # CVE-2026-1000, before the case's turn

    done = cves.allocate_case(fixed, None, "team@example.org", clock.at)

    assert done.case == root.tracking_id
    assert [(v.tracking_id, c.cve_id) for v, c in done.allocations] == [
        (root.tracking_id, "CVE-2026-1001"),
        (fixed.tracking_id, "CVE-2026-1002"),
        (last.tracking_id, "CVE-2026-1003"),
    ]
    assert [(s.vulnerability.tracking_id, s.reason) for s in done.skipped] == [
        (triage.tracking_id, "not accepted yet (triage)"),
        (rejected.tracking_id, "rejected"),
        (holder.tracking_id, "already has CVE-2026-1000"),
        (new.tracking_id, "not accepted yet (new)"),
    ]
    assert [cve_of(v) for v in case] == [
        "CVE-2026-1001",
        None,
        "CVE-2026-1002",
        None,
        "CVE-2026-1000",
        None,
        "CVE-2026-1003",
    ]
    assert all(c.state == "assigned" and c.assigned_at == clock.at for _, c in done.allocations)
    first = done.allocations[0]
    assert (first.vulnerability.id, first.vulnerability.cve_id) == (root.id, first.cve.id)
    assert (done.remaining, done.low, done.source) == (16, False, "block")
    assigned = events("cve.assign")[1:]  # after the single one
    assert [(e["target"], e["vulnerability"], e["by"]) for e in assigned] == [
        ("CVE-2026-1001", root.tracking_id, "team@example.org"),
        ("CVE-2026-1002", fixed.tracking_id, "team@example.org"),
        ("CVE-2026-1003", last.tracking_id, "team@example.org"),
    ]
    assert assigned[0]["before"] == {"state": "available", "vulnerability": None}
    assert assigned[0]["after"] == {"state": "assigned", "vulnerability": root.tracking_id}
    assert assigned[0]["case"] == root.tracking_id
    (whole,) = events("cve.assign_case")
    assert whole["target"] == root.tracking_id
    assert whole["assigned"] == {
        root.tracking_id: "CVE-2026-1001",
        fixed.tracking_id: "CVE-2026-1002",
        last.tracking_id: "CVE-2026-1003",
    }
    assert whole["skipped"][rejected.tracking_id] == "rejected"
    assert events("cve.block_low") == []

    # Again: nothing is left to give, nothing changes, nothing more is audited.
    again = cves.allocate_case(root, None, "team@example.org", clock.at)
    assert again.allocations == ()
    assert {s.reason for s in again.skipped} >= {"already has CVE-2026-1001"}
    assert len(events("cve.assign_case")) == 1 and cves.remaining() == 16


def test_a_published_member_without_an_id_is_left_to_a_single_assignment(db, clock, settings):
    cves.import_block("CVE-2026-1000..CVE-2026-1019", None, "test", clock.at)
    root, published = make_case(settings, clock, "accepted", "published")
    done = cves.allocate_case(root, None, "t", clock.at)
    assert [v.id for v, _ in done.allocations] == [root.id]
    assert [s.reason for s in done.skipped] == ["published without a CVE id; assign it one alone"]
    assert cve_of(published) is None


def test_too_few_ids_assigns_none_and_audits_nothing(db, clock, settings):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    case = make_case(settings, clock, "accepted", "accepted", "fixed")

    with pytest.raises(cves.NoIdsLeft) as refused:
        cves.allocate_case(case[1], None, "t", clock.at)

    message = str(refused.value)
    assert f"case {case[0].tracking_id} needs 3 CVE ids but the blocks have 2 left" in message
    assert "forewarn cve import-block" in message and "\n" not in message
    assert [cve_of(v) for v in case] == [None, None, None]
    assert {c.state for c in CveId.select()} == {"available"}
    assert events("cve.assign") == [] and events("cve.assign_case") == []

    # With a new block, the whole case gets its ids, lowest first.
    cves.import_block("CVE-2026-1002", None, "test", clock.at)
    done = cves.allocate_case(case[2], None, "t", clock.at)
    assert [c.cve_id for _, c in done.allocations] == [
        "CVE-2026-1000",
        "CVE-2026-1001",
        "CVE-2026-1002",
    ]


def test_the_blocks_running_low_after_a_case_is_flagged_once(db, clock, settings):
    cves.import_block("CVE-2026-1000..CVE-2026-1011", None, "test", clock.at)
    case = make_case(settings, clock, "accepted", "accepted", "accepted")

    done = cves.allocate_case(case[0], None, "t", clock.at)

    assert (done.remaining, done.low) == (9, True)
    assert "forewarn cve import-block" in done.warning
    assert events("cve.block_low") == [
        {"target": "blocks", "by": "system", "remaining": 9, "after": "CVE-2026-1002"}
    ]


def case_maps(root) -> list[Delivery]:
    query = Delivery.select().where(Delivery.kind == "case-map", Delivery.vulnerability == root.id)
    return list(query.order_by(Delivery.id))


def test_the_reporter_is_told_the_new_map_once_and_not_when_nothing_is_given(db, clock, settings):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    case = make_case(settings, clock, "accepted", "accepted", "fixed", "triage")
    Vulnerability.update(reporter_email="auditor@ncc.example").where(
        Vulnerability.id.in_([v.id for v in case])
    ).execute()

    with pytest.raises(cves.NoIdsLeft):
        cves.allocate_case(case[0], None, "t", clock.at)
    assert case_maps(case[0]) == []  # all or none: no id, no mail

    cves.import_block("CVE-2026-1002..CVE-2026-1003", None, "test", clock.at)
    cves.allocate_case(case[2], None, "t", clock.at)
    (mail,) = case_maps(case[0])
    assert (mail.recipient, mail.next_attempt_at) == (
        "auditor@ncc.example",
        clock.at + timedelta(seconds=60),
    )

    # One more id given alone within that minute rides in the same mail.
    Vulnerability.update(status="accepted").where(Vulnerability.id == case[3].id).execute()
    clock.move(seconds=20)
    assert cves.allocate(case[3], None, "t", clock.at).cve.cve_id == "CVE-2026-1003"
    assert case_maps(case[0]) == [mail]


# -- CVE Services -------------------------------------------------------------------------------


@pytest.fixture
def standin():
    with CveServicesStandIn(id_quota=12) as service:
        yield service


def services_env(standin, **changes) -> dict[str, str]:
    values = {
        cve_services.URL_VAR: standin.url,
        cve_services.USER_VAR: standin.user,
        cve_services.KEY_VAR: standin.api_key,
        cve_services.ORG_VAR: standin.org,
    }
    values.update(changes)
    return values


@pytest.fixture
def services(standin):
    return cve_services.ServicesConfig.from_environ(services_env(standin))


def reservations(standin) -> int:
    return standin.requests.count(("POST", "/api/cve-id"))


def test_services_mode_reserves_the_missing_count_in_one_request(
    db, clock, settings, standin, services
):
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)  # unused here
    case = make_case(settings, clock, "accepted", "triage", "accepted", "fixed")

    done = cves.allocate_case(case[0], None, "team@example.org", clock.at, services)

    assert [(v.id, c.cve_id) for v, c in done.allocations] == [
        (case[0].id, "CVE-2026-20000"),
        (case[2].id, "CVE-2026-20001"),
        (case[3].id, "CVE-2026-20002"),
    ]
    assert reservations(standin) == 1
    assert [standin.ids[c.cve_id]["state"] for _, c in done.allocations] == ["RESERVED"] * 3
    assert {c.source for _, c in done.allocations} == {"cve-services"}
    assert (done.remaining, done.low, done.source) == (9, True, "cve-services")
    assert "CVE Services quota" in done.warning
    assert [e["remaining"] for e in events("cve.quota_low")] == [9]
    assert [e["source"] for e in events("cve.assign")] == ["cve-services"] * 3
    assert events("cve.assign_case")[0]["source"] == "cve-services"
    assert cves.remaining() == 10  # the blocks are not used in services mode


def test_services_mode_uses_ids_reserved_earlier_before_reserving_more(
    db, clock, settings, standin, services
):
    CveId.create(
        cve_id="CVE-2026-30000",
        block="cve-services",
        year=2026,
        number=30000,
        source="cve-services",
    )
    case = make_case(settings, clock, "accepted", "accepted", "accepted")

    done = cves.allocate_case(case[0], None, "t", clock.at, services)

    assert [c.cve_id for _, c in done.allocations] == [
        "CVE-2026-20000",
        "CVE-2026-20001",
        "CVE-2026-30000",
    ]
    assert sorted(standin.ids) == ["CVE-2026-20000", "CVE-2026-20001"]  # two reserved, not 3
    assert reservations(standin) == 1


def test_services_mode_over_the_quota_reserves_and_assigns_nothing(
    db, clock, settings, standin, services
):
    standin.id_quota = 2
    case = make_case(settings, clock, "accepted", "accepted", "accepted")

    with pytest.raises(OperatorError) as error:
        cves.allocate_case(case[0], None, "t", clock.at, services)

    assert "403 EXCEEDED_ID_QUOTA" in str(error.value) and "\n" not in str(error.value)
    assert standin.ids == {}
    assert CveId.select().count() == 0
    assert [cve_of(v) for v in case] == [None, None, None]
    assert events("cve.assign_case") == []


# -- the command line ---------------------------------------------------------------------------


def test_cli_assign_case_prints_one_tab_separated_line_per_id(db, clock, settings, forewarn):
    cves.import_block("CVE-2026-1000..CVE-2026-1010", None, "test", clock.at)
    root, triage, fixed, rejected = make_case(
        settings, clock, "accepted", "triage", "fixed", "rejected"
    )

    result = forewarn("cve", "assign", triage.tracking_id.lower(), "--case")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{root.tracking_id}\tCVE-2026-1000\n{fixed.tracking_id}\tCVE-2026-1001\n"
    )
    assert result.stderr.splitlines() == [
        f"forewarn: {triage.tracking_id} skipped: not accepted yet (triage)",
        f"forewarn: {rejected.tracking_id} skipped: rejected",
        "forewarn: warning: only 9 CVE ids left in the blocks; import one with "
        "`forewarn cve import-block CVE-YYYY-FIRST..CVE-YYYY-LAST`",
    ]
    assert events("cve.assign_case")[0]["by"].startswith("cli:")

    # Without --case: unchanged, the id alone.
    Vulnerability.update(status="accepted").where(Vulnerability.id == triage.id).execute()
    single = forewarn("cve", "assign", triage.tracking_id)
    assert (single.returncode, single.stdout) == (0, "CVE-2026-1002\n")


def test_cli_assign_case_with_too_few_ids_is_one_line_and_gives_none(db, clock, settings, forewarn):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)
    case = make_case(settings, clock, "accepted", "accepted")

    result = forewarn("cve", "assign", case[0].tracking_id, "--case")

    assert (result.returncode, result.stdout) == (1, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith("forewarn: ") and "Traceback" not in result.stderr
    assert "needs 2 CVE ids but the blocks have 1 left" in line
    assert "forewarn cve import-block" in line
    assert [cve_of(v) for v in case] == [None, None]


def test_cli_assign_case_in_services_mode(db, clock, settings, standin, forewarn):
    root, fixed = make_case(settings, clock, "accepted", "fixed")

    result = forewarn("cve", "assign", fixed.tracking_id, "--case", extra_env=services_env(standin))

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{root.tracking_id}\tCVE-2026-20000\n{fixed.tracking_id}\tCVE-2026-20001\n"
    )
    assert result.stderr == ""
    assert reservations(standin) == 1


# -- the case page ------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, auth, admin_user):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    return client


def messages(page: str) -> list[str]:
    found = re.findall(r'<p class="message (\w+)">(.*?)</p>', page, re.S)
    return [f"{c}: {html_lib.unescape(' '.join(text.split()))}" for c, text in found]


def section(page: str) -> str:
    start = page.index("<h3>CVE ids</h3>")
    return " ".join(html_lib.unescape(page[start : page.index("</form>", start)]).split())


def press(client, visited: Vulnerability, token: str | None = None):
    page = client.get(f"/team/cases/{visited.tracking_id}").get_data(as_text=True)
    data = {"case-cves-csrf_token": token if token is not None else csrf_token(page)}
    return client.post(f"/team/cases/{visited.tracking_id}/cves", data=data)


def test_the_case_page_assigns_ids_to_the_whole_case_and_says_which(db, clock, settings, signed_in):
    cves.import_block("CVE-2026-1000..CVE-2026-1010", None, "test", clock.at)
    root, triage, fixed = make_case(settings, clock, "accepted", "triage", "fixed")

    before = section(signed_in.get(f"/team/cases/{triage.tracking_id}").get_data(as_text=True))
    assert "Assign CVE ids to every accepted vulnerability of the case (2)" in before
    assert "2 of the case's 3 vulnerabilities get an id" in before
    assert f"{root.tracking_id}, {fixed.tracking_id}" in before
    assert f"{triage.tracking_id} not accepted yet (triage)" in before

    answer = press(signed_in, triage)

    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/team/cases/{triage.tracking_id}")
    page = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    said = messages(page)
    assert said[0] == (
        f"success: Case {root.tracking_id}: {root.tracking_id} CVE-2026-1000, "
        f"{fixed.tracking_id} CVE-2026-1001. While an embargo lasts, release notes name them "
        "by id alone; at its lift, publish each record at CVE Services (its page then offers "
        "cve.json). "
        f"Not given one: {triage.tracking_id} not accepted yet (triage). "
        "The case has no reporter address, so nobody is mailed the map."
    )
    assert said[1].startswith("error: Admins: only 9 CVE ids left in the blocks")
    assert [cve_of(v) for v in (root, triage, fixed)] == ["CVE-2026-1000", None, "CVE-2026-1001"]
    assert events("cve.assign_case")[0]["by"] == "admin@example.org"
    after = section(page)
    assert "No vulnerability of the case needs an id now" in after
    assert "(0)</button>" in after and "disabled" in after


def test_the_case_page_with_too_few_ids_assigns_none_and_says_how_to_fix(
    db, clock, settings, signed_in
):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)
    root, fixed = make_case(settings, clock, "accepted", "fixed")

    answer = press(signed_in, fixed)

    said = messages(signed_in.get(answer.headers["Location"]).get_data(as_text=True))
    assert said == [
        f"error: No CVE id was assigned: case {root.tracking_id} needs 2 CVE ids but the blocks "
        "have 1 left; import a block with `forewarn cve import-block "
        "CVE-YYYY-FIRST..CVE-YYYY-LAST`, then assign again"
    ]
    assert [cve_of(v) for v in (root, fixed)] == [None, None]


def test_the_case_page_in_services_mode_reserves_and_says_the_lift_publishes(
    db, clock, settings, signed_in, standin, monkeypatch
):
    for name, value in services_env(standin).items():
        monkeypatch.setenv(name, value)
    root, fixed = make_case(settings, clock, "accepted", "fixed")

    answer = press(signed_in, root)

    said = messages(signed_in.get(answer.headers["Location"]).get_data(as_text=True))
    assert said == [
        f"success: Case {root.tracking_id}: {root.tracking_id} CVE-2026-20000, "
        f"{fixed.tracking_id} CVE-2026-20001. While an embargo lasts, release notes name them "
        "by id alone; at its lift, each record is published at CVE Services. The case has no "
        "reporter address, so nobody is mailed the map."
    ]
    assert reservations(standin) == 1


def test_the_case_button_needs_its_token(db, clock, settings, signed_in):
    cves.import_block("CVE-2026-1000..CVE-2026-1019", None, "test", clock.at)
    (root,) = make_case(settings, clock, "accepted")
    forged = signed_in.post(f"/team/cases/{root.tracking_id}/cves", data={})
    assert forged.status_code in (302, 400)
    assert cve_of(root) is None and events("cve.assign_case") == []


# -- concurrency: case-wide and single allocations from several processes -------------------------

WORKER = """
import json, sys
from app.core import clock, db
from app.core.errors import Refused
from app.models import Vulnerability
from app.vulns import cves

db.open_database(sys.argv[1]).connect()
jobs = json.loads(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # everyone starts together
done = []
for kind, ident in jobs:
    v = Vulnerability.get_by_id(ident)
    if kind == "case":
        given = cves.allocate_case(v, None, "worker", clock.now())
        done.append(["case", ident, [[m.id, c.cve_id] for m, c in given.allocations]])
        continue
    try:
        done.append(["one", ident, cves.allocate(v, None, "worker", clock.now()).cve.cve_id])
    except Refused as exc:
        done.append(["refused", ident, str(exc)])
print(json.dumps(done), flush=True)
"""


def run_together(database_url, job_lists) -> list[list]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, json.dumps(jobs)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for jobs in job_lists
    ]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [c.returncode for c in children] == [0] * len(children), [e for _, e in results]
    return [entry for out, _ in results for entry in json.loads(out)]


def test_concurrent_case_and_single_allocations_never_share_or_double_an_id(db, clock, settings):
    # Four cases of five (three get ids, a triage one and a rejected one do not), eight
    # vulnerabilities of their own, and single allocations racing for one member of each case:
    # exactly as many ids as vulnerabilities wanting one, so every id is fought over.
    kases = [
        make_case(
            settings, clock, "accepted", "triage", "fixed", "accepted", "rejected", title=f"A{n}"
        )
        for n in range(4)
    ]
    alone = [make_case(settings, clock, "accepted", title=f"B{n}")[0] for n in range(8)]
    wanting = [v for case in kases for v in case if v.status in cves.CASE_STATES] + alone
    cves.import_block(f"CVE-2026-1000..CVE-2026-{1000 + len(wanting) - 1}", None, "t", clock.at)
    contested = [case[3] for case in kases]
    singles = [["one", v.id] for v in alone + contested]
    job_lists = [[["case", case[2].id]] for case in kases] + [singles[i::3] for i in range(3)]

    done = run_together(settings.database_url, job_lists)

    linked = {v.id: v.cve.cve_id for v in Vulnerability.select() if v.cve_id}
    given = [cve for kind, _, got in done if kind == "case" for _, cve in got]
    given += [got for kind, _, got in done if kind == "one"]
    assert len(given) == len(set(given)) == len(wanting), sorted(given)  # no id given twice
    assert set(linked) == {v.id for v in wanting}  # every accepted one has one, no other
    assert len(set(linked.values())) == len(linked)  # ... and no two share one
    assert cves.remaining() == 0
    for kind, ident, got in done:
        if kind == "case":
            assert [linked[m] for m, _ in got] == [cve for _, cve in got]
            case = next(c for c in kases if c[2].id == ident)
            order = [v.id for v in case]
            assert [order.index(m) for m, _ in got] == sorted(order.index(m) for m, _ in got)
            numbers = [int(cve.rsplit("-", 1)[1]) for _, cve in got]
            assert numbers == sorted(numbers)  # lowest ids first, in the case's order
        elif kind == "one":
            assert linked[ident] == got
        else:  # a contested member that its case's allocation reached first
            assert ident in {v.id for v in contested}
            assert "already has" in got or "from someone else meanwhile" in got
    assigned = [e["target"] for e in events("cve.assign")]
    assert sorted(assigned) == sorted(given)  # each id audited once, as it was given


@pytest.mark.skipif(
    not PG_URL, reason="row locks: PostgreSQL only (SQLite runs one writer at once)"
)
@pytest.mark.parametrize("whole_case", [True, False], ids=["case", "single"])
def test_ids_held_by_an_allocation_that_lets_them_go_are_waited_for_not_refused(
    db, clock, settings, whole_case
):
    """Every free id is locked by a concurrent transaction that then rolls back: the allocation
    waits for it and takes the ids, instead of saying that none is left."""
    case = make_case(settings, clock, *(["accepted", "fixed"] if whole_case else ["accepted"]))
    cves.import_block(f"CVE-2026-1000..CVE-2026-100{len(case) - 1}", None, "t", clock.at)
    holding, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def hold():
        with db.connection_context(), write_transaction() as transaction:
            list(CveId.select().for_update())
            holding.set()
            release.wait(30)
            transaction.rollback()

    def allocate():
        with db.connection_context():
            outcome["pid"] = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
            try:
                if whole_case:
                    done = cves.allocate_case(case[0], None, "t", clock.at)
                    outcome["given"] = [c.cve_id for _, c in done.allocations]
                else:
                    outcome["given"] = [cves.allocate(case[0], None, "t", clock.at).cve.cve_id]
            except Exception as exc:  # noqa: BLE001 (reported to the test's thread)
                outcome["error"] = repr(exc)

    holder, allocator = threading.Thread(target=hold), threading.Thread(target=allocate)
    holder.start()
    assert holding.wait(30)
    allocator.start()
    try:
        wait_for(
            lambda: (
                "error" in outcome
                or db.execute_sql(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                    (outcome.get("pid", -1),),
                ).fetchone()
            ),
            what="the allocation to wait for the ids' holder",
        )
        assert "error" not in outcome and "given" not in outcome, outcome
    finally:
        release.set()
        holder.join(30)
        allocator.join(30)

    assert outcome == {
        "pid": outcome["pid"],
        "given": [f"CVE-2026-100{n}" for n in range(len(case))],
    }
    assert [cve_of(v) for v in case] == outcome["given"]
