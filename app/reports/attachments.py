"""Reporters' files: every attachment of an inbound message, kept with its correspondence entry
as the reporter meant it (decrypted when it arrived encrypted), listed for the team, shown as
text when it is clearly the report, forwarded inside the encryption, purged with the text.

Files are embargoed content: nothing here is ever public, and they leave the desk only encrypted
to a team member's key (app/reports/letters.py) or to the team's own download
(app/web/workspace.py).
"""

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from app.core.errors import NotFound, Refused
from app.models import Correspondence, ReceivedFile, Vulnerability

MAX_NAME = 200
MAX_SHOWN_CHARS = 200_000  # a report shown as text in the thread; longer ones are cut there
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")
_REPORT_SUFFIXES = (".txt", ".md", ".markdown")
_TEXT_SUFFIXES = (*_REPORT_SUFFIXES, ".py", ".c", ".h", ".sh", ".patch", ".diff", ".log")


def clean_name(name: str, fallback: str) -> str:
    """A plain file name: the last path component, without control characters, not too long."""
    name = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    if not name:
        return fallback
    if len(name) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        short = dot and len(suffix) < 10
        name = (stem[: MAX_NAME - 1 - len(suffix)] + dot + suffix) if short else name[:MAX_NAME]
    return name


def clean_type(content_type: str) -> str:
    """The sender's MIME type when it is one, else application/octet-stream."""
    found = (content_type or "").strip().lower()
    if _MIME_TYPE.fullmatch(found) and len(found) <= 100:
        return found
    return "application/octet-stream"


def keep(entry: Correspondence, attachments, at: datetime) -> list[ReceivedFile]:
    """Store the parsed attachments (mail.parse.Attachment) of one inbound entry; call it in
    the transaction that creates the entry. A file over the parser's size cap is listed with
    its size, sha256 and the reason, without its content."""
    kept = []
    for n, attachment in enumerate(attachments, start=1):
        dropped = ""
        if attachment.data is None:
            dropped = attachment.dropped or "its content could not be kept"
        kept.append(
            ReceivedFile.create(
                correspondence=entry,
                name=clean_name(attachment.filename, f"attachment-{n}"),
                content_type=clean_type(attachment.content_type),
                size=attachment.size,
                sha256=attachment.sha256,
                content=attachment.data,
                encrypted=attachment.decrypted,
                dropped=dropped,
            )
        )
    return kept


def _listed():
    """Files without their content (which may be megabytes each): `kept` says whether it is
    there; _contents() fetches it where it is needed."""
    columns = [f for f in ReceivedFile._meta.sorted_fields if f is not ReceivedFile.content]
    return ReceivedFile.select(*columns, ReceivedFile.content.is_null(False).alias("kept"))


def _contents(files: list[ReceivedFile]) -> dict[int, bytes]:
    ids = [f.id for f in files]
    if not ids:
        return {}
    query = ReceivedFile.select(ReceivedFile.id, ReceivedFile.content).where(
        ReceivedFile.id.in_(ids), ReceivedFile.content.is_null(False)
    )
    return {row.id: bytes(row.content) for row in query}


def of_entry(entry: Correspondence) -> list[ReceivedFile]:
    """An entry's files, in arrival order, without their content (see _listed)."""
    return list(_listed().where(ReceivedFile.correspondence == entry.id).order_by(ReceivedFile.id))


def of_vulnerability(v: Vulnerability) -> dict[int, list[ReceivedFile]]:
    """Every file of v's correspondence, by entry id, in arrival order, without their content
    (one query)."""
    return of_vulnerabilities([v.id])


def of_vulnerabilities(ids: list[int]) -> dict[int, list[ReceivedFile]]:
    """The same for several vulnerabilities (a case's thread), by entry id."""
    found: dict[int, list[ReceivedFile]] = {}
    query = (
        _listed()
        .join(Correspondence)
        .where(Correspondence.vulnerability.in_(ids))
        .order_by(ReceivedFile.id)
    )
    for received in query:
        found.setdefault(received.correspondence_id, []).append(received)
    return found


def find(v: Vulnerability, sha256: str) -> ReceivedFile:
    """v's file with that sha256, its content at hand. NotFound when v has none; Refused when
    its content was not kept (too large, or purged)."""
    digest = (sha256 or "").strip().lower()
    query = (
        ReceivedFile.select()
        .join(Correspondence)
        .where(Correspondence.vulnerability == v.id, ReceivedFile.sha256 == digest)
        .order_by(ReceivedFile.content.is_null(), ReceivedFile.id)
    )
    found = query.first()
    if found is None:
        raise NotFound(
            f"{v.tracking_id} has no attachment with sha256 {digest or '(empty)'}; "
            f"`forewarn vulns show {v.tracking_id} --json` lists them"
        )
    if found.content is None:
        raise Refused(f"the content of {found.name} was not kept: {found.dropped}")
    return found


