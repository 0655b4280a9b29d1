"""CVE JSON 5.1, OSV and CSAF 2.0 exports: built from the public view alone, valid against their
schemas, refused (and 404) while embargoed; `forewarn export` with and without --embargoed."""

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from app.core.errors import ConfigError, NotFound, Refused
from app.disclosure import exports
from app.disclosure.exports import cve_record
from app.models import Advisory, AuditEvent, Correspondence, Vulnerability
from app.vulns import cves, lifecycle
from tests.test_cli import one_line_error

pytestmark = pytest.mark.db

ORG_ID = "8254265b-2729-46b6-b9e3-3dfca2d5bfca"
BASE = "https://cna.example.org"
CVSS31 = "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CVSS40 = "CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
AFFECTED = "zephyr >=3.0 <4.2; zephyr =3.7.0; zephyr <=2.7.5; mcuboot >=1.0 <=1.9.1"
REPORTER_EMAIL = "finder.private@example.net"
PRIVATE = ("PRIVATE-CORRESPONDENCE-7731", "PRIVATE-ADVISORY-5512", "PRIVATE-REJECTION-0042")
ACTOR = lifecycle.Actor(None, "test")


@pytest.fixture
def env(env):
    """The CNA's settings, for the library, the portal and the command line alike."""
    return {
        **env,
        "FOREWARN_BASE_URL": BASE,
        "FOREWARN_CNA_ORG_ID": ORG_ID,
        "FOREWARN_CNA_SHORT_NAME": "zephyr",
        "FOREWARN_VENDOR": "Zephyr Project",
        "FOREWARN_PRODUCT": "Zephyr RTOS",
        "FOREWARN_REPO_URL": "https://github.com/zephyrproject-rtos/zephyr",
    }


def make(settings, at, *, title="Heap overflow in L2CAP reassembly", description=None,
         severity=CVSS31, affected=AFFECTED, cve=True, published=True, **fields):  # fmt: skip
    """A vulnerability written as the team writes one, with private traces beside it."""
    description = description or "A crafted **L2CAP** frame overflows the reassembly buffer."
    v = lifecycle.create(title, description, ACTOR, at - timedelta(days=40), settings,
                     embargo_until=at + timedelta(days=30))  # fmt: skip
    values = {
        "severity": severity,
        "affected": affected,
        "cwe": "CWE-787",
        "fix_refs": "https://github.com/zephyrproject-rtos/zephyr/pull/1 https://example.org/fix.patch",
        "mitigation": "Disable CONFIG_BT_L2CAP_DYNAMIC_CHANNEL until the fix is deployed.",
        **fields,
    }
    for field, value in values.items():
        if value:
            v = lifecycle.set_field(v, field, value, ACTOR, at - timedelta(days=20))
    Vulnerability.update(
        reporter_email=REPORTER_EMAIL,
        reporter_name="Zoë Ångström",
        rejection_reason=PRIVATE[2],
        status="accepted",
    ).where(Vulnerability.id == v.id).execute()
    Correspondence.create(vulnerability=v, direction="in", at=at, subject="s", text=PRIVATE[0])
    Advisory.create(vulnerability=v, version=1, subject="XSA", text=PRIVATE[1], created_at=at)
    if cve:
        cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", at - timedelta(days=30))
        cves.allocate(v, None, "test", at - timedelta(days=30))
    if published:
        Vulnerability.update(status="published", published_at=at - timedelta(hours=1)).where(
            Vulnerability.id == v.id
        ).execute()
    return Vulnerability.get_by_id(v.id)


def documents(v, at, settings, kinds=exports.KINDS) -> dict:
    return {kind: exports.document(kind, v, at, settings) for kind in kinds}


