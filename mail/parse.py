"""Stored bytes of an inbound mail -> what it says: PGP/MIME (RFC 3156), inline PGP, encrypted
attachments, the reporter's key, decrypted and verified.

The walk splits the stored bytes itself (the `email` package parses headers only), so a signed
part is verified over its exact bytes as stored, never over a re-serialised message.
"""

import contextlib
import hashlib
import logging
import mimetypes
import re
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from keys import verify
from keys.errors import CertificateError, KeyringError
from keys.home import MAX_PLAINTEXT_BYTES
from keys.inspect import autocrypt_keydata, inspect_certificate
from mail import mime
from mail.errors import MailError

log = logging.getLogger("forewarn.mail.parse")

MAX_DEPTH = 20  # MIME nesting, encryption layers included
MAX_PARTS = 1000
MAX_OPENPGP_PARTS = 50  # each costs a gpg run or two
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_HEADER_BYTES = 256 * 1024  # all entities' header blocks together (each is cut by mime)
MAX_REFERENCES = 100
# Header fields the message is read by: cut, they could mislead; over-long, the message is
# hostile. Other fields that had to be cut (a long Cc; a Message-ID, then not kept) are noted.
_RELIED_ON = {None, "from", "content-type", "content-disposition", "content-transfer-encoding"}
_LONE_LF = re.compile(rb"(?<!\r)\n")
_NOT_CONTENT = ("application/pgp-keys", "application/pgp-signature")


class Unreadable(MailError):
    """Nothing fit to store could be read from the message; the text is one line for the team."""


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes | None  # None when it was over the size cap
    decrypted: bool = False  # it arrived encrypted (alone, or inside an encrypted message)
    dropped: str = ""  # why data is None, for people


@dataclass
class ParsedMessage:
    message_id: str | None = None
    subject: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_submitted: str | None = None
    precedence: str | None = None
    list_id: str | None = None
    is_bounce: bool = False
    encrypted: bool = False  # any of its content arrived encrypted
    # What arrived without encryption, for people: "the text", "the attachment poc.py".
    unencrypted_parts: list[str] = field(default_factory=list)
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    signature: verify.SignatureCheck = verify.UNSIGNED
    # The text that signature covers (a clear-signed block, a signed MIME part, or all of an
    # encrypted and signed message): what a signed instruction may be read from. Text beside
    # the signed part (an unsigned cover in multipart/mixed) is not in it. "" when unsigned.
    signed_text: str = ""
    reporter_certificate: str | None = None
    problems: list[str] = field(default_factory=list)
    # The Forewarn-* protected headers of the encrypted message (mail/submission.py: the
    # report form's fields), names lower case without the prefix. Only processing of what
    # the portal stored reads them: anyone can write them into a mail.
    form_fields: dict[str, str] = field(default_factory=dict)


def parse(
    raw: bytes,
    keyring,
    known_certificates: list[str] = (),
    *,
    at: datetime | None = None,
    max_plaintext_bytes: int = MAX_PLAINTEXT_BYTES,
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
    max_depth: int = MAX_DEPTH,
) -> ParsedMessage:
    """Decrypt and verify the stored bytes of one message. Raises Unreadable, and only that.

    `at` judges the expiry of keys found in the message (default: now). max_plaintext_bytes
    bounds everything decrypted or decompressed from this message, all parts together.
    """
    try:
        walk = _Walk(keyring, list(known_certificates), at or datetime.now(UTC))
        walk.budget, walk.max_attachment_bytes = max_plaintext_bytes, max_attachment_bytes
        walk.max_depth = max_depth
        return walk.run(bytes(raw))
    except Unreadable:
        raise
    except Exception as error:  # the worker gets Unreadable, never anything else
        # One line: where it failed, never the exception's text (it may quote the message),
        # nor the frames (a RecursionError has thousands).
        log.warning("parsing a message failed: %s at %s", type(error).__name__, _where(error))
        raise Unreadable("the message could not be processed (internal error)") from None


