"""OpenPGP armor and packet framing, read in Python before gpg sees an upload: its size,
whether it is cut off, how many keys it holds, whether it carries secret key material."""

import base64
import binascii
import re

from keys.errors import CertificateError

EXPORT = "export only your public key (gpg --armor --export FINGERPRINT)"
NEVER_SEND = (
    "this is a SECRET key: never send it (if it travelled unencrypted, consider it exposed); "
    "export the public key with gpg --armor --export FINGERPRINT"
)

BEGIN = re.compile(rb"^-----BEGIN PGP ([A-Z0-9 ,/]+)-----[ \t\r]*$", re.MULTILINE)


def dearmor(data: bytes) -> bytes:
    """The packets of every armor block in data; refuses damaged armor and armored non-keys."""
    binary = b""
    for begin in BEGIN.finditer(data):
        label = begin.group(1).decode()
        if label == "PRIVATE KEY BLOCK":
            raise CertificateError(NEVER_SEND)
        if label != "PUBLIC KEY BLOCK":
            raise CertificateError(
                f"this is an OpenPGP {label.lower()}, not a public key: {EXPORT}"
            )
        end = data.find(b"-----END PGP PUBLIC KEY BLOCK-----", begin.end())
        if end < 0:
            raise CertificateError(
                "the ASCII armor is cut off (no END PGP PUBLIC KEY BLOCK line): upload the "
                "whole file that gpg --armor --export wrote"
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
            raise CertificateError(
                "the ASCII armor is damaged (bad characters or checksum): upload the file "
                "exactly as gpg --armor --export wrote it"
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
    """(tag, bytes) of each packet of a key; refuses non-keys, cut-off data and secret keys."""
    if not binary.strip():
        raise CertificateError(f"the upload is empty: {EXPORT}")
    packets, offset = [], 0
    while offset < len(binary):
        header = packet_header(binary, offset)
        if not packets and (header is None or header[0] not in (5, 6)):
            raise CertificateError(f"this is not an OpenPGP public key: {EXPORT}")
        if header is None or header[1] + header[2] > len(binary):
            raise CertificateError(
                "the key data is cut off or damaged: export your public key again "
                "(gpg --armor --export FINGERPRINT) and upload the whole file"
            )
        tag, start, length = header
        if tag in (5, 7):
            raise CertificateError(NEVER_SEND)
        version = binary[start] if length else 0
        if tag == 6 and version != 4:
            raise CertificateError(
                f"this is a version {version} OpenPGP key, which we cannot use yet: upload a "
                "version 4 key (as gpg 2.2, or sq key generate --profile rfc4880, make them)"
            )
        packets.append((tag, binary[offset : start + length]))
        offset = start + length
    return packets


def packet_header(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(tag, body offset, body length) of the packet at offset (RFC 4880, 4.2), or None: there
    is none, or it has a partial or indeterminate length (which keys never have)."""
    first, rest = data[offset], data[offset + 1 : offset + 6]
    if not first & 0x80 or not rest:
        return None
    if not first & 0x40:  # old format: 1, 2 or 4 length octets
        size = (1, 2, 4, 0)[first & 3]
        if not size or len(rest) < size:
            return None
        return (first >> 2) & 0x0F, offset + 1 + size, int.from_bytes(rest[:size], "big")
    tag, octet = first & 0x3F, rest[0]
    if octet < 192:
        return tag, offset + 2, octet
    if octet < 224 and len(rest) >= 2:
        return tag, offset + 3, ((octet - 192) << 8) + rest[1] + 192
    if octet == 255 and len(rest) == 5:
        return tag, offset + 6, int.from_bytes(rest[1:], "big")
    return None
