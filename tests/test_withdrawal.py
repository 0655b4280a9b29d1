"""Withdrawal keeps the documents (#18): a published vulnerability that proves not to be one is
withdrawn with a reason, never deleted. Its page, list entry and Atom entry say so; its OSV
record gets `withdrawn`, its CSAF advisory a final revision and a note (through BSI's
validator), its CVE record becomes REJECTED (through cvelib's rejected schema; at CVE Services
a reject request); the CSAF provider's changes.csv lists the change. Refused for anything not
published; from the command line and the portal alike."""

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from cvelib.cve_api import CveRecord
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core import timefmt
from app.core.errors import Refused
from app.disclosure import exports, feeds, lift, provider, redaction
from app.disclosure.exports import fields, osv
from app.models import (
    ALL_MODELS,
    AuditEvent,
    Correspondence,
    CveId,
    Publication,
    Revision,
    Vulnerability,
)
from app.servicekey import public
from app.vulns import cve_services, cves, withdrawal
from app.workers import reconcile, scheduling
from tests.conftest import PASSWORD, csrf_token, run_jobs
from tests.test_cli import one_line_error
from tests.test_csaf_provider import WHITE, desk, get, name_of, sqop_verify  # noqa: F401 (desk)
from tests.test_csaf_validator import bsi, problems
from tests.test_cve_record import standin, worker_env  # noqa: F401 (fixtures)
from tests.test_exports import ACTOR, BASE, make
from tests.test_osv_source import CONSUMER, ROOT

pytestmark = pytest.mark.db

REASON = "The overflow needs a debug build with the length checks compiled out."


@pytest.fixture
def env(env):
    """The CNA's settings (as tests/test_exports.py's), for the library, portal and CLI alike."""
    return {
        **env,
        "FOREWARN_BASE_URL": BASE,
        "FOREWARN_CNA_ORG_ID": "8254265b-2729-46b6-b9e3-3dfca2d5bfca",
        "FOREWARN_CNA_SHORT_NAME": "zephyr",
        "FOREWARN_VENDOR": "Zephyr Project",
        "FOREWARN_PRODUCT": "Zephyr RTOS",
        "FOREWARN_REPO_URL": "https://github.com/zephyrproject-rtos/zephyr",
        "FOREWARN_REQUIRE_2FA": "0",  # the team's login in the portal test: a password alone
    }


def zulu(at) -> str:
    return timefmt.zulu(at)


