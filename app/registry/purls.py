"""Package URLs (purl, github.com/package-url/purl-spec) registrants declare for what they ship:
checked when given, and their name part matched against vulnerabilities' affected products
(app.registry.targeting)."""

import re
from dataclasses import dataclass
from urllib.parse import unquote

from app.core.errors import Refused
from app.models import Registrant

MAX_PACKAGE_URLS = 100
MAX_PACKAGE_URL_LENGTH = 500
# purl's type: letters, digits, '.', '+', '-', not starting with a digit.
_TYPE = re.compile(r"^[A-Za-z.+-][A-Za-z0-9.+-]*$")
_EXAMPLE = "pkg:github/zephyrproject-rtos/zephyr"


@dataclass(frozen=True)
class PackageUrl:
    type: str
    namespace: str
    name: str  # percent-decoded
    version: str


def parse_package_url(text: str) -> PackageUrl:
    """One package URL (pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH, namespace,
    version, qualifiers and subpath optional), split as the purl specification says: subpath,
    qualifiers and version from the right, type from the left."""
    raw = text.strip()
    fix = f"write it as pkg:TYPE/NAMESPACE/NAME, e.g. {_EXAMPLE}"
    if not raw[:4].lower() == "pkg:" or any(c.isspace() for c in raw):
        raise Refused(f"{raw[:80]!r} is not a package URL: {fix}")
    if len(raw) > MAX_PACKAGE_URL_LENGTH:
        raise Refused(
            f"{raw[:40]!r}… is longer than {MAX_PACKAGE_URL_LENGTH} characters: "
            "give the package URL without qualifiers"
        )
    rest = raw[4:].lstrip("/").partition("#")[0].partition("?")[0]
    kind, _, path = rest.partition("/")
    path, at, version = path.rpartition("@") if "@" in path else (path, "", "")
    segments = [s for s in path.split("/") if s]
    if not _TYPE.match(kind) or not segments or (at and not version):
        raise Refused(f"{raw[:80]!r} is not a package URL: {fix}")
    return PackageUrl(
        type=kind.lower(),
        namespace="/".join(unquote(s) for s in segments[:-1]),
        name=unquote(segments[-1]),
        version=unquote(version),
    )


def checked_package_urls(text: str) -> str:
    """The package URLs given (separated by spaces or line breaks), each checked, one a line
    and each once; Refused names the first that is not one."""
    seen: list[str] = []
    for item in text.split():
        parse_package_url(item)
        if item not in seen:
            seen.append(item)
    if len(seen) > MAX_PACKAGE_URLS:
        raise Refused(f"give at most {MAX_PACKAGE_URLS} package URLs")
    return "\n".join(seen)


def package_names(registrant: Registrant) -> set[str]:
    """The name part of each of the registrant's package URLs, lower-cased."""
    names = set()
    for item in (registrant.package_urls or "").split():
        try:
            names.add(parse_package_url(item).name.lower())
        except Refused:  # stored before a rule changed: it simply matches nothing
            continue
    return names
