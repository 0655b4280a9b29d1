"""Duplicates (#15): a second reporter's report of what the desk already tracks ends there.
It is rejected and linked to the original, its reporter hears the id it is tracked under (and
the CVE id once public) but nothing of the other reporter nor of the embargoed original, may be
credited on the original once, and all of it can be undone. Audited; refused when it makes no
sense; through the domain, the command line and the case page."""

import json
from datetime import timedelta

import pytest

from app.core.errors import Refused
from app.disclosure import lift
from app.models import AuditEvent, CveId, Delivery, PublicKey, Vulnerability
from app.outbox import letters, sending
from app.vulns import duplicates, lifecycle, views
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "cli:test")
FIRST_TITLE = "Overflow in l2cap_reassemble when the length is 0xffff"
FIRST_TEXT = "The length check in l2cap_reassemble is off by one."


@pytest.fixture(scope="module")
def bob():
    return mc.make_reporter("bob.second@finder.example", "Bob Second")


def reported(clock, tracking_id, title, email, name, status="triage", key=None, **fields):
    """A vulnerability as report processing leaves it (then moved on by the team)."""
    return Vulnerability.create(
        tracking_id=tracking_id,
        title=title,
        description=fields.pop("description", ""),
        status=status,
        reporter_email=email,
        reporter_name=name,
        reporter_key=key,
        reported_at=clock.at,
        fix_due=clock.at + timedelta(days=30),
        embargo_until=clock.at + timedelta(days=90),
        created_at=clock.at,
        updated_at=clock.at,
        **fields,
    )


@pytest.fixture
def first(db, clock):
    """The original: Alice's report, accepted and embargoed, with a CVE id."""
    cve = CveId.create(
        cve_id="CVE-2026-41000", block="2026", year=2026, number=41000, state="assigned"
    )
    return reported(
        clock,
        "SEC-2026-0001",
        FIRST_TITLE,
        "alice.first@elsewhere.example",
        "Alice First",
        status="accepted",
        description=FIRST_TEXT,
        cve=cve,
    )


@pytest.fixture
def second(db, clock):
    """Bob's later report of the same thing, without a key on file."""
    return reported(clock, "SEC-2026-0002", "BLE crash", "bob.second@finder.example", "Bob Second")


def _reload(v: Vulnerability) -> Vulnerability:
    return Vulnerability.get_by_id(v.id)


def _mails(v: Vulnerability) -> list[dict]:
    rows = Delivery.select().where(Delivery.vulnerability == v).order_by(Delivery.id)
    return [{"kind": d.kind, "to": d.recipient, **json.loads(d.payload)} for d in rows]


def _audit(action: str) -> list[dict]:
    rows = AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.id)
    return [{"target": e.target, "by": e.actor_label, **json.loads(e.details)} for e in rows]


# -- the domain ----------------------------------------------------------------------------


def test_marking_ends_it_linked_to_the_original_and_undo_brings_it_back(
    first, second, clock, settings
):
    done = duplicates.mark(second, first, "Same root cause.", False, CLI, clock.at, settings)

    v = _reload(second)
    assert (v.status, v.duplicate_of_id) == ("rejected", first.id)
    assert v.rejection_reason == "Duplicate of SEC-2026-0001. Same root cause."
    assert (done.vulnerability.id, done.original.id, done.credit, done.reporter_told) == (
        second.id,
        first.id,
        None,
        True,
    )
    [event] = _audit("vuln.duplicate")
    assert event["target"] == "SEC-2026-0002" and event["by"] == "cli:test"
    assert (event["original"], event["reason"], event["before"]) == (
        "SEC-2026-0001",
        "Same root cause.",
        "triage",
    )
    assert (event["credit"], event["credit_added"]) == (False, None)
    assert views.details(v)["duplicate_of"] == "SEC-2026-0001"
    assert views.details(first)["duplicates"] == ["SEC-2026-0002"]
    assert views.details(first)["duplicate_of"] is None
    assert _mails(second) == [
        {"kind": "duplicate", "to": "bob.second@finder.example", "original": "SEC-2026-0001"}
        | {"credited": ""}
    ]
    # Rejected, it is not liftable: a lift waiting for its embargo end publishes nothing.
    assert lift.lift(second.id, second.embargo_until + timedelta(hours=1), settings) == (
        "not-public"
    )

    clock.move(hours=2)
    undone = duplicates.undo(v, CLI, clock.at, settings)

    v = _reload(second)
    assert (v.status, v.duplicate_of_id, v.rejection_reason) == ("triage", None, "")
    assert undone.vulnerability.status == "triage" and undone.credit is None
    [event] = _audit("vuln.duplicate_undone")
    assert (event["target"], event["original"], event["before"], event["after"]) == (
        "SEC-2026-0002",
        "SEC-2026-0001",
        "rejected",
        "triage",
    )
    assert views.details(first)["duplicates"] == []
    assert _mails(second)[-1] == {
        "kind": "duplicate",
        "to": "bob.second@finder.example",
        "original": "SEC-2026-0001",
        "undone": True,
    }
    # Tracked on its own again, it is the lift's as any triaged one (held at its end).
    assert lift.awaits_lift(v)