# -- valid documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [CVSS31, CVSS40])
def test_every_export_validates_with_the_vector_and_the_ranges(db, clock, settings, vector):
    v = make(settings, clock.at, severity=vector)
    made = documents(v, clock.at, settings)
    for kind, document in made.items():
        exports.validate(kind, document, settings)

    record = made["cve"]
    assert record["dataVersion"] == "5.1" and record["cveMetadata"]["state"] == "PUBLISHED"
    assert record["cveMetadata"]["cveId"] == "CVE-2026-1000"
    assert record["cveMetadata"]["assignerOrgId"] == ORG_ID
    cna = record["containers"]["cna"]
    assert cna["providerMetadata"]["orgId"] == ORG_ID
    assert {(a["vendor"], a["product"]) for a in cna["affected"]} == {
        ("Zephyr Project", "zephyr"),
        ("Zephyr Project", "mcuboot"),
    }
    zephyr, mcuboot = cna["affected"]
    assert zephyr["defaultStatus"] == "unaffected"
    assert zephyr["versions"] == [
        {"version": "3.0", "status": "affected", "versionType": "custom", "lessThan": "4.2"},
        {"version": "3.7.0", "status": "affected", "versionType": "semver"},
        {"version": "0", "status": "affected", "versionType": "semver", "lessThanOrEqual": "2.7.5"},
    ]
    assert mcuboot["versions"][0]["lessThanOrEqual"] == "1.9.1"
    (metric,) = cna["metrics"]
    key = "cvssV3_1" if vector == CVSS31 else "cvssV4_0"
    assert metric[key]["vectorString"] == vector
    assert metric[key]["baseSeverity"] in ("HIGH", "CRITICAL")
    assert cna["problemTypes"][0]["descriptions"][0]["cweId"] == "CWE-787"
    urls = [ref["url"] for ref in cna["references"]]
    assert f"{BASE}/vulnerabilities/{v.tracking_id}" in urls
    assert "https://example.org/fix.patch" in urls
    assert cna["credits"] == [{"lang": "en", "value": "Zoë Ångström", "type": "finder"}]

    osv = made["osv"]
    assert osv["id"] == "ZEPHYR-" + v.tracking_id.removeprefix("SEC-")
    assert osv["aliases"] == ["CVE-2026-1000"]
    assert osv["modified"].endswith("Z") and osv["published"].endswith("Z")
    assert osv["severity"] == [
        {"type": "CVSS_V3" if vector == CVSS31 else "CVSS_V4", "score": vector}
    ]
    assert all("package" not in entry for entry in osv["affected"])
    ranges = osv["affected"][0]["database_specific"]["version_ranges"]
    assert {"introduced": "3.0", "fixed": "4.2"} in ranges
    assert {"introduced": "0", "last_affected": "2.7.5"} in ranges
    assert {ref["type"] for ref in osv["references"]} >= {"ADVISORY", "FIX"}
    assert osv["database_specific"]["tracking_id"] == v.tracking_id

    csaf = made["csaf"]
    assert csaf["document"]["category"] == "csaf_security_advisory"
    assert csaf["document"]["publisher"] == {
        "category": "vendor",
        "name": "zephyr",
        "namespace": BASE,
        "contact_details": "Report vulnerabilities to security@localhost",
    }
    assert csaf["document"]["tracking"]["id"] == v.tracking_id
    assert csaf["document"]["tracking"]["status"] == "final"
    (vulnerability,) = csaf["vulnerabilities"]
    assert vulnerability["cve"] == "CVE-2026-1000"
    assert len(vulnerability["product_status"]["known_affected"]) == 4
    categories = [r["category"] for r in vulnerability["remediations"]]
    assert categories == ["vendor_fix", "vendor_fix", "vendor_fix", "workaround"]
    assert vulnerability["acknowledgments"] == [{"names": ["Zoë Ångström"]}]
    if vector == CVSS31:
        assert vulnerability["scores"][0]["cvss_v3"]["vectorString"] == vector
    else:
        assert "scores" not in vulnerability
        assert any(vector in note["text"] for note in vulnerability["notes"])


