"""Open what reporters send: check a signature against certificates we choose, in a throwaway
home, once the service key's encryption is off (ServiceKeyring.unwrap, keys/keyring.py).

Decompression bombs: gpg's `--max-output` stops gpg *writing* (so python-gnupg's buffer stays
small) but gpg 2.2 goes on inflating the whole packet, for as long as it takes. So nothing
compressed reaches gpg until Python has inflated it, bounded, and found it within the limit:
ServiceKeyring.unwrap takes only encrypted data (`--unwrap` removes the encryption and inflates
nothing; its output is no larger than its input), and verify_with() checks sizes before gpg
inflates.
"""

import bz2
import os
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from keys import gpgrun, packets
from keys.errors import CertificateError, KeyringError
from keys.home import GPG_TIMEOUT_SECONDS, MAX_PLAINTEXT_BYTES
from keys.inspect import scratch_gpg

STATUSES = ("valid", "bad", "unknown-key", "expired-key", "revoked-key", "unsigned")
# gpg status keywords that conclude one signature, and what each means here.
_VERDICTS = {
    "GOODSIG": "valid",
    "BADSIG": "bad",
    "EXPKEYSIG": "expired-key",
    "REVKEYSIG": "revoked-key",
    "EXPSIG": "bad",  # the signature itself has expired
    "ERRSIG": "unknown-key",  # or one gpg cannot check at all: see _checks()
}
# OpenPGP packet tags (RFC 4880, 4.3).
_PKESK, _SIGNATURE, _SKESK, _ONE_PASS, _COMPRESSED, _LITERAL = 1, 2, 3, 4, 8, 11
_ARMOR_BLOCKS = (
    (b"-----BEGIN PGP MESSAGE-----", b"-----END PGP MESSAGE-----"),
    (b"-----BEGIN PGP SIGNED MESSAGE-----", b"-----END PGP SIGNATURE-----"),
)
_MAX_COMPRESSION_LAYERS = 3
_MAX_SIGNATURE_BYTES = 64 * 1024  # a detached signature is a few hundred bytes


@dataclass(frozen=True)
class SignatureCheck:
    status: str  # one of STATUSES
    fingerprint: str | None = None  # the signer's primary key, when its certificate was given
    key_id: str | None = None  # the issuer the signature names
    signed_at: datetime | None = None  # when the signer says they signed (a good signature's)


UNSIGNED = SignatureCheck("unsigned")


# -- signatures, in a home that holds only the certificates given --------------------------------


def verify_with(
    certificates: list[str],
    signed_data: bytes | None,
    signature: bytes | None = None,
    limit: int = MAX_PLAINTEXT_BYTES,
) -> tuple[bytes, SignatureCheck]:
    """Check a signature with these certificates alone.

    Without `signature`, signed_data is OpenPGP data (an inline-signed or clear-signed message,
    or literal data): returns its content, at most `limit` bytes, or raises KeyringError. With
    `signature`, that is a detached signature over exactly signed_data, returned as it is.
    """
    signed_data = signed_data or b""
    if signature is not None:
        try:
            _check_inflation(packets.dearmor_message(signature), _MAX_SIGNATURE_BYTES)
        except (packets.Damaged, KeyringError):
            return signed_data, SignatureCheck("bad")  # vouches for nothing
    else:
        _precheck(signed_data, limit)
    # gpg's --max-output stops a larger plaintext first; this bounds what python-gnupg reads.
    with scratch_gpg(KeyringError, GPG_TIMEOUT_SECONDS, limit + 1024 * 1024) as gpg:
        for certificate in certificates:
            if key := _public_key_packets(certificate):  # a bad one simply verifies nothing
                gpg.import_keys(key)
        try:
            if signature is None:
                result = gpg.decrypt(
                    signed_data,
                    extra_args=["--max-output", str(limit), "--pinentry-mode", "loopback"],
                )
            else:
                path = os.path.join(gpg.gnupghome, "signature")
                with open(path, "wb") as handle:
                    handle.write(signature)
                result = gpg.verify_data(path, signed_data)
        except (OSError, ValueError) as error:
            name = type(error).__name__
            raise KeyringError(f"gpg stopped before reading the data ({name})") from None
    stderr = result.stderr or ""
    if "exceeded --max-output" in stderr or len(result.data) > limit:
        raise KeyringError(f"the content is larger than {limit} bytes once decompressed")
    check = _checks(gpgrun.status_lines(stderr))
    if signature is not None:
        return signed_data, check or SignatureCheck("bad")
    if check is None and (result.returncode != 0 or "PLAINTEXT" not in stderr):
        raise KeyringError(_why_unreadable(stderr))
    return result.data, check or UNSIGNED


def _public_key_packets(certificate: str | bytes) -> bytes | None:
    """The packets of a certificate if they are a public key's alone (never compressed data,
    which gpg would inflate on import), else None."""
    data = certificate.encode("ascii", "replace") if isinstance(certificate, str) else certificate
    try:
        found = packets.packets(packets.dearmor(data) if packets.BEGIN.search(data) else data)
    except CertificateError:
        return None
    return b"".join(raw for _, raw in found)


def _precheck(data: bytes, limit: int) -> None:
    """Refuse what would inflate past limit before gpg inflates it (without stopping)."""
    cleartext = data.lstrip().startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    if cleartext:  # only its signature block is OpenPGP packets
        data, limit = data[data.find(b"-----BEGIN PGP SIGNATURE-----") :], _MAX_SIGNATURE_BYTES
    try:
        _check_inflation(packets.dearmor_message(data), limit)
    except packets.Damaged:
        raise KeyringError("it is not OpenPGP data, or it is damaged") from None