def test_an_accepted_one_goes_back_to_accepted_and_to_the_lift(first, clock, settings):
    third = reported(clock, "SEC-2026-0003", "Crash", "carol@x.example", "", status="accepted")
    duplicates.mark(third, first, "", False, CLI, clock.at, settings)
    assert (
        lift.due(third.embargo_until + timedelta(minutes=1))
        .where(Vulnerability.id == third.id)
        .count()
        == 0
    )

    duplicates.undo(third, CLI, clock.at, settings)

    assert _reload(third).status == "accepted"
    assert lift.after_change(third, clock.at, settings).outcome == lift.SCHEDULE


def test_a_lift_already_scheduled_for_it_publishes_nothing(
    first, clock, settings, redis_conn, env, monkeypatch
):
    from app.models import Publication
    from app.workers import jobs, queue, reconcile, scheduling
    from tests.conftest import run_jobs

    for name, value in env.items():  # the jobs read the worker's environment
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    third = reported(clock, "SEC-2026-0003", "Crash", "carol@x.example", "", status="accepted")
    assert scheduling.after_change(redis_conn, third, clock.at, settings) == "scheduled"
    duplicates.mark(third, first, "", False, CLI, clock.at, settings)
    # What the marking adapters do next: nothing to schedule for a rejected one.
    assert scheduling.after_change(redis_conn, third, clock.at, settings) == "none"

    clock.move(days=91)  # past its embargo end: the scheduled job fires, as RQ's scheduler would
    queue.enqueue(redis_conn, queue.LIFT, third.id, job_id=scheduling.lift_job_id(third))
    run_jobs(redis_conn)
    reconcile.run(redis_conn, clock.at)
    run_jobs(redis_conn)
    jobs._settings.cache_clear()

    assert _reload(third).status == "rejected" and _reload(third).published_at is None
    assert Publication.select().where(Publication.vulnerability == third).count() == 0
    assert [m["kind"] for m in _mails(third)] == ["duplicate"]  # no announcement, no notice
    assert _reload(first).status == "published"  # the original's own lift went ahead


def test_what_makes_no_sense_is_refused_in_one_line_and_changes_nothing(
    first, second, clock, settings
):
    third = reported(clock, "SEC-2026-0003", "Crash", "carol@x.example", "Carol")
    published = reported(clock, "SEC-2026-0004", "Old", "dan@x.example", "Dan", status="published")
    dropped = reported(clock, "SEC-2026-0005", "Not one", "eve@x.example", "Eve", status="rejected")
    duplicates.mark(second, first, "", False, CLI, clock.at, settings)
    before = (Delivery.select().count(), AuditEvent.select().count())

    refusals = [
        (third, third, "SEC-2026-0003 cannot be a duplicate of itself"),
        (
            third,
            second,
            "SEC-2026-0002 is itself a duplicate of SEC-2026-0001; mark SEC-2026-0003 as a "
            "duplicate of SEC-2026-0001",
        ),
        (published, first, "SEC-2026-0004 is published"),
        (second, third, "SEC-2026-0002 is already a duplicate of SEC-2026-0001; undo that first"),
        (third, dropped, "SEC-2026-0005 was rejected"),
        (first, third, "SEC-2026-0001 has duplicates of its own (SEC-2026-0002)"),
    ]
    for v, original, message in refusals:
        with pytest.raises(Refused) as refused:
            duplicates.mark(v, original, "", False, CLI, clock.at, settings)
        assert message in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(Refused, match="not marked as a duplicate; nothing to undo"):
        duplicates.undo(third, CLI, clock.at, settings)

    assert (Delivery.select().count(), AuditEvent.select().count()) == before
    assert [_reload(v).status for v in (third, published, dropped)] == [
        "triage",
        "published",
        "rejected",
    ]