def test_a_withdrawn_vulnerability_keeps_every_document_each_saying_so(
    db, clock, settings, client, tmp_path
):
    v = make(settings, clock.at)
    cve_id = v.cve.cve_id
    published = v.published_at
    before = {kind: exports.document(kind, v, clock.at, settings) for kind in exports.KINDS}
    at = clock.move(days=2)
    v = withdrawal.withdraw(v, f"  {REASON} ", ACTOR, at)
    assert (v.withdrawn_at, v.withdrawn_reason, v.status) == (at, REASON, "published")
    after = {kind: exports.document(kind, v, at, settings) for kind in exports.KINDS}
    for kind, document in after.items():
        exports.validate(kind, document, settings)

    # OSV: withdrawn at that instant, modified with it, the reason beside it; content kept.
    record = after["osv"]
    assert "withdrawn" not in before["osv"]
    assert record["withdrawn"] == zulu(at) and record["modified"] == zulu(at)
    assert record["database_specific"]["withdrawn_reason"] == REASON
    assert record["summary"] == before["osv"]["summary"]
    assert record["affected"] == before["osv"]["affected"]

    # CVE: a REJECTED record whose reason is the team's, valid as CVE Services takes one.
    cve = after["cve"]
    assert before["cve"]["cveMetadata"]["state"] == "PUBLISHED"
    assert cve["cveMetadata"]["state"] == "REJECTED"
    assert cve["cveMetadata"]["dateRejected"] == zulu(at)
    assert cve["cveMetadata"]["datePublished"] == zulu(published)
    CveRecord.validate(cve["containers"]["cna"], CveRecord.Schemas.CNA_REJECTED)
    (reason,) = cve["containers"]["cna"]["rejectedReasons"]
    assert REASON.rstrip(".") in reason["value"] and reason["value"].startswith("Withdrawn on")
    assert "affected" not in cve["containers"]["cna"]

    # CSAF: a final revision saying so, a note on the document and on the vulnerability, and
    # still a document BSI's validator passes.
    csaf = after["csaf"]
    tracking = csaf["document"]["tracking"]
    assert (tracking["status"], tracking["version"]) == ("final", "2")
    assert tracking["current_release_date"] == zulu(at)
    assert tracking["revision_history"][-1] == {
        "date": zulu(at),
        "number": "2",
        "summary": f"Withdrawn: {REASON}",
    }
    (note,) = csaf["document"]["notes"]
    assert note["category"] == "general" and REASON.rstrip(".") in note["text"]
    assert csaf["vulnerabilities"][0]["notes"][0] == note
    assert csaf["product_tree"] == before["csaf"]["product_tree"]  # the tree stays
    # No product is affected: a scanner matching the tree reports none.
    status = csaf["vulnerabilities"][0]["product_status"]
    was = before["csaf"]["vulnerabilities"][0]["product_status"]
    assert list(status) == ["known_not_affected"]
    assert sorted(status["known_not_affected"]) == sorted(was["known_affected"] + was["fixed"])
    assert "scores" not in csaf["vulnerabilities"][0]
    assert "remediations" not in csaf["vulnerabilities"][0]
    found = bsi({"withdrawn": csaf}, tmp_path)
    assert problems(found["withdrawn"]) == {}

    # The page says so first and keeps the content; the list and the feed say so too.
    page = client.get(f"/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert "Withdrawn on" in page and REASON.rstrip(".") in page
    assert page.index("Withdrawn on") < page.index("Description")
    assert "reassembly buffer" in page  # the description as published
    assert client.get(f"/vulnerabilities/{cve_id}").status_code in (200, 301, 302, 308)
    listing = client.get("/vulnerabilities").get_data(as_text=True)
    assert "Withdrawn:" in listing and REASON.rstrip(".") in listing
    feed = feedparser.parse(client.get("/vulnerabilities.atom").data)
    assert not feed.bozo
    (entry,) = feed.entries
    assert entry.title.startswith(f"Withdrawn: {cve_id}")
    assert entry.summary.startswith(f"Withdrawn on {timefmt.day(at)}: {REASON.rstrip('.')}.")
    assert entry.updated == zulu(at) and feed.feed.updated == zulu(at)

    # The CVE record the page links is the REJECTED one.
    assert "cve.json" in page
    served_cve = client.get(f"/vulnerabilities/{v.tracking_id}/cve.json").json
    assert served_cve["cveMetadata"]["state"] == "REJECTED"

    # The OSV source still lists it, with its new modified time; the record says withdrawn.
    osv_id = osv.osv_id(redaction.public_view(v, at), settings)
    assert {"id": osv_id, "modified": zulu(at)} in client.get("/osv/all.json").json
    served = client.get(f"/osv/{osv_id}.json")
    assert served.json["withdrawn"] == zulu(at)
    # osv.dev's own library reads it as withdrawn (tests/osv_consumer/scan.py).
    assert CONSUMER.exists(), "the OSV consumer is missing: run `make test-setup`"
    (tmp_path / "record.json").write_bytes(served.data)
    ran = subprocess.run(
        [str(CONSUMER), str(ROOT / "tests" / "osv_consumer" / "scan.py"),
         str(tmp_path / "record.json"), str(tmp_path / "no-mirror")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert (seen["id"], seen["withdrawn"], seen["modified"]) == (osv_id, zulu(at), zulu(at))

    # Nothing deleted: the row, its correspondence, its CVE id (now rejected), the revision.
    assert Vulnerability.get_by_id(v.id).title == before["osv"]["summary"]
    assert Correspondence.select().where(Correspondence.vulnerability == v.id).count() == 1
    row = CveId.get(CveId.cve_id == cve_id)
    assert row.state == "rejected" and REASON in row.reason
    assert Revision.get(Revision.vulnerability == v.id).summary == f"Withdrawn: {REASON}"
    event = AuditEvent.get(AuditEvent.action == "vuln.withdraw")
    assert event.target == v.tracking_id
    assert json.loads(event.details)["reason"] == REASON
    assert json.loads(event.details)["after"]["cve_state"] == "rejected"
    # A rejected CVE id names nothing: release notes leave it out.
    assert not any(cve_id in line for line in exports.release_notes(at, base_url=BASE))
    # Its records go out again: the publication's record steps are due.
    steps = json.loads(Publication.get(Publication.vulnerability == v.id).steps)
    assert steps["cve-record"].startswith("due:") and steps["exports"].startswith("due:")


def test_the_feed_carries_a_recent_withdrawal_of_an_old_publication(db, clock, settings, client):
    old = make(settings, clock.at - timedelta(days=400), title="Old one")
    for n in range(feeds.ENTRIES):  # newer publications fill the feed
        at = clock.at - timedelta(hours=n + 1)
        Vulnerability.create(tracking_id=f"SEC-2026-{n + 100:04d}", title=f"Newer {n}",
                             status="published", published_at=at, reported_at=at,
                             created_at=at, updated_at=at)  # fmt: skip

    def titles():
        feed = feedparser.parse(client.get("/vulnerabilities.atom").data)
        assert not feed.bozo
        return [entry.title for entry in feed.entries]

    assert len(titles()) == feeds.ENTRIES and not any("Old one" in t for t in titles())
    withdrawal.withdraw(old, REASON, ACTOR, clock.at)
    listed = titles()
    assert len(listed) == feeds.ENTRIES + 1
    assert listed[-1] == f"Withdrawn: {old.cve.cve_id}: Old one"
    clock.move(days=feeds.WITHDRAWN_DAYS + 1)  # a month on, the newest publications alone
    assert len(titles()) == feeds.ENTRIES


def test_only_a_published_vulnerability_is_withdrawn_and_only_with_a_reason(db, clock, settings):
    embargoed = make(settings, clock.at, published=False)
    with pytest.raises(Refused, match="not published.*reject it before the lift"):
        withdrawal.withdraw(embargoed, REASON, ACTOR, clock.at)
    v = make(settings, clock.at, title="Second", cve=False)
    with pytest.raises(Refused, match="needs a reason"):
        withdrawal.withdraw(v, "   ", ACTOR, clock.at)
    assert Vulnerability.get_by_id(embargoed.id).withdrawn_at is None
    assert Vulnerability.get_by_id(v.id).withdrawn_at is None
    v = withdrawal.withdraw(v, REASON, ACTOR, clock.at)
    with pytest.raises(Refused, match="already withdrawn"):
        withdrawal.withdraw(v, "again", ACTOR, clock.at + timedelta(hours=1))
    # Without a CVE id there is no CVE record: OSV and CSAF say withdrawn alone.
    assert exports.document("osv", v, clock.at, settings)["withdrawn"] == zulu(clock.at)
    assert (
        not AuditEvent.select()
        .where(AuditEvent.action == "vuln.withdraw", AuditEvent.target == embargoed.tracking_id)
        .exists()
    )


def test_the_command_line_withdraws(db, settings, forewarn):
    now = datetime.now(UTC)
    v = make(settings, now)
    done = forewarn("vulns", "withdraw", v.tracking_id, "--reason", REASON)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{v.tracking_id}: withdrawn; {v.cve.cve_id} is rejected; its page and records say so"
    )
    assert Vulnerability.get_by_id(v.id).withdrawn_reason == REASON
    (event,) = AuditEvent.select().where(AuditEvent.action == "vuln.withdraw")
    assert event.actor_label.startswith("cli:")
    shown = forewarn("vulns", "show", v.tracking_id, "--json")
    assert json.loads(shown.stdout)["withdrawn"]["reason"] == REASON

    again = forewarn("vulns", "withdraw", v.tracking_id, "--reason", REASON)
    one_line_error(again, "already withdrawn")
    embargoed = make(settings, now, title="Embargoed", cve=False, published=False)
    refused = forewarn("vulns", "withdraw", embargoed.tracking_id, "--reason", REASON)
    one_line_error(refused, "not published", "status rejected")
    missing = forewarn("vulns", "withdraw", v.tracking_id)
    assert missing.returncode != 0 and "--reason" in missing.stderr
    assert Vulnerability.get_by_id(embargoed.id).withdrawn_at is None


def test_the_team_withdraws_from_the_vulnerability_page(db, clock, settings, client, auth,
                                                        admin_user):  # fmt: skip
    auth.login(admin_user.email, PASSWORD)
    v = make(settings, clock.at)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert f'action="/team/vulnerabilities/{v.tracking_id}/withdraw"' in page
    token = csrf_token(page)

    unconfirmed = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/withdraw",
        data={"withdraw-csrf_token": token, "withdraw-reason": REASON},
        follow_redirects=True,
    )
    assert "Not withdrawn" in unconfirmed.get_data(as_text=True)
    assert Vulnerability.get_by_id(v.id).withdrawn_at is None
    no_token = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/withdraw",
        data={"withdraw-reason": REASON, "withdraw-confirm": "y"},
        follow_redirects=True,
    )
    assert no_token.status_code == 400  # the portal's CSRF protection
    assert Vulnerability.get_by_id(v.id).withdrawn_at is None

    done = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/withdraw",
        data={"withdraw-csrf_token": token, "withdraw-reason": REASON, "withdraw-confirm": "y"},
        follow_redirects=True,
    )
    text = done.get_data(as_text=True)
    assert f"{v.tracking_id} is withdrawn" in text and "Nothing was deleted" in text
    assert Vulnerability.get_by_id(v.id).withdrawn_reason == REASON
    assert f'action="/team/vulnerabilities/{v.tracking_id}/withdraw"' not in text  # once
    event = AuditEvent.get(AuditEvent.action == "vuln.withdraw")
    assert event.actor_label == admin_user.email

    embargoed = make(settings, clock.at, title="Embargoed", cve=False, published=False)
    page = client.get(f"/team/vulnerabilities/{embargoed.tracking_id}").get_data(as_text=True)
    assert "/withdraw" not in page  # no button where it cannot be done
    refused = client.post(
        f"/team/vulnerabilities/{embargoed.tracking_id}/withdraw",
        data={"withdraw-csrf_token": token, "withdraw-reason": REASON, "withdraw-confirm": "y"},
        follow_redirects=True,
    )
    assert "Not withdrawn" in refused.get_data(as_text=True)
    assert Vulnerability.get_by_id(embargoed.id).withdrawn_at is None