def _where(error: BaseException) -> str:
    """The innermost frame of an exception, as file:line in function."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "(unknown)"
    last = frames[-1]
    return f"{last.filename.rpartition('/')[2]}:{last.lineno} in {last.name}"


class _Walk:
    def __init__(self, keyring, certificates: list[str], at: datetime):
        self.keyring, self.certificates, self.at = keyring, certificates, at
        self.known = len(certificates)
        self.budget, self.max_attachment_bytes = MAX_PLAINTEXT_BYTES, MAX_ATTACHMENT_BYTES
        self.max_depth = MAX_DEPTH
        self.result = ParsedMessage()
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.keys: list[tuple[str, bytes]] = []  # (where it came from, data)
        self.signatures: list[tuple[verify.SignatureCheck, object]] = []  # (check, re-check)
        self.signed_texts: dict[int, list[str]] = {}  # signature index -> the texts it covers
        self.parts = self.openpgp_parts = self.header_bytes = 0
        self.plain_content = self.malformed = False
        self.protected_subject: str | None = None

    def run(self, raw: bytes) -> ParsedMessage:
        if not raw.strip():
            raise Unreadable("the message is empty")
        result = self.result
        headers = self._headers(mime.split_entity(raw)[0])
        self._read_headers(headers)
        self.walk(raw, 0, in_crypto=False, root=None)
        if self.protected_subject is not None:
            result.subject = self.protected_subject
        texts = self.texts or [mime.HTMLText(html).text() for html in self.htmls]
        result.text = "\n".join(t.replace("\r\n", "\n").strip("\n") for t in texts if t.strip())
        if not result.text and not result.attachments:
            if self.malformed:
                raise Unreadable("the message's MIME structure is broken and nothing is readable")
            result.problems.append("the message has no text")
        elif not result.attachments and result.text.count("\ufffd") > len(result.text) * 0.3:
            raise Unreadable("the message holds nothing readable (binary or garbled content)")
        if not result.encrypted:
            result.problems.insert(0, "the message was not encrypted")
        elif self.plain_content:
            result.problems.append("parts of the message were not encrypted")
        self._reporter_key(headers)
        self._settle_signature()
        return result

    def _read_headers(self, headers) -> None:
        result = self.result
        result.message_id = mime.first_id(mime.header(headers, "Message-ID"))
        result.subject = mime.header(headers, "Subject")
        result.in_reply_to = mime.first_id(mime.header(headers, "In-Reply-To"))
        # The newest ids are the ones that thread; a hostile list of thousands is not a query.
        result.references = mime.all_ids(mime.header(headers, "References"))[-MAX_REFERENCES:]
        result.auto_submitted = mime.header(headers, "Auto-Submitted")
        result.precedence = mime.header(headers, "Precedence")
        result.list_id = mime.header(headers, "List-Id")
        result.from_name, result.from_address = mime.sender(headers)
        if result.from_address is None:
            result.problems.append("the message has no usable From address")
        report_type = (mime.param(headers, "report-type") or "").lower()
        result.is_bounce = "mailer-daemon" in (mime.header(headers, "From") or "").lower() or (
            mime.content_type(headers) == "multipart/report" and report_type == "delivery-status"
        )

    # -- entities --------------------------------------------------------------------------------

    def walk(self, raw: bytes, depth: int, in_crypto: bool, root: str | None) -> None:
        """root: this entity is a decrypted payload's root, of the "message" or of a "nested"
        encrypted part (whose protected headers do not speak for the message)."""
        if depth > self.max_depth:
            raise Unreadable(f"the message nests parts more than {self.max_depth} levels deep")
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise Unreadable(f"the message has more than {MAX_PARTS} parts")
        head, body = mime.split_entity(raw)
        part = self._headers(head)
        ctype = mime.content_type(part)
        if root == "message" and self.protected_subject is None:
            self.protected_subject = mime.header(part, "Subject")
            self._form_fields(part)
        if not ctype.startswith("multipart/"):
            self._leaf(part, ctype, mime.decode_body(part, body), in_crypto, root)
            return
        boundary = (mime.param(part, "boundary") or "").encode("utf-8", "surrogateescape")
        children = mime.split_multipart(body, boundary) if boundary else []
        protocol = (mime.param(part, "protocol") or "").lower()
        if not children:
            self.malformed = True
            self.result.problems.append(f"a {ctype} part has no readable parts")
        elif ctype == "multipart/encrypted":
            self._pgp_mime_encrypted(children, depth)
        elif ctype == "multipart/signed" and protocol == "application/pgp-signature":
            self._pgp_mime_signed(children, depth, in_crypto, root)
        else:
            for child in children:
                self.walk(child, depth + 1, in_crypto, None)

    def _form_fields(self, part) -> None:
        prefix = "forewarn-"
        for name in mime.safe(part.keys, []) or []:
            if name.lower().startswith(prefix) and len(self.result.form_fields) < 20:
                value = mime.header(part, name)
                if value is not None:
                    self.result.form_fields[name.lower().removeprefix(prefix)] = value

    def _headers(self, head: bytes):
        """An entity's headers (mime cuts over-long ones, noted as problems); the message's
        header blocks together are bounded too, as each costs parsing time."""
        parsed = mime.headers(head)  # cheap: fields are parsed when read, below
        self.header_bytes += mime.parsed_size(parsed)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise Unreadable(f"the message's headers are larger than {MAX_HEADER_BYTES} bytes")
        for cut in mime.cuts(parsed):
            if cut.field in _RELIED_ON:
                raise Unreadable(str(cut))
            self.result.problems.append(f"{cut}: it was cut")
        return parsed

    def _pgp_mime_encrypted(self, children: list[bytes], depth: int) -> None:
        for child in children[1:] + children[:1]:  # RFC 3156: the second part holds the data
            head, body = mime.split_entity(child)
            data = mime.decode_body(self._headers(head), body)
            if verify.looks_encrypted(data):
                signatures = len(self.signatures)
                plaintext = self._open(data, "the encrypted message")
                self.result.encrypted = True
                root = "message" if depth == 0 else "nested"
                with self._covered(signatures if len(self.signatures) > signatures else None):
                    self.walk(plaintext, depth + 1, in_crypto=True, root=root)
                return
        raise Unreadable("the PGP/MIME encrypted message holds no OpenPGP data")

    def _pgp_mime_signed(self, children, depth, in_crypto, root) -> None:
        signed = children[0]
        if len(children) > 1:
            head, body = mime.split_entity(children[1])
            check = partial(_check_detached, signed, mime.decode_body(self._headers(head), body))
            self.openpgp_parts += 1
            self.signatures.append((check(self.certificates), check))
            with self._covered(len(self.signatures) - 1):
                self.walk(signed, depth + 1, in_crypto, root)
            return
        self.result.problems.append("a PGP/MIME signed part has no signature")
        self.walk(signed, depth + 1, in_crypto, root)

    @contextlib.contextmanager
    def _covered(self, index: int | None):
        """The texts read inside the block are those signature `index` covers."""
        start = len(self.texts)
        yield
        if index is not None:
            self.signed_texts[index] = self.texts[start:]

    def _leaf(self, part, ctype: str, data: bytes, in_crypto: bool, root: str | None) -> None:
        disposition = mime.safe(part.get_content_disposition)
        filename = mime.clean(mime.safe(part.get_filename) or "")
        if ctype == "message/rfc822" and not filename:
            filename = "forwarded-message.eml"
        if ctype == "application/pgp-keys" or b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data:
            self.keys.append(("attached key", data))
        if ctype == "text/rfc822-headers" or (
            ctype == "text/plain" and mime.param(part, "protected-headers") and root is None
        ):
            return  # a legacy display of protected headers (beside the body), not the text
        is_body = ctype in ("text/plain", "text/html") and disposition != "attachment"
        if ctype == "text/plain" and is_body:
            self._text(data, mime.charset(part), in_crypto)
        elif ctype == "text/html" and is_body:
            self.htmls.append(data.decode(mime.charset(part), "replace"))
            if not in_crypto:
                self._unencrypted("the HTML text")
        elif verify.looks_encrypted(data):
            what = f"the attachment {filename or '(unnamed)'}"
            opened = self._open(data, what, quiet=True, speaks_for_message=False)
            if opened is None:  # kept as it came: ciphertext (for someone else), not plain content
                self._attach(filename, ctype, data, in_crypto, plain=False)
            else:
                name = re.sub(r"\.(asc|gpg|pgp)$", "", filename, flags=re.IGNORECASE)
                guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
                self.result.encrypted = True  # e.g. report.txt.gpg beside a plain cover note
                self._attach(name, guessed, opened, decrypted=True)
        else:
            self._attach(filename, ctype, data, in_crypto)

    def _text(self, data: bytes, charset: str, in_crypto: bool) -> None:
        """A text part, with any armored message or clear-signed text in it opened in place."""
        pieces, start, decrypted = [], 0, False
        for begin, end in verify.armored_blocks(data):
            pieces.append(data[start:begin].decode(charset, "replace"))
            block, start = data[begin:end], end
            encrypted = verify.looks_encrypted(block)
            signatures = len(self.signatures)
            plaintext = self._open(block, "the inline PGP message")
            if len(self.signatures) > signatures:  # this block's signature covers its text alone
                covered = plaintext.decode("utf-8", "replace")
                self.signed_texts[signatures] = [mime.clean(covered, keep_lines=True)]
            self.result.encrypted |= encrypted
            decrypted |= encrypted
            try:
                pieces.append(plaintext.decode("utf-8"))  # what OpenPGP tools write
            except UnicodeDecodeError:
                pieces.append(plaintext.decode(charset, "replace"))
        pieces.append(data[start:].decode(charset, "replace"))
        if not in_crypto and (not decrypted or "".join(pieces[::2]).strip()):
            self._unencrypted("the text")  # text outside any encryption
        self.texts.append(mime.clean("".join(pieces), keep_lines=True))

    def _attach(self, filename: str, ctype: str, data: bytes, decrypted: bool, plain=True) -> None:
        result = self.result
        name = filename or f"attachment-{len(result.attachments) + 1}"
        kept = data if len(data) <= self.max_attachment_bytes else None
        dropped = ""
        if kept is None:
            dropped = f"larger than {self.max_attachment_bytes} bytes, the limit per attachment"
            result.problems.append(
                f"attachment {name} is {dropped}: its content was dropped (its sha256 is kept)"
            )
        if plain and not decrypted and ctype not in _NOT_CONTENT:
            self._unencrypted(f"the attachment {name}")
        digest = hashlib.sha256(data).hexdigest()
        result.attachments.append(
            Attachment(name, ctype, len(data), digest, kept, decrypted, dropped)
        )

    def _unencrypted(self, what: str) -> None:
        self.plain_content = True
        if what not in self.result.unencrypted_parts:
            self.result.unencrypted_parts.append(what)

    # -- OpenPGP ---------------------------------------------------------------------------------

    def _open(self, data: bytes, what: str, quiet=False, speaks_for_message=True) -> bytes | None:
        """The content of an OpenPGP message: decrypted with the service key if encrypted, its
        signature checked. A failure makes the message unreadable, or with quiet=True is noted
        as a problem (and gives None)."""
        limit = self._next_limit()
        encrypted = verify.looks_encrypted(data)
        try:
            unwrapped = self.keyring.unwrap(data, limit) if encrypted else None
            inner = unwrapped.data if unwrapped else data
            plaintext, found = verify.verify_with(self.certificates, inner, limit=limit)
        except KeyringError as error:
            failure = f"{what} could not be {'decrypted' if encrypted else 'read'}: {error}"
            if not quiet:
                raise Unreadable(failure) from None
            self.result.problems.append(failure)
            return None
        self.budget -= len(plaintext)
        if speaks_for_message and (found.status != "unsigned" or unwrapped and unwrapped.signed):
            self.signatures.append((found, partial(_check_inline, inner, limit)))
        return plaintext

    def _next_limit(self) -> int:
        """What the next gpg run may output: the rest of this message's plaintext budget
        (never 0, which gpg's --max-output takes for "no limit")."""
        self.openpgp_parts += 1
        if self.openpgp_parts > MAX_OPENPGP_PARTS:
            raise Unreadable(f"the message holds more than {MAX_OPENPGP_PARTS} OpenPGP parts")
        if self.budget <= 0:
            raise Unreadable("the message's decrypted content is larger than allowed")
        return self.budget

    def _reporter_key(self, headers) -> None:
        candidates = list(self.keys)
        if autocrypt := mime.header(headers, "Autocrypt"):
            try:
                keydata = autocrypt_keydata(autocrypt, self.result.from_address)
                candidates.append(("Autocrypt key", keydata))
            except CertificateError as error:
                self.result.problems.append(f"Autocrypt key unusable: {error}")
        for where, data in candidates[:5]:
            try:
                certificate = inspect_certificate(data, self.at)
            except CertificateError as error:
                self.result.problems.append(f"{where} unusable: {error}")
                continue
            self.certificates.append(certificate.armored)  # it may verify the signature
            if not certificate.can_encrypt:
                self.result.problems.append(f"{where} unusable: it has no valid encryption key")
            elif self.result.reporter_certificate is None:
                self.result.reporter_certificate = certificate.armored

    def _settle_signature(self) -> None:
        """The first signature found speaks for the message. A key the sender attached is
        known only now: a signature by an unknown key is checked again with it."""
        if not self.signatures:
            return
        found, again = self.signatures[0]
        if found.status == "unknown-key" and len(self.certificates) > self.known:
            with contextlib.suppress(KeyringError):
                found = again(self.certificates)
        self.result.signature = found
        covered = self.signed_texts.get(0, [])
        self.result.signed_text = "\n".join(
            t.replace("\r\n", "\n").strip("\n") for t in covered if t.strip()
        )


def _check_inline(data: bytes, limit: int, certificates: list[str]) -> verify.SignatureCheck:
    return verify.verify_with(certificates, data, limit=limit)[1]


def _check_detached(signed: bytes, signature: bytes, certificates: list[str]):
    """RFC 3156: the signature covers the part with CRLF line ends; failing that, as stored."""
    canonical = _LONE_LF.sub(b"\r\n", signed)
    found = verify.verify_with(certificates, canonical, signature)[1]
    if found.status == "bad" and canonical != signed:
        found = verify.verify_with(certificates, signed, signature)[1]
    return found


# -- bytes -----------------------------------------------------------------------------------------
