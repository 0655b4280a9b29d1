"""The CVE JSON 5.1 record of a published vulnerability, built from its public view alone.

The whole record (`dataType`, `cveMetadata`, `containers.cna`) is what `forewarn export cve`
prints and /vulnerabilities/<id>/cve.json serves; app.vulns.cve_records.publish_record takes it
as it is (cvelib sends its `containers.cna` to CVE Services).
"""

import re

from app.core import markdown, timefmt
from app.core.errors import ConfigError, Refused
from app.disclosure.exports.cwe import cwe_name
from app.disclosure.exports.fields import (
    advisory_url,
    credits,
    cvss,
    modified,
    products,
    vendor,
    withdrawn_notice,
)
from app.disclosure.redaction import Published
from app.vulns import affected

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_SHORT_NAME = re.compile(r"^.{2,32}$")
# semver.org's own expression (2.0.0): MAJOR.MINOR.PATCH, then a pre-release and build metadata.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
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


def servable(p: Published, settings) -> bool:
    """Does `record` make one for p (a CVE id, the CNA's organisation, affected products)? The
    public pages link the CVE record only then: a link that answers 404 helps nobody."""
    if not p.cve_id:
        return False
    try:
        org_id(settings)
        return bool(p.withdrawn_at or products(p) or settings.product)
    except Refused:  # CnaNotConfigured, or an affected text written before it was checked
        return False


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
    if p.withdrawn_at is not None:
        # It proved not to be a vulnerability: a REJECTED record, the reason its only content.
        metadata.update(state="REJECTED", dateRejected=timefmt.zulu(p.withdrawn_at))
        reason = {"lang": "en", "value": _clip(withdrawn_notice(p), DESCRIPTION_MAX)}
        cna = {"providerMetadata": provider, "rejectedReasons": [reason]}
    else:
        cna = cna_container(p, settings, provider)
    return {
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": metadata,
        "containers": {"cna": cna},
    }


def cna_container(p: Published, settings, provider: dict) -> dict:
    cna = {
        "providerMetadata": provider,
        "datePublic": timefmt.zulu(p.published_at),
        "title": p.title[:256] or p.id,
        "descriptions": descriptions(p.description) or [{"lang": "en", "value": p.title or p.id}],
        "affected": _affected(p, settings),
    }
    metric = _metric(p)
    if metric:
        cna["metrics"] = [metric]
    if p.cwe:
        description = {"lang": "en", "type": "CWE", "cweId": p.cwe}
        description["description"] = _cwe_description(p.cwe)
        cna["problemTypes"] = [{"descriptions": [description]}]
    cna["references"] = _references(p, settings)
    workarounds = descriptions(p.mitigation)
    if workarounds:
        cna["workarounds"] = workarounds
    credited = [
        {"lang": "en", "value": _clip(credit.name, DESCRIPTION_MAX), "type": credit.type}
        for credit in credits(p)
    ]
    if credited:
        cna["credits"] = credited
    return cna


def _cwe_description(cwe_id: str) -> str:
    """The problem type's description: the CWE's id and name, as CVE records write them
    ("CWE-787 Out-of-bounds Write"); the id alone for one the table does not name."""
    name = cwe_name(cwe_id)
    return f"{cwe_id} {name}" if name else cwe_id


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def descriptions(text: str) -> list[dict]:
    """A Markdown text as CVE descriptions: plain text (markdown.to_text) in full, its HTML in
    `supportingMedia` (text/html, sanitised). A text longer than a description's 4,096
    characters (or whose HTML is longer than a supporting media's 16,384) takes as many
    descriptions as it needs, cut between blocks (paragraphs, lists, code), a block itself
    between lines or words; every part carries the HTML of its blocks. Empty for a text with
    no words."""
    parts: list[tuple[str, str | None]] = []
    for block in markdown.blocks(text):
        for piece in _pieces(block):
            if parts and _joins(parts[-1], piece):
                (last_text, last_html), (more_text, more_html) = parts[-1], piece
                html = None if last_html is None else f"{last_html}\n{more_html}"
                parts[-1] = (f"{last_text}\n\n{more_text}", html)
            else:
                parts.append(piece)
    found = []
    for part_text, html in parts:
        description = {"lang": "en", "value": part_text}
        if html:
            description["supportingMedia"] = [{"type": "text/html", "base64": False, "value": html}]
        found.append(description)
    return found


def _pieces(block: markdown.Block) -> list[tuple[str, str | None]]:
    if len(block.text) <= DESCRIPTION_MAX and len(block.html) <= MEDIA_MAX:
        return [(block.text, block.html)]
    # One block longer than a description: its text in parts, without HTML that no part holds.
    return [(piece, None) for piece in _cut(block.text, DESCRIPTION_MAX)]


def _joins(part: tuple[str, str | None], piece: tuple[str, str | None]) -> bool:
    """Does the next piece fit into the part before it (text, and HTML alike)?"""
    (text, html), (more_text, more_html) = part, piece
    if len(text) + 2 + len(more_text) > DESCRIPTION_MAX or (html is None) != (more_html is None):
        return False
    return html is None or len(html) + 1 + len(more_html) <= MEDIA_MAX


def _cut(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at a line end, else between words."""
    pieces = []
    while len(text) > limit:
        at = text.rfind("\n", limit // 2, limit)
        if at <= 0:
            at = text.rfind(" ", 0, limit)
        if at <= 0:
            at = limit
        pieces.append(text[:at].rstrip())
        text = text[at:].strip()
    return [piece for piece in (*pieces, text) if piece]


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
    """One item's CVE version entry: semver when every version the team wrote in it is one
    (the range's start "0", CVE's word for the earliest version, is one too), else custom."""
    written = [v for v in (item.exact, item.introduced, item.fixed, item.last_affected) if v]
    semver = all(_SEMVER.match(v) for v in written)
    if item.exact:
        exact = {"version": item.exact, "status": "affected"}
        return {**exact, "versionType": "semver"} if semver else exact
    version = {
        "version": item.introduced or "0",
        "status": "affected",
        "versionType": "semver" if semver else "custom",
    }
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
