"""CVE ids: blocks imported by range, the lowest free id given inside one transaction (also under
concurrent processes, on SQLite and PostgreSQL), retiring, and CVE Services through cvelib
against a local stand-in that speaks its API."""

import json
import subprocess
import sys

import pytest

from app.core.errors import NotFound, OperatorError, Refused
from app.models import AuditEvent, CveId, Vulnerability
from app.vulns import cve_records, cve_services, cves
from tests.conftest import ROOT
from tests.cve_services_standin import CveServicesStandIn

# -- helpers ----------------------------------------------------------------------------------


def make_vuln(tracking_id: str, at, status: str = "accepted") -> Vulnerability:
    return Vulnerability.create(
        tracking_id=tracking_id, status=status, reported_at=at, created_at=at, updated_at=at
    )


def events(action: str) -> list[dict]:
    rows = AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.id)
    return [{"target": e.target, "by": e.actor_label, **json.loads(e.details)} for e in rows]


def state_of(cve_id: str) -> str:
    return CveId.get(CveId.cve_id == cve_id).state


def one_line_error(result: subprocess.CompletedProcess, *mentions: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("forewarn: "), line
    for mention in mentions:
        assert mention in line, (mention, line)
    return line


# -- ranges -----------------------------------------------------------------------------------


def test_a_range_lists_every_id_in_order_with_four_digits_at_least():
    assert cves.parse_range("CVE-2026-1000..CVE-2026-1099")[:2] == [
        "CVE-2026-1000",
        "CVE-2026-1001",
    ]
    assert len(cves.parse_range("CVE-2026-1000..CVE-2026-1099")) == 100
    assert cves.parse_range(" cve-2026-0001..CVE-2026-0003 ") == [
        "CVE-2026-0001",
        "CVE-2026-0002",
        "CVE-2026-0003",
    ]
    assert cves.parse_range("CVE-2026-9999..CVE-2026-10000") == ["CVE-2026-9999", "CVE-2026-10000"]
    assert cves.parse_range("CVE-2026-1234") == ["CVE-2026-1234"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("CVE-2026-1000..CVE-2027-1099", "spans two years"),
        ("CVE-2026-1099..CVE-2026-1000", "runs backwards"),
        ("CVE-2026-1000..CVE-2026-11000", "import at most 10000"),
        ("2026-1000..2026-1099", "is not a CVE id"),
        ("CVE-2026-1000..", "is not a range"),
        ("CVE-2026-01000..CVE-2026-01099", "is not a CVE id"),
        ("CVE-2026-0000..CVE-2026-0009", "is not a CVE id"),
        ("CVE-2026-1000...CVE-2026-1099", "is not a CVE id"),
    ],
)
def test_a_bad_range_is_refused_in_one_line_that_says_why(text, says):
    with pytest.raises(Refused) as refused:
        cves.parse_range(text)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


# -- importing blocks --------------------------------------------------------------------------


def test_import_adds_a_block_skips_known_ids_and_audits(db, clock):
    first = cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "cli:alice", clock.at)
    again = cves.import_block("CVE-2026-1005..CVE-2026-1014", None, "cli:alice", clock.at)

    assert (first.added, first.known) == (10, 0)
    assert (again.added, again.known) == (5, 5)
    assert cves.remaining() == 15
    assert CveId.get(CveId.cve_id == "CVE-2026-1014").block == "CVE-2026-1005..CVE-2026-1014"
    assert CveId.get(CveId.cve_id == "CVE-2026-1005").block == "CVE-2026-1000..CVE-2026-1009"
    assert events("cve.import_block") == [
        {"target": "CVE-2026-1000..CVE-2026-1009", "by": "cli:alice", "added": 10, "known": 0},
        {"target": "CVE-2026-1005..CVE-2026-1014", "by": "cli:alice", "added": 5, "known": 5},
    ]


def test_cli_import_block_reports_added_and_known(db, clock, forewarn):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    result = forewarn("cve", "import-block", "CVE-2026-1000..CVE-2026-1099")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "added 98 ids (2 already known)\n"

    bad = forewarn("cve", "import-block", "CVE-2026-1099..CVE-2026-1000")
    one_line_error(bad, "runs backwards")


