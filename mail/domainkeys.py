"""DKIM signatures (RFC 6376) on finished outgoing messages, through dkimpy.

RFC 8058 one-click unsubscribe is only honoured when List-Unsubscribe and List-Unsubscribe-Post
are covered by a valid DKIM signature, so those are always signed when present.
"""

import base64
import binascii
import re

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

# Signed when present in the message; h= names only those.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)

RSA = b"rsa-sha256"
ED25519 = b"ed25519-sha256"
MIN_RSA_BITS = 1024  # RFC 8301: verifiers reject shorter keys
# PKCS#8 wrapping of an ed25519 private key: this prefix, then the 32-byte seed (RFC 8410).
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s+(.*?)\s+-----END \1-----", re.DOTALL)


class UnusableKey(ValueError):
    """The private key cannot sign; the message says why and what to do."""


def check_key(private_key: bytes) -> str:
    """What the key is ("2048-bit RSA"), or UnusableKey if it cannot sign."""
    return _signing_key(private_key)[2]


def sign(message: bytes, selector: str, domain: str, private_key: bytes) -> bytes:
    """The message with a DKIM-Signature header prepended (relaxed/relaxed).

    The message's CRLF lines are kept; dkimpy folds the new header at 72 columns with CRLF.
    """
    algorithm, key, _ = _signing_key(private_key)
    headers, _ = dkim.rfc822_parse(message)
    present = {name.lower() for name, _ in headers}
    include = [name.encode() for name in SIGNED_HEADERS if name.lower().encode() in present]
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=algorithm,
        include_headers=include,
    )
    return signature + message


def dns_record(private_key: bytes) -> str:
    """The TXT record value that publishes the key's public half ("v=DKIM1; k=rsa; p=...")."""
    algorithm, key, _ = _signing_key(private_key)
    if algorithm == ED25519:
        import nacl.signing  # present: _signing_key checked

        public = bytes(nacl.signing.SigningKey(base64.b64decode(key)).verify_key)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    rsa = parse_pem_private_key(key)
    numbers = _der(0x02, _unsigned(rsa["modulus"])) + _der(0x02, _unsigned(rsa["publicExponent"]))
    rsa_encryption = _der(0x06, bytes.fromhex("2a864886f70d010101")) + _der(0x05, b"")
    spki = _der(0x30, _der(0x30, rsa_encryption) + _der(0x03, b"\0" + _der(0x30, numbers)))
    return f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"


def _signing_key(private_key: bytes) -> tuple[bytes, bytes, str]:
    """(algorithm, the key as dkimpy takes it, what it is): PEM for RSA, base64 seed for ed25519."""
    text = _lf(private_key).strip()
    pem = _PEM.search(text)
    if pem is None:
        try:  # dkimpy's own ed25519 format (dknewkey --ktype ed25519): the base64 seed
            if len(base64.b64decode(text, validate=True)) == 32:
                return ED25519, _ed25519_seed(text), "ed25519"
        except (binascii.Error, ValueError):
            pass
        raise UnusableKey("not a PEM private key; `forewarn dkim init` makes one")
    if b"ENCRYPTED" in pem.group(0):  # PKCS#8 "ENCRYPTED PRIVATE KEY" or PKCS#1 "Proc-Type"
        raise UnusableKey(
            "the key is encrypted; write it out unencrypted, mode 0600 "
            "(`openssl pkey -in OLD -out NEW`)"
        )
    try:
        der = base64.b64decode(re.sub(rb"\s+", b"", pem.group(2)), validate=True)
    except (binascii.Error, ValueError):
        raise UnusableKey("the PEM block is not valid base64; the file is damaged") from None
    if der.startswith(_ED25519_PKCS8) and len(der) == len(_ED25519_PKCS8) + 32:
        return ED25519, _ed25519_seed(base64.b64encode(der[len(_ED25519_PKCS8) :])), "ed25519"
    try:
        bits = parse_pem_private_key(pem.group(0))["modulus"].bit_length()
    except (UnparsableKeyError, ValueError, IndexError):
        raise UnusableKey(
            "not an RSA or ed25519 private key; `forewarn dkim init` makes one"
        ) from None
    if bits < MIN_RSA_BITS:
        raise UnusableKey(f"a {bits}-bit RSA key is too short for DKIM; use 2048 bits")
    return RSA, pem.group(0) + b"\n", f"{bits}-bit RSA"


def _ed25519_seed(seed_base64: bytes) -> bytes:
    try:
        import nacl.signing  # noqa: F401  dkimpy signs ed25519 through PyNaCl
    except ImportError:
        raise UnusableKey(
            "ed25519 keys need the PyNaCl package, which is not installed; use an RSA key "
            "(`forewarn dkim init`)"
        ) from None
    return seed_base64


def _lf(data: bytes) -> bytes:
    # dkimpy finds the PEM body between "--\n" and "\n--", so CRLF files need normalising.
    return data.replace(b"\r\n", b"\n")


def _unsigned(number: int) -> bytes:
    return number.to_bytes(number.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body
