"""The CSAF 2.0 security advisory of a published vulnerability, built from its public view alone.

The product tree is vendor > product > version (or version range, written in `vers:generic`)
from the `affected` field, each product with a package URL (and a CPE when configured) that
scanners match on; a range `<V` makes version V a `fixed` product. CSAF 2.0 scores only CVSS 2
and 3, so a CVSS 4.0 vector goes in a note instead of `scores`. Every document passes BSI's
csaf-validator-lib (tests/test_csaf_validator.py).
"""

import re
from importlib import metadata
from urllib.parse import quote, unquote

from app.core import timefmt
from app.disclosure.exports.cwe import cwe_name
from app.disclosure.exports.fields import (
    advisory_url,
    credit_names,
    csaf_url,
    cve_page,
    cvss,
    modified,
    products,
    vendor,
    withdrawn_notice,
)
from app.disclosure.redaction import Published
from app.vulns import affected, revisions

ENGINE = "Forewarn"


def engine() -> dict:
    """The generator: Forewarn and the installed package's version."""
    try:
        return {"name": ENGINE, "version": metadata.version("forewarn")}
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return {"name": ENGINE}


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
    tree = _ProductTree(p, settings)
    return _sorted(
        {
            "document": _document(p, settings, draft),
            "product_tree": tree.tree(),
            "vulnerabilities": [_vulnerability(p, settings, tree)],
        }
    )


def _sorted(value):
    """Every object's keys in alphabetical order (CSAF 2.0 6.2.13); arrays keep theirs."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _document(p: Published, settings, draft: bool) -> dict:
    released, changed = timefmt.zulu(p.published_at), timefmt.zulu(modified(p))
    document = {
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
            "generator": {"engine": engine(), "date": changed},
        },
        "references": [
            {
                # Its address in the provider directory (/.well-known/csaf/), CSAF 2.0 6.2.11.
                "category": "self",
                "summary": f"This advisory ({p.id}) as CSAF",
                "url": csaf_url(p, settings),
            },
            {
                "category": "external",
                "summary": f"{p.id} advisory",
                "url": advisory_url(p, settings),
            },
        ],
    }
    if p.withdrawn_at is not None:
        # CSAF 2.0 has no withdrawn status: the final revision says so (its summary is the
        # withdrawal's), and so does a note on the document and on the vulnerability.
        document["notes"] = [_withdrawn_note(p)]
    return document


def _withdrawn_note(p: Published) -> dict:
    return {"category": "general", "title": "Withdrawn", "text": withdrawn_notice(p)}


# -- the product tree ------------------------------------------------------------------------


def _range_name(item: affected.Affected) -> str:
    bounds = [f">={item.introduced}"] if item.introduced else []
    bounds.append(f"<{item.fixed}" if item.fixed else f"<={item.last_affected}")
    return "vers:generic/" + "|".join(bounds)


def _version_key(version: str) -> tuple:
    """Versions compared as people read them: digit runs as numbers (3.10 after 3.9)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.findall(r"\d+|[^\d.]+", version))  # fmt: skip


def _covers(item: affected.Affected, version: str) -> bool:
    """Whether an `affected` item says `version` is affected."""
    if item.exact:
        return item.exact == version
    key = _version_key(version)
    if item.introduced and key < _version_key(item.introduced):
        return False
    if item.fixed:
        return key < _version_key(item.fixed)
    return key <= _version_key(item.last_affected or "")


def _purl_name(purl: str) -> str:
    return unquote(purl.rpartition("/")[2]).lower()