# -- allocation --------------------------------------------------------------------------------


def test_allocation_gives_the_lowest_year_then_number_and_links_it(db, clock):
    cves.import_block("CVE-2027-1000..CVE-2027-1001", None, "test", clock.at)
    cves.import_block("CVE-2026-9998..CVE-2026-10001", None, "test", clock.at)
    vulns = [make_vuln(f"SEC-2026-000{n}", clock.at) for n in range(1, 6)]

    given = [cves.allocate(v, None, "team@example.org", clock.at).cve.cve_id for v in vulns]

    # Numbers compare as numbers ("CVE-2026-10000" sorts before "CVE-2026-9998" as text).
    assert given == [
        "CVE-2026-9998",
        "CVE-2026-9999",
        "CVE-2026-10000",
        "CVE-2026-10001",
        "CVE-2027-1000",
    ]
    first = Vulnerability.get_by_id(vulns[0].id)
    assert first.cve.cve_id == "CVE-2026-9998"
    assert first.cve.state == "assigned"
    assert first.cve.assigned_at == clock.at
    assert cves.remaining() == 1
    (assign, *_) = events("cve.assign")
    assert assign["target"] == "CVE-2026-9998"
    assert assign["by"] == "team@example.org"
    assert assign["before"] == {"state": "available", "vulnerability": None}
    assert assign["after"] == {"state": "assigned", "vulnerability": "SEC-2026-0001"}


def test_a_vulnerability_gets_one_id_only(db, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1019", None, "test", clock.at)
    vuln = make_vuln("SEC-2026-0001", clock.at)
    cves.allocate(vuln, None, "test", clock.at)

    with pytest.raises(Refused) as refused:
        cves.allocate(vuln, None, "test", clock.at)

    assert "SEC-2026-0001 already has CVE-2026-1000" in str(refused.value)
    assert CveId.select().where(CveId.state == "assigned").count() == 1
    assert cves.remaining() == 19


def test_a_rejected_report_gets_no_id(db, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1019", None, "test", clock.at)
    with pytest.raises(Refused, match="rejected"):
        cves.allocate(make_vuln("SEC-2026-0001", clock.at, "rejected"), None, "test", clock.at)
    assert cves.remaining() == 20


def test_the_block_running_low_is_flagged_and_audited(db, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1010", None, "test", clock.at)
    plenty = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "test", clock.at)
    low = cves.allocate(make_vuln("SEC-2026-0002", clock.at), None, "test", clock.at)

    assert (plenty.remaining, plenty.low) == (10, False)
    assert (low.remaining, low.low) == (9, True)
    assert "forewarn cve import-block" in low.warning
    assert events("cve.block_low") == [
        {"target": "blocks", "by": "system", "remaining": 9, "after": "CVE-2026-1001"}
    ]


def test_an_exhausted_pool_names_the_import_command(db, clock):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)
    cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "test", clock.at)
    vuln = make_vuln("SEC-2026-0002", clock.at)

    with pytest.raises(cves.NoIdsLeft) as error:
        cves.allocate(vuln, None, "test", clock.at)

    assert "forewarn cve import-block" in str(error.value)
    assert Vulnerability.get_by_id(vuln.id).cve is None


# -- the command line --------------------------------------------------------------------------


