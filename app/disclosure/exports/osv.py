"""The OSV record of a published vulnerability, built from its public view alone.

Its id is the CVE id, or `x_` and the tracking id (the prefix the schema leaves to private
databases) while it has none. No OSV ecosystem fits an RTOS, and OSV's GIT ranges need commit
hashes the team does not record: `affected` entries carry no package and no ranges, and the
version ranges as written go in their `database_specific`.
"""

from app.core import timefmt
from app.disclosure.exports.fields import (
    advisory_url,
    credit_names,
    cve_page,
    cvss,
    modified,
    products,
    vendor,
)
from app.disclosure.redaction import Published

SCHEMA_VERSION = "1.7.0"
PRIVATE_PREFIX = "x_"


def osv_id(p: Published) -> str:
    return p.cve_id or f"{PRIVATE_PREFIX}{p.tracking_id}"


def record(p: Published, settings) -> dict:
    document = {
        "schema_version": SCHEMA_VERSION,
        "id": osv_id(p),
        "modified": timefmt.zulu(modified(p)),
        "published": timefmt.zulu(p.published_at),
        "summary": " ".join(p.title.split()),
    }
    if p.description.strip():
        document["details"] = p.description.strip()
    score = cvss(p)
    if score is not None:
        kind = "CVSS_V4" if score.version == "4.0" else "CVSS_V3"
        document["severity"] = [{"type": kind, "score": score.vector}]
    affected = _affected(p, settings)
    if affected:
        document["affected"] = affected
    document["references"] = _references(p, settings)
    credits = [{"name": name, "type": "FINDER"} for name in credit_names(p)]
    if credits:
        document["credits"] = credits
    document["database_specific"] = _database_specific(p, settings)
    return document


def _affected(p: Published, settings) -> list[dict]:
    entries = []
    for product, items in products(p):
        ranges, versions = [], []
        for item in items:
            if item.exact:
                versions.append(item.exact)
                continue
            event = {"introduced": item.introduced or "0"}
            if item.fixed:
                event["fixed"] = item.fixed
            else:
                event["last_affected"] = item.last_affected
            ranges.append(event)
        specific = {"vendor": vendor(settings), "product": product}
        if ranges:
            specific["version_ranges"] = ranges
        if versions:
            specific["versions"] = versions
        if settings.repo_url:
            specific["repo"] = settings.repo_url
        entries.append({"database_specific": specific})
    return entries


def _references(p: Published, settings) -> list[dict]:
    references = [{"type": "ADVISORY", "url": advisory_url(p, settings)}]
    references += [{"type": "FIX", "url": url} for url in dict.fromkeys(p.fix_refs)]
    if p.cve_id:
        references.append({"type": "ADVISORY", "url": cve_page(p.cve_id)})
    if settings.repo_url:
        references.append({"type": "PACKAGE", "url": settings.repo_url})
    return references


def _database_specific(p: Published, settings) -> dict:
    specific = {"tracking_id": p.tracking_id, "source": advisory_url(p, settings)}
    if p.cwe:
        specific["cwe_ids"] = [p.cwe]
    if p.mitigation.strip():
        specific["mitigation"] = p.mitigation.strip()
    return specific
