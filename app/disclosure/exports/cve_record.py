"""The CVE JSON 5.1 record of a published vulnerability, built from its public view alone.

The whole record (`dataType`, `cveMetadata`, `containers.cna`) is what `forewarn export cve`
prints and /vulnerabilities/<id>/cve.json serves; app.vulns.cve_records.publish_record takes it
as it is (cvelib sends its `containers.cna` to CVE Services).
"""

import re

from app.core import timefmt
from app.core.errors import ConfigError, Refused
from app.disclosure.exports.fields import (
    advisory_url,
    credit_names,
    cvss,
    modified,
    products,
    vendor,
)
from app.disclosure.redaction import Published
from app.vulns import affected

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_SHORT_NAME = re.compile(r"^.{2,32}$")
DESCRIPTION_MAX = 4096  # the schema's limit of a description's value
MEDIA_MAX = 16384  # and of a supporting media's


class CnaNotConfigured(ConfigError, Refused):
    """The CNA's settings a CVE record needs are missing. Refused too, so the download route
    answers 404 as for any record it cannot serve."""


def org_id(settings) -> str:
    value = (settings.cna_org_id or "").strip().lower()
    if not value:
        raise CnaNotConfigured(
            "FOREWARN_CNA_ORG_ID is not set: set it to the CNA's organisation UUID "
            "(CVE Services shows it) to export CVE records"
        )
    if not _UUID.match(value):
        raise CnaNotConfigured(
            f"FOREWARN_CNA_ORG_ID={settings.cna_org_id!r} is not a UUID; set it to the CNA's "
            "organisation UUID like 8254265b-2729-46b6-b9e3-3dfca2d5bfca"
        )
    return value


def record(p: Published, settings) -> dict:
    """The full CVE JSON 5.1 record; Refused without a CVE id or without affected products."""
    if not p.cve_id:
        raise Refused(
            f"{p.tracking_id} has no CVE id, so it has no CVE record; give it one with "
            f"`forewarn cve assign {p.tracking_id}` (its OSV and CSAF exports need none)"
        )
    org = org_id(settings)
    metadata = {
        "cveId": p.cve_id,
        "assignerOrgId": org,
        "state": "PUBLISHED",
        "datePublished": timefmt.zulu(p.published_at),
        "dateUpdated": timefmt.zulu(modified(p)),
    }
    provider = {"orgId": org, "dateUpdated": timefmt.zulu(modified(p))}
    short_name = (settings.cna_short_name or "").strip()
    if short_name and _SHORT_NAME.match(short_name):
        metadata["assignerShortName"] = short_name
        provider["shortName"] = short_name
    return {
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": metadata,
        "containers": {"cna": cna_container(p, settings, provider)},
    }


def cna_container(p: Published, settings, provider: dict) -> dict:
    cna = {
        "providerMetadata": provider,
        "datePublic": timefmt.zulu(p.published_at),
        "title": p.title[:256] or p.id,
        "descriptions": [_description(p)],
        "affected": _affected(p, settings),
    }
    metric = _metric(p)
    if metric:
        cna["metrics"] = [metric]
    if p.cwe:
        cna["problemTypes"] = [
            {"descriptions": [{"lang": "en", "type": "CWE", "cweId": p.cwe, "description": p.cwe}]}
        ]
    cna["references"] = _references(p, settings)
    if p.mitigation.strip():
        cna["workarounds"] = [{"lang": "en", "value": _clip(p.mitigation.strip(), DESCRIPTION_MAX)}]
    credits = [
        {"lang": "en", "value": _clip(name, DESCRIPTION_MAX), "type": "finder"}
        for name in credit_names(p)
    ]
    if credits:
        cna["credits"] = credits
    return cna


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _description(p: Published) -> dict:
    text = p.description.strip() or p.title
    description = {"lang": "en", "value": _clip(text, DESCRIPTION_MAX)}
    if p.description.strip():
        description["supportingMedia"] = [
            {"type": "text/markdown", "base64": False, "value": _clip(text, MEDIA_MAX)}
        ]
    return description


def _affected(p: Published, settings) -> list[dict]:
    grouped = products(p)
    if not grouped:
        if not settings.product:
            raise Refused(
                f"the CVE record of {p.id} needs its affected products: set them with "
                f"`forewarn vulns set {p.tracking_id} affected 'zephyr >=3.0 <4.2'`, "
                "or set FOREWARN_PRODUCT"
            )
        return [
            {"vendor": vendor(settings), "product": settings.product, "defaultStatus": "unknown"}
        ]
    entries = []
    for product, items in grouped:
        entry = {
            "vendor": vendor(settings),
            "product": product,
            "versions": [_version(item) for item in items],
            "defaultStatus": "unaffected",
        }
        if settings.repo_url:
            entry["repo"] = settings.repo_url
        entries.append(entry)
    return entries


def _version(item: affected.Affected) -> dict:
    if item.exact:
        return {"version": item.exact, "status": "affected"}
    version = {"version": item.introduced or "0", "status": "affected", "versionType": "custom"}
    if item.fixed:
        version["lessThan"] = item.fixed
    else:
        version["lessThanOrEqual"] = item.last_affected
    return version


def _metric(p: Published) -> dict | None:
    score = cvss(p)
    if score is None:
        return None
    key = {"3.0": "cvssV3_0", "3.1": "cvssV3_1", "4.0": "cvssV4_0"}[score.version]
    return {
        "format": "CVSS",
        "scenarios": [{"lang": "en", "value": "GENERAL"}],
        key: {
            "version": score.version,
            "vectorString": score.vector,
            "baseScore": score.score,
            "baseSeverity": score.severity,
        },
    }


def _references(p: Published, settings) -> list[dict]:
    references = [{"url": url, "tags": ["patch"]} for url in dict.fromkeys(p.fix_refs)]
    page = advisory_url(p, settings)
    if page not in p.fix_refs:
        references.append({"url": page, "name": f"{p.id} advisory", "tags": ["vendor-advisory"]})
    return references
