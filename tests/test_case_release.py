"""Coordinated release of a case (#15): the members' shared embargo end moves as one (unless
one is moved alone), members lifted at the same instant are published in one publication with
one announcement, one notice per alerted registrant and one to the reporter, and a member with
a later end stays embargoed and is named nowhere until its own lift."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.disclosure import announcements, embargo_change, exports, lift
from app.models import AuditEvent, CveId, Delivery, Publication, Vulnerability
from app.outbox import letters, sending
from app.registry import alerts, vetting
from app.vulns import lifecycle, split
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "cli:test")
LATER_TITLE = "ARC: SECRET-LATER stack overflow in the syscall layer"


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@m{n}.example", f"Maker {n}") for n in range(2)]


@pytest.fixture
def settings(settings):
    return replace(settings, announce_address="announce@lists.example")


def cve(v: Vulnerability, number: int, at) -> Vulnerability:
    row = CveId.create(
        cve_id=f"CVE-2026-{number}",
        block="CVE-2026-1000..CVE-2026-1999",
        year=2026,
        number=number,
        state="assigned",
        assigned_at=at,
    )
    Vulnerability.update(cve=row).where(Vulnerability.id == v.id).execute()
    return Vulnerability.get_by_id(v.id)


@pytest.fixture
def case(db, clock, settings, admin_user):
    """An auditor's report split in three, all accepted with CVE ids and one embargo end."""
    root = lifecycle.create("ARM: stack overflow", "The ARM one.", CLI, clock.at, settings)
    Vulnerability.update(
        reporter_email="auditor@ncc.example",
        reporter_name="NCC Group",
        credits="NCC Group (J. Doe)",
    ).where(Vulnerability.id == root.id).execute()
    root = Vulnerability.get_by_id(root.id)
    made = split.split(root, ["x86: stack overflow", LATER_TITLE], CLI, clock.at, settings)
    members = []
    for n, v in enumerate([root, *made]):
        v = lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, clock.at)
        members.append(cve(v, 1001 + n, clock.at))
    return members


def lifts_mails() -> None:
    """Forget the mails so far but the alerts (they say who was alerted)."""
    Delivery.delete().where(Delivery.kind.not_in(("alert", "alert-missed"))).execute()


def reread(*vs):
    return [Vulnerability.get_by_id(v.id) for v in vs]


def deliver(kind, keyring, settings, at) -> dict[str, bytes]:
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.kind == kind):
            result = sending.send(
                d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), at
            )
            assert result == "sent", Delivery.get_by_id(d.id).last_answer
        return {r.recipients[0]: r.data for r in sink.received}
    finally:
        sink.stop()


def body(delivery, keyring, settings, at) -> str:
    return letters.text_for(delivery, keyring, settings, at).body


# -- moving the embargo ------------------------------------------------------------------------


def test_moving_one_moves_every_member_with_the_same_end_and_tells_each_once(
    case, clock, settings, admin_user, keyring
):
    root, x86, arc = case
    own = root.embargo_until + timedelta(days=30)
    Vulnerability.update(embargo_until=own).where(Vulnerability.id == arc.id).execute()
    later = root.embargo_until + timedelta(days=14)

    move = embargo_change.change_embargo(x86, later, "ARM fix slips", CLI, clock.at, settings)

    root, x86, arc = reread(root, x86, arc)
    assert (root.embargo_until, x86.embargo_until, arc.embargo_until) == (later, later, own)
    assert [c.vulnerability.id for c in move.changes] == [x86.id, root.id]
    assert [c.outcome for c in move.changes] == [lift.SCHEDULE, lift.SCHEDULE]
    assert move.vulnerability.id == x86.id and [m.id for m in move.moved_with] == [root.id]
    audited = AuditEvent.select().where(AuditEvent.action == "vuln.embargo_until")
    assert sorted(e.target for e in audited) == sorted([root.tracking_id, x86.tracking_id])
    together = json.loads(AuditEvent.get(AuditEvent.action == "case.embargo_moved").details)
    assert together["with"] == [root.tracking_id]
    changed = list(Delivery.select().where(Delivery.kind == "embargo-changed"))
    assert sorted(d.recipient for d in changed) == ["admin@example.org", "auditor@ncc.example"]
    to_reporter = next(d for d in changed if d.user_id is None)
    text = body(to_reporter, keyring, settings, clock.at)
    assert "The planned publication of your reports has moved" in text
    assert f"  {x86.tracking_id}\n  {root.tracking_id}\n" in text
    assert arc.tracking_id not in text
    to_team = body(next(d for d in changed if d.user_id), keyring, settings, clock.at)
    assert "these vulnerabilities of one case has been extended" in to_team
    assert arc.tracking_id not in to_team