def test_the_credit_is_added_once_by_name_and_taken_back_by_undo(first, second, clock, settings):
    assert lifecycle.credits(first) == "Alice First"  # the team wrote none: the reporter
    duplicates.mark(second, first, "", True, CLI, clock.at, settings)
    assert lifecycle.credits(_reload(first)) == "Alice First\nBob Second"
    assert _audit("vuln.duplicate")[0]["credit_added"] == "Bob Second"
    assert _audit("vuln.set.credits") == [  # on the original's own trail too
        {
            "target": "SEC-2026-0001",
            "by": "cli:test",
            "before": "",
            "after": "Alice First\nBob Second",
            "duplicate": "SEC-2026-0002",
        }
    ]

    # Bob's second report of it: credited already, so not twice.
    again = reported(clock, "SEC-2026-0003", "BLE crash again", second.reporter_email, "Bob Second")
    done = duplicates.mark(again, first, "", True, CLI, clock.at, settings)
    assert done.credit is None
    assert _reload(first).credits == "Alice First\nBob Second"
    assert _mails(again)[0]["credited"] == "Bob Second"  # told they are credited

    # Undoing the first keeps the credit the other still gives; undoing both takes it back,
    # and the credits read as the team left them (empty: the reporter by name).
    assert duplicates.undo(second, CLI, clock.at, settings).credit is None
    assert _reload(first).credits == "Alice First\nBob Second"
    assert duplicates.undo(again, CLI, clock.at, settings).credit is None  # it added none
    assert _reload(first).credits == "Alice First\nBob Second"
    duplicates.mark(again, first, "", False, CLI, clock.at, settings)
    assert _reload(first).credits == "Alice First\nBob Second"  # no credit, nothing changes

    fresh = reported(clock, "SEC-2026-0006", "Crash", "carol.c@mail.example", "")
    duplicates.mark(fresh, first, "", True, CLI, clock.at, settings)
    credits = _reload(first).credits
    assert credits.splitlines()[-1] == "carol.c"  # no name: the local part, never the address
    assert "mail.example" not in credits
    assert duplicates.undo(fresh, CLI, clock.at, settings).credit == "carol.c"
    assert _reload(first).credits == "Alice First\nBob Second"
    assert _audit("vuln.set.credits")[-1]["after"] == "Alice First\nBob Second"


def test_undo_removes_only_the_credit_it_added(db, clock, settings):
    team_wrote = reported(
        clock, "SEC-2026-0001", "A", "a@x.example", "Ann", credits="NCC Group (J. Doe)"
    )
    dup = reported(clock, "SEC-2026-0002", "B", "b@x.example", "Ben")
    duplicates.mark(dup, team_wrote, "", True, CLI, clock.at, settings)
    assert _reload(team_wrote).credits == "NCC Group (J. Doe)\nBen"
    lifecycle.set_field(team_wrote, "credits", "NCC Group (J. Doe)\nBen\nZoe", CLI, clock.at)

    assert duplicates.undo(dup, CLI, clock.at, settings).credit == "Ben"

    assert _reload(team_wrote).credits == "NCC Group (J. Doe)\nZoe"


def test_a_reporter_who_opted_out_or_left_no_name_is_not_credited(first, clock, settings):
    private = reported(clock, "SEC-2026-0003", "B", "b@x.example", "Ben", credit_reporter=False)
    with pytest.raises(Refused, match="asked not to be credited; mark it without credit"):
        duplicates.mark(private, first, "", True, CLI, clock.at, settings)
    erased = reported(clock, "SEC-2026-0004", "C", "", "")
    with pytest.raises(Refused, match="no reporter to credit"):
        duplicates.mark(erased, first, "", True, CLI, clock.at, settings)
    done = duplicates.mark(erased, first, "", False, CLI, clock.at, settings)
    assert done.reporter_told is False and _mails(erased) == []


# -- the reporter's mail -------------------------------------------------------------------


