"""OpenPGP armor and packet framing (RFC 4880, 4.2 and 6), read in Python: the one packet
reader of keys/.

Before gpg sees an upload: its size, whether it is cut off, how many keys it holds, whether it
carries secret key material, and whether every packet is one a public key has (gpg inflates
compressed packets wherever it finds them: a 5 KB "key" can hold gigabytes of zeros). And for
the messages keys/verify.py opens: walk() and dearmor_message().
"""

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator

from keys.errors import CertificateError

EXPORT = "export only your public key (gpg --armor --export FINGERPRINT)"
NEVER_SEND = (
    "this is a SECRET key: never send it (if it travelled unencrypted, consider it exposed); "
    "export the public key with gpg --armor --export FINGERPRINT"
)
HOLDS_PRIVATE_PART = "it holds secret key material: send the public key only (gpg --export --armor)"

# The packets of a transferable public key (RFC 4880, 11.1): public key, public subkey, user id,
# user attribute, signature; marker and trust packets are ignored by readers, gpg included.
KEY_PACKETS = {2, 6, 10, 12, 13, 14, 17}
# What the others are, for the one-line refusal (5 and 7, secret keys, are refused as such).
_OTHER_PACKETS = {
    1: "an encrypted session key",
    3: "a password-encrypted session key",
    4: "a one-pass signature",
    8: "compressed data",
    9: "encrypted data",
    11: "literal data (a message)",
    18: "encrypted data",
    19: "an integrity code",
    20: "encrypted data",
}
# A public key is a few KB in a few dozen packets; thousands are a flooded or forged key.
MAX_KEY_PACKETS = 2000


class KeyDataError(CertificateError):
    """Key material refused before gpg sees it. str() is the message for an upload (it says
    how to export the key); `short` says the same in a few words, for a key found in mail."""

    def __init__(self, message: str, short: str):
        super().__init__(message)
        self.short = short


BEGIN = re.compile(rb"^-----BEGIN PGP ([A-Z0-9 ,/]+)-----[ \t\r]*$", re.MULTILINE)


def dearmor(data: bytes) -> bytes:
    """The packets of every armor block in data; refuses damaged armor and armored non-keys."""
    binary = b""
    for begin in BEGIN.finditer(data):
        label = begin.group(1).decode()
        if label == "PRIVATE KEY BLOCK":
            raise KeyDataError(NEVER_SEND, HOLDS_PRIVATE_PART)
        if label != "PUBLIC KEY BLOCK":
            raise KeyDataError(
                f"this is an OpenPGP {label.lower()}, not a public key: {EXPORT}",
                f"it is an OpenPGP {label.lower()}, not a public key",
            )
        end = data.find(b"-----END PGP PUBLIC KEY BLOCK-----", begin.end())
        if end < 0:
            raise KeyDataError(
                "the ASCII armor is cut off (no END PGP PUBLIC KEY BLOCK line): upload the "
                "whole file that gpg --armor --export wrote",
                "its ASCII armor is cut off (no END PGP PUBLIC KEY BLOCK line)",
            )
        body, checksum = [], None
        for line in data[begin.end() : end].splitlines():
            line = line.strip()
            if line.startswith(b"=") and len(line) == 5:
                checksum = line[1:]
            elif line and b":" not in line:  # armor headers (Comment: ...) are skipped
                body.append(line)
        try:
            packets = base64.b64decode(b"".join(body), validate=True)
            sound = checksum is None or base64.b64decode(checksum) == crc24(packets)
        except (binascii.Error, ValueError):
            sound = False
        if not sound:
            raise KeyDataError(
                "the ASCII armor is damaged (bad characters or checksum): upload the file "
                "exactly as gpg --armor --export wrote it",
                "its ASCII armor is damaged (bad characters or checksum)",
            )
        binary += packets
    return binary


