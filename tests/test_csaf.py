"""The CSAF advisory's content (#18): product identification helpers from the settings, the
CWE with its name, `fixed` products from the ranges, the provider directory's self URL, the
generator's version; the CWE names table and where it comes from."""

import json
import subprocess
from dataclasses import replace
from importlib import metadata, resources

import pytest

from app.core.config import load_settings
from app.core.errors import ConfigError
from app.disclosure import exports
from app.disclosure.exports.cwe import cwe_name, cwe_version
from tests.test_csaf_validator import LIB, ROOT
from tests.test_exports import BASE, CVSS31, env, make  # noqa: F401 (env: the CNA's settings)


def products(document: dict) -> dict[str, dict]:
    """Every full product name of the tree by product id."""
    found = {}

    def walk(branches):
        for branch in branches:
            if "product" in branch:
                found[branch["product"]["product_id"]] = branch["product"]
            walk(branch.get("branches", []))

    walk(document["product_tree"]["branches"])
    return found


@pytest.mark.db
def test_ranges_make_affected_and_fixed_products_with_helpers(db, clock, settings):
    settings = replace(settings, product_cpes=("cpe:2.3:o:zephyrproject:zephyr",))
    affected = "zephyr >=3.0 <4.2; zephyr <3.7.1; zephyr =4.1.0; mcuboot <2.0+rc1; mcuboot <=1.2"
    v = make(settings, clock.at, affected=affected, severity=CVSS31)
    document = exports.document("csaf", v, clock.at, settings)
    exports.validate("csaf", document)
    by_id = products(document)
    (vulnerability,) = document["vulnerabilities"]
    status = vulnerability["product_status"]
    named = {i: by_id[i]["name"] for i in status["known_affected"] + status["fixed"]}
    assert [named[i] for i in status["known_affected"]] == [
        "Zephyr Project zephyr >=3.0 <4.2",
        "Zephyr Project zephyr <3.7.1",
        "Zephyr Project zephyr 4.1.0",
        "Zephyr Project mcuboot <2.0+rc1",
        "Zephyr Project mcuboot <=1.2",
    ]
    # 3.7.1 is no fixed version: the range >=3.0 <4.2 still holds it affected.
    assert [named[i] for i in status["fixed"]] == [
        "Zephyr Project zephyr 4.2",
        "Zephyr Project mcuboot 2.0+rc1",
    ]
    assert set(by_id) == set(named)  # every product in the tree has a status
    helpers = {by_id[i]["name"]: by_id[i]["product_identification_helper"] for i in by_id}
    assert helpers["Zephyr Project zephyr 4.2"] == {
        "purl": "pkg:github/zephyrproject-rtos/zephyr@4.2",
        "cpe": "cpe:2.3:o:zephyrproject:zephyr:4.2:*:*:*:*:*:*:*",
    }
    assert helpers["Zephyr Project zephyr >=3.0 <4.2"] == {
        "purl": "pkg:github/zephyrproject-rtos/zephyr",
        "cpe": "cpe:2.3:o:zephyrproject:zephyr:*:*:*:*:*:*:*:*",
    }
    # No configured identifier names mcuboot: a generic package URL, no CPE.
    assert helpers["Zephyr Project mcuboot 2.0+rc1"] == {"purl": "pkg:generic/mcuboot@2.0%2Brc1"}
    updates = [r for r in vulnerability["remediations"] if r["details"].startswith("Update")]
    # 3.7.1 fixes nothing either, so there is no update to it.
    assert [(r["details"], [named[i] for i in r["product_ids"]]) for r in updates] == [
        ("Update zephyr to 4.2 or later.", ["Zephyr Project zephyr >=3.0 <4.2"]),
        ("Update mcuboot to 2.0+rc1 or later.", ["Zephyr Project mcuboot <2.0+rc1"]),
    ]
    assert all(r["category"] == "vendor_fix" for r in updates)
    assert vulnerability["scores"][0]["products"] == status["known_affected"]  # never fixed ones


