"""The CSAF 2.0 security advisory of a published vulnerability, built from its public view alone.

The product tree is vendor > product > version (or version range, written in `vers:generic`)
from the `affected` field; CSAF 2.0 scores only CVSS 2 and 3, so a CVSS 4.0 vector goes in a
note instead of `scores`.
"""

from app.core import timefmt
from app.disclosure.exports.fields import (
    advisory_url,
    credit_names,
    cve_page,
    cvss,
    modified,
    products,
    record_url,
    vendor,
)
from app.disclosure.redaction import Published
from app.vulns import affected, revisions

ENGINE = "Forewarn"


def publisher_name(settings) -> str:
    """FOREWARN_CNA_SHORT_NAME, else the domain of the security address."""
    return settings.cna_short_name or settings.security_address.rpartition("@")[2].strip("<> ")


def publisher(settings) -> dict:
    """The advisories' publisher, also the CSAF provider's (app.disclosure.provider)."""
    return {
        "category": "vendor",
        "name": publisher_name(settings) or settings.base_url,
        "namespace": settings.base_url,
        "contact_details": f"Report vulnerabilities to {settings.security_address}",
    }


def advisory(p: Published, settings, *, draft: bool = False) -> dict:
    """`draft` marks an advisory an operator exported before the lift (`--embargoed`)."""
    tree, product_ids = _product_tree(p, settings)
    document = {
        "document": _document(p, settings, draft),
    }
    if tree:
        document["product_tree"] = tree
    document["vulnerabilities"] = [_vulnerability(p, settings, product_ids)]
    return document


def _document(p: Published, settings, draft: bool) -> dict:
    released, changed = timefmt.zulu(p.published_at), timefmt.zulu(modified(p))
    return {
        "category": "csaf_security_advisory",
        "csaf_version": "2.0",
        "lang": "en",
        "title": p.title or p.id,
        "publisher": publisher(settings),
        "distribution": {"tlp": {"label": "AMBER" if draft else "WHITE"}},
        "tracking": {
            "id": p.tracking_id,
            "status": "draft" if draft else "final",
            "version": str(len(p.revisions) or 1),
            "initial_release_date": released,
            "current_release_date": changed,
            "revision_history": [
                {"date": timefmt.zulu(r.at), "number": str(r.number), "summary": r.summary}
                for r in p.revisions
            ]
            or [{"date": released, "number": "1", "summary": revisions.INITIAL}],
            "generator": {"engine": {"name": ENGINE}, "date": changed},
        },
        "references": [
            {
                "category": "self",
                "summary": f"This advisory ({p.id}) as CSAF",
                "url": record_url(p, settings, "csaf"),
            },
            {
                "category": "external",
                "summary": f"{p.id} advisory",
                "url": advisory_url(p, settings),
            },
        ],
    }


def _range_name(item: affected.Affected) -> str:
    bounds = [f">={item.introduced}"] if item.introduced else []
    bounds.append(f"<{item.fixed}" if item.fixed else f"<={item.last_affected}")
    return "vers:generic/" + "|".join(bounds)


def _product_tree(p: Published, settings) -> tuple[dict | None, list[str]]:
    maker = vendor(settings)
    product_ids: list[str] = []

    def product(name: str) -> dict:
        product_ids.append(f"FW-{len(product_ids) + 1:04d}")
        return {"name": name, "product_id": product_ids[-1]}

    branches = []
    for name, items in products(p):
        versions = []
        for item in items:
            if item.exact:
                category, label = "product_version", item.exact
            else:
                category, label = "product_version_range", _range_name(item)
            versions.append(
                {
                    "category": category,
                    "name": label,
                    "product": product(f"{maker} {item}".replace(" =", " ")),
                }
            )
        branches.append({"category": "product_name", "name": name, "branches": versions})
    if not branches and settings.product:
        branches.append(
            {
                "category": "product_name",
                "name": settings.product,
                "product": product(f"{maker} {settings.product}"),
            }
        )
    if not branches:
        return None, []
    return {"branches": [{"category": "vendor", "name": maker, "branches": branches}]}, product_ids


def _vulnerability(p: Published, settings, product_ids: list[str]) -> dict:
    vulnerability: dict = {}
    if p.cve_id:
        vulnerability["cve"] = p.cve_id
    vulnerability["ids"] = [
        {"system_name": publisher_name(settings) or ENGINE, "text": p.tracking_id}
    ]
    vulnerability["title"] = p.title or p.id
    vulnerability["release_date"] = timefmt.zulu(p.published_at)
    notes = []
    if p.description.strip():
        notes.append({"category": "description", "title": "Description", "text": p.description})
    score = cvss(p)
    if score is not None and (score.version == "4.0" or not product_ids):
        notes.append(
            {
                "category": "other",
                "title": f"CVSS {score.version}",
                "text": f"{score.vector} (base score {score.score}, {score.severity.lower()})",
            }
        )
    if p.cwe:
        notes.append({"category": "other", "title": "Weakness", "text": p.cwe})
    if notes:
        vulnerability["notes"] = notes
    if product_ids:
        vulnerability["product_status"] = {"known_affected": product_ids}
    remediations = _remediations(p, product_ids)
    if remediations:
        vulnerability["remediations"] = remediations
    if score is not None and score.version != "4.0" and product_ids:
        vulnerability["scores"] = [
            {
                "products": product_ids,
                "cvss_v3": {
                    "version": score.version,
                    "vectorString": score.vector,
                    "baseScore": score.score,
                    "baseSeverity": score.severity,
                },
            }
        ]
    names = credit_names(p)
    if names:
        vulnerability["acknowledgments"] = [{"names": names}]
    references = [
        {"category": "external", "summary": f"{p.id} advisory", "url": advisory_url(p, settings)}
    ]
    references += [
        {"category": "external", "summary": "Fix", "url": url} for url in dict.fromkeys(p.fix_refs)
    ]
    if p.cve_id:
        references.append(
            {"category": "external", "summary": f"{p.cve_id} record", "url": cve_page(p.cve_id)}
        )
    vulnerability["references"] = references
    return vulnerability


def _remediations(p: Published, product_ids: list[str]) -> list[dict]:
    targets = {"product_ids": product_ids} if product_ids else {}
    remediations = [
        {"category": "vendor_fix", "details": f"Apply the fix: {url}", "url": url, **targets}
        for url in dict.fromkeys(p.fix_refs)
    ]
    if p.mitigation.strip():
        remediations.append({"category": "workaround", "details": p.mitigation.strip(), **targets})
    return remediations
