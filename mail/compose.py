"""Outgoing PGP/MIME (RFC 3156): signed, or signed then encrypted, with protected headers
(and, for the service key's expiry alone, plain unsigned text).

The part to sign is serialised once and signed over exactly those bytes; every container
around it is built by concatenating bytes, so no generator ever re-folds it (cpython #99533).
"""

import base64
import email.policy
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import MIMEPart
from email.utils import format_datetime

from keys.keyring import ServiceKeyring
from mail import oneline

# CRLF, 7-bit transfer encodings only; lines of at most 78 characters.
POLICY = email.policy.SMTP.clone(cte_type="7bit")
# Headers a caller may not set through extra_headers: we write them (or they would leak).
_OURS = {"date", "from", "to", "subject", "message-id", "reply-to", "in-reply-to"}
_OURS |= {"references", "auto-submitted", "mime-version", "content-type"}
_HEADER_NAME = re.compile(r"[!-9;-~]+")


@dataclass(frozen=True)
class Attachment:
    """A file sent beside the text (a patch): its bytes travel base64-encoded, unchanged."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    subject: str  # the real subject: signed, and encrypted when the body is
    outer_subject: str  # what the unencrypted outer header shows
    body: str  # plain text, already wrapped
    message_id: str
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: Sequence[str] | str = ()
    auto_submitted: str | None = None  # "auto-replied", "auto-generated"
    extra_headers: dict[str, str] = field(default_factory=dict)
    date: datetime | None = None  # aware; the clock's now() when None
    attachments: Sequence[Attachment] = ()


def signed(keyring: ServiceKeyring, outgoing: Outgoing) -> bytes:
    """A multipart/signed message, ready for SMTP or a Maildir."""
    outgoing = _dated(outgoing)
    content_type, body = _signed_entity(keyring, outgoing)
    return _message(_outer_headers(outgoing) + content_type, body)


def unsigned(outgoing: Outgoing) -> bytes:
    """A plain text/plain message, neither signed nor encrypted. Only for the one mail that
    cannot be signed: the service key's own "it has expired" warning to the admins."""
    outgoing = _dated(outgoing)
    if outgoing.attachments:
        raise ValueError("an unsigned message carries no attachments")
    head, _, body = text_part(outgoing.body, protected=False).partition(b"\r\n\r\n")
    return _message(_outer_headers(outgoing) + head + b"\r\n", body)


def signed_and_encrypted(
    keyring: ServiceKeyring, outgoing: Outgoing, certificate: str, fingerprint: str
) -> bytes:
    """The multipart/signed entity encrypted to one certificate (RFC 3156 6.1, nested)."""
    outgoing = _dated(outgoing)
    return encrypted(keyring, outgoing, signed_entity(keyring, outgoing), certificate, fingerprint)


def signed_entity(keyring: ServiceKeyring, outgoing: Outgoing) -> bytes:
    """The multipart/signed entity alone, as bytes: what `encrypted` wraps. Sign once, and the
    same entity can be encrypted to many recipients (each its own message). An empty
    recipient leaves To out of the protected headers."""
    content_type, body = _signed_entity(keyring, _dated(outgoing))
    return content_type + b"\r\n" + body


def encrypted(
    keyring: ServiceKeyring, outgoing: Outgoing, entity: bytes, certificate: str, fingerprint: str
) -> bytes:
    """A signed entity (from `signed_entity`) encrypted to one certificate, with the outer
    headers of `outgoing` (RFC 3156 6.1, nested)."""
    outgoing = _dated(outgoing)
    armored = keyring.encrypt_to(certificate, fingerprint, entity)
    return encrypted_message(_outer_headers(outgoing), armored)


def encrypted_message(headers: bytes, armored: str) -> bytes:
    """The multipart/encrypted message (RFC 3156 4) of ASCII-armored OpenPGP data, under the
    given outer header lines (each ending in CRLF, MIME-Version among them)."""
    version = b"Content-Type: application/pgp-encrypted\r\n"
    version += b"Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n"
    encrypted = b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
    encrypted += b"Content-Description: OpenPGP encrypted message\r\n"
    encrypted += b'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n'
    encrypted += _crlf(armored)
    boundary = make_boundary(version + encrypted)
    content_type = b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
    content_type += b' boundary="' + boundary + b'"\r\n'
    preamble = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
    return _message(
        headers + content_type, multipart_body(boundary, preamble, [version, encrypted])
    )


