"""What someone sends through the portal (the report form) as the mail they could have sent:
one MIME message, its text, their key and their files, encrypted to the service key's public
part as PGP/MIME (RFC 3156). It is stored and processed exactly as such a mail is.

The real subject, sender and the form's fields (Forewarn-* headers) are protected headers
inside the encryption; the outer headers show only the sender's address, when given.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from mail.compose import (
    Attachment,
    attachment_part,
    encrypted_message,
    header_line,
    make_boundary,
    multipart_body,
    text_part,
)

# RFC 9788 (header protection) and the clients that write protected headers put this outside.
OUTER_SUBJECT = "..."
FIELD_PREFIX = "Forewarn-"


@dataclass(frozen=True)
class Submission:
    subject: str
    text: str  # plain text
    recipient: str
    message_id: str
    date: datetime  # aware
    sender: str | None = None  # the sender's address, if given
    sender_name: str = ""
    key: str | None = None  # the sender's OpenPGP certificate, armored
    files: Sequence[Attachment] = ()
    fields: dict[str, str] = field(default_factory=dict)  # Forewarn-NAME: value, protected


def entity(submission: Submission) -> bytes:
    """The plaintext: a multipart/mixed with protected headers, the text first, then the key
    (application/pgp-keys, as a mail client attaches one), then the files."""
    headers = [
        header_line("Date", format_datetime(submission.date)),
        *([header_line("From", _from(submission))] if submission.sender else []),
        header_line("To", submission.recipient),
        header_line("Subject", submission.subject),
        header_line("Message-ID", submission.message_id),
        *(header_line(f"{FIELD_PREFIX}{name}", value) for name, value in submission.fields.items()),
    ]
    parts = [text_part(submission.text, protected=False)]
    if submission.key:
        parts.append(_key_part(submission.key))
    parts += [attachment_part(file) for file in submission.files]
    boundary = make_boundary(b"".join(parts))
    content_type = b'Content-Type: multipart/mixed; protected-headers="v1";\r\n'
    content_type += b' boundary="' + boundary + b'"\r\n'
    return b"".join(headers) + content_type + b"\r\n" + multipart_body(boundary, b"", parts)


def sealed(submission: Submission, encrypt: Callable[[bytes], str]) -> bytes:
    """The whole message, its content encrypted by `encrypt` (plaintext -> ASCII armor)."""
    outer = [
        header_line("Date", format_datetime(submission.date)),
        *([header_line("From", submission.sender)] if submission.sender else []),
        header_line("To", submission.recipient),
        header_line("Subject", OUTER_SUBJECT),
        header_line("Message-ID", submission.message_id),
        b"MIME-Version: 1.0\r\n",
    ]
    return encrypted_message(b"".join(outer), encrypt(entity(submission)))


def _from(submission: Submission) -> str:
    if not submission.sender_name:
        return submission.sender
    name = submission.sender_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}" <{submission.sender}>'


def _key_part(armored: str) -> bytes:
    key = armored.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")
    return (
        b'Content-Type: application/pgp-keys; name="reporter-key.asc"\r\n'
        b'Content-Disposition: attachment; filename="reporter-key.asc"\r\n\r\n' + key
    )