def _why_unreadable(stderr: str) -> str:
    if "CRC error" in stderr or "invalid armor" in stderr or "radix64" in stderr:
        return "its ASCII armor is damaged"
    if "NO_SECKEY" in stderr or "NEED_PASSPHRASE_SYM" in stderr:
        return "it holds another encryption layer that cannot be opened"
    if "NODATA" in stderr or "invalid packet" in stderr:
        return "it is not OpenPGP data, or it is damaged"
    return f"gpg could not read it ({gpgrun.said(gpgrun.without_status(stderr))})"


def _signature_time(stamp: str) -> datetime | None:
    """VALIDSIG's signature time: seconds since the epoch, or ISO 8601 (20261204T101500)."""
    try:
        if stamp.isdigit():
            return datetime.fromtimestamp(int(stamp), UTC)
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _checks(status: dict[str, list[list[str]]]) -> SignatureCheck | None:
    """The verdict over every signature gpg reported: any bad one makes the whole bad,
    otherwise the first valid one counts, otherwise the first other verdict."""
    # VALIDSIG <signing key fpr> ... <primary key fpr> comes with GOODSIG, EXPKEYSIG, REVKEYSIG.
    signers = {
        args[0][-16:].upper(): args[9] if len(args) > 9 else args[0]
        for args in status.get("VALIDSIG", [])
        if args
    }
    times = {
        args[0][-16:].upper(): _signature_time(args[2])
        for args in status.get("VALIDSIG", [])
        if len(args) > 2
    }
    verdicts = []
    for keyword, verdict in _VERDICTS.items():
        for args in status.get(keyword, []):
            key_id = args[0][-16:].upper() if args else None
            # ERRSIG's sixth field "9" is a missing key; anything else cannot be checked at all.
            cannot_check = keyword == "ERRSIG" and len(args) > 5 and args[5] != "9"
            status_here = "bad" if cannot_check else verdict
            verdicts.append(
                SignatureCheck(status_here, signers.get(key_id), key_id, times.get(key_id))
            )
    for wanted in ("bad", "valid"):
        for check in verdicts:
            if check.status == wanted:
                return check
    return verdicts[0] if verdicts else None


# -- packets, read in Python (keys/packets.py) before gpg sees them -------------------------------


def looks_encrypted(data: bytes) -> bool:
    """Whether data (armored or binary) starts with a public-key or password session key."""
    armored = data.find(b"-----BEGIN PGP MESSAGE-----", 0, 4096)
    try:
        if armored >= 0:
            data = packets.dearmor_message(data[armored:], head_only=True)
        tag, body = next(packets.walk(data))
    except (packets.Damaged, StopIteration, IndexError):
        return False
    return tag in (_PKESK, _SKESK) and body[:1] in (b"\x03", b"\x04", b"\x05", b"\x06")


def armored_blocks(text: bytes):
    """(start, end) of each armored message or clear-signed text in text, in order."""
    position = 0
    while True:
        found = [(text.find(begin, position), end) for begin, end in _ARMOR_BLOCKS]
        found = [(start, end) for start, end in found if start >= 0]
        if not found:
            return
        start, end_line = min(found)
        end = text.find(end_line, start)
        if end < 0:
            return  # no end line: it stays text (and nothing after it is searched again)
        position = end + len(end_line)
        yield start, position


def is_signed(data: bytes) -> bool:
    """Whether unwrapped data starts with a signature, looking into compressed packets."""
    try:
        for _ in range(_MAX_COMPRESSION_LAYERS + 1):
            tag, body = next(packets.walk(data))
            if tag in (_ONE_PASS, _SIGNATURE):
                return True
            if tag != _COMPRESSED or not body:
                return False
            data = _inflate(body[0], body[1:], 4096)
    except (packets.Damaged, StopIteration, IndexError, KeyringError):
        pass
    return False


def _check_inflation(data: bytes, limit: int, layer: int = 0) -> None:
    """Raise KeyringError if the compressed packets in data inflate past limit; Python stops
    inflating at limit + 1 bytes."""
    total = 0
    for tag, body in packets.walk(data):
        if tag == _COMPRESSED and body:
            if layer >= _MAX_COMPRESSION_LAYERS:
                raise KeyringError("its compressed data is nested too deep")
            inner = _inflate(body[0], body[1:], limit + 1)
            total += len(inner)
            if total <= limit:
                _check_inflation(inner, limit, layer + 1)
        elif tag == _LITERAL:
            total += len(body)
        if total > limit:
            # Said differently from gpg's --max-output, so tests can tell who stopped it.
            raise KeyringError(f"its content would be larger than {limit} bytes decompressed")


def _inflate(algorithm: int, body: bytes, at_most: int) -> bytes:
    try:
        if algorithm == 0:
            return body[:at_most]
        if algorithm in (1, 2):  # raw deflate, zlib
            return zlib.decompressobj(-15 if algorithm == 1 else 15).decompress(body, at_most)
        if algorithm == 3:
            return bz2.BZ2Decompressor().decompress(body, at_most)
    except (zlib.error, OSError, EOFError, ValueError):
        raise KeyringError("its compressed data is damaged") from None
    raise KeyringError(f"it uses an unknown compression algorithm ({algorithm})")