@pytest.mark.db
def test_cwe_self_reference_and_generator(db, clock, settings):
    v = make(settings, clock.at)
    document = exports.document("csaf", v, clock.at, settings)
    (vulnerability,) = document["vulnerabilities"]
    assert vulnerability["cwe"] == {"id": "CWE-787", "name": "Out-of-bounds Write"}
    assert all(note["title"] != "Weakness" for note in vulnerability["notes"])
    (self_ref,) = [r for r in document["document"]["references"] if r["category"] == "self"]
    assert self_ref["url"] == f"{BASE}/.well-known/csaf/white/2026/{v.tracking_id.lower()}.json"
    assert document["document"]["tracking"]["generator"]["engine"] == {
        "name": "Forewarn",
        "version": metadata.version("forewarn"),
    }
    # A category, no weakness: MITRE's list gives it no name to map to, so it stays a note.
    category = make(settings, clock.at, title="Other", cwe="CWE-16", cve=False)
    (vulnerability,) = exports.document("csaf", category, clock.at, settings)["vulnerabilities"]
    assert "cwe" not in vulnerability
    assert {"category": "other", "title": "Weakness", "text": "CWE-16"} in vulnerability["notes"]


def test_cwe_names_come_from_mitres_list():
    assert cwe_name("CWE-787") == "Out-of-bounds Write"
    assert cwe_name("cwe-121") == "Stack-based Buffer Overflow"
    assert cwe_name("416") == "Use After Free"
    for unknown in ("CWE-16", "CWE-999999", "CWE-0", "787x", ""):
        assert cwe_name(unknown) is None, unknown
    assert cwe_version().startswith("4.")


def test_the_cwe_table_is_what_the_pinned_package_builds():
    """Not written by hand: tests/csaf/cwe_names.mjs rebuilds it from csaf-validator-lib."""
    if not (LIB / "lib/cwec.js").is_file():
        pytest.fail("csaf-validator-lib is not installed; run `make test-setup`")
    built = subprocess.run(
        ["node", str(ROOT / "tests/csaf/cwe_names.mjs"), str(LIB)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    shipped = resources.files("app.disclosure.exports.schemas").joinpath("cwe_names.json")
    assert built == shipped.read_text(encoding="utf-8"), "run `make cwe-names`"
    pinned = json.loads((ROOT / "tests/csaf/package.json").read_text())["dependencies"]
    assert json.loads(built)["source"].startswith(
        f"@secvisogram/csaf-validator-lib {pinned['@secvisogram/csaf-validator-lib']},"
    )
    assert len(json.loads(built)["names"]) > 900


def test_product_identifiers_come_from_the_settings():
    github = {"FOREWARN_REPO_URL": "https://github.com/ZephyrProject-RTOS/zephyr.git"}
    assert load_settings(github).product_purls == ("pkg:github/zephyrproject-rtos/zephyr",)
    assert load_settings({"FOREWARN_REPO_URL": "https://git.example.org/z"}).product_purls == ()
    both = load_settings(
        {
            **github,
            "FOREWARN_PRODUCT_PURL": "pkg:github/zephyrproject-rtos/zephyr "
            "pkg:github/mcu-tools/mcuboot",
            "FOREWARN_PRODUCT_CPE": "cpe:2.3:o:zephyrproject:zephyr",
        }
    )
    assert both.product_purls[1] == "pkg:github/mcu-tools/mcuboot"
    assert both.product_cpes == ("cpe:2.3:o:zephyrproject:zephyr",)
    for name, value, says in (
        ("FOREWARN_PRODUCT_PURL", "pkg:github/a/b@1.0", "without a version"),
        ("FOREWARN_PRODUCT_PURL", "github.com/a/b", "write e.g. pkg:github/"),
        (
            "FOREWARN_PRODUCT_CPE",
            "cpe:2.3:o:zephyrproject:zephyr:4.2",
            "cpe:2.3:PART:VENDOR:PRODUCT",
        ),
        ("FOREWARN_PRODUCT_CPE", "cpe:/o:zephyrproject:zephyr", "not a CPE 2.3 prefix"),
    ):
        with pytest.raises(ConfigError, match=says) as info:
            load_settings({name: value})
        assert "\n" not in str(info.value) and name in str(info.value)
