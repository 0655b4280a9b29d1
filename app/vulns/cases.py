"""Cases: what one report started. A vulnerability split from another belongs to the case of
the report it came from (its `case_root`); one not split from anything is a case of its own.
The reporter's finding labels ("NCC-ZEP-031") sit on vulnerabilities, many-to-many.

Queries and the labels' rules only; splitting is app/vulns/split.py.
"""

import re

from peewee import fn

from app.core.errors import Refused
from app.models import Finding, Vulnerability

MAX_LABEL = 100
MAX_LABELS = 200
_LABEL = re.compile(r"^[^\s\x00-\x1f\x7f]+$")


def root(v: Vulnerability) -> Vulnerability:
    """The vulnerability whose report started v's case (v itself when it is its own case)."""
    return v.case_root if v.case_root_id is not None else v


def case_id(v: Vulnerability) -> str:
    """The case's tracking id: its root's."""
    return root(v).tracking_id


def members(v: Vulnerability):
    """Every vulnerability of v's case, the root first, then in the order they were made."""
    top = v.case_root_id if v.case_root_id is not None else v.id
    return (
        Vulnerability.select()
        .where((Vulnerability.id == top) | (Vulnerability.case_root == top))
        .order_by(Vulnerability.id)
    )


def member_ids(v: Vulnerability) -> list[int]:
    return [row.id for row in members(v).select(Vulnerability.id)]


def labels(v: Vulnerability) -> list[str]:
    """v's finding labels, in the order they were given."""
    return [
        f.label for f in Finding.select().where(Finding.vulnerability == v).order_by(Finding.id)
    ]


def parse_labels(text: str) -> list[str]:
    """Labels as the team types them: separated by spaces (or commas); repeats dropped, the
    first spelling kept. Refused when one is too long or holds a control character."""
    found: list[str] = []
    seen: set[str] = set()
    for label in text.replace(",", " ").split():
        if len(label) > MAX_LABEL or not _LABEL.match(label):
            raise Refused(
                f"{label[:40]!r} is not a finding label: at most {MAX_LABEL} characters "
                "without control characters; separate labels with spaces"
            )
        if label.lower() not in seen:
            seen.add(label.lower())
            found.append(label)
    if len(found) > MAX_LABELS:
        raise Refused(f"at most {MAX_LABELS} finding labels per vulnerability")
    return found


def replace_labels(v: Vulnerability, wanted: list[str]) -> None:
    """Make v's labels exactly `wanted` (inside the caller's write transaction)."""
    Finding.delete().where(Finding.vulnerability == v).execute()
    for label in wanted:
        Finding.create(vulnerability=v, label=label)


def labelled(label: str):
    """The ids of the vulnerabilities carrying a label (compared without case), as a subquery."""
    return Finding.select(Finding.vulnerability).where(
        fn.LOWER(Finding.label) == label.strip().lower()
    )
