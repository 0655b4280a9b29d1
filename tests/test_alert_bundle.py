"""One pre-disclosure advisory covering several vulnerabilities (#15): the next version of each,
one mail per registrant with a section for each, and every per-vulnerability record (who was
alerted, what a registrant may read, delivery progress) as if each had been sent alone."""

import json
from datetime import UTC, datetime

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.errors import Refused
from app.models import ALL_MODELS, Advisory, AuditEvent, CveId, Delivery, Registrant, Vulnerability
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
SECRETS = ("heap overflow in the L2CAP reassembly", "stack smash in the DNS resolver")


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@b{n}.example", f"Bundle Maker {n}") for n in range(2)]


@pytest.fixture
def registrants(db, clock, makers):
    return [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers)
    ]


def _vulnerability(title, cve, clock, settings, **fields):
    v = lifecycle.create(f"The {title}", f"Details of the {title}.", CLI, clock.at, settings)
    number = int(cve.rsplit("-", 1)[1])
    CveId.create(cve_id=cve, block="2026", year=2026, number=number, state="assigned")
    Vulnerability.update(
        cve=CveId.get(CveId.cve_id == cve),
        severity=fields.get("severity", "high"),
        affected=fields.get("affected", "zephyr <3.7"),
        fix_refs=fields.get("fix", "https://git.example.org/fix"),
        mitigation=fields.get("mitigation", "Turn it off."),
    ).where(Vulnerability.id == v.id).execute()
    return lifecycle.set_status(Vulnerability.get_by_id(v.id), "accepted", CLI, clock.at)


@pytest.fixture
def pair(db, clock, settings):
    return [
        _vulnerability(
            SECRETS[0], "CVE-2026-1000", clock, settings, severity="critical", mitigation="M-ONE"
        ),
        _vulnerability(
            SECRETS[1], "CVE-2026-1001", clock, settings, affected="dns <2.1", fix="FIX-TWO"
        ),
    ]


def _send_all(keyring, settings, clock, ids=None):
    """Every queued delivery through the outbox to a real SMTP server; what it received."""
    sink = SmtpSink()
    try:
        query = Delivery.select().where(Delivery.state == "queued")
        if ids is not None:
            query = query.where(Delivery.id.in_(ids))
        outcomes = [
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
            for d in query.order_by(Delivery.id)
        ]
        return outcomes, list(sink.received)
    finally:
        sink.stop()


def test_one_mail_per_registrant_carries_a_section_for_each_decrypted_and_verified(
    pair, registrants, makers, clock, settings, keyring, tmp_path
):
    versions = alerts.send_many(pair, None, "t", clock.at, settings)
    assert [(a.vulnerability_id, a.version) for a in versions] == [(v.id, 1) for v in pair]
    assert versions[0].bundle_id is not None and versions[0].bundle_id == versions[1].bundle_id
    queued = list(Delivery.select().order_by(Delivery.id))
    assert sorted(d.recipient for d in queued) == ["psirt@b0.example", "psirt@b1.example"]
    assert {d.kind for d in queued} == {"alert"}
    outcomes, received = _send_all(keyring, settings, clock)
    assert outcomes == ["sent", "sent"]
    assert sorted(r.recipients[0] for r in received) == ["psirt@b0.example", "psirt@b1.example"]
    cert = tmp_path / "service.asc"
    cert.write_text(keyring.export_public())
    for maker, message in zip(makers, sorted(received, key=lambda r: r.recipients[0]), strict=True):
        raw = message.data
        outer = parse(raw)
        a, b = (v.tracking_id for v in pair)
        assert outer["Subject"] == f"Security advisory {a} v1, {b} v1 (embargoed)"
        assert outer.get_content_type() == "multipart/encrypted"
        for leak in (*SECRETS, "CVE-2026-1000", "CVE-2026-1001", "M-ONE", "FIX-TWO"):
            assert leak.encode() not in raw  # neither in the headers nor anywhere outside
        secret = tmp_path / "secret.key"
        secret.write_bytes(maker.secret)
        entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(raw)).stdout
        text, signature = parts_as_sent(entity)
        sig = tmp_path / "sig.asc"
        sig.write_bytes(body_of(signature))
        assert run("sqop", "verify", str(sig), str(cert), input=text).returncode == 0
        assert parse(text)["Subject"] == f"{a} v1, {b} v1: 2 vulnerabilities"
        body = text_of(text)
        first, second = body.index(f"1 of 2: {a} v1 "), body.index(f"2 of 2: {b} v1 ")
        assert body.index("the first ends") < first < second
        one, two = body[first:second], body[second:]
        assert f"{a} / CVE-2026-1000: The {SECRETS[0]}" in one and "Severity: critical" in one
        assert "M-ONE" in one and "FIX-TWO" not in one
        assert f"{b} / CVE-2026-1001: The {SECRETS[1]}" in two and "Affected: dns <2.1" in two
        assert "FIX-TWO" in two and "M-ONE" not in two
    # Each vulnerability keeps its own version, with its own section as its text.
    assert versions[0].text.startswith(f"{pair[0].tracking_id} / CVE-2026-1000")
    assert SECRETS[1] not in versions[0].text