def test_non_ascii_text_survives_every_format(db, clock, settings):
    title = "Überlauf im Bluetooth-Stack — 蓝牙缓冲区溢出"
    description = "Ein präpariertes Paket 📡 überschreibt den Puffer.\n\n* Gerät: nRF52840"
    v = make(settings, clock.at, title=title, description=description, credits="Jürgen Æsir")
    for kind, document in documents(v, clock.at, settings).items():
        exports.validate(kind, document, settings)
        text = json.dumps(document, ensure_ascii=False)
        assert title in text and "📡" in text and "Jürgen Æsir" in text, kind


def test_without_a_cve_id_osv_has_no_alias_and_the_cve_record_is_refused(db, clock, settings):
    v = make(settings, clock.at, cve=False)
    with pytest.raises(Refused, match="has no CVE id.*forewarn cve assign"):
        exports.document("cve", v, clock.at, settings)
    osv = exports.document("osv", v, clock.at, settings)
    assert osv["id"] == "ZEPHYR-" + v.tracking_id.removeprefix("SEC-")
    assert "aliases" not in osv
    exports.validate("osv", osv, settings)
    csaf = exports.document("csaf", v, clock.at, settings)
    assert "cve" not in csaf["vulnerabilities"][0]
    assert csaf["vulnerabilities"][0]["ids"][0]["text"] == v.tracking_id
    exports.validate("csaf", csaf, settings)


def test_minimal_published_vulnerability_still_validates(db, clock, settings):
    bare = replace(settings, vendor=None, cna_short_name=None, repo_url=None)
    v = make(bare, clock.at, severity="", affected="", cwe="", fix_refs="", mitigation="")
    for kind, document in documents(v, clock.at, bare).items():
        exports.validate(kind, document, bare)
    cna = exports.document("cve", v, clock.at, bare)["containers"]["cna"]
    assert cna["affected"] == [
        {"vendor": "N/A", "product": "Zephyr RTOS", "defaultStatus": "unknown"}
    ]
    assert [ref["url"] for ref in cna["references"]] == [f"{BASE}/vulnerabilities/{v.tracking_id}"]
    with pytest.raises(Refused, match="affected"):
        exports.document("cve", v, clock.at, replace(bare, product=None))


def test_the_cve_record_needs_the_cna_org_id(db, clock, settings):
    v = make(settings, clock.at)
    for value, says in ((None, "is not set"), ("not-a-uuid", "is not a UUID")):
        with pytest.raises(
            cve_record.CnaNotConfigured, match=f"FOREWARN_CNA_ORG_ID.*{says}"
        ) as info:
            exports.document("cve", v, clock.at, replace(settings, cna_org_id=value))
        assert isinstance(info.value, ConfigError) and isinstance(info.value, Refused)


# -- invalid documents -------------------------------------------------------------------------


def test_invalid_documents_are_rejected_with_the_first_message_and_its_path(db, clock, settings):
    v = make(settings, clock.at)
    made = documents(v, clock.at, settings)

    record = copy.deepcopy(made["cve"])
    del record["containers"]["cna"]["affected"][0]["vendor"]
    record["containers"]["cna"]["affected"][0].pop("product")
    with pytest.raises(exports.InvalidDocument) as info:
        exports.validate("cve", record, settings)
    assert info.value.path.startswith("$.containers") and "cve export is not valid" in str(
        info.value
    )

    osv = copy.deepcopy(made["osv"])
    osv["modified"] = "2026-11-25T11:00:00+00:00"  # Python's isoformat: the schema wants Z
    with pytest.raises(exports.InvalidDocument) as info:
        exports.validate("osv", osv, settings)
    assert info.value.path == "$.modified"

    osv = copy.deepcopy(made["osv"])
    osv["id"] = v.tracking_id  # an unregistered prefix, not the team's own either
    with pytest.raises(exports.InvalidDocument, match=r"\$\.id"):
        exports.validate("osv", osv, settings)
    # The team's own prefix is one only for the team's validation until OSV registers it.
    with pytest.raises(exports.InvalidDocument, match=r"\$\.id"):
        exports.validate("osv", made["osv"])

    csaf = copy.deepcopy(made["csaf"])
    csaf["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseScore"] = 42  # in the CVSS schema
    with pytest.raises(exports.InvalidDocument) as info:
        exports.validate("csaf", csaf, settings)
    assert info.value.path.startswith("$.vulnerabilities[0].scores[0]")

    csaf = copy.deepcopy(made["csaf"])
    csaf["document"]["tracking"]["current_release_date"] = "yesterday"  # format: date-time
    with pytest.raises(exports.InvalidDocument, match="current_release_date"):
        exports.validate("csaf", csaf, settings)