def test_only_moves_one_alone_and_settled_members_never_move(case, clock, settings):
    root, x86, arc = case
    Vulnerability.update(status="rejected").where(Vulnerability.id == arc.id).execute()
    before = root.embargo_until
    later = before + timedelta(days=7)

    move = embargo_change.change_embargo(root, later, "vendor", CLI, clock.at, settings, only=True)
    assert [c.vulnerability.id for c in move.changes] == [root.id]
    assert [v.embargo_until for v in reread(root, x86, arc)] == [later, before, before]

    again = embargo_change.change_embargo(x86, later, "vendor", CLI, clock.at, settings)
    assert [c.vulnerability.id for c in again.changes] == [x86.id]  # root already had `later`
    assert reread(arc)[0].embargo_until == before  # rejected: left alone
    assert not AuditEvent.select().where(AuditEvent.action == "case.embargo_moved").exists()


def test_a_registrant_alerted_about_several_moved_members_gets_one_notice(
    case, clock, settings, makers, keyring, tmp_path
):
    root, x86, arc = case
    for n, m in enumerate(makers):
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
    for v in (root, x86):
        alerts.send(v, None, "t", clock.at, settings)
    embargo_change.change_embargo(
        root, root.embargo_until + timedelta(days=3), "fix slipped", CLI, clock.at, settings
    )
    notices = list(Delivery.select().where(Delivery.kind == "alert-embargo"))
    assert sorted(d.recipient for d in notices) == ["psirt@m0.example", "psirt@m1.example"]
    raw = deliver("alert-embargo", keyring, settings, clock.at)["psirt@m0.example"]
    secret = tmp_path / "m0.key"
    secret.write_bytes(makers[0].secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    text = text_of(parts_as_sent(entity)[0])
    ids = ", ".join(sorted([root.tracking_id, x86.tracking_id]))
    assert f"The embargo of {ids} has been extended." in text
    assert arc.tracking_id not in text and b"fix slipped" not in raw


def test_a_case_of_one_moves_as_before(db, clock, settings, admin_user):
    v = lifecycle.create("Alone", "d", CLI, clock.at, settings)
    move = embargo_change.change_embargo(
        v, v.embargo_until + timedelta(days=1), "slip", CLI, clock.at, settings
    )
    assert move.outcome == lift.SCHEDULE and move.moved_with == []
    [team] = Delivery.select().where(Delivery.kind == "embargo-changed")
    assert "moved" not in json.loads(team.payload)


# -- the lift ------------------------------------------------------------------------------------


@pytest.fixture
def staggered(case, clock, settings, makers):
    """root and x86 end together, arc a week later; maker 0 alerted about all three, maker 1
    (approved later) about x86 alone; a second reporter's duplicate of root."""
    root, x86, arc = case
    own = root.embargo_until + timedelta(days=7)
    embargo_change.change_embargo(arc, own, "ARC fix later", CLI, clock.at, settings, only=True)
    vetting.add_by_admin(
        makers[0].address, "Maker 0", makers[0].cert, None, "t", clock.at, approve=True
    )
    alerts.send(root, None, "t", clock.at, settings)
    alerts.send(arc, None, "t", clock.at, settings)
    vetting.add_by_admin(
        makers[1].address, "Maker 1", makers[1].cert, None, "t", clock.at, approve=True
    )
    alerts.send(x86, None, "t", clock.at, settings)
    dup = lifecycle.create("Same ARM overflow", "Found it too.", CLI, clock.at, settings)
    Vulnerability.update(
        reporter_email="second@finder.example",
        reporter_name="Second Finder",
        status="rejected",
        duplicate_of=root,
    ).where(Vulnerability.id == dup.id).execute()
    lifts_mails()
    return reread(root, x86, arc, dup)


def test_the_members_due_together_are_published_in_one_publication(
    staggered, clock, settings, keyring, tmp_path
):
    root, x86, arc, dup = staggered
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())

    assert lift.lift(x86.id, clock.at, settings) == "lifted"

    root, x86, arc = reread(root, x86, arc)
    assert (root.status, x86.status, arc.status) == ("published", "published", "accepted")
    assert root.published_at == x86.published_at == clock.at
    assert [m.id for m in lift.published_with(root)] == [root.id, x86.id]
    assert sorted(p.vulnerability_id for p in Publication.select()) == [root.id, x86.id]
    assert lift.lift(root.id, clock.at, settings) == "already"  # its own job finds it done
    lifted = Delivery.select().where(Delivery.kind.in_(announcements.KINDS))
    queued = sorted((d.kind, d.recipient) for d in lifted)
    assert queued == [
        ("announcement", "announce@lists.example"),
        ("embargo-lifted", "psirt@m0.example"),
        ("embargo-lifted", "psirt@m1.example"),
        ("publication", "auditor@ncc.example"),
        ("publication", "second@finder.example"),
    ]

    raw = deliver("announcement", keyring, settings, clock.at)["announce@lists.example"]
    message = parse(raw)
    assert message.get_content_type() == "multipart/signed"
    assert message["Subject"] == "[CVE-2026-1001, CVE-2026-1002] 2 vulnerabilities published"
    text_part, signature = parts_as_sent(raw)
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    sig = tmp_path / "sig.asc"
    sig.write_bytes(signature.split(b"\r\n\r\n", 1)[1])
    assert run("sqop", "verify", str(sig), str(cert), input=text_part).returncode == 0
    text = text_of(text_part)
    assert set(_cves(text)) == {"CVE-2026-1001", "CVE-2026-1002"}
    for shown in ("ARM: stack overflow", "x86: stack overflow", "The ARM one."):
        assert shown in text
    assert f"== CVE-2026-1001 ({root.tracking_id}) ==" in text
    assert arc.tracking_id not in text and "SECRET-LATER" not in text
    assert "auditor@ncc.example" not in text