def test_every_per_vulnerability_record_counts_the_one_mail(
    pair, registrants, clock, settings, keyring
):
    assert list(alerts.alerted(pair[0])) == []
    versions = alerts.send_many(pair, None, "t", clock.at, settings)
    for v in pair:
        assert [r.id for r in alerts.alerted(v)] == [r.id for r in registrants]
    for a in versions:
        assert alerts.progress(a) == {"queued": 2, "sent": 0, "failed": 0, "bounced": 0}
        for r in registrants:
            assert alerts.may_read(Registrant.get_by_id(r.id), a.id).id == a.id
    _send_all(keyring, settings, clock)
    assert alerts.progress(versions[1]) == {"queued": 0, "sent": 2, "failed": 0, "bounced": 0}
    events = AuditEvent.select().where(AuditEvent.action == "alert.send").order_by(AuditEvent.id)
    assert [(e.target, json.loads(e.details)["with"]) for e in events] == [
        (pair[0].tracking_id, [pair[1].tracking_id]),
        (pair[1].tracking_id, [pair[0].tracking_id]),
    ]
    # The next bundle is each one's v2; a version sent alone stays readable on its own.
    alone = alerts.send(pair[1], None, "t", clock.at, settings)
    assert alone.version == 2 and alone.bundle_id is None
    again = alerts.send_many(pair, None, "t", clock.at, settings)
    assert [a.version for a in again] == [2, 3]
    assert "say what changed" not in again[0].text  # nobody edits a bundled section
    assert alerts.progress(alone) == {"queued": 2, "sent": 0, "failed": 0, "bounced": 0}


def test_a_registrant_who_was_not_sent_it_reads_none_of_its_versions(
    pair, registrants, clock, settings
):
    versions = alerts.send_many(pair, None, "t", clock.at, settings)
    later = mc.make_reporter("psirt@late.example", "Late")
    newcomer = vetting.add_by_admin(
        later.address, "Late Ltd", later.cert, None, "t", clock.at, approve=True
    )
    assert all(alerts.may_read(newcomer, a.id) is None for a in versions)
    assert newcomer.id not in [r.id for r in alerts.alerted(pair[1])]


def test_nothing_is_sent_unless_every_one_may_be_alerted(pair, registrants, clock, settings):
    new = lifecycle.create("Not validated yet", "", CLI, clock.at, settings)
    with pytest.raises(Refused) as refused:
        alerts.send_many([pair[0], new, pair[1]], None, "t", clock.at, settings)
    assert f"{new.tracking_id} is new" in str(refused.value)
    assert pair[0].tracking_id not in str(refused.value)
    assert "accepted or fixed" in str(refused.value)
    assert Advisory.select().count() == 0 and Delivery.select().count() == 0
    assert not AuditEvent.select().where(AuditEvent.action == "alert.send").exists()


def test_a_registrant_without_a_usable_key_gets_one_notice_naming_only_ids(
    pair, registrants, clock, settings, keyring
):
    from app.models import PublicKey

    PublicKey.update(usable=False).where(PublicKey.id == registrants[0].key_id).execute()
    alerts.send_many(pair, None, "t", clock.at, settings)
    kinds = {d.recipient: d.kind for d in Delivery.select()}
    assert kinds == {"psirt@b0.example": "alert-missed", "psirt@b1.example": "alert"}
    _, received = _send_all(keyring, settings, clock)
    [raw] = [r.data for r in received if r.recipients == ["psirt@b0.example"]]
    assert parse(raw).get_content_type() == "multipart/signed"
    assert all(s.encode() not in raw for s in SECRETS)
    notice = text_of(parts_as_sent(raw)[0])
    assert "You missed a pre-disclosure advisory covering 2 vulnerabilities" in notice
    assert f"  {pair[0].tracking_id} v1\n  {pair[1].tracking_id} v1\n" in notice
    assert all(alerts.may_read(registrants[0], a.id) is None for a in Advisory.select())