def _sent(delivery: Delivery, keyring, settings) -> bytes:
    sink = SmtpSink()
    try:
        relay = SmtpTransport("127.0.0.1", sink.port)
        assert sending.send(delivery.id, keyring, settings, relay, delivery.next_attempt_at) == (
            "sent"
        )
        [received] = sink.received
    finally:
        sink.stop()
    return received.data


def _other_reporter(first: Vulnerability) -> dict[str, str]:
    return {
        "name": first.reporter_name,
        "address": first.reporter_email,
        "address's local part": first.reporter_email.split("@")[0],
        "title": first.title,
        "description": first.description,
    }


def test_the_reporter_reads_the_id_encrypted_and_nothing_of_the_other_report(
    first, clock, settings, keyring, bob, tmp_path
):
    key = PublicKey.create(
        fingerprint=bob.fingerprint, armored=bob.cert.decode(), usable=True, created_at=clock.at
    )
    second = reported(
        clock, "SEC-2026-0002", "BLE crash", bob.address, bob.name, key=key, status="accepted"
    )
    duplicates.mark(
        second, first, "Alice First reported it a week earlier.", True, CLI, clock.at, settings
    )
    [delivery] = Delivery.select().where(Delivery.kind == "duplicate")

    raw = _sent(delivery, keyring, settings)

    secret = tmp_path / "bob.key"
    secret.write_bytes(bob.secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
    text = " ".join(text_of(parts_as_sent(entity)[0]).split())  # as read, whatever the wrapping
    assert "Your report SEC-2026-0002 describes a vulnerability we already track as" in text
    assert "SEC-2026-0001" in text
    assert "keep the report confidential" in text and "Nothing more is needed from you" in text
    assert "You are credited for it as: Bob Second." in text
    assert "CVE-2026-41000" not in text  # the original is not public yet
    inner = parse(parts_as_sent(entity)[0])
    assert inner["Subject"] == "[SEC-2026-0002] now tracked as SEC-2026-0001"
    outer = parse(raw)
    assert outer["Subject"] == "Security report SEC-2026-0002"
    assert outer["To"] == bob.address
    assert "SEC-2026-0001" not in raw.decode("ascii")  # only inside the encryption
    for what, value in _other_reporter(first).items():
        assert value.lower() not in text.lower(), what
        assert value.lower() not in raw.decode("ascii").lower(), what
    assert "reported it a week earlier" not in text  # the team's reason stays with the team


def test_the_cve_id_is_named_once_the_original_is_published(first, clock, settings, keyring, bob):
    key = PublicKey.create(
        fingerprint=bob.fingerprint, armored=bob.cert.decode(), usable=True, created_at=clock.at
    )
    second = reported(clock, "SEC-2026-0002", "BLE crash", bob.address, bob.name, key=key)
    duplicates.mark(second, first, "", False, CLI, clock.at, settings)
    [delivery] = Delivery.select().where(Delivery.kind == "duplicate")

    before = letters.text_for(delivery, keyring, settings, clock.at)
    clock.move(days=91)
    assert lift.lift(first.id, clock.at, settings) == "lifted"
    after = letters.text_for(delivery, keyring, settings, clock.at)

    assert "CVE-2026-41000" not in before.body and "SEC-2026-0001" in before.body
    assert "We now handle it under SEC-2026-0001" in before.body
    assert "SEC-2026-0001 (CVE-2026-41000)" in after.body
    assert f"{settings.base_url}/vulnerabilities/SEC-2026-0001" in after.body
    assert "You are not credited for it." in after.body
    for text in (before, after):
        assert text.certificate.fingerprint == bob.fingerprint
        for what, value in _other_reporter(first).items():
            if what != "title":  # the title is public after the lift, but not in this mail
                assert value.lower() not in text.body.lower(), what
        assert first.title not in text.body


def test_without_a_key_the_notice_names_no_id_until_it_is_public(
    first, second, clock, settings, keyring
):
    duplicates.mark(second, first, "", True, CLI, clock.at, settings)
    [delivery] = Delivery.select().where(Delivery.kind == "duplicate")

    raw = _sent(delivery, keyring, settings)

    message = parse(raw)
    assert message.get_content_type() == "multipart/signed"  # signed, not encrypted
    body = " ".join(text_of(parts_as_sent(raw)[0]).split())  # as read, whatever the wrapping
    assert "Your report SEC-2026-0002 describes a vulnerability we already track" in body
    assert "under another id" in body and "reply to this mail with your public key" in body
    assert "You are credited for it as: Bob Second." in body
    for secret in ("SEC-2026-0001", "CVE-2026-41000", *_other_reporter(first).values()):
        assert secret.lower() not in raw.decode("ascii").lower(), secret
    # Replies go to the duplicate's own case address, answering the reporter's thread.
    assert message["Reply-To"] == "security+SEC-2026-0002@localhost"


# -- the command line ----------------------------------------------------------------------


def test_the_command_line_marks_shows_and_undoes(first, second, clock, forewarn):
    marked = forewarn(
        "vulns",
        "duplicate",
        "sec-2026-0002",
        "--of",
        "CVE-2026-41000",
        "--reason",
        "same",
        "--credit",
    )
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout == (
        "SEC-2026-0002: duplicate of SEC-2026-0001, rejected; its reporter is told; "
        "credited on SEC-2026-0001\n"
    )
    shown = json.loads(forewarn("vulns", "show", "SEC-2026-0002", "--json").stdout)
    assert (shown["status"], shown["duplicate_of"], shown["duplicates"]) == (
        "rejected",
        "SEC-2026-0001",
        [],
    )
    original = json.loads(forewarn("vulns", "show", "CVE-2026-41000", "--json").stdout)
    assert (original["duplicate_of"], original["duplicates"]) == (None, ["SEC-2026-0002"])
    assert original["credits"] == "Alice First\nBob Second"
    assert "duplicates:     SEC-2026-0002\n" in forewarn("vulns", "show", "SEC-2026-0001").stdout
    assert "duplicate of:   SEC-2026-0001\n" in forewarn("vulns", "show", "SEC-2026-0002").stdout
    [event] = _audit("vuln.duplicate")
    assert event["by"].startswith("cli:") and event["reason"] == "same"

    again = forewarn("vulns", "duplicate", "SEC-2026-0002", "--of", "SEC-2026-0001")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == (
        "forewarn: SEC-2026-0002 is already a duplicate of SEC-2026-0001; undo that first\n"
    )
    for args in ((), ("--of", "SEC-2026-0001", "--undo")):
        unclear = forewarn("vulns", "duplicate", "SEC-2026-0002", *args)
        assert unclear.returncode == 1 and unclear.stderr.count("\n") == 1
        assert "give --of OTHER" in unclear.stderr and "--undo" in unclear.stderr
    unknown = forewarn("vulns", "duplicate", "SEC-2026-0002", "--of", "SEC-2026-0999")
    assert unknown.returncode == 1 and "no vulnerability SEC-2026-0999" in unknown.stderr

    undone = forewarn("vulns", "duplicate", "SEC-2026-0002", "--undo")

    assert undone.returncode == 0, undone.stderr
    assert undone.stdout == (
        "SEC-2026-0002: tracked on its own again (triage); no longer credited on "
        "SEC-2026-0001; its reporter is told\n"
    )
    shown = json.loads(forewarn("vulns", "show", "SEC-2026-0002", "--json").stdout)
    assert (shown["status"], shown["duplicate_of"]) == ("triage", None)
    assert _reload(first).credits == ""
    assert [m.get("undone", False) for m in _mails(second)] == [False, True]


# -- the case page -------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, auth, admin_user):
    from tests.conftest import PASSWORD

    auth.login(admin_user.email, PASSWORD)
    return client


def _token(client, v) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True))


