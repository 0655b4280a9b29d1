"""Every kind of CSAF advisory Forewarn makes, through BSI's csaf-validator-lib (pinned in
tests/csaf/package.json, installed by `.ci/setup validators`): its strict schema test, every
mandatory test (6.1.x) with no error, and every recommended test (6.2.x) with no warning but
those the README names (6.2.3 "Missing Score" where CSAF 2.0 has no field for the score)."""

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from app.disclosure import exports
from app.models import Vulnerability
from app.vulns import lifecycle
from tests.test_exports import ACTOR, CVSS31, CVSS40, env, make  # noqa: F401 (env: the CNA's settings)

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent
# Where `.ci/setup validators VENV` put it: inside the venv running the tests.
LIB = Path(sys.prefix) / "csaf-validator/node_modules/@secvisogram/csaf-validator-lib"


def bsi(documents: dict[str, dict], tmp_path) -> dict[str, dict]:
    """Each document's findings by test name: {test: {errors, warnings, infos}}."""
    if not (LIB / "validateStrict.js").is_file():
        pytest.fail("csaf-validator-lib is not installed; run `make test-setup`")
    files = []
    for name, document in documents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        files.append(str(path))
    run = subprocess.run(
        ["node", str(ROOT / "tests/csaf/validate.mjs"), str(LIB), *files],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = {}
    for name, result in zip(documents, json.loads(run.stdout), strict=True):
        assert result["ran"] > 60, result  # the schema, 6.1.x and 6.2.x: none left out
        results[name] = {
            t["name"]: {k: t[k] for k in ("errors", "warnings", "infos") if t[k]}
            for t in result["tests"]
        }
    return results


def problems(findings: dict, allowed: tuple[str, ...] = ()) -> dict:
    """Errors of any test, warnings of the recommended tests but those allowed."""
    return {
        test: found
        for test, found in findings.items()
        if found.get("errors") or (found.get("warnings") and test not in allowed)
    }


MISSING_SCORE = "optionalTest_6_2_3"


def test_every_kind_of_advisory_passes_bsis_validator(db, clock, settings, tmp_path):
    made = {}
    v = make(settings, clock.at)
    made["cvss31"] = exports.document("csaf", v, clock.at, settings)
    v40 = make(settings, clock.at, title="Second", severity=CVSS40, cve=False)
    made["cvss40_without_cve"] = exports.document("csaf", v40, clock.at, settings)
    bare = replace(settings, vendor=None, cna_short_name=None, repo_url=None, product_purls=())
    minimal = make(bare, clock.at, title="Third", severity="", affected="", cwe="", fix_refs="",
                   mitigation="", cve=False)  # fmt: skip
    made["minimal"] = exports.document("csaf", minimal, clock.at, bare)
    several = make(
        settings, clock.at, title="Fourth", cve=False,
        affected="zephyr <3.7.1; zephyr >=3.7.0 <4.1.2; zephyr =4.0.0; mcuboot >=1.0 <=1.9.1; "
        "hal_nordic <2.0+rc1", fix_refs="", mitigation="", cwe="CWE-16",
    )  # fmt: skip
    made["several_products"] = exports.document("csaf", several, clock.at, settings)
    edit = clock.at + timedelta(days=2)
    lifecycle.set_field(v, "affected", "zephyr >=3.0 <4.2.1", ACTOR, edit, reason="4.2.0 too")
    lifecycle.set_field(v, "cwe", "CWE-122", ACTOR, edit)
    revised = Vulnerability.get_by_id(v.id)
    made["after_a_revision"] = exports.document("csaf", revised, edit, settings)
    made["draft"] = exports.document_under_embargo(
        "csaf", make(settings, clock.at, title="Fifth", cve=False, published=False),
        clock.at, settings,
    )  # fmt: skip
    for document in made.values():
        exports.validate("csaf", document)  # and the bundled JSON Schema still agrees

    found = bsi(made, tmp_path)
    assert problems(found["cvss31"]) == {}
    assert problems(found["several_products"]) == {}
    assert problems(found["after_a_revision"]) == {}
    assert problems(found["draft"]) == {}
    # CSAF 2.0 has no CVSS 4.0 field; a vulnerability without a vector has no score at all.
    for name in ("cvss40_without_cve", "minimal"):
        assert problems(found[name], allowed=(MISSING_SCORE,)) == {}, name
        assert found[name][MISSING_SCORE]["warnings"], name
    assert made["after_a_revision"]["document"]["tracking"]["version"] == "2"
    # With no `affected`, the configured product stands for it (a security advisory needs one);
    # with no vendor configured, its name is the product's alone.
    (branch,) = made["minimal"]["product_tree"]["branches"][0]["branches"]
    assert branch["product"]["name"] == "Zephyr RTOS"
    (remediation,) = made["minimal"]["vulnerabilities"][0]["remediations"]
    assert remediation["category"] == "none_available"


def test_the_validator_finds_what_it_should(db, clock, settings, tmp_path):
    """The run is no rubber stamp: a wrong CWE name, a dangling product id, a missing score."""
    document = exports.document("csaf", make(settings, clock.at), clock.at, settings)
    wrong_name = json.loads(json.dumps(document))
    wrong_name["vulnerabilities"][0]["cwe"]["name"] = "Heap Overflow"
    dangling = json.loads(json.dumps(document))
    dangling["vulnerabilities"][0]["product_status"]["known_affected"].append("FW-9999")
    unscored = json.loads(json.dumps(document))
    del unscored["vulnerabilities"][0]["scores"]
    found = bsi({"name": wrong_name, "dangling": dangling, "unscored": unscored}, tmp_path)
    assert found["name"]["mandatoryTest_6_1_11"]["errors"]
    assert found["dangling"]["mandatoryTest_6_1_1"]["errors"]
    assert set(problems(found["unscored"])) == {MISSING_SCORE}