def test_many_ids_are_counted_not_named_in_the_subject(registrants, clock, settings, keyring):
    many = [_vulnerability(f"bug {n}", f"CVE-2026-20{n:02d}", clock, settings) for n in range(5)]
    versions = alerts.send_many(many, None, "t", clock.at, settings)
    assert versions[0].bundle.subject == "One advisory for 5 vulnerabilities"
    _, received = _send_all(keyring, settings, clock)
    assert {parse(r.data)["Subject"] for r in received} == {
        "Security advisory 5 vulnerabilities (embargoed)"
    }


def test_one_id_is_sent_exactly_as_before(pair, registrants, clock, settings):
    [advisory] = alerts.send_many([pair[0], pair[0]], None, "t", clock.at, settings)
    assert advisory.bundle_id is None
    assert advisory.subject == f"{pair[0].tracking_id} v1: The {SECRETS[0]}"
    assert advisory.text == alerts.draft(pair[0], settings, 1)


def test_cli_sends_one_advisory_for_two_ids(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    maker = mc.make_reporter("psirt@cli-bundle.example", "CLI PSIRT")
    (tmp_path / "k.asc").write_bytes(maker.cert)
    added = forewarn(
        "registrants",
        "add",
        "--email",
        maker.address,
        "--org",
        "CLI Ltd",
        "--key",
        str(tmp_path / "k.asc"),
        "--approve",
    )
    assert added.returncode == 0, added.stderr
    (tmp_path / "d.md").write_text("Details.\n")
    ids = [
        forewarn(
            "vulns", "create", "--title", t, "--description-file", str(tmp_path / "d.md")
        ).stdout.strip()
        for t in ("One", "Two")
    ]
    assert forewarn("vulns", "set", ids[0], "status", "accepted").returncode == 0
    refused = forewarn("alert", "send", *ids)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (
        f"forewarn: {ids[1]} is new: alerts go out for accepted or "
        "fixed vulnerabilities only (accept it first)"
    )
    assert forewarn("vulns", "set", ids[1], "status", "accepted").returncode == 0
    (tmp_path / "note.txt").write_text("Both are fixed by the 3.7 release.\n")
    sent = forewarn("alert", "send", *ids, "--text-file", str(tmp_path / "note.txt"))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"{ids[0]} v1, {ids[1]} v1 queued to 1 registrant in one advisory"
    alone = forewarn("alert", "send", ids[0])
    assert alone.stdout.strip() == f"{ids[0]} v2 queued to 1 registrant"


def test_the_schema_with_todays_advisories_migrates_to_bundles(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0015_cases")
    at = datetime(2026, 5, 1, 9, 0)
    with database.connection_context():
        p = database.param  # the placeholder; every value is a parameter
        database.execute_sql(
            "INSERT INTO vulnerability (tracking_id, title, description, severity, affected, cwe,"
            " status, rejection_reason, reporter_email, reporter_name, credit_reporter, credits,"
            " fix_refs, mitigation, deploy_before_lift, reported_at, reminders_sent, created_at,"
            " updated_at) VALUES (%s)".replace("%s", ", ".join([p] * 19)),
            ("SEC-2026-0007", "old", "", "", "", "", "accepted", "", "r@example.org", "R")
            + (True, "", "", "", True, at, "{}", at, at),
        )
        database.execute_sql(
            "INSERT INTO advisory (vulnerability_id, version, subject, text, created_at,"
            " attachments) VALUES ((SELECT id FROM vulnerability), 1, ?, ?, ?, '[]')".replace(
                "?", p
            ),
            ("SEC-2026-0007 v1: old", "the old text", at),
        )
        database.execute_sql(
            "INSERT INTO delivery (kind, advisory_id, vulnerability_id, recipient, payload, state,"
            " attempts, last_answer, created_at) VALUES ('alert', (SELECT id FROM advisory),"
            " (SELECT id FROM vulnerability), 'p@m.example', '{}', 'sent', 1, '', ?)".replace(
                "?", p
            ),
            (at,),
        )
    assert "0016_advisory_bundle" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        old = Advisory.get(Advisory.subject == "SEC-2026-0007 v1: old")
        assert old.bundle_id is None and alerts.carried(old) == [old]
        assert alerts.progress(old) == {"queued": 0, "sent": 1, "failed": 0, "bounced": 0}
        assert old.created_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


# -- the case page and the portal ------------------------------------------------------------


@pytest.fixture
def case_of_three(db, clock, settings):
    """A report split in three: two accepted (sendable), one still new."""
    from app.vulns import split

    report = _vulnerability(SECRETS[0], "CVE-2026-1000", clock, settings)
    arm, arc = split.split(report, [SECRETS[1], "ARC: overflow"], CLI, clock.at, settings)
    lifecycle.set_status(arm, "accepted", CLI, clock.at)
    return [Vulnerability.get_by_id(v.id) for v in (report, arm, arc)]


@pytest.fixture
def signed_in(client, auth, admin_user):
    from tests.conftest import PASSWORD

    auth.login(admin_user.email, PASSWORD)
    return client


def _case_form(client, v, **data):
    from tests.conftest import csrf_token

    page = client.get(f"/team/cases/{v.tracking_id}").get_data(as_text=True)
    return page, {"csrf_token": csrf_token(page), **data}


def test_the_case_page_sends_one_advisory_covering_the_selected(
    signed_in, case_of_three, registrants, clock
):
    report, arm, arc = case_of_three
    page, form = _case_form(signed_in, arm)
    assert "Send one advisory covering the selected" in page
    for sendable in (report, arm):
        assert f'value="{sendable.tracking_id}" id="advisory-{sendable.tracking_id}"' in page
        assert f'<label for="advisory-{sendable.tracking_id}">' in page
    assert f'id="advisory-{arc.tracking_id}"' not in page and f"{arc.tracking_id} (new)" in page
    answer = signed_in.post(
        f"/team/cases/{arm.tracking_id}/advisory",
        data={
            **form,
            "advisory-vulnerabilities": [report.tracking_id, arm.tracking_id],
            "advisory-note": "Both are fixed in 3.7.",
        },
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(
        f"/team/vulnerabilities/{report.tracking_id}/alerts/v1"
    )
    shown = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    assert (
        f"One advisory covering {report.tracking_id} v1, {arm.tracking_id} v1 is queued to 2 "
        "registrants (one mail each)" in shown
    )
    assert "Sent in one advisory with" in shown and f"{arm.tracking_id} v1</a>" in shown
    assert Delivery.select().count() == 2  # one per registrant
    [bundle] = {a.bundle_id for a in Advisory.select()}
    assert bundle is not None
    assert "Both are fixed in 3.7." in Advisory.get(Advisory.vulnerability == arm).bundle.text
    second = signed_in.get(f"/team/vulnerabilities/{arm.tracking_id}/alerts/v1")
    assert f"{report.tracking_id} v1</a>" in second.get_data(as_text=True)


def test_the_case_page_sends_nothing_without_a_selection_a_token_or_a_sendable_one(
    signed_in, case_of_three, registrants, clock
):
    report, arm, arc = case_of_three
    _, form = _case_form(signed_in, report)
    url = f"/team/cases/{report.tracking_id}/advisory"
    empty = signed_in.post(url, data=form, follow_redirects=True).get_data(as_text=True)
    assert "No advisory was sent: select the vulnerabilities it should cover." in empty
    forged = signed_in.post(url, data={"advisory-vulnerabilities": [report.tracking_id]})
    assert forged.status_code == 400
    # Accepted when the page was drawn, rejected since: refused, named, nothing sent.
    lifecycle.set_status(arm, "rejected", CLI, clock.at, "not a vulnerability")
    stale = signed_in.post(
        url,
        data={**form, "advisory-vulnerabilities": [report.tracking_id, arm.tracking_id]},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f"No advisory was sent: {arm.tracking_id} is rejected: alerts go out" in stale
    assert f"{report.tracking_id} is" not in stale
    assert Advisory.select().count() == 0 and Delivery.select().count() == 0


def test_a_registrant_reads_each_version_the_one_mail_carried_in_the_portal(
    client, auth, pair, registrants, clock, settings
):
    from app.core import passwords
    from app.models import User

    versions = alerts.send_many(pair, None, "t", clock.at, settings)
    User.update(password_hash=passwords.hash_password("registrant password 1")).where(
        User.id == registrants[0].user_id
    ).execute()
    auth.login(registrants[0].user.email, "registrant password 1")
    listing = client.get("/registry/advisories/").get_data(as_text=True)
    for a, secret in zip(versions, SECRETS, strict=True):
        assert f'href="/registry/advisories/{a.id}">{a.vulnerability.tracking_id} v1</a>' in listing
        page = client.get(f"/registry/advisories/{a.id}")
        assert page.status_code == 200 and secret in page.get_data(as_text=True)
    views = AuditEvent.select().where(AuditEvent.action == "advisory.view")
    assert sorted(e.target for e in views) == sorted(v.tracking_id for v in pair)


def test_the_lift_of_one_finds_the_registrants_the_one_mail_reached(
    pair, registrants, clock, settings
):
    from app.disclosure import announcements

    alerts.send_many(pair, None, "t", clock.at, settings)
    announcements.queue(pair[1], clock.at, settings)
    lifted = Delivery.select().where(
        Delivery.kind == "embargo-lifted", Delivery.vulnerability == pair[1]
    )
    assert sorted(d.recipient for d in lifted) == ["psirt@b0.example", "psirt@b1.example"]


def test_one_selected_on_the_case_page_is_sent_alone_and_a_note_goes_to_its_own_page(
    signed_in, case_of_three, registrants, clock, settings
):
    report, arm, _ = case_of_three
    _, form = _case_form(signed_in, report)
    url = f"/team/cases/{report.tracking_id}/advisory"
    noted = signed_in.post(
        url,
        data={**form, "advisory-vulnerabilities": [arm.tracking_id], "advisory-note": "N"},
    )
    assert noted.headers["Location"].endswith(f"/team/vulnerabilities/{arm.tracking_id}/alerts")
    assert Advisory.select().count() == 0
    alone = signed_in.post(url, data={**form, "advisory-vulnerabilities": [arm.tracking_id]})
    assert alone.headers["Location"].endswith(f"/team/vulnerabilities/{arm.tracking_id}/alerts/v1")
    [advisory] = Advisory.select()
    assert advisory.bundle_id is None and advisory.text == alerts.draft(arm, settings, 1)
    assert Delivery.select().where(Delivery.advisory == advisory).count() == 2
    said = signed_in.get(alone.headers["Location"]).get_data(as_text=True)
    assert f"{arm.tracking_id} v1 is queued to 2 registrants (one mail each)" in said


def test_cli_wait_follows_the_one_mail_until_the_workers_sent_it(forewarn, env, db, tmp_path):
    from app.core import clock
    from tests.faults.harness import Workers, registrant_certificates

    assert forewarn("init").returncode == 0
    addresses = [f"psirt@wait{n}.example" for n in range(2)]
    for address, cert in registrant_certificates(addresses).items():
        vetting.add_by_admin(address, address, cert, None, "t", clock.now(), approve=True)
    (tmp_path / "d.md").write_text("Details.\n")
    ids = []
    for title in ("One", "Two"):
        made = forewarn(
            "vulns", "create", "--title", title, "--description-file", str(tmp_path / "d.md")
        )
        ids.append(made.stdout.strip())
        assert forewarn("vulns", "set", ids[-1], "status", "accepted").returncode == 0
    sink = SmtpSink()
    relay = {"FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}"}
    workers = Workers({**env, **relay}, 1, tmp_path)
    try:
        workers.start()
        sent = forewarn("alert", "send", *ids, "--wait", extra_env=relay, timeout=120)
    finally:
        workers.stop()
        sink.stop()
    assert sent.returncode == 0, sent.stderr
    assert f"{ids[0]} v1, {ids[1]} v1 queued to 2 registrants in one advisory" in sent.stderr
    assert sent.stdout.splitlines()[-1] == "queued 0 sent 2 failed 0 bounced 0"
    subject = f"Subject: Security advisory {ids[0]} v1, {ids[1]} v1 (embargoed)".encode()
    assert sorted(r.recipients[0] for r in sink.received if subject in r.data) == addresses
    assert len(sink.received) == 2
