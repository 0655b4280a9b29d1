"""The finding map of a case (#15): the reporter's labels to the vulnerabilities both ways, the
labels the report mentions that no vulnerability carries yet, and the one batched mail that
tells the reporter the map, sent through the real outbox and read with sqop."""

import hashlib
import time
from datetime import timedelta

import pytest

from app.models import Correspondence, CveId, Delivery, PublicKey, ReceivedFile, Vulnerability
from app.outbox import sending
from app.reports import attachments
from app.vulns import casemap, lifecycle, split
from app.workers import queue, reconcile
from mail.transport import SmtpTransport
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, make_sqop_key, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "cli:test")
REPORT_TEXT = (
    "Hello, our audit of Zephyr found these issues:\n"
    "NCC-ZEP-001: stack overflow in the syscall entry (ARM, ARC).\n"
    "NCC-ZEP-024, NCC-ZEP-025 and NCC-ZEP-026: one missing bounds check.\n"
    "NCC-ZEP-031: a race in the timer code. Related: CVE-2020-10024, CWE-121,\n"
    "GHSA-abcd-efgh-1234; we used HMAC-SHA-256 and zephyr-2.7.0. Your id: {tracking}.\n"
)


@pytest.fixture
def report(db, clock, settings, admin_user):
    v = lifecycle.create("NCC audit of Zephyr", "25 findings.", CLI, clock.at, settings)
    Vulnerability.update(
        reporter_email="auditor@ncc.example", reporter_name="NCC Group", status="triage"
    ).where(Vulnerability.id == v.id).execute()
    Correspondence.create(
        vulnerability=v,
        direction="in",
        at=clock.at,
        subject="NCC audit of Zephyr",
        text=REPORT_TEXT.format(tracking=v.tracking_id),
        sender="auditor@ncc.example",
    )
    return Vulnerability.get_by_id(v.id)


def case_maps(root):
    return list(
        Delivery.select()
        .where(Delivery.kind == "case-map", Delivery.vulnerability == root.id)
        .order_by(Delivery.id)
    )


def test_the_map_goes_both_ways(report, clock, settings):
    arm, arc, bounds = split.split(report, ["ARM", "ARC", "Bounds check"], CLI, clock.at, settings)
    lifecycle.set_field(arm, "findings", "NCC-ZEP-001", CLI, clock.at)
    lifecycle.set_field(arc, "findings", "ncc-zep-001", CLI, clock.at)
    lifecycle.set_field(bounds, "findings", "NCC-ZEP-026 NCC-ZEP-024 NCC-ZEP-025", CLI, clock.at)
    cve = CveId.create(cve_id="CVE-2026-10024", block="2026", year=2026, number=10024)
    Vulnerability.update(cve=cve, status="accepted").where(Vulnerability.id == arm.id).execute()

    found = casemap.finding_map(arc)

    assert found.case_id == report.tracking_id
    by_label = {label: [m.tracking_id for m in members] for label, members in found.by_label}
    assert by_label == {
        "NCC-ZEP-001": [arm.tracking_id, arc.tracking_id],  # one label, two vulnerabilities
        "NCC-ZEP-024": [bounds.tracking_id],
        "NCC-ZEP-025": [bounds.tracking_id],
        "NCC-ZEP-026": [bounds.tracking_id],
    }
    members = {m.tracking_id: m for m in found.members}
    assert members[bounds.tracking_id].labels == ("NCC-ZEP-024", "NCC-ZEP-025", "NCC-ZEP-026")
    assert (members[arm.tracking_id].cve_id, members[arm.tracking_id].status) == (
        "CVE-2026-10024",
        "accepted",
    )
    assert members[arc.tracking_id].embargo_until == report.embargo_until
    assert [m.tracking_id for m in found.unlabelled] == [report.tracking_id]


def test_labels_sort_naturally(report, clock, settings):
    lifecycle.set_field(report, "findings", "NCC-ZEP-10 NCC-ZEP-2 NCC-ZEP-1 Issue-7", CLI, clock.at)
    found = casemap.finding_map(report)
    assert [label for label, _ in found.by_label] == [
        "Issue-7",
        "NCC-ZEP-1",
        "NCC-ZEP-2",
        "NCC-ZEP-10",
    ]
    assert found.members[0].labels == ("Issue-7", "NCC-ZEP-1", "NCC-ZEP-2", "NCC-ZEP-10")