def test_the_team_marks_and_undoes_on_the_case_page(signed_in, first, second):
    page = signed_in.get("/team/cases/SEC-2026-0002").get_data(as_text=True)
    assert "Mark as duplicate of" in page
    assert '<option selected value="SEC-2026-0002">' in page
    assert 'for="duplicate-original"' in page and 'for="duplicate-credit"' in page

    answer = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate",
        data={
            "duplicate-csrf_token": _token(signed_in, second),
            "duplicate-vulnerability": "SEC-2026-0002",
            "duplicate-original": "sec-2026-0001",
            "duplicate-reason": "Same root cause.",
            "duplicate-credit": "y",
        },
        follow_redirects=True,
    )

    said = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "SEC-2026-0002 is now a duplicate of SEC-2026-0001 and rejected." in said
    assert "Its reporter is told it is tracked under SEC-2026-0001, in a signed notice" in said
    assert "Its reporter is now credited on SEC-2026-0001." in said
    assert "Undo it on this page if it was a mistake." in said
    assert (_reload(second).status, _reload(second).duplicate_of_id) == ("rejected", first.id)
    assert "Undo: track SEC-2026-0002 on its own again" in said
    assert "No vulnerability of this case can be marked" in said

    dup_page = signed_in.get("/team/vulnerabilities/SEC-2026-0002").get_data(as_text=True)
    assert "<dt>Duplicate of</dt>" in dup_page
    assert 'href="/team/vulnerabilities/SEC-2026-0001">SEC-2026-0001</a>' in dup_page
    original_page = signed_in.get("/team/vulnerabilities/SEC-2026-0001").get_data(as_text=True)
    assert "<dt>Duplicates</dt>" in original_page
    assert 'href="/team/vulnerabilities/SEC-2026-0002">SEC-2026-0002</a>' in original_page

    undone = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate/undo",
        data={"undo-csrf_token": _token(signed_in, second)},
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "SEC-2026-0002 is tracked on its own again, as triage" in undone
    assert "Its reporter is no longer credited on SEC-2026-0001." in undone
    assert _reload(second).duplicate_of_id is None
    assert [e["by"] for e in _audit("vuln.duplicate_undone")] == ["admin@example.org"]