def _cves(text: str) -> list[str]:
    import re

    return re.findall(r"CVE-\d{4}-\d+", text)


def test_each_registrant_hears_once_of_those_they_were_alerted_about(
    staggered, clock, settings, keyring, makers, tmp_path
):
    root, x86, arc, dup = staggered
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    lift.lift(root.id, clock.at, settings)
    sent = deliver("embargo-lifted", keyring, settings, clock.at)
    assert sorted(sent) == ["psirt@m0.example", "psirt@m1.example"]
    m0 = text_of(parts_as_sent(sent["psirt@m0.example"])[0])
    assert set(_cves(m0)) == {"CVE-2026-1001", "CVE-2026-1002"}  # arc's end is later
    assert "The embargo of these vulnerabilities ended" in m0
    assert "SECRET-LATER" not in m0 and arc.tracking_id not in m0
    m1 = text_of(parts_as_sent(sent["psirt@m1.example"])[0])
    assert set(_cves(m1)) == {"CVE-2026-1002"}


def test_the_reporter_gets_one_notice_and_the_duplicates_reporter_only_the_public_id(
    staggered, clock, settings, keyring
):
    root, x86, arc, dup = staggered
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    lift.lift(root.id, clock.at, settings)
    sent = deliver("publication", keyring, settings, clock.at)
    theirs = text_of(parts_as_sent(sent["auditor@ncc.example"])[0])
    assert "Your reports are public now" in theirs
    assert f"{root.tracking_id}, as CVE-2026-1001" in theirs
    assert f"{x86.tracking_id}, as CVE-2026-1002" in theirs
    assert "It credits: NCC Group (J. Doe)" in theirs
    assert arc.tracking_id not in theirs and "SECRET-LATER" not in theirs
    second = sent["second@finder.example"]
    told = text_of(parts_as_sent(second)[0])
    assert f"Your report {dup.tracking_id} was about a vulnerability" in told
    assert "CVE-2026-1001" in told and set(_cves(told)) == {"CVE-2026-1001"}
    for other in ("NCC", "auditor@ncc.example", "J. Doe", x86.tracking_id, arc.tracking_id):
        assert other.encode() not in second


def test_the_later_member_lifts_alone_at_its_own_instant(staggered, clock, settings, keyring):
    root, x86, arc, dup = staggered
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    lift.lift(root.id, clock.at, settings)
    lifts_mails()
    assert lift.lift(arc.id, clock.at, settings) == "not-due"
    clock.move(days=7)
    assert lift.lift(arc.id, clock.at, settings) == "lifted"
    assert [m.id for m in lift.published_with(arc)] == [arc.id]
    [announcement] = Delivery.select().where(Delivery.kind == "announcement")
    assert json.loads(announcement.payload) == {}  # a publication of one, as ever
    text = body(announcement, keyring, settings, clock.at)
    assert set(_cves(text)) == {"CVE-2026-1003"}
    assert text.startswith(f"CVE-2026-1003 ({arc.tracking_id}): {LATER_TITLE}")
    assert not Delivery.select().where(Delivery.recipient == "second@finder.example").exists()
    assert [d.recipient for d in Delivery.select().where(Delivery.kind == "embargo-lifted")] == [
        "psirt@m0.example"
    ]