def test_labels_the_report_mentions_and_no_vulnerability_carries_are_flagged(
    report, clock, settings
):
    # No label set yet: the common audit shape, never CVE, CWE, GHSA ids, algorithm names,
    # versions or the case's own tracking id.
    assert casemap.unclaimed(report) == [
        "NCC-ZEP-001",
        "NCC-ZEP-024",
        "NCC-ZEP-025",
        "NCC-ZEP-026",
        "NCC-ZEP-031",
    ]
    (arm,) = split.split(report, ["ARM"], CLI, clock.at, settings)
    lifecycle.set_field(arm, "findings", "NCC-ZEP-001 NCC-ZEP-24", CLI, clock.at)
    lifecycle.set_field(report, "findings", "NCC-ZEP-025 NCC-ZEP-026", CLI, clock.at)
    # NCC-ZEP-24 carried is the report's NCC-ZEP-024.
    assert casemap.unclaimed(arm) == ["NCC-ZEP-031"]


def test_the_team_s_label_shape_finds_labels_in_an_attached_report(report, clock, settings):
    lifecycle.set_field(report, "findings", "TOB-ZEPH-1", CLI, clock.at)
    entry = Correspondence.create(
        vulnerability=report,
        direction="in",
        at=clock.at,
        subject="the full report",
        text="",
        sender="auditor@ncc.example",
        encrypted=True,
    )
    filler = "Lorem ipsum dolor sit amet. " * 4000  # a big report: ~110 kB before the findings
    shown = (
        f"{filler}\nTOB-ZEPH-1 (fixed), TOB-ZEPH-12 and tob-zeph-3; see CWE-787.\n"
        + "x" * attachments.MAX_SHOWN_CHARS
        + "\nTOB-ZEPH-99 is past what the thread shows.\n"
    ).encode()
    ReceivedFile.create(
        correspondence=entry,
        name="report.txt",
        content_type="text/plain",
        size=len(shown),
        sha256=hashlib.sha256(shown).hexdigest(),
        content=shown,
        encrypted=True,
    )
    # Labels of the team's shape only (NCC-ZEP-… in the message text is not that shape now),
    # from the text the thread shows of the file, in natural order.
    assert casemap.unclaimed(report) == ["tob-zeph-3", "TOB-ZEPH-12"]


def test_mentioned_keeps_the_audit_shape_and_nothing_else():
    text = (
        "NCC-ZEP-2, NCC-ZEP-10. CVE-2021-3581 CWE-20 GHSA-xxxx-yyyy-1234 SHA-256 UTF-8 "
        "ISO-8859-1 AES-GCM-128 2020-05-12 SEC-2026-0042 path/NCC-ZEP-5 zephyr-2.7.0 "
        "x41-d-3."
    )
    assert casemap.mentioned(text, [], ["SEC-2026-0001"]) == ["NCC-ZEP-2", "NCC-ZEP-10", "x41-d-3"]


# -- the reporter's mail: batched ------------------------------------------------------------


class _Sink:
    """The test SMTP sink and the outbox's relay to it."""

    def __init__(self):
        self.sink = SmtpSink()
        self.relay = SmtpTransport("127.0.0.1", self.sink.port, timeout=10)


@pytest.fixture
def sink():
    transport = _Sink()
    yield transport
    transport.sink.stop()


def test_three_changes_within_a_minute_give_one_mail_and_a_later_change_another(
    report, clock, settings, keyring, sink
):
    arm, arc = split.split(report, ["ARM", "ARC"], CLI, clock.at, settings)
    [first] = case_maps(report)
    assert (first.recipient, first.next_attempt_at) == (
        "auditor@ncc.example",
        clock.at + timedelta(seconds=60),
    )
    clock.move(seconds=20)
    lifecycle.set_field(arm, "findings", "NCC-ZEP-001", CLI, clock.at)
    clock.move(seconds=20)
    lifecycle.set_field(arc, "findings", "NCC-ZEP-001 NCC-ZEP-024", CLI, clock.at)
    assert case_maps(report) == [first]

    # Not due before its minute is up: the outbox leaves it alone.
    assert first.id not in [d.id for d in sending.due(clock.at)]
    assert sending.send(first.id, keyring, settings, sink.relay, clock.at) == "skipped"
    clock.move(seconds=21)
    assert first.id in [d.id for d in sending.due(clock.at)]
    assert sending.send(first.id, keyring, settings, sink.relay, clock.at) == "sent"
    assert len(sink.sink.received) == 1

    clock.move(minutes=5)
    lifecycle.set_field(arc, "status", "accepted", CLI, clock.at)
    again = case_maps(report)
    assert [d.state for d in again] == ["sent", "queued"]
    assert again[1].next_attempt_at == clock.at + timedelta(seconds=60)


