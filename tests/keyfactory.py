"""Builders of OpenPGP keys for the key-inspection tests, each made by real gpg (or Sequoia's
sqop) in a throwaway home of its own: good keys, and every kind of bad upload a product maker
might send. Nothing is downloaded and nothing touches a service keyring."""

import base64
import bz2
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.mailcorpus import gpg_in, run, scratch_dir

UID = "Maker PSIRT <psirt@maker.example>"
# When the "already expired" keys are made (gpg --faked-system-time).
PAST = "20200101T000000"
CV25519 = (("cv25519", "encr"),)


@dataclass(frozen=True)
class Key:
    uid: str
    fingerprint: str
    public: bytes  # ASCII armor, as `gpg --armor --export` writes it
    binary: bytes  # the same certificate without armor, as `gpg --export` writes it
    secret: bytes  # ASCII armor of the secret key, unprotected

    @property
    def keyid(self) -> str:
        return self.fingerprint[-16:]


def _fingerprint(home: Path, uid: str) -> str:
    listing = gpg_in(home, "--with-colons", "--list-secret-keys", uid).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def _generate(
    home: Path,
    uid: str,
    primary: str = "ed25519",
    usage: str = "sign",
    subkeys: tuple[tuple[str, str], ...] = CV25519,
    expire: str = "2y",
    faked_time: str | None = None,
    sub_expire: str | None = None,
) -> str:
    fake = ["--faked-system-time", faked_time] if faked_time else []
    gpg_in(home, *fake, "--quick-gen-key", uid, primary, usage, expire)
    fingerprint = _fingerprint(home, uid)
    for algo, sub_usage in subkeys:
        gpg_in(home, *fake, "--quick-add-key", fingerprint, algo, sub_usage, sub_expire or expire)
    return fingerprint


def _export(home: Path, uid: str, fingerprint: str) -> Key:
    return Key(
        uid=uid,
        fingerprint=fingerprint,
        public=gpg_in(home, "--armor", "--export", fingerprint),
        binary=gpg_in(home, "--export", fingerprint),
        secret=gpg_in(home, "--armor", "--export-secret-keys", fingerprint),
    )


def gpg_key(uid: str = UID, **options) -> Key:
    """A key made by `gpg --quick-gen-key UID primary usage expire`, then `--quick-add-key` for
    each (algorithm, usage) in subkeys (expiring after sub_expire, if given), all at faked_time
    if given. Defaults: an ed25519 signing primary with a cv25519 encryption subkey, for 2y."""
    with scratch_dir() as home:
        return _export(home, uid, _generate(home, uid, **options))


# -- good keys --------------------------------------------------------------------------------


def ed25519_cv25519(uid: str = UID) -> Key:
    return gpg_key(uid)


def rsa(bits: int, sub_bits: int | None = None, uid: str = UID) -> Key:
    """An RSA primary (sign, certify) with an RSA encryption subkey (of sub_bits, if given)."""
    return gpg_key(uid, primary=f"rsa{bits}", subkeys=((f"rsa{sub_bits or bits}", "encr"),))


def sqop_key(uid: str = UID) -> tuple[bytes, bytes]:
    """(secret, certificate) made by Sequoia's `sqop generate-key`, both ASCII armor."""
    secret = run("sqop", "generate-key", uid)
    return secret, run("sqop", "extract-cert", input=secret)


def subkey_outlives_primary(uid: str = UID) -> Key:
    """A primary that expires in a year, with an encryption subkey that never expires."""
    return gpg_key(uid, expire="1y", sub_expire="never")


# -- bad keys ---------------------------------------------------------------------------------


def rsa1024(uid: str = UID) -> Key:
    return rsa(1024, uid=uid)


def rsa1024_primary_cv25519(uid: str = UID) -> Key:
    """A weak primary key with a strong encryption subkey."""
    return gpg_key(uid, primary="rsa1024")


def ed25519_sign_only(uid: str = UID) -> Key:
    return gpg_key(uid, subkeys=())


def expired(uid: str = UID) -> Key:
    """Made on 2020-01-01, valid for one year: expired on 2020-12-31."""
    return gpg_key(uid, expire="1y", faked_time=PAST)


def expired_encryption_subkey(uid: str = UID) -> Key:
    """Made on 2020-01-01: a primary that never expires, an encryption subkey that expired on
    2020-12-31."""
    return gpg_key(uid, expire="never", sub_expire="1y", faked_time=PAST)


def _revoke(home: Path, fingerprint: str) -> None:
    """gpg --gen-revoke (it asks questions, so: --command-fd), then import the certificate."""
    answers = b"y\n0\n\ny\n"  # revoke? reason 0, no description, confirm
    base = ["gpg", "--homedir", str(home), "--pinentry-mode", "loopback", "--no-tty"]
    revocation = run(
        *base, "--command-fd", "0", "--armor", "--gen-revoke", fingerprint, input=answers
    )
    assert b"BEGIN PGP PUBLIC KEY BLOCK" in revocation, revocation
    gpg_in(home, "--import", input=revocation)


def revoked(uid: str = UID) -> Key:
    """A current ed25519/cv25519 key whose primary key is revoked."""
    with scratch_dir() as home:
        fingerprint = _generate(home, uid)
        _revoke(home, fingerprint)
        return _export(home, uid, fingerprint)


