"""What the three export formats (app/disclosure/exports/cve_record.py,
app/disclosure/exports/osv.py, app/disclosure/exports/csaf.py) read alike from a `Published` view:
instants in UTC, the advisory page, the CVSS metric, products and credits.

Every function here takes the public view (app.disclosure.redaction.Published), never a
Vulnerability row, so nothing but the public fields can reach an export.
"""

from dataclasses import dataclass
from datetime import datetime

from app.disclosure.redaction import Published, rating
from app.vulns import affected


def modified(p: Published) -> datetime:
    """The last change: never before the publication."""
    return max(p.updated_at, p.published_at)


def advisory_url(p: Published, settings) -> str:
    return f"{settings.base_url.rstrip('/')}/vulnerabilities/{p.tracking_id}"


def record_url(p: Published, settings, kind: str) -> str:
    return f"{advisory_url(p, settings)}/{kind}.json"


@dataclass(frozen=True)
class Cvss:
    version: str  # "3.0", "3.1" or "4.0"
    vector: str
    score: float
    severity: str  # NONE, LOW, MEDIUM, HIGH, CRITICAL


def cvss(p: Published) -> Cvss | None:
    if not p.severity or p.cvss_score is None:
        return None
    version = p.severity.partition("/")[0].removeprefix("CVSS:")
    if version not in ("3.0", "3.1", "4.0"):
        return None
    return Cvss(version, p.severity, float(p.cvss_score), rating(p.cvss_score).upper())


def vendor(settings) -> str:
    """The vendor of the affected products: FOREWARN_VENDOR, else the CNA's short name."""
    return settings.vendor or settings.cna_short_name or "N/A"


def products(p: Published) -> list[tuple[str, list[affected.Affected]]]:
    """The `affected` items grouped by product, in the order they were written."""
    grouped: dict[str, list[affected.Affected]] = {}
    for item in affected.parse(p.affected):
        grouped.setdefault(item.product, []).append(item)
    return list(grouped.items())


def credit_names(p: Published) -> list[str]:
    """One credit a line, as the team wrote them."""
    names = []
    for line in p.credits.splitlines():
        name = " ".join(line.split())
        if name and name not in names:
            names.append(name)
    return names


def cve_page(cve_id: str) -> str:
    return f"https://www.cve.org/CVERecord?id={cve_id}"
