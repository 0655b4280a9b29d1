"""Records kept current (#18): an edit to a published vulnerability's public fields is a
revision, and every record moves with it (CSAF version and revision history, OSV and CVE
modification times, the Atom entry and feed); nothing else is one."""

from datetime import timedelta

import feedparser
import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.disclosure import exports
from app.models import ALL_MODELS, Revision, Vulnerability
from app.vulns import lifecycle, revisions
from tests.test_exports import ACTOR, env, make  # noqa: F401 (env: the CNA's settings)

pytestmark = pytest.mark.db


def zulu(at) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_edit_after_the_lift_is_a_revision_every_record_follows(db, clock, settings, client):
    v = make(settings, clock.at)
    published = v.published_at
    before = {kind: exports.document(kind, v, clock.at, settings) for kind in exports.KINDS}
    assert before["csaf"]["document"]["tracking"]["version"] == "1"
    assert before["osv"]["modified"] == zulu(published)

    edit = clock.at + timedelta(days=2)
    lifecycle.set_field(v, "severity", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", ACTOR, edit,
                        reason="reachable over the network after all")  # fmt: skip
    v = Vulnerability.get_by_id(v.id)
    after = {kind: exports.document(kind, v, edit, settings) for kind in exports.KINDS}
    tracking = after["csaf"]["document"]["tracking"]
    assert tracking["version"] == "2"
    assert tracking["current_release_date"] == zulu(edit)
    assert tracking["initial_release_date"] == zulu(published)
    assert [(r["number"], r["date"], r["summary"]) for r in tracking["revision_history"]] == [
        ("1", zulu(published), revisions.INITIAL),
        ("2", zulu(edit), "Changed the severity: reachable over the network after all"),
    ]
    assert after["osv"]["modified"] == zulu(edit)
    assert after["cve"]["cveMetadata"]["dateUpdated"] == zulu(edit)
    assert after["cve"]["containers"]["cna"]["providerMetadata"]["dateUpdated"] == zulu(edit)

    clock.move(days=2)
    feed = feedparser.parse(client.get("/vulnerabilities.atom").data)
    assert not feed.bozo
    [entry] = feed.entries
    assert entry.updated == zulu(edit) and entry.published == zulu(published)
    assert feed.feed.updated == zulu(edit)


def test_edits_before_the_lift_or_of_private_fields_are_no_revision(db, clock, settings):
    v = make(settings, clock.at, published=False)
    lifecycle.set_field(v, "description", "Still private.", ACTOR, clock.at)
    assert Revision.select().count() == 0  # the first public version is the lift's
    Vulnerability.update(status="published", published_at=clock.at).where(
        Vulnerability.id == v.id
    ).execute()
    v = Vulnerability.get_by_id(v.id)
    later = clock.at + timedelta(hours=3)
    lifecycle.set_field(v, "assignee", "none", ACTOR, later)
    lifecycle.set_field(v, "fix_due", "2027-01-01T00:00:00Z", ACTOR, later)
    lifecycle.set_field(v, "title", v.title, ACTOR, later)  # unchanged: nothing to say
    assert Revision.select().count() == 0
    osv = exports.document("osv", Vulnerability.get_by_id(v.id), later, settings)
    assert osv["modified"] == zulu(clock.at)


def test_one_action_changing_several_fields_is_one_revision(db, clock, settings):
    v = make(settings, clock.at)
    edit = clock.at + timedelta(days=1)
    lifecycle.set_field(v, "mitigation", "Update to 4.2.", ACTOR, edit)
    lifecycle.set_field(v, "cwe", "CWE-120", ACTOR, edit, reason="a classic overflow")
    lifecycle.set_field(v, "cwe", "CWE-121", ACTOR, edit + timedelta(minutes=5))
    v = Vulnerability.get_by_id(v.id)
    history = exports.document("csaf", v, edit, settings)["document"]["tracking"]
    assert [r["summary"] for r in history["revision_history"]] == [
        revisions.INITIAL,
        "Changed the mitigation; Changed the CWE: a classic overflow",
        "Changed the CWE",
    ]
    assert history["version"] == "3"


def test_the_command_lines_default_reason_is_not_a_summary(db, clock, settings):
    v = make(settings, clock.at)
    edit = clock.at + timedelta(days=1)
    lifecycle.set_field(v, "title", "A new title", ACTOR, edit, reason=lifecycle.OPERATOR_REASON)
    assert Revision.get().summary == "Changed the title"


def test_the_schema_before_revisions_migrates(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0020_registry_indexes")
    assert "0021_revisions" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