def test_cli_assign_prints_the_id_alone_and_warns_on_stderr_when_low(db, clock, forewarn):
    cves.import_block("CVE-2026-1000..CVE-2026-1010", None, "test", clock.at)
    make_vuln("SEC-2026-0001", clock.at)
    make_vuln("SEC-2026-0002", clock.at)

    first = forewarn("cve", "assign", "SEC-2026-0001")
    second = forewarn("cve", "assign", "sec-2026-0002")

    assert (first.returncode, first.stdout, first.stderr) == (0, "CVE-2026-1000\n", "")
    assert (second.returncode, second.stdout) == (0, "CVE-2026-1001\n")
    assert second.stderr.startswith("forewarn: warning: only 9 CVE ids left in the blocks")
    assert "forewarn cve import-block" in second.stderr
    assert [e["remaining"] for e in events("cve.block_low")] == [9]
    assert events("cve.assign")[0]["by"].startswith("cli:")

    listed = forewarn("cve", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["cve_id"]: row for row in json.loads(listed.stdout)}
    assert rows["CVE-2026-1000"]["vulnerability"] == "SEC-2026-0001"
    assert rows["CVE-2026-1001"]["state"] == "assigned"
    assert rows["CVE-2026-1002"] == {
        "cve_id": "CVE-2026-1002",
        "state": "available",
        "source": "block",
        "vulnerability": None,
        "assigned_at": None,
        "reason": "",
    }

    again = forewarn("cve", "assign", "SEC-2026-0001")
    one_line_error(again, "SEC-2026-0001 already has CVE-2026-1000")
    unknown = forewarn("cve", "assign", "SEC-2026-0099")
    one_line_error(unknown, "no vulnerability SEC-2026-0099", "forewarn vulns list")


def test_cli_assign_with_an_empty_pool_is_one_line_naming_import_block(db, clock, forewarn):
    make_vuln("SEC-2026-0001", clock.at)
    result = forewarn("cve", "assign", "SEC-2026-0001")
    assert result.stdout == ""
    one_line_error(result, "forewarn cve import-block")


def test_cli_retire_and_list(db, clock, forewarn):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "test", clock.at)

    retired = forewarn("cve", "retire", "CVE-2026-1000", "--reason", "duplicate of CVE-2025-1")
    listed = forewarn("cve", "list")

    assert retired.returncode == 0, retired.stderr
    assert retired.stdout == "CVE-2026-1000 rejected: duplicate of CVE-2025-1\n"
    assert listed.stdout.splitlines() == [
        "CVE-2026-1000    rejected  -  (duplicate of CVE-2025-1)",
        "CVE-2026-1001    available -",
    ]
    one_line_error(forewarn("cve", "retire", "CVE-2026-1000", "--reason", "x"), "already rejected")
    quota = forewarn("cve", "quota")
    assert quota.stdout == "blocks: 1 ids available\n"


# -- retiring ------------------------------------------------------------------------------------


def test_retiring_an_assigned_id_unlinks_it_and_it_is_never_given_again(db, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1002", None, "test", clock.at)
    vuln = make_vuln("SEC-2026-0001", clock.at)
    cves.allocate(vuln, None, "test", clock.at)

    retired = cve_records.retire("CVE-2026-1000", "  reported twice  ", None, "admin@x", clock.at)

    assert (retired.state, retired.reason) == ("rejected", "reported twice")
    assert Vulnerability.get_by_id(vuln.id).cve is None
    (event,) = events("cve.retire")
    assert event["before"] == {"state": "assigned", "vulnerability": "SEC-2026-0001"}
    assert event["after"] == {"state": "rejected", "vulnerability": None}
    assert event["reason"] == "reported twice"
    # The vulnerability can have another id, and the rejected one is skipped.
    assert cves.allocate(vuln, None, "test", clock.at).cve.cve_id == "CVE-2026-1001"


def test_retiring_an_unused_id_takes_it_out_of_the_pool(db, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    cve_records.retire("CVE-2026-1000", "typo in the block", None, "admin@x", clock.at)
    assert cves.remaining() == 1
    given = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "test", clock.at)
    assert given.cve.cve_id == "CVE-2026-1001"


@pytest.mark.parametrize(
    ("state", "reason", "raises", "says"),
    [
        ("published", "wrong", Refused, "is published"),
        ("rejected", "wrong", Refused, "already rejected"),
        ("available", "   ", Refused, "say why"),
    ],
)
def test_retiring_is_refused_for_published_and_rejected_ids_and_without_reason(
    db, clock, state, reason, raises, says
):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)
    CveId.update(state=state).execute()
    with pytest.raises(raises, match=says):
        cve_records.retire("CVE-2026-1000", reason, None, "admin@x", clock.at)
    assert state_of("CVE-2026-1000") == state
    assert events("cve.retire") == []