def revoked_encryption_subkey(uid: str = UID) -> Key:
    """A current primary whose only encryption subkey is revoked (gpg --edit-key, revkey)."""
    with scratch_dir() as home:
        fingerprint = _generate(home, uid)
        answers = b"key 1\nrevkey\ny\n0\n\ny\nsave\n"
        gpg_in(home, "--command-fd", "0", "--edit-key", fingerprint, input=answers)
        return _export(home, uid, fingerprint)


def revoked_user_id(revoked_uid: str = UID, kept_uid: str = "Sales <sales@maker.example>") -> Key:
    """A current key with two user ids, of which revoked_uid is revoked."""
    with scratch_dir() as home:
        fingerprint = _generate(home, revoked_uid)
        gpg_in(home, "--quick-add-uid", fingerprint, kept_uid)
        gpg_in(home, "--quick-revoke-uid", fingerprint, revoked_uid)
        return _export(home, revoked_uid, fingerprint)


def third_party_signed(uid: str = UID) -> tuple[Key, str]:
    """(key, signer's key id): the key carries a certification by another key of the same
    scratch home, and its export holds both the self-signatures and that one."""
    with scratch_dir() as home:
        fingerprint = _generate(home, uid)
        signer = _generate(home, "Friendly Signer <signer@elsewhere.example>", subkeys=())
        gpg_in(home, "--local-user", signer, "--quick-sign-key", fingerprint)
        return _export(home, uid, fingerprint), signer[-16:]


def two_keys_concatenated() -> bytes:
    """Two armored certificates one after the other, as `cat a.asc b.asc` makes them."""
    return ed25519_cv25519().public + ed25519_cv25519("Sales <sales@maker.example>").public


def two_keys_in_one_block() -> bytes:
    """Two certificates in one armor block, as `gpg --armor --export A B` makes them."""
    with scratch_dir() as home:
        first = _generate(home, UID)
        second = _generate(home, "Sales <sales@maker.example>")
        return gpg_in(home, "--armor", "--export", first, second)


def truncated_armor(armored: bytes) -> bytes:
    """The first half of the armor's lines: no END line, the key data cut off."""
    lines = armored.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2])


def armored_message() -> bytes:
    """ASCII armor that holds an OpenPGP message (gpg --armor --store), not a key."""
    with scratch_dir() as home:
        return gpg_in(home, "--armor", "--store", input=b"not a key\n")


def garbage(size: int = 4096) -> bytes:
    """Bytes that are neither OpenPGP nor text."""
    return bytes((i * 151 + 89) % 256 for i in range(size))


def big_blob(size: int = 5 * 1024 * 1024) -> bytes:
    """5 MiB of armor-looking text: what an upload of the wrong file (or a keyring) weighs."""
    line = b"mQINBGdGVyY" + b"A" * 53 + b"\n"
    return (line * (size // len(line) + 1))[:size]


# -- compression bombs: key material gpg would inflate ------------------------------------------


def packet(tag: int, body: bytes, partial: bool = False) -> bytes:
    """One new-format OpenPGP packet (RFC 4880, 4.2.2). partial: the body in partial-length
    chunks of 512 octets (as streamed data is written), the last one with a 5-octet length."""
    if not partial:
        return bytes([0xC0 | tag, 0xFF]) + len(body).to_bytes(4, "big") + body
    chunks, rest = [], body
    while len(rest) > 512:
        chunks.append(bytes([224 + 9]) + rest[:512])  # 2**9 octets follow
        rest = rest[512:]
    chunks.append(b"\xff" + len(rest).to_bytes(4, "big") + rest)
    return bytes([0xC0 | tag]) + b"".join(chunks)


def compressed(data: bytes, algorithm: str = "bzip2") -> bytes:
    """The body of a compressed-data packet (tag 8) holding data: ZIP (raw deflate), ZLIB or
    BZip2 (RFC 4880, 9.3)."""
    if algorithm == "zip":
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        return b"\x01" + deflate.compress(data) + deflate.flush()
    if algorithm == "zlib":
        return b"\x02" + zlib.compress(data, 9)
    return b"\x03" + bz2.compress(data, 9)


def armor(binary: bytes) -> bytes:
    """ASCII armor of a public key block with its CRC-24 (RFC 4880, 6), as gpg writes it."""
    crc = 0xB704CE
    for byte in binary:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    encoded = base64.b64encode(binary)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    checksum = b"=" + base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big"))
    return b"\n".join(
        [b"-----BEGIN PGP PUBLIC KEY BLOCK-----", b"", *lines, checksum]
        + [b"-----END PGP PUBLIC KEY BLOCK-----", b""]
    )


def bomb_key(
    key: Key, zeros: int = 8 * 1024 * 1024, algorithm: str = "bzip2", how: str = "appended"
) -> bytes:
    """A real key with a compressed-data packet that inflates to `zeros` bytes, armored:
    zeros appended after its packets ("appended"; gpg inflates them, then finds no packet), the
    same in partial-length chunks ("partial"), `zeros` bytes of marker packets appended
    ("markers"), or the key itself compressed and followed by marker packets ("wrapped"). gpg
    2.2 inflates markers, skips them and imports the key."""
    markers = MARKER * (zeros // len(MARKER))
    if how == "wrapped":
        return armor(packet(8, compressed(key.binary + markers, algorithm)))
    if how == "markers":
        return armor(key.binary + packet(8, compressed(markers, algorithm)))
    return armor(key.binary + packet(8, compressed(bytes(zeros), algorithm), how == "partial"))


MARKER = bytes([0xC0 | 10, 3]) + b"PGP"  # a marker packet (RFC 4880, 5.8): readers skip it