# -- CVE Services: the published record is rejected there ----------------------------------------


def test_cve_services_rejects_the_record(db, clock, settings, standin, worker_env, redis_conn):  # noqa: F811
    services = cve_services.ServicesConfig.from_environ(worker_env)
    v = make(settings, clock.at, cve=False, published=False)
    cve_id = cves.allocate(v, None, "test", clock.at, services).cve.cve_id
    clock.move(seconds=(v.embargo_until - clock.at).total_seconds())
    assert lift.lift(v.id, clock.at, settings) == "lifted"
    scheduling.queue_publication_steps(redis_conn, v.id)
    run_jobs(redis_conn)
    assert standin.records[cve_id]["cveMetadata"]["state"] == "PUBLISHED"

    at = clock.move(days=3)
    withdrawal.withdraw(Vulnerability.get_by_id(v.id), REASON, ACTOR, at)
    assert reconcile.run(redis_conn, at) >= 1
    run_jobs(redis_conn)
    assert ("PUT", f"/api/cve/{cve_id}/reject") in standin.requests
    record = standin.records[cve_id]
    assert record["cveMetadata"]["state"] == "REJECTED"
    (reason,) = record["containers"]["cna"]["rejectedReasons"]
    assert REASON.rstrip(".") in reason["value"]
    publication = Publication.get()
    assert publication.state == "complete", publication.steps
    assert json.loads(publication.steps)["cve-record"] == "done: rejected"
    event = AuditEvent.get(AuditEvent.action == "cve.reject_record")
    assert (event.target, event.actor_label) == (cve_id, "lift")
    assert CveId.get(CveId.cve_id == cve_id).state == "rejected"