def test_the_lift_queues_nothing_twice_for_a_publication(staggered, clock, settings):
    root, x86, arc, dup = staggered
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    lift.lift(root.id, clock.at, settings)
    count = Delivery.select().count()
    assert announcements.queue(*reread(x86), clock.at, settings) == 0
    assert announcements.queue(*reread(root), clock.at, settings, reread(x86)) == 0
    assert Delivery.select().count() == count


def test_an_early_lift_of_the_case_follows_every_moved_member(staggered, clock, settings):
    root, x86, arc, dup = staggered
    move = embargo_change.change_embargo(
        x86, clock.at - timedelta(minutes=1), "exploited", CLI, clock.at, settings
    )
    assert [(c.vulnerability.id, c.outcome) for c in move.changes] == [
        (x86.id, "lifted"),
        (root.id, "lifted"),
    ]
    assert reread(arc)[0].status == "accepted"
    assert Delivery.select().where(Delivery.kind == "announcement").count() == 1


# -- release notes ---------------------------------------------------------------------------


def test_release_notes_name_each_embargoed_cve_and_the_lifted_ones_after_a_partial_lift(
    staggered, clock, settings
):
    root, x86, arc, dup = staggered
    day = root.embargo_until.date().isoformat()
    later = arc.embargo_until.date().isoformat()
    notes = exports.release_notes(clock.at, base_url="https://cna.example")
    assert notes == [
        f"CVE-2026-1001: Under embargo until {day}",
        f"CVE-2026-1002: Under embargo until {day}",
        f"CVE-2026-1003: Under embargo until {later}",
    ]
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    lift.lift(root.id, clock.at, settings)
    notes = exports.release_notes(clock.at, base_url="https://cna.example")
    assert notes == [
        "CVE-2026-1001: ARM: stack overflow "
        f"(https://cna.example/vulnerabilities/{root.tracking_id})",
        "CVE-2026-1002: x86: stack overflow "
        f"(https://cna.example/vulnerabilities/{x86.tracking_id})",
        f"CVE-2026-1003: Under embargo until {later}",
    ]


# -- the command line and the portal ---------------------------------------------------------


