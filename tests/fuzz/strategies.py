"""Hypothesis strategies shared by the fuzz targets: damaged bytes, ASCII armor, MIME trees."""

import base64
import quopri

from hypothesis import strategies as st

ARMOR_LABELS = (
    "MESSAGE",
    "SIGNED MESSAGE",
    "SIGNATURE",
    "PUBLIC KEY BLOCK",
    "PRIVATE KEY BLOCK",
    "MESSAGE, PART 1/2",
    "ARMORED FILE",
    "",
)
CHARSETS = (
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "koi8-r",
    "shift_jis",
    "gb2312",
    "utf-16",
    "utf-32-be",
    "utf-7",
    "x-unknown",
    "unicode-1-1-utf-7",
    "",
    '"utf-8"',
    "utf-8'en'",
    "b\u00e4d",
    # Names Python's codecs know that are no text charset (mail/mime.py charset() lets them by):
    "base64",
    "rot13",
    "hex",
    "zlib",
    "quopri",
    "undefined",
    "idna",
    "punycode",
    "unicode_escape",
)
CTES = ("7bit", "8bit", "binary", "base64", "quoted-printable", "BASE64", "x-uuencode", "bogus")

# Text that mail is made of: printable, 8-bit, control characters, surrogates excluded.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
short_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@st.composite
def garbled(draw, data: bytes) -> bytes:
    """data damaged a few ways: cut off, bytes flipped, lines dropped or repeated, junk put in."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(("cut", "flip", "drop-line", "repeat", "insert", "crlf")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "cut":
            data = data[:at]
        elif op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "drop-line":
            lines = bytes(data).split(b"\n")
            if len(lines) > 1:
                del lines[at % len(lines)]
            data = bytearray(b"\n".join(lines))
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=40))
        elif op == "crlf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return bytes(data)


@st.composite
def armor(draw, payload: st.SearchStrategy[bytes] | None = None) -> bytes:
    """ASCII armor of random packets (or of `payload`): random label, headers, checksum, END."""
    label = draw(st.sampled_from(ARMOR_LABELS) | short_text)
    body = draw(payload if payload is not None else st.binary(max_size=600))
    lines = [f"-----BEGIN PGP {label}-----".encode("utf-8", "surrogateescape")]
    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(st.sampled_from((b"Version: x", b"Comment: \xff", b"Hash: SHA256"))))
    lines.append(b"")
    encoded = base64.b64encode(body)
    lines += [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    if draw(st.booleans()):
        lines.append(b"=" + draw(st.sampled_from((b"AAAA", b"abc", b"====", b"\xff\xff\xff\xff"))))
    if draw(st.booleans()):
        lines.append(f"-----END PGP {label}-----".encode("utf-8", "surrogateescape"))
    ending = draw(st.sampled_from((b"\n", b"\r\n")))
    return draw(garbled(ending.join(lines) + ending))


def openpgp_bytes(samples: list[tuple[str, bytes]]) -> st.SearchStrategy[bytes]:
    """Real OpenPGP data whole or damaged, random armor, or armor fragments."""
    real = st.sampled_from([data for _, data in samples])
    return st.one_of(
        real,
        real.flatmap(garbled),
        armor(),
        armor(real.map(lambda data: data[:200])),
        st.sampled_from(
            (
                b"-----BEGIN PGP MESSAGE-----\n",
                b"-----BEGIN PGP MESSAGE-----\n\nhQ",
                b"-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n",
                b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n",
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n-----END PGP PUBLIC KEY BLOCK-----",
                b"\x85\x01\x0c",
                b"\xc1\xff\xff\xff\xff\xff",
                b"\xa3\x01",  # compressed packet, indeterminate length
            )
        ),
    )


# -- MIME ------------------------------------------------------------------------------------------

HEADER_NAMES = (
    "From",
    "To",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "Autocrypt",
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
    "MIME-Version",
)


@st.composite
def header_value(draw) -> bytes:
    choice = draw(st.integers(0, 5))
    if choice == 0:  # an RFC 2047 encoded word, sound or not
        charset = draw(st.sampled_from(CHARSETS))
        kind = draw(st.sampled_from("QqBbX"))
        return f"=?{charset}?{kind}?{draw(short_text)}?=".encode("utf-8", "surrogateescape")
    if choice == 1:
        return draw(st.binary(max_size=80)).replace(b"\n", b"\n ")
    if choice == 2:  # addresses, message ids
        return draw(
            st.sampled_from(
                (
                    b"Rita <rita@example.org>",
                    b"<a@b>, <c@d>",
                    b'"\\" <@>',
                    b"undisclosed-recipients:;",
                    b"=?utf-8?b?////?= <x@y.z>",
                    b"<<>>",
                    b"rita@example.org (comment",
                    b"MAILER-DAEMON@example.org",
                )
            )
        )
    if choice == 3:  # an Autocrypt header
        keydata = base64.b64encode(draw(st.binary(max_size=100)))
        addr = draw(st.sampled_from((b"rita@example.org", b"", b"x")))
        return b"addr=" + addr + b"; keydata=" + keydata + draw(st.sampled_from((b"", b"!", b";")))
    value = draw(text).encode("utf-8")
    if draw(st.booleans()):  # folded, maybe badly
        value = value.replace(b" ", draw(st.sampled_from((b"\r\n ", b"\n\t", b"\r\n"))), 3)
    return value


@st.composite
def headers(draw, names=HEADER_NAMES) -> list[bytes]:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names) | short_text.map(lambda n: n or "X"))
        separator = draw(st.sampled_from((b": ", b":", b" : ", b"")))
        lines.append(name.encode("utf-8", "surrogateescape") + separator + draw(header_value()))
    return lines


@st.composite
def transfer_encoded(draw, body: bytes) -> tuple[bytes | None, bytes]:
    """(Content-Transfer-Encoding, body encoded by it, perhaps broken)."""
    cte = draw(st.none() | st.sampled_from(CTES))
    if cte and cte.lower() == "base64":
        encoded = base64.encodebytes(body)
    elif cte == "quoted-printable":
        encoded = quopri.encodestring(body)
    else:
        encoded = body
    if draw(st.integers(0, 3)) == 0:
        encoded = draw(garbled(encoded))
    return (cte.encode() if cte else None), encoded


LEAF_TYPES = (
    "text/plain",
    "text/html",
    "application/octet-stream",
    "application/pgp-keys",
    "application/pgp-signature",
    "application/pgp-encrypted",
    "message/rfc822",
    "text/rfc822-headers",
    "image/png",
    "text",
    "",
    "text/plain/extra",
)


@st.composite
def leaf(draw, samples) -> bytes:
    ctype = draw(st.sampled_from(LEAF_TYPES) | short_text)
    params = []
    if draw(st.booleans()):
        params.append(f"charset={draw(st.sampled_from(CHARSETS) | short_text)}")
    if draw(st.integers(0, 3)) == 0:
        params.append(f'name="{draw(short_text)}"')
    if draw(st.integers(0, 5)) == 0:
        params.append('protected-headers="v1"')
    body = draw(
        st.one_of(
            text.map(lambda t: t.encode("utf-8")),
            text.map(lambda t: t.encode("latin-1", "replace")),
            st.binary(max_size=300),
            openpgp_bytes(samples),
            st.tuples(text, openpgp_bytes(samples), text).map(
                lambda t: t[0].encode() + b"\n" + t[1] + b"\n" + t[2].encode()
            ),
            st.just(b"<html><body><p>hi<script>x</script><br>there</p></body></html>"),
        )
    )
    cte, encoded = draw(transfer_encoded(body))
    lines = []
    if ctype or draw(st.booleans()):
        value = "; ".join([ctype, *params]).encode("utf-8", "surrogateescape")
        lines.append(b"Content-Type: " + value)
    if cte is not None:
        lines.append(b"Content-Transfer-Encoding: " + cte)
    if draw(st.integers(0, 3)) == 0:
        disposition = draw(st.sampled_from(("attachment", "inline", "", "attachment; filename")))
        name = draw(short_text)
        value = f'{disposition}; filename="{name}"'.encode("utf-8", "surrogateescape")
        lines.append(b"Content-Disposition: " + value)
    lines += draw(headers())
    return b"\r\n".join(lines) + b"\r\n\r\n" + encoded


MULTIPART_TYPES = ("mixed", "alternative", "signed", "encrypted", "related", "report", "digest")
PROTOCOLS = ("application/pgp-signature", "application/pgp-encrypted", "", "x/y")


@st.composite
def multipart(draw, children: st.SearchStrategy[bytes]) -> bytes:
    parts = draw(st.lists(children, max_size=4))
    subtype = draw(st.sampled_from(MULTIPART_TYPES) | short_text)
    boundary = draw(
        st.sampled_from(("b1", "=_part", "a b", "--", "")) | st.text("abc-=_'()+,./:? ", max_size=8)
    )
    raw_boundary = boundary.encode()
    params = f'; boundary="{boundary}"' if draw(st.integers(0, 6)) else ""
    params += f"; protocol={draw(st.sampled_from(PROTOCOLS))}" if draw(st.booleans()) else ""
    if subtype == "report" and draw(st.booleans()):
        params += "; report-type=delivery-status"
    body = draw(st.sampled_from((b"", b"preamble\r\n", b"--not-it\r\n")))
    for part in parts:
        body += b"--" + raw_boundary + draw(st.sampled_from((b"\r\n", b"\n", b" \r\n"))) + part
        body += b"\r\n"
    if draw(st.integers(0, 4)):
        body += b"--" + raw_boundary + b"--\r\n"
    body += draw(st.sampled_from((b"", b"epilogue\r\n", b"--" + raw_boundary + b"\r\n")))
    ctype = f"multipart/{subtype}{params}".encode("utf-8", "surrogateescape")
    extra = draw(headers())
    return b"\r\n".join([b"Content-Type: " + ctype, *extra]) + b"\r\n\r\n" + body


@st.composite
def mime_message(draw, samples) -> bytes:
    """A whole message: outer headers, then a random MIME tree (nesting up to ~6 deep)."""
    tree = draw(st.recursive(leaf(samples), multipart, max_leaves=8))
    outer = [
        b"From: " + draw(header_value()) if draw(st.integers(0, 3)) else b"From: rita@example.org",
        b"To: security@localhost",
        b"Subject: " + draw(header_value()),
        b"Message-ID: <" + draw(st.sampled_from((b"m1@x", b"", b"a b"))) + b">",
        *draw(headers()),
    ]
    if draw(st.integers(0, 9)) == 0:
        outer.insert(0, b"From rita@example.org Wed Nov 25 12:00:00 2026")  # mbox
    raw = b"\r\n".join(outer) + b"\r\n" + tree
    if draw(st.booleans()):
        raw = raw.replace(b"\r\n", b"\n")
    return raw