class _ProductTree:
    """Vendor > product > version or range, and which product ids are affected, fixed and fixed
    by updating to what. Product ids are FW-0001, FW-0002, … in the order of `affected`."""

    def __init__(self, p: Published, settings):
        self.settings = settings
        self.maker = vendor(settings)
        self.by = "" if self.maker == "N/A" else f"{self.maker} "  # full product names' prefix
        self.affected: list[str] = []
        self.fixed: list[str] = []
        self.updates: dict[str, str] = {}  # affected range's id -> "Update X to V or later."
        self._count = 0
        self.branches: list[dict] = []
        for name, items in products(p):
            self.branches.append(self._product(name, items))
        if not self.branches:
            # No `affected` yet: the configured product (a security advisory needs one).
            name = settings.product or publisher_name(settings) or settings.base_url
            self.branches.append(
                {
                    "category": "product_name",
                    "name": name,
                    "product": self._full(f"{self.by}{name}", self._helper(name, None, True)),
                }
            )
            self.affected.append(self.branches[0]["product"]["product_id"])

    def tree(self) -> dict:
        return {"branches": [{"category": "vendor", "name": self.maker, "branches": self.branches}]}

    def _product(self, name: str, items: list[affected.Affected]) -> dict:
        versions: list[dict] = []
        fixed_versions: dict[str, str] = {}
        for item in items:
            if item.exact:
                category, label, version = "product_version", item.exact, item.exact
            else:
                category, label, version = "product_version_range", _range_name(item), None
            full = self._full(f"{self.by}{item}".replace(" =", " "), self._helper(name, version))
            versions.append({"category": category, "name": label, "product": full})
            self.affected.append(full["product_id"])
            # `<V`: V is the first version without the flaw, unless another item says otherwise.
            if item.fixed and not any(_covers(other, item.fixed) for other in items):
                if item.fixed not in fixed_versions:
                    fixed = self._full(
                        f"{self.by}{name} {item.fixed}", self._helper(name, item.fixed)
                    )
                    versions.append(
                        {"category": "product_version", "name": item.fixed, "product": fixed}
                    )
                    fixed_versions[item.fixed] = fixed["product_id"]
                    self.fixed.append(fixed["product_id"])
                self.updates[full["product_id"]] = f"Update {name} to {item.fixed} or later."
        return {"category": "product_name", "name": name, "branches": versions}

    def _full(self, name: str, helper: dict) -> dict:
        self._count += 1
        product = {"name": name, "product_id": f"FW-{self._count:04d}"}
        if helper:
            product["product_identification_helper"] = helper
        return product

    def _helper(self, name: str, version: str | None, configured: bool = False) -> dict:
        """A package URL for every product (FOREWARN_PRODUCT_PURL's, matched by its name, else a
        generic one) and the CPE FOREWARN_PRODUCT_CPE names it with, if any. `configured`: the
        configured product stands for `affected`, and takes the first of each."""
        purls, cpes = self.settings.product_purls, self.settings.product_cpes
        if configured:
            purl, cpe = next(iter(purls), None), next(iter(cpes), None)
        else:
            purl = next((u for u in purls if _purl_name(u) == name.lower()), None)
            cpe = next((c for c in cpes if c.split(":")[4].lower() == name.lower()), None)
        purl = purl or f"pkg:generic/{quote(name, safe='')}"
        helper = {}
        if cpe:
            # CPE 2.3's formatted string: characters but letters, digits, "_", "-", "." quoted.
            cpe_version = re.sub(r"([^\w.-])", r"\\\1", version) if version else "*"
            helper["cpe"] = f"{cpe}:{cpe_version}:*:*:*:*:*:*:*"
        helper["purl"] = f"{purl}@{quote(version, safe='.-_~')}" if version else purl
        return helper


def _vulnerability(p: Published, settings, tree: _ProductTree) -> dict:
    vulnerability: dict = {}
    if p.cve_id:
        vulnerability["cve"] = p.cve_id
    name = cwe_name(p.cwe) if p.cwe else None
    if name:
        vulnerability["cwe"] = {"id": p.cwe, "name": name}
    vulnerability["ids"] = [
        {"system_name": publisher_name(settings) or ENGINE, "text": p.tracking_id}
    ]
    vulnerability["title"] = p.title or p.id
    vulnerability["release_date"] = timefmt.zulu(p.published_at)
    notes = []
    if p.description.strip():
        notes.append({"category": "description", "title": "Description", "text": p.description})
    else:  # a security advisory's vulnerability has notes (CSAF 2.0 6.1.27.5)
        notes.append({"category": "summary", "title": "Summary", "text": p.title or p.id})
    score = cvss(p)
    if score is not None and score.version == "4.0":
        notes.append(
            {
                "category": "other",
                "title": f"CVSS {score.version}",
                "text": f"{score.vector} (base score {score.score}, {score.severity.lower()})",
            }
        )
    if p.cwe and not name:  # an id MITRE's list does not name as a weakness
        notes.append({"category": "other", "title": "Weakness", "text": p.cwe})
    if p.withdrawn_at is not None:
        notes.insert(0, _withdrawn_note(p))
    vulnerability["notes"] = notes
    if p.withdrawn_at is not None:
        # Not a vulnerability after all: no product is affected, so a scanner matching the
        # tree reports none; nothing to remediate or score. The tree and the notes stay.
        vulnerability["product_status"] = {"known_not_affected": tree.affected + tree.fixed}
    else:
        status = {"known_affected": tree.affected}
        if tree.fixed:
            status["fixed"] = tree.fixed
        vulnerability["product_status"] = status
        vulnerability["remediations"] = _remediations(p, tree)
    if score is not None and score.version != "4.0" and p.withdrawn_at is None:
        vulnerability["scores"] = [
            {
                "products": tree.affected,
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


def _remediations(p: Published, tree: _ProductTree) -> list[dict]:
    """The update to the fixed version of each range, the fix references and the mitigation;
    an affected product none of them covers gets `none_available` (CSAF 2.0 6.2.2)."""
    remediations = [
        {"category": "vendor_fix", "details": details, "product_ids": [product_id]}
        for product_id, details in tree.updates.items()
    ]
    remediations += [
        {
            "category": "vendor_fix",
            "details": f"Apply the fix: {url}",
            "url": url,
            "product_ids": tree.affected,
        }
        for url in dict.fromkeys(p.fix_refs)
    ]
    if p.mitigation.strip():
        remediations.append(
            {
                "category": "workaround",
                "details": p.mitigation.strip(),
                "product_ids": tree.affected,
            }
        )
    if not p.fix_refs and not p.mitigation.strip():
        uncovered = [i for i in tree.affected if i not in tree.updates]
        if uncovered:
            remediations.append(
                {
                    "category": "none_available",
                    "details": "No fix or workaround is listed in this advisory.",
                    "product_ids": uncovered,
                }
            )
    return remediations