def test_the_reconciler_queues_the_mail_only_when_its_minute_is_up(
    report, clock, settings, redis_conn
):
    split.split(report, ["ARM", "ARC"], CLI, clock.at, settings)
    [mail] = case_maps(report)
    job = reconcile.delivery_job_id(mail.id)
    waiting = lambda: [j for q in queue.worker_queues(redis_conn) for j in q.job_ids]  # noqa: E731
    reconcile.run(redis_conn, clock.at + timedelta(seconds=59))
    assert job not in waiting()
    reconcile.run(redis_conn, clock.at + timedelta(seconds=60))
    assert job in waiting()


def test_no_mail_for_a_case_of_one_without_labels(report, clock, settings):
    lifecycle.set_field(report, "status", "accepted", CLI, clock.at)
    lifecycle.set_field(report, "title", "NCC audit, renamed", CLI, clock.at)
    lifecycle.set_field(report, "findings", "", CLI, clock.at)
    assert case_maps(report) == []
    # A single report whose findings the team labels does get the map.
    lifecycle.set_field(report, "findings", "NCC-ZEP-001", CLI, clock.at)
    assert len(case_maps(report)) == 1


def test_a_case_member_accepted_or_rejected_tells_the_reporter(report, clock, settings):
    (arm,) = split.split(report, ["ARM"], CLI, clock.at, settings)
    Delivery.update(state="sent").execute()  # the split's mail went
    lifecycle.set_field(arm, "status", "rejected", CLI, clock.at, reason="Not reachable.")
    assert [d.state for d in case_maps(report)] == ["sent", "queued"]
    lifecycle.set_field(report, "status", "accepted", CLI, clock.at)
    assert len(case_maps(report)) == 2  # batched with the rejection's


# -- the reporter's mail: what it says, through the real outbox --------------------------------


def _send_due(root, clock, keyring, settings, relay):
    clock.move(seconds=61)
    [queued] = [d for d in case_maps(root) if d.state == "queued"]
    assert sending.send(queued.id, keyring, settings, relay, clock.at) == "sent"


def _ncc_case(report, clock, settings):
    arm, arc, bounds = split.split(
        report, ["ARM: syscall stack overflow", "ARC: syscall", "Bounds"], CLI, clock.at, settings
    )
    lifecycle.set_field(arm, "findings", "NCC-ZEP-001", CLI, clock.at)
    lifecycle.set_field(arc, "findings", "NCC-ZEP-001", CLI, clock.at)
    lifecycle.set_field(bounds, "findings", "NCC-ZEP-024 NCC-ZEP-025 NCC-ZEP-026", CLI, clock.at)
    cve = CveId.create(cve_id="CVE-2026-10024", block="2026", year=2026, number=10024)
    Vulnerability.update(cve=cve).where(Vulnerability.id == arm.id).execute()
    return arm, arc, bounds


def test_the_mail_maps_the_labels_encrypted_to_the_reporters_key(
    report, clock, settings, keyring, sink, tmp_path
):
    key = make_sqop_key(tmp_path / "ncc", "NCC Group <auditor@ncc.example>")
    stored = PublicKey.create(
        fingerprint=key.fingerprint, armored=key.cert.read_text(), created_at=clock.at
    )
    Vulnerability.update(reporter_key=stored).execute()
    arm, arc, bounds = _ncc_case(report, clock, settings)
    _send_due(report, clock, keyring, settings, sink.relay)

    [sent] = sink.sink.received
    assert sent.recipients == ["auditor@ncc.example"]
    assert parse(sent.data).get_content_type() == "multipart/encrypted"
    for secret in (b"NCC-ZEP-001", b"CVE-2026-10024", b"syscall stack overflow"):
        assert secret not in sent.data
    entity = run("sqop", "decrypt", str(key.secret), input=encrypted_payload(sent.data)).stdout
    body = text_of(parts_as_sent(entity)[0])
    assert body.startswith("Please check how we track the findings of your report")
    assert f"NCC-ZEP-001  {arm.tracking_id} (CVE-2026-10024), {arc.tracking_id}" in body
    assert f"NCC-ZEP-026  {bounds.tracking_id}" in body
    end = report.embargo_until.strftime("%Y-%m-%d %H:%M UTC")
    assert f"until the embargo ends on {end}" in body.replace("\n", " ")
    assert f"  {report.tracking_id} (your report as it came in)" in body
    assert "Findings:  NCC-ZEP-024, NCC-ZEP-025, NCC-ZEP-026" in body
    assert all(len(line) <= 72 for line in body.splitlines())