def test_retiring_an_unknown_id_is_not_found(db, clock):
    with pytest.raises(NotFound, match="CVE-2026-4242 is not one of our CVE ids"):
        cve_records.retire("CVE-2026-4242", "why", None, "admin@x", clock.at)


# -- concurrency: several processes allocating from one database --------------------------------

ALLOCATOR = """
import json, sys
from app.core import clock, db
from app.vulns import cve_records, cves
from app.models import Vulnerability

db.open_database(sys.argv[1]).connect()
vulns = [Vulnerability.get_by_id(int(i)) for i in sys.argv[2].split(",")]
print("ready", flush=True)
sys.stdin.readline()  # everyone starts together
given = [cves.allocate(v, None, "worker", clock.now()).cve.cve_id for v in vulns]
print(json.dumps(given), flush=True)
"""


def test_concurrent_processes_never_get_the_same_id(db, settings, clock):
    processes, each = 6, 8
    cves.import_block(f"CVE-2026-1000..CVE-2026-{1000 + processes * each - 1}", None, "t", clock.at)
    vulns = [make_vuln(f"SEC-2026-{n:04d}", clock.at) for n in range(1, processes * each + 1)]
    batches = [vulns[i::processes] for i in range(processes)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ALLOCATOR,
                settings.database_url,
                ",".join(str(v.id) for v in b),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for b in batches
    ]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=30) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    assert [c.returncode for c in children] == [0] * processes, [err for _, err in results]
    given = [cve_id for out, _ in results for cve_id in json.loads(out)]
    assert len(given) == processes * each
    assert len(set(given)) == len(given), sorted(given)
    assert cves.remaining() == 0
    linked = {v.tracking_id: v.cve.cve_id for v in Vulnerability.select()}
    assert len(set(linked.values())) == processes * each
    for batch, (out, _) in zip(batches, results, strict=True):
        assert [linked[v.tracking_id] for v in batch] == json.loads(out)


# -- CVE Services --------------------------------------------------------------------------------


@pytest.fixture
def standin():
    with CveServicesStandIn(id_quota=12) as service:
        yield service


@pytest.fixture
def services(standin):
    return cve_services.ServicesConfig.from_environ(services_env(standin))


def services_env(standin, **changes) -> dict[str, str]:
    values = {
        "FOREWARN_CVE_SERVICES_URL": standin.url,
        "FOREWARN_CVE_API_USER": standin.user,
        "FOREWARN_CVE_API_KEY": standin.api_key,
        "FOREWARN_CNA_SHORT_NAME": standin.org,
    }
    values.update(changes)
    return values


def cna_container(org_uuid: str) -> dict:
    return {
        "providerMetadata": {"orgId": org_uuid},
        "descriptions": [{"lang": "en", "value": "A buffer overflow in the BLE stack."}],
        "affected": [
            {
                "vendor": "Example",
                "product": "Example RTOS",
                "versions": [{"version": "3.0", "status": "affected"}],
            }
        ],
        "references": [{"url": "https://example.org/advisories/1"}],
    }


def test_services_settings_from_the_environment(standin):
    assert cve_services.ServicesConfig.from_environ({"FOREWARN_CNA_SHORT_NAME": "acme"}) is None
    config = cve_services.ServicesConfig.from_environ(services_env(standin))
    assert (config.org, config.user, config.url) == (standin.org, standin.user, standin.url)
    assert standin.api_key not in repr(config)
    no_slash = services_env(standin, FOREWARN_CVE_SERVICES_URL=standin.url.rstrip("/"))
    assert cve_services.ServicesConfig.from_environ(no_slash).url == standin.url
    test_env = cve_services.ServicesConfig.from_environ(
        services_env(standin, FOREWARN_CVE_SERVICES_URL="test")
    )
    assert test_env.url == "https://cveawg-test.mitre.org/api/"

    with pytest.raises(OperatorError) as incomplete:
        cve_services.ServicesConfig.from_environ(
            services_env(standin, FOREWARN_CVE_API_KEY="", FOREWARN_CNA_SHORT_NAME="")
        )
    assert "FOREWARN_CVE_API_KEY, FOREWARN_CNA_SHORT_NAME" in str(incomplete.value)
    with pytest.raises(OperatorError, match="must be an https:// URL"):
        cve_services.ServicesConfig.from_environ(
            services_env(standin, FOREWARN_CVE_SERVICES_URL="http://cve.example.org/api/")
        )


