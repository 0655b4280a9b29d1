"""The NCC scenario of #15, end to end: one encrypted audit report listing many findings
becomes a case of several vulnerabilities, worked and released together.

An auditor mails an encrypted, signed report (with a findings file attached) through a real
SMTP conversation with the intake; real jobs decrypt and track it. The team splits it, maps
the findings many-to-many, gives the case its CVE ids in one action, and the auditor gets one
mapping mail (decrypted with sqop). The case's embargo moves as one, then one vulnerability
moves alone. A second reporter's report of the same bug is folded in as a duplicate; their
mail carries no trace of the auditor. One advisory covers the case for every registrant
(decrypted with sqop). At the end the lift publishes the vulnerabilities sharing that
instant in one publication: one signed announcement naming exactly the CVEs lifted, the
public page and the exports per CVE, and the one with a later date still embargoed.
"""

from dataclasses import replace
from datetime import timedelta

import feedparser
import pytest

from app.disclosure import embargo_change, exports, lift, redaction
from app.models import AuditEvent, Delivery, Vulnerability
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import casemap, cases, cves, duplicates, lifecycle, split
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink
from tests.test_report_flow import flow, relay  # noqa: F401  (fixtures)

pytestmark = pytest.mark.db

TEAM = lifecycle.Actor(None, "cli:test")
REPORT = """Zephyr security audit, NCC Group, May 2020.

NCC-ZEP-001: stack overflow in the ARM and ARC context switch (canary-arm)
NCC-ZEP-024: buffer overflow in k_pipe_put from user mode
NCC-ZEP-025: buffer overflow in k_msgq_put from user mode
NCC-ZEP-026: buffer overflow in k_mbox from user mode
NCC-ZEP-031: missing bounds check in the syscall handler
"""
ATTACHED = "Appendix. NCC-ZEP-040: integer overflow in the USB DFU class.\n"
SECOND_REPORT = "The ARM context switch overflows its stack. -- Eve Second, eve@second.example"


@pytest.fixture(scope="module")
def people():
    return {
        "auditor": mc.make_reporter("auditor@ncc.example", "NCC Group"),
        "eve": mc.make_reporter("eve@second.example", "Eve Second"),
        "m0": mc.make_reporter("psirt@m0.example", "Maker 0"),
        "m1": mc.make_reporter("psirt@m1.example", "Maker 1"),
    }


def secret_file(tmp_path, reporter) -> str:
    path = tmp_path / f"{reporter.address}.key"
    path.write_bytes(reporter.secret)
    return str(path)


def read(raw: bytes, reporter, tmp_path) -> str:
    """The text of an encrypted mail, decrypted with Sequoia (sqop) by its recipient."""
    assert parse(raw).get_content_type() == "multipart/encrypted"
    entity = run(
        "sqop", "decrypt", secret_file(tmp_path, reporter), input=encrypted_payload(raw)
    ).stdout
    return text_of(parts_as_sent(entity)[0])


def deliver(kinds, keyring, settings, at) -> list[tuple[str, str, bytes]]:
    """Send every due delivery of these kinds through a real SMTP server; (kind, to, raw)."""
    sink = SmtpSink()
    try:
        sent = []
        due = Delivery.select().where(
            Delivery.kind.in_(kinds), Delivery.state == "queued", Delivery.next_attempt_at <= at
        )
        for d in due.order_by(Delivery.id):
            before = len(sink.received)
            outcome = sending.send(
                d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), at
            )
            assert outcome == "sent", (d.kind, d.recipient, Delivery.get_by_id(d.id).last_answer)
            for message in sink.received[before:]:
                sent.append((d.kind, message.recipients[0], message.data))
        return sent
    finally:
        sink.stop()


def report_by_mail(flow, reporter, text, attachments=()) -> Vulnerability:  # noqa: F811
    parts = [mc.text_part(text), *attachments, mc.key_part(reporter.cert)]
    inner = mc.multipart("mixed", parts, "ncc")
    ciphertext = mc.sqop_encrypt(flow.service_cert, inner, signer=reporter)
    message = flow.report(
        mc.pgp_mime_encrypted(ciphertext, subject="...", sender=reporter.sender),
        sender=reporter.address,
    )
    assert message.state == "processed"
    return Vulnerability.select().order_by(Vulnerability.id.desc()).first()


