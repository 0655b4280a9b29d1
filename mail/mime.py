"""Raw MIME, read defensively: entities split by their exact bytes, headers decoded with
policy.default where it copes and from the raw value where it does not, text made clean UTF-8."""

import base64
import codecs
import quopri
import re
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, parseaddr
from html.parser import HTMLParser

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
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


def headers(head: bytes):
    return BytesParser(policy=policy.default).parsebytes(head, headersonly=True)


def safe(call, default=None):
    try:
        return call()
    except Exception:  # a header the email package chokes on is as good as absent
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
        name, address = parseaddr(header(headers, "From") or "")
    address = clean(address or "").strip()
    return clean(name or "").strip() or None, address if _ADDRESS.fullmatch(address) else None


def first_id(value: str | None) -> str | None:
    found = MESSAGE_ID.search(value or "")
    return found.group() if found else (value or "").strip() or None


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