def test_services_mode_reserves_an_id_on_demand(db, clock, standin, services):
    vuln = make_vuln("SEC-2026-0001", clock.at)

    given = cves.allocate(vuln, None, "team@example.org", clock.at, services)

    assert given.cve.cve_id == "CVE-2026-20000"
    assert (given.cve.source, given.cve.state, given.cve.block) == (
        "cve-services",
        "assigned",
        "cve-services",
    )
    assert Vulnerability.get_by_id(vuln.id).cve.cve_id == "CVE-2026-20000"
    assert standin.ids["CVE-2026-20000"]["state"] == "RESERVED"
    assert standin.ids["CVE-2026-20000"]["requested_by"] == {
        "cna": standin.org,
        "user": standin.user,
    }
    assert (given.remaining, given.low) == (11, False)
    assert cve_services.quota(services) == {"id_quota": 12, "total_reserved": 1, "available": 11}
    assert cve_services.quota(None) is None
    # Blocks are not used in services mode.
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)
    other = cves.allocate(make_vuln("SEC-2026-0002", clock.at), None, "t", clock.at, services)
    assert other.cve.cve_id == "CVE-2026-20001"
    assert cves.remaining() == 10


def test_an_unused_reserved_id_is_given_before_reserving_another(db, clock, standin, services):
    CveId.create(
        cve_id="CVE-2026-30000",
        block="cve-services",
        year=2026,
        number=30000,
        source="cve-services",
    )
    given = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "t", clock.at, services)
    assert given.cve.cve_id == "CVE-2026-30000"
    assert standin.ids == {}


def test_services_quota_running_low_is_flagged(db, clock, services, standin):
    standin.id_quota = 3
    given = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "t", clock.at, services)
    assert (given.remaining, given.low) == (2, True)
    assert "CVE Services quota" in given.warning
    assert [e["remaining"] for e in events("cve.quota_low")] == [2]


def test_an_exceeded_quota_is_one_line(db, clock, services, standin):
    standin.id_quota = 0
    vuln = make_vuln("SEC-2026-0001", clock.at)
    with pytest.raises(OperatorError) as error:
        cves.allocate(vuln, None, "t", clock.at, services)
    assert "403 EXCEEDED_ID_QUOTA" in str(error.value)
    assert "\n" not in str(error.value)
    assert Vulnerability.get_by_id(vuln.id).cve is None


def test_retire_in_services_mode_rejects_the_id_at_the_service(db, clock, standin, services):
    vuln = make_vuln("SEC-2026-0001", clock.at)
    cve_id = cves.allocate(vuln, None, "t", clock.at, services).cve.cve_id

    retired = cve_records.retire(
        cve_id, "not a vulnerability after all", None, "admin@x", clock.at, services
    )

    assert standin.ids[cve_id]["state"] == "REJECTED"
    assert ("PUT", f"/api/cve-id/{cve_id}") in standin.requests
    assert (retired.state, retired.reason) == ("rejected", "not a vulnerability after all")
    assert Vulnerability.get_by_id(vuln.id).cve is None
    assert cve_services.quota(services)["total_reserved"] == 0


