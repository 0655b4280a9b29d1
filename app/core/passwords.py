"""Salted, deliberately slow password hashes (scrypt from the standard library)."""

import base64
import hashlib
import hmac
import secrets

# n=2**15, r=8: about 32 MiB and tens of milliseconds per hash on one core.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, n: int, r: int, p: int, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _derive(password, _N, _R, _P, salt)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str | None) -> tuple[int, int, int, bytes, bytes] | None:
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            return None
        return int(n), int(r), int(p), base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, TypeError):
        return None


# Compared against when the account does not exist or has no usable password (added by an
# admin, erased), so the time a sign-in takes does not reveal which addresses have one.
DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + _b64(bytes(64))
_DUMMY = _parse(DUMMY_HASH)


def check_password(stored: str | None, password: str) -> bool:
    """Whether password matches the stored hash; always one scrypt run of the same cost."""
    parsed = _parse(stored)
    n, r, p, salt, digest = parsed or _DUMMY
    try:
        candidate = _derive(password, n, r, p, salt)
    except ValueError:
        return False
    return parsed is not None and hmac.compare_digest(candidate, digest)