def test_a_refused_or_forged_mark_changes_nothing(signed_in, first, second):
    refused = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate",
        data={
            "duplicate-csrf_token": _token(signed_in, second),
            "duplicate-vulnerability": "SEC-2026-0002",
            "duplicate-original": "SEC-2026-0002",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "SEC-2026-0002 was not marked as a duplicate: SEC-2026-0002 cannot be a duplicate" in (
        refused
    )
    unknown = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate",
        data={
            "duplicate-csrf_token": _token(signed_in, second),
            "duplicate-vulnerability": "SEC-2026-0002",
            "duplicate-original": "SEC-2026-0404",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "no vulnerability SEC-2026-0404" in unknown
    # Only a vulnerability of the case the page is about can be chosen.
    elsewhere = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate",
        data={
            "duplicate-csrf_token": _token(signed_in, second),
            "duplicate-vulnerability": "SEC-2026-0001",
            "duplicate-original": "SEC-2026-0002",
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Not marked as a duplicate: Mark this vulnerability: Not a valid choice" in elsewhere
    forged = signed_in.post(
        "/team/cases/SEC-2026-0002/duplicate",
        data={"duplicate-vulnerability": "SEC-2026-0002", "duplicate-original": "SEC-2026-0001"},
    )
    assert forged.status_code == 400
    assert Vulnerability.select().where(Vulnerability.duplicate_of.is_null(False)).count() == 0
    assert _audit("vuln.duplicate") == []


def test_erasing_a_duplicates_reporter_names_the_credits_that_still_name_them(
    first, clock, settings
):
    from app.privacy import erasure

    nameless = reported(clock, "SEC-2026-0003", "Crash", "carol.c@mail.example", "")
    duplicates.mark(nameless, first, "", True, CLI, clock.at, settings)

    erased = erasure.erase_reporter("carol.c@mail.example", "cli:test", clock.at)

    assert erased.credits_to_edit == ("SEC-2026-0001",)
    assert "the credits of SEC-2026-0001 still name them" in erased.line()


def test_in_a_case_of_several_the_reporter_also_gets_the_new_finding_map(first, clock, settings):
    from app.vulns import casemap, split

    report = reported(clock, "SEC-2026-0002", "Audit", "auditor@ncc.example", "NCC Group")
    (arm,) = split.split(report, ["ARM: overflow"], CLI, clock.at, settings)
    Delivery.delete().where(Delivery.kind == casemap.KIND).execute()  # the split's own

    duplicates.mark(arm, first, "", False, CLI, clock.at, settings)

    [mapping] = Delivery.select().where(Delivery.kind == casemap.KIND)
    assert (mapping.vulnerability_id, mapping.recipient) == (report.id, "auditor@ncc.example")
    [member] = [m for m in casemap.finding_map(report).members if m.tracking_id == arm.tracking_id]
    assert member.duplicate_of == "SEC-2026-0001"