# -- the signed entity -------------------------------------------------------------------------


def _signed_entity(keyring: ServiceKeyring, outgoing: Outgoing) -> tuple[bytes, bytes]:
    """The Content-Type header and the body of the multipart/signed entity."""
    text = _protected_text_part(outgoing)
    signature = keyring.sign_detached(text)
    signature_part = b'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
    signature_part += b"Content-Description: OpenPGP digital signature\r\n"
    signature_part += b'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n'
    signature_part += _crlf(signature.armored)
    boundary = make_boundary(text + signature_part)
    micalg = f"pgp-{signature.hash_algo}".encode("ascii")
    content_type = b'Content-Type: multipart/signed; micalg="' + micalg + b'";\r\n'
    content_type += b' protocol="application/pgp-signature"; boundary="' + boundary + b'"\r\n'
    preamble = b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)"
    return content_type, multipart_body(boundary, preamble, [text, signature_part])


def _protected_text_part(outgoing: Outgoing) -> bytes:
    """The signed content with the real headers inside it ("protected headers", v1), as bytes:
    text/plain, or multipart/mixed of the text and its attachments."""
    headers = [
        header_line("Date", format_datetime(outgoing.date)),
        header_line("From", outgoing.sender),
        *([header_line("To", outgoing.recipient)] if outgoing.recipient else []),
        header_line("Subject", outgoing.subject),
        header_line("Message-ID", outgoing.message_id),
        *_threading_headers(outgoing),
    ]
    text = text_part(outgoing.body, protected=not outgoing.attachments)
    if not outgoing.attachments:
        return b"".join(headers) + text
    parts = [text, *(attachment_part(a) for a in outgoing.attachments)]
    boundary = make_boundary(b"".join(parts))
    content_type = b'Content-Type: multipart/mixed; protected-headers="v1";\r\n'
    content_type += b' boundary="' + boundary + b'"\r\n'
    return b"".join(headers) + content_type + b"\r\n" + multipart_body(boundary, b"", parts)


def text_part(body: str, protected: bool) -> bytes:
    body = body.replace("\r\n", "\n")
    lines = body.split("\n")
    plain = body.isascii() and not any(
        len(line) > 76 or line.rstrip(" \t") != line or line.startswith("From ") for line in lines
    )
    part = MIMEPart(policy=POLICY)
    part.set_content(
        body, subtype="plain", charset="utf-8", cte="7bit" if plain else "quoted-printable"
    )
    if protected:
        part.set_param("protected-headers", "v1")
    serialised = part.as_bytes(policy=POLICY)
    if not plain:
        # Quoted-printable leaves "From " alone; mbox-style relays would add ">" and break
        # the signature, so encode its F.
        head, _, encoded = serialised.partition(b"\r\n\r\n")
        serialised = head + b"\r\n\r\n" + re.sub(rb"(?m)^From ", b"=46rom ", encoded)
    return serialised


def attachment_part(attachment: Attachment) -> bytes:
    """One attachment: its type, its name (RFC 2231, so any length and script survive every
    client's parser the same way), and its bytes in base64 lines of 76 characters."""
    if not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", attachment.content_type):
        raise ValueError(f"attachment type {attachment.content_type!r} is not a MIME type")
    encoded = base64.encodebytes(attachment.content).replace(b"\n", b"\r\n")
    return (
        f"Content-Type: {attachment.content_type};".encode("ascii")
        + _filename_parameter("name", attachment.filename)
        + b"\r\nContent-Disposition: attachment;"
        + _filename_parameter("filename", attachment.filename)
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
    )


_PLAIN_NAME = re.compile(r"[A-Za-z0-9._+-]{1,60}")