def test_without_a_key_the_reporter_gets_a_notice_naming_no_label(
    report, clock, settings, keyring, sink
):
    arm, arc, bounds = _ncc_case(report, clock, settings)
    _send_due(report, clock, keyring, settings, sink.relay)

    [sent] = sink.sink.received
    assert parse(sent.data).get_content_type() == "multipart/signed"
    body = text_of(parts_as_sent(sent.data)[0])
    assert "Please send us your OpenPGP public key" in body
    assert report.tracking_id in body
    for secret in ("NCC-ZEP", "CVE-2026-10024", arm.tracking_id, "syscall", arm.title):
        assert secret not in sent.data.decode("ascii", "replace")


def test_a_confirmed_reporter_key_sends_the_map_again_encrypted(
    report, clock, settings, admin_user
):
    from app.reports import reporter_keys

    _ncc_case(report, clock, settings)
    Delivery.update(state="sent").where(Delivery.kind == "case-map").execute()  # the notice
    offered = PublicKey.create(
        fingerprint="A" * 40, armored="(offered)", usable=True, created_at=clock.at
    )
    entry = Correspondence.create(
        vulnerability=report,
        direction="in",
        at=clock.at,
        text="here is my key",
        sender="auditor@ncc.example",
        offered_key=offered,
    )
    reporter_keys.confirm_reporter_key(report, entry.id, admin_user, clock.at)
    assert [d.state for d in case_maps(report)] == ["sent", "queued"]
    # Confirming another key later (the map went encrypted already) sends nothing new.
    Delivery.update(state="sent").where(Delivery.kind == "case-map").execute()
    newer = PublicKey.create(fingerprint="B" * 40, armored="(b)", usable=True, created_at=clock.at)
    Correspondence.update(offered_key=newer).where(Correspondence.id == entry.id).execute()
    reporter_keys.confirm_reporter_key(
        Vulnerability.get_by_id(report.id), entry.id, admin_user, clock.at
    )
    assert len(case_maps(report)) == 2


def test_a_long_word_in_a_report_is_scanned_in_linear_time():
    started = time.perf_counter()
    assert casemap.mentioned("x" * 200_000 + "-1 " + "a1-" * 60_000, [], []) == []
    assert time.perf_counter() - started < 2  # nested quantifiers would take hours


# -- the case page's form -----------------------------------------------------------------------


def test_labels_set_from_the_case_page_say_when_the_reporter_hears(
    report, clock, settings, client, auth, admin_user
):
    (arm,) = split.split(report, ["ARM"], CLI, clock.at, settings)
    other = lifecycle.create("Another report", "x", CLI, clock.at, settings)
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/cases/{arm.tracking_id}").get_data(as_text=True)
    assert "Mentioned in the report, not on any vulnerability yet" in page
    assert "NCC-ZEP-031" in page.split('id="unclaimed-heading"', 1)[1].split("</div>", 1)[0]

    answer = client.post(
        f"/team/cases/{arm.tracking_id}/findings",
        data={
            "findings-vulnerability": arm.tracking_id,
            "findings-labels": "NCC-ZEP-031  NCC-ZEP-001",
            "findings-csrf_token": csrf_token(page),
        },
        follow_redirects=True,
    )
    shown = answer.get_data(as_text=True)
    assert f"{arm.tracking_id} now covers NCC-ZEP-031 NCC-ZEP-001" in shown
    assert "The reporter gets the case&#39;s finding map by mail from 2026-11-25 12:01 UTC" in shown
    assert "NCC-ZEP-031" not in shown.split('id="unclaimed-heading"', 1)[1].split("</div>", 1)[0]

    refused = client.post(
        f"/team/cases/{arm.tracking_id}/findings",
        data={
            "findings-vulnerability": other.tracking_id,
            "findings-labels": "NCC-ZEP-002",
            "findings-csrf_token": csrf_token(page),
        },
        follow_redirects=True,
    )
    assert f"{other.tracking_id} is not in this case" in refused.get_data(as_text=True)
    assert casemap.finding_map(other).by_label == ()


def test_outsiders_cannot_set_labels(report, client):
    answer = client.post(
        f"/team/cases/{report.tracking_id}/findings",
        data={"findings-vulnerability": report.tracking_id, "findings-labels": "X-Y-1"},
    )
    assert answer.status_code in (302, 400, 401, 403)
    assert casemap.finding_map(report).by_label == ()