def crc24(data: bytes) -> bytes:
    """The CRC-24 of OpenPGP armor (RFC 4880, 6.1), a byte at a time."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[((crc >> 16) ^ byte) & 0xFF]
    return crc.to_bytes(3, "big")


def crc24_entry(index: int) -> int:
    crc = index << 16
    for _ in range(8):
        crc = (crc << 1) ^ (0x1864CFB if crc & 0x800000 else 0)
    return crc & 0xFFFFFF


_CRC24_TABLE = [crc24_entry(index) for index in range(256)]


def packets(binary: bytes) -> list[tuple[int, bytes]]:
    """(tag, bytes) of each packet of a key; refuses non-keys, cut-off data, secret keys, and
    any packet a public key never has (compressed data above all: gpg would inflate it).

    Every packet header is read (old and new formats); partial and indeterminate lengths, which
    only data packets may have, are refused with the packet they belong to."""
    if not binary.strip():
        raise KeyDataError(f"the upload is empty: {EXPORT}", "it holds no OpenPGP key")
    packets, offset = [], 0
    while offset < len(binary):
        if len(packets) == MAX_KEY_PACKETS:
            raise KeyDataError(
                f"the key has more than {MAX_KEY_PACKETS} packets (signatures, user ids): "
                f"{EXPORT} without third-party signatures (--export-options export-minimal)",
                f"it has more than {MAX_KEY_PACKETS} packets (signatures, user ids)",
            )
        header = packet_header(binary, offset)
        tag = header[0] if header else None
        if tag in (5, 7):
            raise KeyDataError(NEVER_SEND, HOLDS_PRIVATE_PART)
        if tag in _OTHER_PACKETS or (packets and tag is not None and tag not in KEY_PACKETS):
            what = _OTHER_PACKETS.get(tag, "a packet of an unknown kind")
            raise KeyDataError(
                f"this holds {what} (OpenPGP packet type {tag}), which a public key never has: "
                f"{EXPORT}",
                f"it holds {what} (OpenPGP packet type {tag}), which a public key never has",
            )
        if not packets and tag != 6:
            raise KeyDataError(
                f"this is not an OpenPGP public key: {EXPORT}", "it holds no OpenPGP key"
            )
        if header is None or header[3] or header[1] + header[2] > len(binary):
            raise KeyDataError(
                "the key data is cut off or damaged: export your public key again "
                "(gpg --armor --export FINGERPRINT) and upload the whole file",
                "the key data is cut off or damaged",
            )
        _, start, length, _ = header
        version = binary[start] if length else 0
        if tag == 6 and version != 4:
            raise KeyDataError(
                f"this is a version {version} OpenPGP key, which we cannot use yet: upload a "
                "version 4 key (as gpg 2.2, or sq key generate --profile rfc4880, make them)",
                f"it is a version {version} OpenPGP key, which we cannot use yet",
            )
        packets.append((tag, binary[offset : start + length]))
        offset = start + length
    return packets


def packet_header(data: bytes, offset: int) -> tuple[int, int, int, bool] | None:
    """(tag, body offset, body length, whether the length is partial or indeterminate) of the
    packet at offset (RFC 4880, 4.2), or None when there is no packet header there. A partial
    length is that of the first chunk; an indeterminate one runs to the end of data."""
    first, rest = data[offset], data[offset + 1 : offset + 6]
    if not first & 0x80:
        return None
    if not first & 0x40:  # old format: 1, 2 or 4 length octets, or indeterminate
        tag, size = (first >> 2) & 0x0F, (1, 2, 4, 0)[first & 3]
        if not size:
            return tag, offset + 1, len(data) - offset - 1, True
        if len(rest) < size:
            return None
        return tag, offset + 1 + size, int.from_bytes(rest[:size], "big"), False
    found = new_length(data, offset + 1)
    if found is None:
        return None
    length, start, partial = found
    return first & 0x3F, start, length, partial


def new_length(data: bytes, position: int) -> tuple[int, int, bool] | None:
    """(length, position after it, whether it is partial) of the new-format length at position
    (RFC 4880, 4.2.2): a packet's, or a partial body's next chunk's. None when data ends first."""
    if position >= len(data):
        return None
    octet = data[position]
    if octet < 192:
        return octet, position + 1, False
    if octet < 224:
        if position + 2 > len(data):
            return None
        return ((octet - 192) << 8) + data[position + 1] + 192, position + 2, False
    if octet < 255:
        return 1 << (octet & 0x1F), position + 1, True
    if position + 5 > len(data):
        return None
    return int.from_bytes(data[position + 1 : position + 5], "big"), position + 5, False


def primary_fingerprints(certificate: str | bytes) -> list[str]:
    """The v4 fingerprint (RFC 4880, 12.2) of each primary key in a certificate, in order, read
    from its packets in Python (no gpg process); [] when it is no readable public key."""
    data = certificate.encode("ascii", "replace") if isinstance(certificate, str) else certificate
    try:
        found = packets(dearmor(data) if BEGIN.search(data) else data)
    except CertificateError:
        return []
    fingerprints = []
    for tag, raw in found:
        if tag != 6:
            continue
        _, start, length, _ = packet_header(raw, 0)
        body = raw[start : start + length]
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body)  # noqa: S324
        fingerprints.append(digest.hexdigest().upper())
    return fingerprints


# -- messages: what keys/verify.py reads before gpg does ------------------------------------------


class Damaged(Exception):
    """Packets or armor that do not parse (the readers' signal; never shown to people)."""


def walk(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each packet in data, the chunks of a partial body joined. A body that the
    end of data cuts off is given as far as it goes, and Damaged raised after it: so the first
    packet of a message can be read from its beginning alone (looks_encrypted)."""
    offset = 0
    while offset < len(data):
        header = packet_header(data, offset)
        if header is None:
            raise Damaged()
        tag, start, length, partial = header
        if partial and not data[offset] & 0x40:  # old format, indeterminate: to the end
            yield tag, data[start:]
            return
        chunks = []
        while True:
            chunks.append(data[start : start + length])
            offset = start + length
            if not partial:
                break
            found = new_length(data, offset)
            if found is None:
                raise Damaged()
            length, start, partial = found
        yield tag, b"".join(chunks)
    if offset > len(data):
        raise Damaged()


def dearmor_message(data: bytes, head_only: bool = False) -> bytes:
    """Binary OpenPGP from the ASCII armor of a message or signature (only its first line with
    head_only); binary data as it is. The checksum is not checked (gpg checks it); raises
    Damaged when the radix-64 does not decode. Keys are read by dearmor(), strictly."""
    if not data.lstrip().startswith(b"-----BEGIN PGP "):
        return data
    lines = iter(data.lstrip().splitlines()[1:])
    body = []
    for line in lines:  # armor headers ("Version: ...") end at a blank line
        line = line.strip()
        if line and b":" not in line:
            body.append(line)
            break
        if not line:
            break
    for line in lines:
        line = line.strip()
        if line.startswith((b"-----", b"=")) or (head_only and body):
            break
        body.append(line)
    joined = b"".join(body)
    if head_only:
        joined = joined[: len(joined) // 4 * 4]
    try:
        return base64.b64decode(joined)
    except (binascii.Error, ValueError):
        raise Damaged() from None