def test_publish_record_at_the_service_marks_the_id_published(db, clock, standin, services):
    vuln = make_vuln("SEC-2026-0001", clock.at)
    cve_id = cves.allocate(vuln, None, "t", clock.at, services).cve.cve_id
    record = cna_container(standin.org_uuid)

    answer = cve_records.publish_record(cve_id, record, services, clock.at)

    assert answer["created"]["cveMetadata"]["state"] == "PUBLISHED"
    assert standin.ids[cve_id]["state"] == "PUBLISHED"
    stored = standin.records[cve_id]["containers"]["cna"]
    assert stored["descriptions"] == record["descriptions"]
    assert stored["x_generator"]["engine"].startswith("cvelib")
    assert state_of(cve_id) == "published"
    assert [e["target"] for e in events("cve.publish")] == [cve_id]
    # Published ids cannot be retired.
    with pytest.raises(Refused, match="is published"):
        cve_records.retire(cve_id, "oops", None, "admin@x", clock.at, services)

    # A repeated lift (after a crash) updates the record instead of failing.
    record["descriptions"][0]["value"] = "A buffer overflow in the BLE stack (updated)."
    again = cve_records.publish_record(cve_id, record, services, clock.at)
    assert again["updated"]["containers"]["cna"]["descriptions"] == record["descriptions"]


def test_publish_without_provider_metadata_asks_the_service_for_the_org_id(
    db, clock, standin, services
):
    cve_id = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "t", clock.at, services)
    record = cna_container(standin.org_uuid)
    del record["providerMetadata"]
    cve_records.publish_record(cve_id.cve.cve_id, record, services, clock.at)
    assert standin.records[cve_id.cve.cve_id]["containers"]["cna"]["providerMetadata"] == {
        "orgId": standin.org_uuid
    }


def test_an_invalid_record_is_refused_before_reaching_the_service(db, clock, standin, services):
    cve_id = cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "t", clock.at, services)
    record = cna_container(standin.org_uuid)
    del record["references"]
    with pytest.raises(Refused, match="'references' is a required property"):
        cve_records.publish_record(cve_id.cve.cve_id, record, services, clock.at)
    assert not any(path.startswith("/api/cve/") for _, path in standin.requests)
    assert state_of(cve_id.cve.cve_id) == "assigned"


def test_a_wrong_api_key_is_one_line_naming_the_settings(db, clock, standin):
    config = cve_services.ServicesConfig.from_environ(
        services_env(standin, FOREWARN_CVE_API_KEY="nope")
    )
    vuln = make_vuln("SEC-2026-0001", clock.at)

    with pytest.raises(OperatorError) as error:
        cves.allocate(vuln, None, "t", clock.at, config)

    message = str(error.value)
    assert "401 UNAUTHORIZED" in message
    assert "FOREWARN_CVE_API_KEY" in message
    assert "nope" not in message
    assert "\n" not in message
    assert CveId.select().count() == 0
    assert standin.ids == {}
    with pytest.raises(OperatorError, match="401 UNAUTHORIZED"):
        cve_services.quota(config)


def test_an_unreachable_service_is_one_line(db, clock, standin):
    url = standin.url
    standin.stop()
    config = cve_services.ServicesConfig.from_environ(
        services_env(standin, FOREWARN_CVE_SERVICES_URL=url)
    )
    with pytest.raises(OperatorError, match="cannot reserve a CVE id at CVE Services"):
        cves.allocate(make_vuln("SEC-2026-0001", clock.at), None, "t", clock.at, config)


def test_cli_assign_in_services_mode(db, clock, standin, forewarn):
    make_vuln("SEC-2026-0001", clock.at)
    make_vuln("SEC-2026-0002", clock.at)

    given = forewarn("cve", "assign", "SEC-2026-0001", extra_env=services_env(standin))
    quota = forewarn("cve", "quota", extra_env=services_env(standin))
    wrong = forewarn(
        "cve", "assign", "SEC-2026-0002", extra_env=services_env(standin, FOREWARN_CVE_API_KEY="x")
    )
    incomplete = forewarn(
        "cve", "assign", "SEC-2026-0002", extra_env=services_env(standin, FOREWARN_CVE_API_USER="")
    )

    assert (given.returncode, given.stdout, given.stderr) == (0, "CVE-2026-20000\n", "")
    assert quota.stdout == f"CVE Services ({standin.org}): limit 12, reserved 1, available 11\n"
    one_line_error(wrong, "401 UNAUTHORIZED", "FOREWARN_CVE_API_KEY")
    one_line_error(incomplete, "FOREWARN_CVE_API_USER")
    assert Vulnerability.get(Vulnerability.tracking_id == "SEC-2026-0002").cve is None
