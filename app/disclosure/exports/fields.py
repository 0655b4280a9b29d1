"""What the three export formats (app/disclosure/exports/cve_record.py,
app/disclosure/exports/osv.py, app/disclosure/exports/csaf.py) read alike from a `Published` view:
instants in UTC, the advisory page, the CVSS metric, products and credits.

Every function here takes the public view (app.disclosure.redaction.Published), never a
Vulnerability row, so nothing but the public fields can reach an export.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core import timefmt
from app.disclosure.redaction import Published, rating
from app.vulns import affected


def modified(p: Published) -> datetime:
    """The last public change: the publication, or its latest revision."""
    return p.modified


def withdrawn_notice(p: Published) -> str:
    """What every record of a withdrawn vulnerability says of it ("" when it is not)."""
    if p.withdrawn_at is None:
        return ""
    return (
        f"Withdrawn on {timefmt.day(p.withdrawn_at)}: {p.withdrawn_reason.rstrip('.')}. "
        "This advisory does not describe a vulnerability; it is kept so that references to it "
        "still resolve."
    )


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


# CVE JSON 5's credit types (OSV's are the same words, upper case with "_" for " ").
CREDIT_TYPES = (
    "finder",
    "reporter",
    "analyst",
    "coordinator",
    "remediation developer",
    "remediation reviewer",
    "remediation verifier",
    "tool",
    "sponsor",
    "other",
)
_CREDIT = re.compile(r"^(?P<name>.*\S)\s*\((?P<type>[a-z ]+)\)$")


@dataclass(frozen=True)
class Credit:
    name: str
    type: str  # one of CREDIT_TYPES


def credits(p: Published) -> list[Credit]:
    """One credit a line, as the team wrote them; a line may end with its type in brackets,
    "NCC Group (coordinator)", else it credits a finder. Brackets that are no credit type are
    part of the name ("Jane Roe (ACME)")."""
    found: list[Credit] = []
    for line in p.credits.splitlines():
        text = " ".join(line.split())
        match = _CREDIT.match(text)
        typed = match and " ".join(match["type"].split()) in CREDIT_TYPES
        credit = (
            Credit(match["name"], " ".join(match["type"].split()))
            if typed
            else Credit(text, "finder")
        )
        if credit.name and credit.name not in [c.name for c in found]:
            found.append(credit)
    return found


def credit_names(p: Published) -> list[str]:
    """The names credited, in the team's order."""
    return [c.name for c in credits(p)]


# -- CSAF's provider directory (CSAF 2.0, 7.1.11 and 5.1: one folder per TLP label and year) --

_CSAF_NAME = re.compile(r"[^+\-a-z0-9]+")


def csaf_filename(tracking_id: str) -> str:
    """A CSAF document's file name from its tracking.id (CSAF 2.0, 5.1)."""
    return _CSAF_NAME.sub("_", tracking_id.lower()) + ".json"


def csaf_path(p: Published) -> str:
    """Where the provider directory keeps it: white/<year of initial_release_date>/<name>."""
    return f"white/{p.published_at.astimezone(UTC).year}/{csaf_filename(p.tracking_id)}"


def csaf_url(p: Published, settings) -> str:
    """Its address under the provider directory (the document's own `self` reference)."""
    return f"{settings.base_url.rstrip('/')}/.well-known/csaf/{csaf_path(p)}"


def cve_page(cve_id: str) -> str:
    return f"https://www.cve.org/CVERecord?id={cve_id}"