def by_id(v: Vulnerability, file_id: int) -> ReceivedFile | None:
    return (
        ReceivedFile.select()
        .join(Correspondence)
        .where(Correspondence.vulnerability == v.id, ReceivedFile.id == file_id)
        .first()
    )


MAIL_MAX_BYTES = 10 * 1024 * 1024  # the files one forward carries, together


def for_mail(files: list[ReceivedFile]) -> list[tuple[ReceivedFile, bytes]]:
    """The files a forward to the team carries, with their bytes: those whose content is kept,
    in order, while they fit in MAIL_MAX_BYTES together (the others are listed, to download)."""
    chosen, total = [], 0
    for f in files:
        if not f.kept or total + f.size > MAIL_MAX_BYTES:
            continue
        chosen.append(f)
        total += f.size
    contents = _contents(chosen)
    return [(f, contents[f.id]) for f in chosen if f.id in contents]


def mail_type(f: ReceivedFile) -> str:
    """The type a file travels as in a forward: base64 bytes, so never message/* or multipart/*
    (RFC 2046 allows neither to be base64-encoded; clients would misread them)."""
    if f.content_type.startswith(("message/", "multipart/")):
        return "application/octet-stream"
    return f.content_type


def described(files: list[ReceivedFile]) -> list[dict]:
    """What `vulns show --json` lists of each file, as the reporter meant it (after decryption)."""
    return [
        {"name": f.name, "content_type": f.content_type, "size": f.size, "sha256": f.sha256}
        for f in files
    ]


@dataclass(frozen=True)
class ShownText:
    name: str
    text: str
    cut: bool  # longer than MAX_SHOWN_CHARS: the rest is in the download


def report_text(entry: Correspondence, files: list[ReceivedFile]) -> list[ShownText]:
    """The attachments that are clearly the report, as text to show in the thread: decrypted
    text files that are a .txt or .md, or the only text file of a message without text of its
    own (a plain cover note with report.txt.gpg, or an encrypted message holding one file)."""
    candidates = [f for f in files if f.encrypted and f.kept and _may_be_text(f)]
    contents = _contents(candidates)
    texts = [(f, _text(contents[f.id])) for f in candidates if f.id in contents]
    texts = [(f, text) for f, text in texts if text is not None]
    shown = []
    for f, text in texts:
        named = f.name.lower().endswith(_REPORT_SUFFIXES)
        alone = len(texts) == 1 and not (entry.text or "").strip()
        if named or alone:
            shown.append(ShownText(f.name, text[:MAX_SHOWN_CHARS], len(text) > MAX_SHOWN_CHARS))
    return shown


def _may_be_text(f: ReceivedFile) -> bool:
    return f.content_type.startswith("text/") or f.name.lower().endswith(_TEXT_SUFFIXES)


def _text(content: bytes) -> str | None:
    """The bytes as UTF-8 text, or None when they are not text."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text.replace("\r\n", "\n")


def unencrypted_parts(entry: Correspondence) -> list[str]:
    try:
        found = json.loads(entry.unencrypted_parts or "[]")
    except ValueError:
        return []
    return [str(part) for part in found] if isinstance(found, list) else []


def download_type(f: ReceivedFile) -> str:
    """The type a download is served as: the sender's only when a browser cannot run it as a
    page or script; everything else as bytes (the download is an attachment either way)."""
    return f.content_type if f.content_type in SAFE_TYPES else "application/octet-stream"


SAFE_TYPES = frozenset(
    {
        "text/plain",
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/json",
    }
)


def purge(entry_ids: list[int], marker: str) -> int:
    """Retention and erasure: the files of these entries lose their name and content (their
    size, type and sha256 stay, as the entry's row does); marker is retention's "[purged
    DATE]". Returns how many were purged."""
    count = 0
    for start in range(0, len(entry_ids), 500):
        chunk = entry_ids[start : start + 500]
        count += (
            ReceivedFile.update(name=marker, content=None, dropped=marker)
            .where(
                ReceivedFile.correspondence.in_(chunk),
                ~ReceivedFile.dropped.startswith("[purged "),
            )
            .execute()
        )
    return count
