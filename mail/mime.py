"""Raw MIME, read defensively: entities split by their exact bytes, headers decoded with
policy.default where it copes and from the raw value where it does not, text made clean UTF-8."""

import base64
import codecs
import quopri
import re
from email import errors, policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, parseaddr
from html.parser import HTMLParser

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# RFC 5322 3.6.4: "<" id-left "@" id-right ">", printable ASCII. At most 255 characters: what
# the database keeps (real ids are far shorter), and well within the 998-octet line that
# "In-Reply-To: <id>" must fit in our replies.
_VALID_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
MAX_MESSAGE_ID = 255
_ADDRESS = re.compile(r"[^\s<>()\[\],;:@\"]+@[^\s<>()\[\],;:@\"]+")
_HTML_BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre"}


def split_entity(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body; bytes that do not start with a header are all body."""
    if raw.startswith(b"From "):  # an mbox separator line
        raw = raw[raw.find(b"\n") + 1 :]
    if raw.startswith((b"\n", b"\r\n")):
        return b"", raw[raw.index(b"\n") + 1 :]
    if not _HEADER_LINE.match(raw):
        return b"", raw
    end = _HEADER_END.search(raw)
    return (raw[: end.end()], raw[end.end() :]) if end else (raw, b"")


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts' exact bytes (RFC 2046 5.1.1: the line end before a delimiter belongs to it)."""
    delimiter = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    parts, start = [], None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            return parts
        start = match.end()
    if start is not None:
        parts.append(body[start:])  # no closing delimiter: keep what there is
    return parts


def decode_body(part, body: bytes) -> bytes:
    encoding = (header(part, "Content-Transfer-Encoding") or "").lower()
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[:-1] if len(cleaned) % 4 == 1 else cleaned
        return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


# Surrogates that are no escaped byte (those are U+DC80-U+DCFF), e.g. from a UTF-7 part.
_LONE_SURROGATES = re.compile("[\ud800-\udc7f]")


def clean(text: str, keep_lines: bool = False) -> str:
    """Valid UTF-8 without control characters (8-bit bytes arrive as surrogates)."""
    text = _LONE_SURROGATES.sub("\ufffd", text)
    text = _CONTROLS.sub("", text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return text if keep_lines else text.replace("\r", " ").replace("\n", " ")


# -- headers: policy.default where it copes, the raw value where it does not ---------------------

# policy.default's parser of structured fields (addresses, MIME parameters, ids) takes time
# quadratic in a field's length on input such as `a.a.a.` or `"a"a"a` (80 KB: a minute), and
# recurses once per nested comment `((((`. Such a field is cut before the parser sees it. Other
# fields (Subject, References, Autocrypt's key data) are parsed in linear time, within the block.
MAX_FIELD_BYTES = 998  # RFC 5322's line limit; no structured field of real mail is longer
MAX_HEADER_BYTES = 64 * 1024  # one entity's header block
MAX_NESTING = 20  # comments in comments
_STRUCTURED = {
    "from", "sender", "reply-to", "to", "cc", "bcc", "date", "message-id", "mime-version",
    "content-type", "content-disposition", "content-transfer-encoding",
    "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc", "resent-date",
    "resent-message-id",
}  # fmt: skip
_FIELD_START = re.compile(rb"(?<=\n)(?=[^ \t])")


class LongHeader(errors.HeaderDefect):
    """A header field (or, with field None, the block) over the limits: what the parser saw
    was cut. str() says what, in one line for the team."""

    def __init__(self, text: str, field: str | None):
        super().__init__(text)
        self.field = field


def headers(head: bytes):
    """The entity's header fields, parsed with policy.default within bounds: each structured
    field cut to MAX_FIELD_BYTES (dropped if its comments nest deeper than MAX_NESTING), the
    block to MAX_HEADER_BYTES. What was cut is listed as LongHeader defects."""
    bounded, cuts = _bounded(head)
    parsed = BytesParser(policy=policy.default).parsebytes(bounded, headersonly=True)
    parsed.defects.extend(cuts)
    return parsed


def cuts(parsed) -> list[LongHeader]:
    """What headers() had to cut from this entity's header."""
    return [defect for defect in parsed.defects if isinstance(defect, LongHeader)]


def _bounded(head: bytes) -> tuple[bytes, list[LongHeader]]:
    found, kept, size = [], [], 0
    for field in _FIELD_START.split(head):
        name = field.partition(b":")[0].strip().lower().decode("ascii", "replace")
        if name in _STRUCTURED:
            field = _bounded_field(name, field, found)
        if size + len(field) > MAX_HEADER_BYTES:  # left out; shorter fields after it are read
            if not any(cut.field is None for cut in found):
                text = f"the header is longer than {MAX_HEADER_BYTES} bytes: not all was read"
                found.append(LongHeader(text, None))
            continue
        size += len(field)
        kept.append(field)
    return b"".join(kept), found


def _bounded_field(name: str, field: bytes, found: list[LongHeader]) -> bytes:
    end = b"\r\n" if field.endswith(b"\r\n") else b"\n"
    shown = name.title()
    if len(field) > MAX_FIELD_BYTES:
        field = field[:MAX_FIELD_BYTES].rstrip(b"\r\n") + end
        text = f"the {shown} header is longer than {MAX_FIELD_BYTES} bytes"
        found.append(LongHeader(text, name))
    if field.count(b"(") > MAX_NESTING and _nesting(field) > MAX_NESTING:
        field = field.partition(b":")[0] + b":" + end
        text = f"the {shown} header nests comments more than {MAX_NESTING} deep"
        found.append(LongHeader(text, name))
    return field


def parsed_size(parsed) -> int:
    """The bytes of header the parser was given (after the cuts)."""
    return sum(len(name) + len(value) + 3 for name, value in parsed.raw_items())


def _nesting(field: bytes) -> int:
    depth = deepest = 0
    escaped = False
    for byte in field:
        if escaped:
            escaped = False
        elif byte == 0x5C:  # backslash
            escaped = True
        elif byte == 0x28:  # (
            depth += 1
            deepest = max(deepest, depth)
        elif byte == 0x29 and depth:  # )
            depth -= 1
    return deepest


def safe(call, default=None):
    """call(), or default when the email package chokes on a header (as good as absent).

    Only Exception: a job's timeout (app.core.errors.OutOfTime) and every other BaseException pass,
    so a parse that outlives its job ends the job rather than being tried again."""
    try:
        return call()
    except Exception:
        return default


def header(part, name: str) -> str | None:
    value = safe(lambda: part.get(name))
    if value is None:
        raw = next((v for k, v in safe(part.raw_items, []) if k.lower() == name.lower()), None)
        value = safe(lambda: str(make_header(decode_header(raw))), raw) if raw else None
    return None if value is None else clean(" ".join(str(value).split())) or None


def content_type(part) -> str:
    return safe(part.get_content_type, "text/plain")


def param(part, name: str) -> str | None:
    value = safe(lambda: collapse_rfc2231_value(part.get_param(name)))
    return clean(str(value)) if value else None


# Codecs Python knows that are no charset of mail text: decoding with them fails or is wrong.
_NOT_CHARSETS = {"undefined", "idna", "punycode", "raw-unicode-escape", "unicode-escape"}


def charset(part) -> str:
    """The part's charset when it names a text encoding; UTF-8 otherwise (an unknown name, or
    a codec such as base64 or rot13 that is no charset)."""
    try:
        info = codecs.lookup(safe(part.get_content_charset) or "utf-8")
    except (LookupError, ValueError):
        return "utf-8"
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return "utf-8"
    return info.name


def sender(headers) -> tuple[str | None, str | None]:
    parsed = safe(lambda: headers["From"].addresses[0])
    if parsed is not None:
        name, address = parsed.display_name, parsed.addr_spec
    else:
        name, address = safe(lambda: parseaddr(header(headers, "From") or ""), ("", ""))
    address = clean(address or "").strip()
    return clean(name or "").strip() or None, address if _ADDRESS.fullmatch(address) else None


def first_id(value: str | None) -> str | None:
    """The first valid Message-ID in a header's value, or None: what is kept must be safe to
    echo in In-Reply-To and References (ASCII, `<left@right>`, short enough for one line)."""
    for found in MESSAGE_ID.finditer(value or ""):
        if valid_id(found.group()):
            return found.group()
    return None


def valid_id(value: str | None) -> bool:
    return bool(value) and len(value) <= MAX_MESSAGE_ID and _VALID_ID.fullmatch(value) is not None


def all_ids(value: str | None) -> list[str]:
    """The valid Message-IDs in a header's value (References), in order."""
    return [found for found in MESSAGE_ID.findall(value or "") if valid_id(found)]


class HTMLText(HTMLParser):
    """Crude text of an HTML part, for mail without a text/plain one."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.out, self.hidden = [], 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")
        self.out.append("\n" if tag in _HTML_BREAKS else "")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style") and self.hidden > 0

    def handle_data(self, data):
        self.out.append("" if self.hidden else data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.out).splitlines())
        return clean("\n".join(line for line in lines if line), keep_lines=True)