def test_an_audit_report_worked_as_one_case_from_intake_to_the_lift(  # noqa: PLR0915
    flow,  # noqa: F811
    settings,
    keyring,
    clock,
    people,
    tmp_path,
    app,
):
    settings = replace(settings, announce_address="announce@lists.example")
    auditor, eve = people["auditor"], people["eve"]

    # 1. The encrypted report arrives and becomes one vulnerability, its reporter's key pinned.
    appendix = mc.attachment_part("findings.txt", ATTACHED.encode(), "text/plain")
    report = report_by_mail(flow, auditor, REPORT, [appendix])
    assert report.reporter_email == auditor.address
    assert (
        report.reporter_key is not None and report.reporter_key.fingerprint == auditor.fingerprint
    )

    # 2. Split: the report keeps NCC-ZEP-031, three more vulnerabilities are made at once.
    report = lifecycle.set_field(
        report, "title", "Syscall handler: missing bounds check", TEAM, clock.at
    )
    arm, arc, pipes = split.split(
        report,
        [
            "ARM: stack overflow on context switch",
            "ARC: stack overflow on context switch",
            "Kernel objects: buffer overflows from user mode",
        ],
        TEAM,
        clock.at,
        settings,
    )
    assert [m.id for m in cases.members(pipes)] == [report.id, arm.id, arc.id, pipes.id]

    # 3. Findings many-to-many: one finding, two CVEs; one CVE, three findings.
    lifecycle.set_findings(report, "NCC-ZEP-031", TEAM, clock.at)
    lifecycle.set_findings(arm, "NCC-ZEP-001", TEAM, clock.at)
    lifecycle.set_findings(arc, "NCC-ZEP-001", TEAM, clock.at)
    lifecycle.set_findings(pipes, "NCC-ZEP-024 NCC-ZEP-025 NCC-ZEP-026", TEAM, clock.at)
    found = casemap.finding_map(report)
    by_label = {label: [m.tracking_id for m in held] for label, held in found.by_label}
    assert by_label["NCC-ZEP-001"] == [arm.tracking_id, arc.tracking_id]
    assert by_label["NCC-ZEP-024"] == by_label["NCC-ZEP-026"] == [pipes.tracking_id]
    assert casemap.unclaimed(report) == ["NCC-ZEP-040"]  # only in the attached appendix

    # 4. Accepted, then CVE ids for the whole case in one action.
    for v in (report, arm, arc, pipes):
        lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", TEAM, clock.at)
    cves.import_block("CVE-2020-10020..CVE-2020-10029", None, "test", clock.at)
    assigned = cves.allocate_case(arc, None, "test", clock.at)
    ids = {a.vulnerability.tracking_id: a.cve.cve_id for a in assigned.allocations}
    assert ids == {
        report.tracking_id: "CVE-2020-10020",
        arm.tracking_id: "CVE-2020-10021",
        arc.tracking_id: "CVE-2020-10022",
        pipes.tracking_id: "CVE-2020-10023",
    }
    assert AuditEvent.select().where(AuditEvent.action == "cve.assign_case").count() == 1

    # 5. One mapping mail for all those changes, encrypted to the auditor.
    clock.move(minutes=2)
    mails = deliver(["case-map"], keyring, settings, clock.at)
    assert [(kind, to) for kind, to, _ in mails] == [("case-map", auditor.address)]
    mapping = read(mails[0][2], auditor, tmp_path)
    flat = " ".join(mapping.split())  # wrapped at 72 columns
    assert (
        f"NCC-ZEP-001 {arm.tracking_id} (CVE-2020-10021), {arc.tracking_id} (CVE-2020-10022)"
        in flat
    )
    for label in ("NCC-ZEP-024", "NCC-ZEP-025", "NCC-ZEP-026"):
        assert f"{label} {pipes.tracking_id} (CVE-2020-10023)" in flat
    end = Vulnerability.get_by_id(report.id).embargo_until
    assert f"embargo ends on {end.strftime('%Y-%m-%d %H:%M UTC')}" in flat
    assert b"NCC-ZEP" not in mails[0][2] and b"CVE-2020" not in mails[0][2]

    # 6. The case's embargo moves as one; then the syscall fix needs longer and moves alone.
    new_end = end + timedelta(days=14)
    moved = embargo_change.change_embargo(
        arm, new_end, "ARC fix needs more time", TEAM, clock.at, settings
    )
    assert {v.tracking_id for v in moved.moved_with} == {
        report.tracking_id,
        arc.tracking_id,
        pipes.tracking_id,
    }
    later_end = new_end + timedelta(days=30)
    embargo_change.change_embargo(
        report, later_end, "the syscall fix needs a redesign", TEAM, clock.at, settings, only=True
    )
    ends = {m.tracking_id: m.embargo_until for m in cases.members(report)}
    assert ends == {
        report.tracking_id: later_end,
        arm.tracking_id: new_end,
        arc.tracking_id: new_end,
        pipes.tracking_id: new_end,
    }

    # 7. A second reporter's report of the ARM bug is folded in as a duplicate, credited.
    second = report_by_mail(flow, eve, SECOND_REPORT)
    assert cases.case_id(second) == second.tracking_id  # a case of its own
    duplicates.mark(second, arm, "same as the audit's NCC-ZEP-001", True, TEAM, clock.at, settings)
    second = Vulnerability.get_by_id(second.id)
    assert (second.status, second.duplicate_of_id) == ("rejected", arm.id)
    assert "Eve Second" in lifecycle.credits(Vulnerability.get_by_id(arm.id))
    [(_, to, raw)] = deliver(["duplicate"], keyring, settings, clock.at)
    assert to == eve.address
    told = read(raw, eve, tmp_path)
    assert arm.tracking_id in told
    for trace in (
        "NCC",
        "auditor@ncc.example",
        "ncc.example",
        "audit",
        "ARM: stack overflow",
        "CVE-2020-10021",
    ):
        assert trace not in told and trace.encode() not in raw

    # 8. One advisory covering the four for every registrant, each read with sqop.
    for n in (0, 1):
        maker = people[f"m{n}"]
        vetting.add_by_admin(
            maker.address, f"Maker {n}", maker.cert, None, "t", clock.at, approve=True
        )
    members = [Vulnerability.get_by_id(v.id) for v in (report, arm, arc, pipes)]
    versions = alerts.send_many(members, None, "cli:test", clock.at, settings)
    assert [a.version for a in versions] == [1, 1, 1, 1]
    sent = deliver(["alert"], keyring, settings, clock.at)
    assert sorted(to for _, to, _ in sent) == ["psirt@m0.example", "psirt@m1.example"]
    for _, to, raw in sent:
        advisory = read(raw, people["m0" if to.startswith("psirt@m0") else "m1"], tmp_path)
        for cve_id in ids.values():
            assert cve_id in advisory
            assert cve_id.encode() not in raw  # nothing in the clear, headers included
    for v in members:
        assert {r.user.email for r in alerts.alerted(v)} == {"psirt@m0.example", "psirt@m1.example"}

    # Before the lift, nothing of the case is public but ids and dates.
    client = app.test_client()
    listing = client.get("/vulnerabilities").get_data(as_text=True)
    for title in ("stack overflow", "buffer overflows", "NCC-ZEP", "NCC Group", "Eve Second"):
        assert title not in listing

    # 9. The lift at the shared end: one publication for the three, the syscall one waits.
    assert lift.lift(arc.id, new_end, settings) == "lifted"
    states = {m.tracking_id: m.status for m in cases.members(report)}
    assert states == {
        report.tracking_id: "accepted",
        arm.tracking_id: "published",
        arc.tracking_id: "published",
        pipes.tracking_id: "published",
    }
    assert lift.lift(arm.id, new_end, settings) == "already"
    mails = deliver(["announcement", "embargo-lifted", "publication"], keyring, settings, new_end)
    announcements = [raw for kind, _, raw in mails if kind == "announcement"]
    assert len(announcements) == 1
    announcement = parse(announcements[0])
    assert announcement.get_content_type() == "multipart/signed"
    text_part, signature = parts_as_sent(announcements[0])
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    sig = tmp_path / "announcement.sig"
    sig.write_bytes(body_of(signature))
    assert run("sqop", "verify", str(sig), str(cert), input=text_part).returncode == 0
    announced = text_of(text_part)
    for lifted in ("CVE-2020-10021", "CVE-2020-10022", "CVE-2020-10023"):
        assert lifted in announced
    for hidden in ("CVE-2020-10020", report.tracking_id, "Syscall handler", "NCC-ZEP-031"):
        assert hidden not in announced
    lifted_notices = sorted(to for kind, to, _ in mails if kind == "embargo-lifted")
    assert lifted_notices == ["psirt@m0.example", "psirt@m1.example"]  # one each
    publications = sorted(to for kind, to, _ in mails if kind == "publication")
    assert publications == [auditor.address, eve.address]
    for kind, to, raw in mails:
        if kind == "publication" and to == eve.address:
            for trace in ("NCC", "auditor@ncc.example"):
                assert trace.encode() not in raw

    # 10. The public page, feed and exports list each lifted CVE on its own.
    clock.move(seconds=(new_end - clock.at).total_seconds())
    listing = client.get("/vulnerabilities").get_data(as_text=True)
    for v in (arm, arc, pipes):
        page = client.get(f"/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
        assert Vulnerability.get_by_id(v.id).title in page and ids[v.tracking_id] in page
        assert ids[v.tracking_id] in listing
        for kind in exports.KINDS:
            if kind == "cve" and not settings.cna_org_id:
                continue
            exports.validate(
                kind,
                exports.document(kind, Vulnerability.get_by_id(v.id), new_end, settings),
                settings,
            )
    assert "Syscall handler" not in listing
    feed = feedparser.parse(client.get("/vulnerabilities.atom").get_data())
    assert not feed.bozo
    entries = {entry.title: entry for entry in feed.entries}
    for v in (arm, arc, pipes):  # one entry per CVE, as Zephyr's page lists them
        assert sum(ids[v.tracking_id] in title for title in entries) == 1
    assert not any("CVE-2020-10020" in title or "Syscall" in title for title in entries)
    assert "Syscall handler" not in client.get(f"/vulnerabilities/{report.tracking_id}").get_data(
        as_text=True
    )
    assert isinstance(
        redaction.public_view(Vulnerability.get_by_id(report.id), new_end), redaction.Placeholder
    )
    notes = "\n".join(exports.release_notes(new_end, base_url=settings.base_url))
    assert f"CVE-2020-10020: Under embargo until {later_end.strftime('%Y-%m-%d')}" in notes

    # And the syscall one lifts alone at its own end, with an announcement of its own.
    assert lift.lift(report.id, later_end, settings) == "lifted"
    [(_, _, raw)] = [m for m in deliver(["announcement"], keyring, settings, later_end)]
    alone = text_of(parts_as_sent(raw)[0])
    assert "CVE-2020-10020" in alone and "CVE-2020-10021" not in alone
