"""The OSV source (#18): records under the team's own id with the CVE id as alias, GIT ranges
from the fix commits of the configured repository (and the introducing commit the team sets),
typed references and credits; /osv/all.json and /osv/ID.json as OSV.dev's REST sources read
them (Last-Modified, ETag, 304s), the former CVE-named ids still answering; checked with the
OSV schema and with a real OSV consumer (osv.dev's own library, tests/osv_consumer/scan.py)
against a real git repository."""

import json
import subprocess
import threading
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
from playhouse.schema_diff import diff_models
from werkzeug.serving import make_server

from app.core import config
from app.core import db as app_db
from app.core.errors import ConfigError, Refused
from app.core.timefmt import zulu
from app.disclosure import exports, osvsource
from app.models import ALL_MODELS, AuditEvent, Revision, Vulnerability
from app.vulns import lifecycle
from tests.test_cli import one_line_error
from tests.test_exports import ACTOR, make

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent
CONSUMER = ROOT / ".venv" / "osv-consumer" / "bin" / "python"
REPO = "https://github.com/zephyrproject-rtos/zephyr"
SHA_A = "1" * 40
SHA_B = "2b" * 20
INTRODUCED = "3c" * 20


@pytest.fixture
def env(env):
    return {
        **env,
        "FOREWARN_BASE_URL": "https://cna.example.org",
        "FOREWARN_CNA_SHORT_NAME": "zephyr",
        "FOREWARN_VENDOR": "Zephyr Project",
        "FOREWARN_PRODUCT": "Zephyr RTOS",
        "FOREWARN_REPO_URL": REPO,
    }


def fix_refs(*commits: str) -> str:
    refs = [f"{REPO}/commit/{commits[0]}"] if commits else []
    refs += [f"{REPO}/pull/77/commits/{c}" for c in commits[1:]]
    return " ".join(
        refs
        + [
            f"{REPO}/pull/78",  # a pull request without a commit: a reference, not a range
            f"https://github.com/elsewhere/fork/commit/{'9' * 40}",  # another repository's
            f"{REPO}/issues/12",
            f"{REPO}/security/advisories/GHSA-abcd-efgh-ijkl",
        ]
    )


def published(settings, at, **fields):
    fields.setdefault("fix_refs", fix_refs(SHA_A, SHA_B))
    fields.setdefault("credits", "Zoë Ångström\nNCC Group (coordinator)")
    return make(settings, at, **fields)


def osv_id(v) -> str:
    return "ZEPHYR-" + v.tracking_id.removeprefix("SEC-")


# -- the record ------------------------------------------------------------------------------


def test_the_record_has_the_teams_id_the_cve_as_alias_and_git_ranges(db, clock, settings):
    v = published(settings, clock.at, introduced_commit=INTRODUCED)
    record = exports.document("osv", v, clock.at, settings)
    exports.validate("osv", record, settings)

    assert record["id"] == osv_id(v) and record["aliases"] == ["CVE-2026-1000"]
    git = {"type": "GIT", "repo": REPO, "events": [
        {"introduced": INTRODUCED}, {"fixed": SHA_A}, {"fixed": SHA_B}]}  # fmt: skip
    zephyr, mcuboot = record["affected"]
    assert zephyr["ranges"] == mcuboot["ranges"] == [git]
    assert zephyr["versions"] == ["3.7.0"] and "versions" not in mcuboot
    assert zephyr["database_specific"]["version_ranges"][0] == {"introduced": "3.0", "fixed": "4.2"}
    assert all("package" not in entry for entry in record["affected"])  # no OSV ecosystem fits
    types = {ref["url"]: ref["type"] for ref in record["references"]}
    assert types[f"{REPO}/commit/{SHA_A}"] == types[f"{REPO}/pull/78"] == "FIX"
    assert types[f"{REPO}/issues/12"] == "REPORT"
    assert types[f"{REPO}/security/advisories/GHSA-abcd-efgh-ijkl"] == "ADVISORY"
    assert types[f"https://cna.example.org/vulnerabilities/{v.tracking_id}"] == "ADVISORY"
    csaf = f"https://cna.example.org/.well-known/csaf/white/2026/{v.tracking_id.lower()}.json"
    assert types[csaf] == "ADVISORY"
    assert record["credits"] == [
        {"name": "Zoë Ångström", "type": "FINDER"},
        {"name": "NCC Group", "type": "COORDINATOR"},
    ]