def test_schemas_are_package_data():
    schemas = resources.files("app.disclosure.exports.schemas")
    assert schemas.joinpath("osv-schema.json").is_file()
    for name in ("csaf_json_schema.json", "cvss-v2.0.json", "cvss-v3.0.json", "cvss-v3.1.json"):
        assert schemas.joinpath("csaf-2.0", name).is_file()
    assert "commit" in schemas.joinpath("README.md").read_text(encoding="utf-8")


# -- embargo and privacy -----------------------------------------------------------------------


def test_embargoed_is_refused_for_every_kind_and_404_for_downloads(db, clock, settings, client):
    v = make(settings, clock.at, published=False)
    for kind in exports.KINDS:
        with pytest.raises(Refused, match="is under embargo until .*published at the lift"):
            exports.document(kind, v, clock.at, settings)
        assert client.get(f"/vulnerabilities/{v.tracking_id}/{kind}.json").status_code == 404
    Vulnerability.update(status="triage").where(Vulnerability.id == v.id).execute()
    with pytest.raises(NotFound):
        exports.document("osv", Vulnerability.get_by_id(v.id), clock.at, settings)


def test_published_downloads_serve_the_documents(db, clock, settings, client):
    v = make(settings, clock.at)
    for kind, document in documents(v, clock.at, settings).items():
        answer = client.get(f"/vulnerabilities/{v.tracking_id}/{kind}.json")
        assert answer.status_code == 200, kind
        assert answer.mimetype == "application/json"
        assert answer.get_json() == document


def test_no_private_field_reaches_any_export(db, clock, settings):
    v = make(settings, clock.at)
    embargoed = make(settings, clock.at, title="Second", cve=False, published=False)
    texts = [json.dumps(d, ensure_ascii=False) for d in documents(v, clock.at, settings).values()]
    texts += [
        json.dumps(exports.document_under_embargo(kind, embargoed, clock.at, settings))
        for kind in ("osv", "csaf")
    ]
    for text in texts:
        assert REPORTER_EMAIL not in text
        assert "finder.private" not in text
        for secret in PRIVATE:
            assert secret not in text


# -- the command line --------------------------------------------------------------------------


def test_cli_exports_a_published_vulnerability(db, settings, forewarn):
    v = make(settings, datetime.now(UTC))
    for kind in exports.KINDS:
        result = forewarn("export", kind, v.tracking_id)
        assert result.returncode == 0, result.stderr
        exports.validate(kind, json.loads(result.stdout), settings)
    assert "Zoë Ångström" in result.stdout


def test_cli_refuses_while_embargoed_and_audits_embargoed_exports(db, settings, forewarn):
    v = make(settings, datetime.now(UTC), published=False)
    refused = forewarn("export", "osv", v.tracking_id)
    assert refused.stdout == ""
    one_line_error(refused, "under embargo", "--embargoed")
    assert not AuditEvent.select().where(AuditEvent.action == "export.embargoed").exists()

    anyway = forewarn("export", "csaf", v.tracking_id, "--embargoed")
    assert anyway.returncode == 0, anyway.stderr
    advisory = json.loads(anyway.stdout)
    exports.validate("csaf", advisory, settings)
    assert advisory["document"]["tracking"]["status"] == "draft"
    assert advisory["vulnerabilities"][0]["title"] == v.title
    (event,) = AuditEvent.select().where(AuditEvent.action == "export.embargoed")
    assert event.target == v.tracking_id and event.actor_label.startswith("cli:")
    assert json.loads(event.details)["kind"] == "csaf"

    missing = forewarn("export", "cve", "SEC-2026-0999")
    one_line_error(missing, "SEC-2026-0999")