def test_the_command_line_moves_the_case_or_one_alone(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    (tmp_path / "d.md").write_text("Details.\n")
    root = forewarn(
        "vulns", "create", "--title", "Report", "--description-file", str(tmp_path / "d.md")
    ).stdout.strip()
    made = forewarn("vulns", "split", root, "--title", "One", "--title", "Two")
    assert made.returncode == 0, made.stderr
    one, two = made.stdout.split()

    alone = forewarn("vulns", "set", two, "embargo_until", "2027-06-01", "--only")
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == f"{two}: embargo_until set\n"

    moved = forewarn("vulns", "set", root, "embargo_until", "2027-05-01")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == f"{root}: embargo_until set\n{one}: embargo_until set\n"

    def end(tracking):
        return json.loads(forewarn("vulns", "show", tracking, "--json").stdout)["embargo_until"]

    assert end(root).startswith("2027-05-01") and end(one).startswith("2027-05-01")
    assert end(two).startswith("2027-06-01")
    wrong = forewarn("vulns", "set", root, "title", "T", "--only")
    assert wrong.returncode != 0 and wrong.stderr.count("\n") == 1
    assert "--only" in wrong.stderr


def test_the_dates_form_moves_the_case_unless_the_box_is_ticked(
    case, client, auth, admin_user, clock
):
    root, x86, arc = case
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/vulnerabilities/{root.tracking_id}").get_data(as_text=True)
    assert "Move only this vulnerability (not the others of the case with the same end)" in page
    assert "(own date)" not in page

    def post(v, **data):
        page = client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
        form = {f"dates-{k}": value for k, value in data.items()}
        form["dates-csrf_token"] = csrf_token(page)
        return client.post(
            f"/team/vulnerabilities/{v.tracking_id}/dates", data=form, follow_redirects=True
        ).get_data(as_text=True)

    answer = post(arc, embargo_until="2027-06-01", reason="ARC later", only="y")
    assert "moved with it" not in answer
    june = datetime(2027, 6, 1, 14, tzinfo=UTC)
    assert [v.embargo_until for v in reread(root, x86, arc)] == [root.embargo_until] * 2 + [june]
    assert answer.count("(own date)") == 1

    answer = post(root, embargo_until="2027-05-01", reason="vendor needs time")
    may = datetime(2027, 5, 1, 14, tzinfo=UTC)
    assert [v.embargo_until for v in reread(root, x86, arc)] == [may, may, june]
    assert f"{x86.tracking_id} of the case moved with it" in answer


def test_the_case_page_moves_the_coordinated_end_and_names_own_dates(
    case, client, auth, admin_user, clock, settings
):
    root, x86, arc = case
    june = datetime(2027, 6, 1, 14, tzinfo=UTC)
    embargo_change.change_embargo(arc, june, "ARC later", CLI, clock.at, settings, only=True)
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/cases/{x86.tracking_id}").get_data(as_text=True)
    assert "Coordinated embargo end" in page
    assert f'{arc.tracking_id} (<time datetime="2027-06-01T14:00:00Z">' in page

    answer = client.post(
        f"/team/cases/{x86.tracking_id}/embargo",
        data={
            "release-csrf_token": csrf_token(page),
            "release-embargo_until": "2027-05-01",
            "release-reason": "vendor needs time",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    may = datetime(2027, 5, 1, 14, tzinfo=UTC)
    assert [v.embargo_until for v in reread(root, x86, arc)] == [may, may, june]
    assert f"the embargo of {root.tracking_id}, {x86.tracking_id} ends 2027-05-01" in answer
    refused = client.post(
        f"/team/cases/{x86.tracking_id}/embargo",
        data={"release-csrf_token": csrf_token(page), "release-embargo_until": "2027-07-01"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "needs a reason" in refused
    assert reread(root)[0].embargo_until == may


def test_the_workers_follow_every_member_lifted_together(
    staggered, clock, settings, redis_conn, env, monkeypatch
):
    from app.workers import jobs, scheduling
    from app.workers.queue import work_queue

    root, x86, arc, dup = staggered
    move = embargo_change.change_embargo(
        x86, clock.at - timedelta(minutes=1), "exploited", CLI, clock.at, settings
    )
    for change in move.changes:
        scheduling.follow(redis_conn, change, clock.at)
    waiting = work_queue(redis_conn).job_ids
    assert f"publication-{x86.id}" in waiting and f"publication-{root.id}" in waiting
    assert f"publication-{arc.id}" not in waiting

    # The later one's lift job, at its instant, completes its own publication alone.
    for name, value in env.items():  # the jobs read the worker's environment
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    try:
        clock.move(seconds=(arc.embargo_until - clock.at).total_seconds())
        assert jobs.lift(arc.id) == "lifted"
    finally:
        jobs._settings.cache_clear()
    attempts = {p.vulnerability_id: p.attempts for p in Publication.select()}
    assert attempts == {root.id: 0, x86.id: 0, arc.id: 1}


def test_the_lift_job_completes_each_publication_of_the_case(
    staggered, clock, settings, redis_conn, env, monkeypatch
):
    from app.workers import jobs

    root, x86, arc, dup = staggered
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    try:
        clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
        assert jobs.lift(x86.id) == "lifted"
        assert jobs.lift(root.id) == "already"
    finally:
        jobs._settings.cache_clear()
    attempts = {p.vulnerability_id: p.attempts for p in Publication.select()}
    assert attempts == {root.id: 1, x86.id: 1}


def test_a_registrant_sent_one_advisory_for_several_hears_once_at_their_lift(
    case, clock, settings, makers, keyring
):
    root, x86, arc = case
    vetting.add_by_admin(
        makers[0].address, "Maker 0", makers[0].cert, None, "t", clock.at, approve=True
    )
    alerts.send_many([root, x86, arc], None, "t", clock.at, settings, None)
    embargo_change.change_embargo(
        arc, arc.embargo_until + timedelta(days=7), "ARC later", CLI, clock.at, settings, only=True
    )
    clock.move(seconds=(root.embargo_until - clock.at).total_seconds())
    assert lift.lift(root.id, clock.at, settings) == "lifted"
    [notice] = Delivery.select().where(Delivery.kind == "embargo-lifted")
    assert notice.recipient == makers[0].address
    text = body(notice, keyring, settings, clock.at)
    assert set(_cves(text)) == {"CVE-2026-1001", "CVE-2026-1002"}
    assert arc.tracking_id not in text and "SECRET-LATER" not in text