def test_without_an_introducing_commit_the_range_starts_at_zero(db, clock, settings):
    v = published(
        settings,
        clock.at,
        fix_refs=f"https://GitHub.com/zephyrproject-rtos/zephyr/commit/{SHA_A}/ {REPO}/pull/78",
    )
    (entry, _) = exports.document("osv", v, clock.at, settings)["affected"]
    assert entry["ranges"][0]["events"] == [{"introduced": "0"}, {"fixed": SHA_A}]


def test_no_fix_commit_in_the_repository_means_no_range(db, clock, settings):
    v = published(settings, clock.at, fix_refs=fix_refs())
    record = exports.document("osv", v, clock.at, settings)
    assert all("ranges" not in entry for entry in record["affected"])
    exports.validate("osv", record, settings)
    # Nor without a configured repository, whatever the references say.
    from dataclasses import replace

    bare = replace(settings, repo_url=None)
    v = published(bare, clock.at)
    assert all("ranges" not in e for e in exports.document("osv", v, clock.at, bare)["affected"])


def test_the_prefix_is_configurable_and_never_another_databases(env, monkeypatch):
    for name, value in {**env, "FOREWARN_OSV_PREFIX": "ZEPHYR-RTOS"}.items():
        monkeypatch.setenv(name, value)
    assert config.load_settings().osv_prefix == "ZEPHYR-RTOS"
    for bad, says in (("CVE", "another database's"), ("x_", "letters and digits")):
        monkeypatch.setenv("FOREWARN_OSV_PREFIX", bad)
        with pytest.raises(ConfigError, match=says):
            config.load_settings()


# -- the introducing commit --------------------------------------------------------------------


def test_the_introducing_commit_is_a_full_hash_audited_and_a_revision(db, clock, settings):
    v = published(settings, clock.at)
    with pytest.raises(Refused, match="not a full commit hash; give all 40 hex digits"):
        lifecycle.set_field(v, "introduced_commit", "3c3c3c3", ACTOR, clock.at)
    later = clock.at + timedelta(days=2)
    v = lifecycle.set_field(v, "introduced_commit", INTRODUCED.upper(), ACTOR, later)
    assert v.introduced_commit == INTRODUCED
    event = AuditEvent.get(AuditEvent.action == "vuln.set.introduced_commit")
    assert json.loads(event.details)["after"] == {"introduced_commit": INTRODUCED}
    assert Revision.get().summary == "Changed the introducing commit"
    record = exports.document("osv", v, later, settings)
    assert record["modified"] == zulu(later)
    assert record["affected"][0]["ranges"][0]["events"][0] == {"introduced": INTRODUCED}
    v = lifecycle.set_field(v, "introduced_commit", "none", ACTOR, later + timedelta(hours=1))
    assert v.introduced_commit == ""


def test_the_command_line_sets_the_introducing_commit(db, clock, settings, forewarn):
    v = make(settings, clock.at, published=False)
    done = forewarn("vulns", "set", v.tracking_id, "introduced_commit", INTRODUCED)
    assert done.returncode == 0, done.stderr
    assert Vulnerability.get_by_id(v.id).introduced_commit == INTRODUCED
    refused = forewarn("vulns", "set", v.tracking_id, "introduced_commit", "abc1234")
    one_line_error(refused, "not a full commit hash", "40 hex digits")