# -- the CSAF provider directory -----------------------------------------------------------------


def test_the_provider_lists_the_withdrawal(client, settings, keyring, desk, clock, tmp_path):  # noqa: F811
    first, second, _ = desk
    provider.publish(keyring, settings, clock.at)
    at = clock.move(days=3)
    withdrawal.withdraw(first, REASON, ACTOR, at)
    assert provider.tick(at, settings, lambda: keyring)

    path = f"2026/{name_of(first)}"
    rows = list(csv.reader(io.StringIO(get(client, WHITE + "changes.csv").get_data(as_text=True))))
    assert rows[0] == [path, zulu(at)]
    assert [row[0] for row in rows] == [path, f"2027/{name_of(second)}"]  # nothing removed
    assert path in get(client, WHITE + "index.txt").get_data(as_text=True)
    data = get(client, WHITE + path).get_data()
    document = json.loads(data)["document"]
    assert document["tracking"]["revision_history"][-1]["summary"] == f"Withdrawn: {REASON}"
    assert document["notes"][0]["title"] == "Withdrawn"
    certificate = public.read(settings).certificate.encode("ascii")
    signature = get(client, f"{WHITE}{path}.asc").get_data()
    assert sqop_verify(data, signature, certificate, tmp_path / "withdrawn")
    assert fields.csaf_path(redaction.public_view(first, at)) == f"white/{path}"


# -- the schema ------------------------------------------------------------------------------------


def test_the_schema_before_withdrawal_migrates(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0022_introduced_commit")
    at = "2026-05-01 09:00:00"
    p = database.param
    with database.connection_context():
        database.execute_sql(
            "INSERT INTO vulnerability (tracking_id, title, description, severity, affected,"
            " cwe, status, rejection_reason, reporter_email, reporter_name, credit_reporter,"
            " credits, fix_refs, mitigation, deploy_before_lift, reported_at, reminders_sent,"
            " created_at, updated_at, introduced_commit, published_at) VALUES (?, 'Old', '', '',"
            " '', '', 'published', '', '', '', ?, '', '', '', ?, ?, '{}', ?, ?, '', ?)".replace(
                "?", p
            ),
            ("SEC-2026-0001", True, True, at, at, at, at),
        )
    assert "0023_withdrawal" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        old = Vulnerability.get()
        assert (old.withdrawn_at, old.withdrawn_reason) == (None, "")