def _filename_parameter(name: str, value: str) -> bytes:
    """`name="value"` when it is short and plain; otherwise RFC 2231 continuations of the
    percent-encoded UTF-8, one per folded line."""
    if any(ord(c) < 32 or c in "/\\\x7f" for c in value) or not value:
        raise ValueError(f"attachment name {value!r} is not a plain file name")
    if _PLAIN_NAME.fullmatch(value):
        return f'\r\n {name}="{value}"'.encode("ascii")
    units = re.findall(r"%[0-9A-F]{2}|.", urllib.parse.quote(value, safe="._-+"))
    pieces = [""]
    for unit in units:  # at most 60 characters a line, never splitting a %XX escape
        if len(pieces[-1]) + len(unit) > 60:
            pieces.append("")
        pieces[-1] += unit
    lines = [
        f" {name}*{n}*={'utf-8' + chr(39) * 2 if n == 0 else ''}{piece}"
        for n, piece in enumerate(pieces)
    ]
    return ("\r\n" + ";\r\n".join(lines)).encode("ascii")


# -- headers -------------------------------------------------------------------------------------


def _outer_headers(outgoing: Outgoing) -> bytes:
    headers = [
        header_line("Date", format_datetime(outgoing.date)),
        header_line("From", outgoing.sender),
        header_line("To", outgoing.recipient),
        header_line("Subject", outgoing.outer_subject),
        header_line("Message-ID", outgoing.message_id),
        *_threading_headers(outgoing),
    ]
    if outgoing.auto_submitted:
        headers.append(header_line("Auto-Submitted", outgoing.auto_submitted))
    for name, value in outgoing.extra_headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _OURS:
            raise ValueError(f"extra header {name!r} is not allowed")
        headers.append(header_line(name, value))
    headers.append(b"MIME-Version: 1.0\r\n")
    return b"".join(headers)


def _threading_headers(outgoing: Outgoing) -> list[bytes]:
    references = outgoing.references
    if not isinstance(references, str):
        references = " ".join(references)
    headers = []
    if outgoing.reply_to:
        headers.append(header_line("Reply-To", outgoing.reply_to))
    if outgoing.in_reply_to:
        headers.append(header_line("In-Reply-To", outgoing.in_reply_to))
    if references:
        headers.append(header_line("References", references))
    return headers


def header_line(name: str, value: str) -> bytes:
    """One header, folded. Only the human-readable ones may become RFC 2047 encoded words:
    the policy would encode a long Message-ID or URL, which breaks it. A subject carries
    people's text (a title, a reporter's subject): made one line whatever a row holds, so old
    data cannot stop a mail from composing (the application refuses new titles that are not)."""
    if name.lower() == "subject":
        value = oneline.flattened(value)
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} contains a line break")
    if name.lower() in ("subject", "from", "to", "reply-to"):
        return POLICY.header_factory(name, value).fold(policy=POLICY).encode("ascii")
    if not value.isascii():
        raise ValueError(f"header {name} must be ASCII")
    lines = [f"{name}:"]
    for word in value.split():
        if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + word
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _dated(outgoing: Outgoing) -> Outgoing:
    """The same message with its date fixed once, so the inner and outer Date agree."""
    date = outgoing.date or datetime.now(UTC)
    if date.tzinfo is None:
        raise ValueError("Outgoing.date must be timezone-aware")
    return replace(outgoing, date=date)


# -- assembling bytes ------------------------------------------------------------------------------


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def make_boundary(content: bytes) -> bytes:
    while True:
        boundary = f"=-{secrets.token_urlsafe(24)}".encode("ascii")
        if boundary not in content:
            return boundary


def multipart_body(boundary: bytes, preamble: bytes, parts: list[bytes]) -> bytes:
    """The body of a multipart entity. The CRLF before each delimiter belongs to the
    delimiter (RFC 2046 5.1.1), so each part's own bytes are kept exactly."""
    body = preamble
    for part in parts:
        body += b"\r\n--" + boundary + b"\r\n" + part
    return body + b"\r\n--" + boundary + b"--\r\n"


def _message(headers: bytes, body: bytes) -> bytes:
    message = headers + b"\r\n" + body
    for line in message.split(b"\r\n"):
        if len(line) > 998 or not line.isascii() or b"\r" in line or b"\n" in line:
            raise ValueError("the composed message is not 7-bit with lines of at most 998 octets")
    return message
