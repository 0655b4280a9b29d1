"""A report through the portal's form (/report), for reporters without OpenPGP: checked, then
encrypted to the service key's public part and stored as the mail a reporter would have sent
(mail/submission.py), with its tracking id reserved and the reporter's follow-up link issued in
the same transaction. A worker processes it as a mail report, filed under that id
(app/reports/processing.py). Nothing here needs the service's secret key.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from app.core import oneline
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import InboundMessage
from app.reports import followup
from app.vulns import lifecycle
from keys.errors import CertificateError
from keys.inspect import Certificate, inspect_registration_key
from keys.keyring import encrypt_to_certificate
from keys.packets import primary_fingerprints
from mail.compose import Attachment
from mail.submission import Submission, sealed

CHANNEL = "web-report"
MAX_TITLE = 200
MAX_DESCRIPTION = 200_000
_NOT_IN_ADDRESS = r"[^@\s<>()\[\],;:\"\x00-\x1f\x7f]+"
_EMAIL = re.compile(rf"^{_NOT_IN_ADDRESS}@{_NOT_IN_ADDRESS}\.{_NOT_IN_ADDRESS}$")
_MIME_TYPE = re.compile(r"[a-z0-9.+-]+/[a-z0-9.+-]+")


class Mistake(Refused):
    """A field the reporter must correct; nothing was stored."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class File:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class WebReport:
    title: str
    description: str
    name: str = ""
    email: str = ""
    key: bytes | None = None  # the reporter's OpenPGP certificate, as given
    files: tuple[File, ...] = ()
    credit: bool = False  # the reporter agrees to be credited


@dataclass(frozen=True)
class Filed:
    message_id: int  # the stored InboundMessage
    tracking_id: str  # reserved: processing files the report under it
    token: str  # the follow-up link's token: shown once, never stored


def size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    return f"{count / 1024:.1f} KB" if count >= 1024 else f"{count} bytes"


def check_sizes(sizes: list[tuple[str, int]], settings: Settings) -> None:
    """Refuses (Mistake at "attachments") a file over the limit per file, or files together
    over the limit per report."""
    for filename, length in sizes:
        if length > settings.report_max_file_bytes:
            raise Mistake(
                "attachments",
                f"{filename} is larger than {size(settings.report_max_file_bytes)}, the limit "
                "for one file. Compress it, or leave it out and offer it in your report.",
            )
    total = sum(length for _, length in sizes)
    if total > settings.report_max_bytes:
        raise Mistake(
            "attachments",
            f"The files together are {size(total)}; a report may carry at most "
            f"{size(settings.report_max_bytes)}. Compress them, or send fewer.",
        )


def checked(report: WebReport, settings: Settings, at: datetime) -> Certificate | None:
    """The reporter's key as inspected (None without one); Mistake for the first field to fix."""
    try:
        title = oneline.checked(report.title, "title")
        oneline.checked(report.name, "name")
    except Refused as exc:
        said = str(exc)
        field = "title" if "title" in said else "name"
        raise Mistake(field, f"{said[:1].upper()}{said[1:]}.") from None
    if not title:
        raise Mistake("title", "Give your report a short title.")
    if len(title) > MAX_TITLE:
        raise Mistake("title", f"The title may have at most {MAX_TITLE} characters.")
    if not report.description.strip():
        raise Mistake("description", "Describe the vulnerability: what, where, and how.")
    if len(report.description) > MAX_DESCRIPTION:
        raise Mistake(
            "description",
            f"The description may have at most {MAX_DESCRIPTION} characters; attach the rest "
            "as a file.",
        )
    email = report.email.strip()
    if email and (not _EMAIL.match(email) or len(email) > 254):
        raise Mistake("email", f"{email!r} is not an email address.")
    check_sizes([(f.filename, len(f.content)) for f in report.files], settings)
    if not report.key:
        return None
    if not email:
        raise Mistake(
            "key",
            "Give your email address with your key: the key encrypts our mail to that address.",
        )
    try:
        return inspect_registration_key(report.key, email, at)
    except CertificateError as exc:
        raise Mistake("key", f"The key was not accepted: {exc}.") from None


def file(
    report: WebReport, service_certificate: str, settings: Settings, secret_key: str, at: datetime
) -> Filed:
    """Check the report, encrypt it to the service key's certificate, and store it with its
    tracking id and follow-up link, committed before this returns."""
    certificate = checked(report, settings, at)
    email = report.email.strip().lower()
    name = oneline.flattened(report.name.strip())[:200]
    files = tuple(
        Attachment(filename(f.filename, n), f.content, content_type(f.content_type))
        for n, f in enumerate(report.files, start=1)
    )
    submission = Submission(
        subject=oneline.flattened(report.title.strip()),
        text=_text(report, name, email, certificate, files),
        recipient=settings.security_address,
        message_id=f"<forewarn.web-report.{secrets.token_hex(12)}@{_domain(settings)}>",
        date=at,
        sender=email or None,
        sender_name=name,
        key=certificate.armored if certificate is not None else None,
        files=files,
        fields={"Name": name, "Credit": "yes" if report.credit else "no"},
    )
    (fingerprint,) = primary_fingerprints(service_certificate)
    raw = sealed(
        submission, lambda data: encrypt_to_certificate(service_certificate, fingerprint, data)
    )
    with write_transaction():
        tracking_id = lifecycle.next_tracking_id(settings.tracking_prefix, at.year)
        message = InboundMessage.create(
            raw=raw,
            sha256=hashlib.sha256(raw).hexdigest(),
            envelope_from=email,
            envelope_to=settings.security_address,
            received_at=at,
            channel=CHANNEL,
            tracking_id=tracking_id,
        )
        _, token = followup.issue(tracking_id, secret_key, at)
    return Filed(message.id, tracking_id, token)


def decoy_number() -> int:
    """A tracking number for a trapped bot's answer: six digits, far above any real one."""
    return 900_000 + secrets.randbelow(100_000)


def decoy_token() -> str:
    """A follow-up token that opens nothing (no link has it)."""
    return secrets.token_urlsafe(32)


def _text(report: WebReport, name: str, email: str, certificate, files) -> str:
    """The report as the team reads it: the form's fields, then the description as written
    (Markdown, shown as text)."""
    credit = "no"
    if report.credit:
        credit = f"yes, as {name}" if name else "yes, but no name was given"
    listed = ", ".join(f"{f.filename} ({size(len(f.content))})" for f in files) or "none"
    lines = [
        "Sent through the report form.",
        "",
        f"Name: {name or '(not given)'}",
        f"Email: {email or '(not given: the reporter gets no mail)'}",
        f"OpenPGP key: {certificate.fingerprint if certificate else '(none)'}",
        f"Credit: {credit}",
        f"Files: {listed}",
        "",
        "Description:",
        "",
        report.description.replace("\r\n", "\n").strip("\n"),
    ]
    return "\n".join(lines) + "\n"


def filename(given: str, n: int) -> str:
    """The file's own name, without folders or control characters."""
    base = re.split(r"[/\\]", given or "")[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:200]
    return base or f"attachment-{n}"


def content_type(given: str) -> str:
    given = (given or "").split(";")[0].strip().lower()
    return given if _MIME_TYPE.fullmatch(given) else "application/octet-stream"


def _domain(settings: Settings) -> str:
    domain = settings.security_address.rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain) else "localhost"
