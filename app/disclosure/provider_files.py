"""What /.well-known/csaf/ serves: the files of the CSAF provider's current tree as the
workers wrote them (app.disclosure.provider), its folders as listings (CSAF 2.0, 7.1.14), and
nothing else: no hidden file, nothing outside the tree. Reading needs no key."""

import re
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Settings
from app.disclosure import provider

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")  # no "..", no hidden files


@dataclass(frozen=True)
class Found:
    """A file of the tree (path set), or a folder's listing (entries set: names, folders with
    a trailing "/")."""

    path: Path | None = None
    content_type: str = ""
    entries: tuple[str, ...] = ()


def content_type(relative: str) -> str | None:
    if relative.startswith("openpgp/") and relative.endswith(".asc"):
        return "application/pgp-keys"
    for suffix, kind in (
        (".json", "application/json"),
        (".asc", "application/pgp-signature"),
        (".txt", "text/plain; charset=utf-8"),
        (".csv", "text/csv; charset=utf-8"),
        (".sha256", "text/plain; charset=utf-8"),
        (".sha512", "text/plain; charset=utf-8"),
    ):
        if relative.endswith(suffix):
            return kind
    return None


def lookup(settings: Settings, relative: str) -> Found | None:
    """What /.well-known/csaf/<relative> serves: a file of the current tree, a folder's
    listing (CSAF 2.0, 7.1.14), or None (404): anything outside the tree, hidden, or unknown."""
    tree = provider.current(settings)
    if tree is None:
        return None
    parts = [part for part in relative.split("/") if part]
    if not all(_PART.match(part) for part in parts):
        return None
    target = tree.joinpath(*parts)
    try:
        resolved = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if resolved != tree and tree not in resolved.parents:
        return None
    if resolved.is_dir():
        entries = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in resolved.iterdir()
            if _PART.match(entry.name)
        )
        return Found(entries=tuple(entries))
    kind = content_type("/".join(parts))
    return Found(path=resolved, content_type=kind) if kind and resolved.is_file() else None
