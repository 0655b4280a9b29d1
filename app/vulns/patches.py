"""Patches the team attaches to a vulnerability's advisories: kept byte for byte as uploaded,
named by a plain file name, and listed in each advisory with their sha256 so a registrant can
check what they apply.

An advisory version carries the patches attached when it was sent; removing a patch hides it
from later versions but keeps it for the earlier ones (a retried delivery sends the same bytes).
"""

import hashlib
import json
import unicodedata
from datetime import datetime

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Advisory, Patch, User, Vulnerability

MAX_BYTES = 2 * 1024 * 1024  # each; encrypted and base64-encoded it is about 2.8 MiB of mail
MAX_PER_VULNERABILITY = 20
_TEXT_SUFFIXES = (".patch", ".diff", ".txt")


def clean_filename(name: str) -> str:
    """The last path component, without control characters, at most 200 characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    if not name:
        raise Refused("the patch needs a file name, like 0001-fix-overflow.patch")
    if len(name) > 200:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: 199 - len(suffix)] + dot + suffix) if dot and len(suffix) < 10 else name
        name = name[:200]
    return name


def content_type_for(name: str, content: bytes) -> str:
    if name.lower().endswith(_TEXT_SUFFIXES):
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
        return "text/x-diff" if not name.lower().endswith(".txt") else "text/plain"
    return "application/octet-stream"


def attach(v: Vulnerability, filename: str, content: bytes, by: User | None, by_label: str, at):
    """Keep one uploaded file for v's next advisory versions."""
    name = clean_filename(filename)
    if not content:
        raise Refused(f"{name} is empty; choose the patch file again")
    if len(content) > MAX_BYTES:
        raise Refused(
            f"{name} is {len(content) // 1024} KiB; patches are limited to "
            f"{MAX_BYTES // 1024 // 1024} MiB each (link larger files in the fix references)"
        )
    with write_transaction():
        if current(v).count() >= MAX_PER_VULNERABILITY:
            raise Refused(f"{v.tracking_id} has {MAX_PER_VULNERABILITY} patches; remove one first")
        if current(v).where(Patch.filename == name).exists():
            raise Refused(f"{v.tracking_id} already has a patch named {name}; remove it first")
        patch = Patch.create(
            vulnerability=v,
            filename=name,
            content_type=content_type_for(name, content),
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            uploaded_by=by,
            uploaded_at=at,
        )
        audit.record(
            by,
            "patch.attach",
            at,
            target=v.tracking_id,
            actor_label=by_label,
            details={"file": name, "sha256": patch.sha256, "bytes": len(content)},
        )
    return patch


def remove(patch: Patch, by: User | None, by_label: str, at: datetime) -> None:
    with write_transaction():
        Patch.update(removed=True).where(Patch.id == patch.id).execute()
        audit.record(
            by,
            "patch.remove",
            at,
            target=patch.vulnerability.tracking_id,
            actor_label=by_label,
            details={"file": patch.filename, "sha256": patch.sha256},
        )


def current(v: Vulnerability):
    """The patches the next advisory version will carry (without their bytes)."""
    return (
        Patch.select(Patch.id, Patch.filename, Patch.sha256, Patch.size, Patch.content_type)
        .where(Patch.vulnerability == v, Patch.removed == False)  # noqa: E712
        .order_by(Patch.id)
    )


def of_advisory(advisory: Advisory) -> list[Patch]:
    """The patches one advisory version carries, in the order they were attached."""
    ids = json.loads(advisory.attachments or "[]")
    found = {p.id: p for p in Patch.select().where(Patch.id.in_(ids))} if ids else {}
    return [found[i] for i in ids if i in found]


def listing(patches) -> list[str]:
    """Lines for an advisory text: each file with its size and sha256."""
    return [f"  {p.filename} ({p.size} bytes)\n    sha256 {p.sha256}" for p in patches]
