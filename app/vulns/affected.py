"""Affected products and versions as the team writes them (`vulns set ID affected`, the form):

    zephyr >=3.0 <4.2; zephyr =3.7.0

Each item is PRODUCT RANGE, RANGE one of <V, <=V, >=V1 <V2, >=V1 <=V2, =V. The exports turn
them into CVE `affected` versions and OSV ranges.
"""

import re
from dataclasses import dataclass

from app.core.errors import Refused

_VERSION = r"[0-9A-Za-z][0-9A-Za-z.+_~-]*"
_RANGE = re.compile(
    rf"^(?:=(?P<exact>{_VERSION})"
    rf"|<(?P<lt>{_VERSION})"
    rf"|<=(?P<le>{_VERSION})"
    rf"|>=(?P<ge>{_VERSION})\s+(?:<(?P<ge_lt>{_VERSION})|<=(?P<ge_le>{_VERSION})))$"
)
_PRODUCT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")


@dataclass(frozen=True)
class Affected:
    product: str
    introduced: str | None = None  # >= (None: from the beginning)
    fixed: str | None = None  # < (the first version without the flaw)
    last_affected: str | None = None  # <=
    exact: str | None = None  # =

    def __str__(self) -> str:
        if self.exact:
            return f"{self.product} ={self.exact}"
        upper = f"<{self.fixed}" if self.fixed else f"<={self.last_affected}"
        return f"{self.product} {'>=' + self.introduced + ' ' if self.introduced else ''}{upper}"


def parse(text: str) -> list[Affected]:
    """The items of an affected text; Refused names the first item that is not understood."""
    items = []
    for raw in (part.strip() for part in text.split(";")):
        if not raw:
            continue
        product, _, version_range = raw.partition(" ")
        match = _RANGE.match(version_range.strip())
        if not _PRODUCT.match(product) or match is None:
            raise Refused(
                f"{raw!r} is not PRODUCT RANGE; write e.g. 'zephyr >=3.0 <4.2' or 'zephyr =3.7.0' "
                "(ranges: <V, <=V, >=V1 <V2, >=V1 <=V2, =V; items separated by ';')"
            )
        g = match.groupdict()
        items.append(
            Affected(
                product,
                introduced=g["ge"],
                fixed=g["lt"] or g["ge_lt"],
                last_affected=g["le"] or g["ge_le"],
                exact=g["exact"],
            )
        )
    return items


def normalise(text: str) -> str:
    """The canonical text of what parse() accepts."""
    return "; ".join(str(item) for item in parse(text))