def test_the_schema_before_the_introducing_commit_migrates(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0021_revisions")
    at = "2026-05-01 09:00:00"
    p = database.param
    with database.connection_context():
        database.execute_sql(
            "INSERT INTO vulnerability (tracking_id, title, description, severity, affected,"
            " cwe, status, rejection_reason, reporter_email, reporter_name, credit_reporter,"
            " credits, fix_refs, mitigation, deploy_before_lift, reported_at, reminders_sent,"
            " created_at, updated_at) VALUES (?, 'Old', '', '', '', '', 'accepted', '', '', '',"
            " ?, '', '', '', ?, ?, '{}', ?, ?)".replace("?", p),
            ("SEC-2026-0001", True, True, at, at, at),
        )
    assert "0022_introduced_commit" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        assert Vulnerability.get().introduced_commit == ""


# -- the source: /osv/all.json and /osv/ID.json ---------------------------------------------------


def http_date(at) -> str:
    return format_datetime(at, usegmt=True)


def test_the_list_names_published_records_alone_each_at_its_id(db, clock, settings, client):
    v = published(settings, clock.at)
    hidden = make(settings, clock.at, published=False, title="Not yet")  # still under embargo
    listed = client.get("/osv/all.json")
    assert listed.status_code == 200 and listed.mimetype == "application/json"
    assert listed.json == [{"id": osv_id(v), "modified": zulu(v.published_at)}]
    assert parsedate_to_datetime(listed.headers["Last-Modified"]) == v.published_at
    assert listed.headers["ETag"]

    record = client.get(f"/osv/{osv_id(v)}.json")
    assert record.status_code == 200
    assert record.json == exports.document("osv", v, clock.at, settings)
    assert parsedate_to_datetime(record.headers["Last-Modified"]) == v.published_at

    # Embargoed or unknown: the same 404, by any id it has or could have.
    unknown = client.get("/osv/ZEPHYR-2026-9999.json")
    assert unknown.status_code == 404
    for ident in (
        f"ZEPHYR-{hidden.tracking_id.removeprefix('SEC-')}",
        f"x_{hidden.tracking_id}",
        hidden.tracking_id,
        "CVE-2026-1001",  # hidden's CVE id (make allocates the next one of the block)
        "CVE-2026-9999",
        f"ZEPHYR-{v.tracking_id.removeprefix('SEC-')}-1",
        "ZEPHYR-%.json",
        v.tracking_id,  # the tracking id is no OSV id
    ):
        page = client.get(f"/osv/{ident}.json")
        assert (page.status_code, page.data) == (404, unknown.data), ident
    assert Vulnerability.get_by_id(hidden.id).cve.cve_id == "CVE-2026-1001"


def test_conditional_requests_answer_304_until_the_record_changes(db, clock, settings, client):
    v = published(settings, clock.at)
    url = f"/osv/{osv_id(v)}.json"
    first = client.get(url)
    since = first.headers["Last-Modified"]
    assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    listed = client.get("/osv/all.json")
    same = client.get(
        "/osv/all.json", headers={"If-Modified-Since": listed.headers["Last-Modified"]}
    )
    assert same.status_code == 304

    edit = clock.move(days=3)
    lifecycle.set_field(v, "mitigation", "Update to 4.2.1.", ACTOR, edit, reason="a new release")
    changed = client.get(url, headers={"If-Modified-Since": since})
    assert changed.status_code == 200 and changed.json["modified"] == zulu(edit)
    assert changed.headers["Last-Modified"] == http_date(edit)
    again = client.get(
        "/osv/all.json", headers={"If-Modified-Since": listed.headers["Last-Modified"]}
    )
    assert again.status_code == 200 and again.json[0]["modified"] == zulu(edit)


def test_a_former_cve_named_id_redirects_to_the_current_one(db, clock, settings, client):
    v = published(settings, clock.at)
    moved = client.get("/osv/CVE-2026-1000.json")
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith(f"/osv/{osv_id(v)}.json")
    followed = client.get("/osv/CVE-2026-1000.json", follow_redirects=True)
    assert followed.json["id"] == osv_id(v) and followed.json["aliases"] == ["CVE-2026-1000"]
    # One published without a CVE id had x_ and its tracking id.
    other = make(settings, clock.at, cve=False, title="No CVE")
    moved = client.get(f"/osv/x_{other.tracking_id}.json")
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith(f"/osv/{osv_id(other)}.json")
    # A CVE-named one had no x_ id.
    assert client.get(f"/osv/x_{v.tracking_id}.json").status_code == 404
    assert [e.id for e in osvsource.index(clock.at, settings)] == sorted([osv_id(v), osv_id(other)])


# -- a real consumer: osv.dev's own library ---------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def zephyr_history(path: Path) -> dict[str, str]:
    """A repository shaped like the real one: tagged releases, the bug introduced in v1.1.0,
    fixed on main after v1.2.0 and backported to a release branch."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.org")
    git(path, "config", "user.name", "Dev")
    commits = {}

    def commit(name: str, tag: str | None = None) -> str:
        (path / "l2cap.c").write_text(f"{name}\n")
        git(path, "add", "l2cap.c")
        git(path, "commit", "-q", "-m", name)
        commits[name] = git(path, "rev-parse", "HEAD")
        if tag:
            git(path, "tag", tag)
        return commits[name]

    commit("start", "v1.0.0")
    commit("bug", "v1.1.0")
    commit("feature", "v1.2.0")
    git(path, "branch", "v1.2-branch")
    commit("fix", "v1.3.0")
    git(path, "checkout", "-q", "v1.2-branch")
    commit("backport", "v1.2.1")
    git(path, "checkout", "-q", "main")
    return commits


def test_osv_devs_own_library_reads_the_record_and_finds_what_is_affected(
    db, clock, settings, client, tmp_path
):
    assert CONSUMER.exists(), "the OSV consumer is missing: run `make test-setup`"
    commits = zephyr_history(tmp_path / "zephyr")
    v = published(
        settings,
        clock.at,
        affected="zephyr =1.1.0; zephyr =1.2.0",
        fix_refs=fix_refs(commits["fix"], commits["backport"]),
        introduced_commit=commits["bug"],
    )
    served = client.get(f"/osv/{osv_id(v)}.json")
    record_file = tmp_path / "record.json"
    record_file.write_bytes(served.data)
    ran = subprocess.run(
        [str(CONSUMER), str(ROOT / "tests" / "osv_consumer" / "scan.py"), str(record_file),
         str(tmp_path / "zephyr")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)

    assert seen["id"] == osv_id(v) and seen["aliases"] == ["CVE-2026-1000"]
    # Its own copy of the schema predates the team's prefix: that and nothing else.
    assert [e.split(":")[0] for e in seen["schema_errors"]] == ["id"]
    (zephyr,) = seen["affected"]
    assert (zephyr["ecosystem"], zephyr["name"]) == ("", "")  # GIT ranges need neither
    assert zephyr["ranges"] == [{"type": "GIT", "repo": REPO, "events": [
        {"introduced": commits["bug"]}, {"fixed": commits["fix"]},
        {"fixed": commits["backport"]}]}]  # fmt: skip
    # The worker's analysis: the releases with the bug, from the repository's own tags.
    assert {"v1.1.0", "v1.2.0"} <= set(zephyr["versions"])
    assert not {"v1.0.0", "v1.2.1", "v1.3.0"} & set(zephyr["versions"])
    affected = set(seen["affected_commits"])
    assert {commits["bug"], commits["feature"]} <= affected
    assert not {commits["start"], commits["fix"], commits["backport"]} & affected
    assert [t == "COORDINATOR" for n, t in seen["credits"] if n == "NCC Group"] == [True]
    assert ["FIX", f"{REPO}/commit/{commits['fix']}"] in seen["references"]
    assert seen["severity"][0][0] == "CVSS_V3"


@pytest.fixture
def portal(app):
    """The real portal on a loopback port, for the consumer to read the source from."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def read_source(portal: str, last_update: str, mirror: Path) -> dict:
    ran = subprocess.run(
        [str(CONSUMER), str(ROOT / "tests" / "osv_consumer" / "scan.py"), "--source",
         f"{portal}/osv/", last_update, str(mirror)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def test_the_source_reads_as_osv_devs_importer_reads_a_rest_source(
    db, clock, settings, portal, tmp_path
):
    assert CONSUMER.exists(), "the OSV consumer is missing: run `make test-setup`"
    commits = zephyr_history(tmp_path / "zephyr")
    v = published(settings, clock.at, fix_refs=fix_refs(commits["fix"], commits["backport"]))
    make(settings, clock.at, published=False, title="Still under embargo")

    first = read_source(portal, "0001-01-01T00:00:00Z", tmp_path / "zephyr")
    assert first["listed"] == [osv_id(v)]
    (record,) = first["fetched"]
    assert record["id"] == osv_id(v) and record["aliases"] == ["CVE-2026-1000"]
    # From "0", the whole history before either fix is affected.
    assert {commits["start"], commits["bug"]} <= set(record["affected_commits"])
    assert not {commits["fix"], commits["backport"]} & set(record["affected_commits"])
    assert first["last_modified"] == v.published_at.isoformat()

    # Polled again with nothing changed: the HEAD's Last-Modified says so, nothing is fetched.
    assert read_source(portal, first["last_modified"], tmp_path / "zephyr")["fetched"] == []

    # A revision: the list's Last-Modified moves and the record is fetched again.
    edit = clock.move(days=1)
    lifecycle.set_field(v, "introduced_commit", commits["bug"], ACTOR, edit)
    again = read_source(portal, first["last_modified"], tmp_path / "zephyr")
    assert again["last_modified"] == edit.isoformat()
    (record,) = again["fetched"]
    assert record["affected"][0]["ranges"][0]["events"][0] == {"introduced": commits["bug"]}
    assert commits["start"] not in record["affected_commits"]
