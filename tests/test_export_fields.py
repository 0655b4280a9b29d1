"""What every export reads alike (app/disclosure/exports/fields.py): typed credits and where a
CSAF document lives in the provider directory."""

from dataclasses import replace
from datetime import UTC, datetime

from app.disclosure.exports import fields
from app.disclosure.redaction import Published

AT = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
VIEW = Published(
    id="CVE-2026-1000",
    tracking_id="SEC-2026-0042",
    cve_id="CVE-2026-1000",
    title="t",
    description="d",
    severity="",
    cvss_score=None,
    affected="",
    cwe="",
    fix_refs=(),
    mitigation="",
    credits="",
    published_at=AT,
    reported_at=AT,
    updated_at=AT,
)


def test_a_credit_line_may_end_with_its_type_else_it_credits_a_finder():
    view = replace(
        VIEW,
        credits="Zoë Ångström\nNCC Group (coordinator)\nJane Roe (ACME)\n"
        "Fix   Author (remediation  developer)\nZoë Ångström (analyst)\n\n",
    )
    assert [(c.name, c.type) for c in fields.credits(view)] == [
        ("Zoë Ångström", "finder"),
        ("NCC Group", "coordinator"),
        ("Jane Roe (ACME)", "finder"),  # not a credit type: part of the name
        ("Fix Author", "remediation developer"),
    ]
    assert fields.credit_names(view)[1] == "NCC Group"


def test_a_csaf_document_is_named_from_its_tracking_id_under_its_year():
    assert fields.csaf_filename("SEC-2026-0042") == "sec-2026-0042.json"
    assert fields.csaf_filename("Zephyr 2026/07+x") == "zephyr_2026_07+x.json"
    settings = type("S", (), {"base_url": "https://cna.example.org/"})()
    assert fields.csaf_url(VIEW, settings) == (
        "https://cna.example.org/.well-known/csaf/white/2026/sec-2026-0042.json"
    )
