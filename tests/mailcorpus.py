"""Builders of inbound test mail. Each returns the raw bytes a reporter's client (or a broken
one, or an attacker) would hand to the intake. The OpenPGP parts are made by real gpg and
Sequoia's sqop, with keys of their own, never with the service keyring."""

import base64
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CRLF = b"\r\n"
SERVICE = "security@localhost"


def run(*args, input=None) -> bytes:
    result = subprocess.run(list(args), input=input, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}): {result.stderr.decode()}")
    return result.stdout


@contextmanager
def scratch_dir():
    """A short folder under /tmp (gpg-agent sockets), its agent stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fwc", dir="/tmp"))
    try:
        yield folder
    finally:
        subprocess.run(["gpgconf", "--homedir", str(folder), "--kill", "all"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def gpg_in(home: Path, *args, input=None) -> bytes:
    base = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    return run(*base, "--passphrase", "", *args, input=input)


# -- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reporter:
    address: str
    name: str
    secret: bytes  # made by sqop, unprotected
    cert: bytes
    fingerprint: str

    @property
    def sender(self) -> str:
        return f"{self.name} <{self.address}>"


def fingerprint_of(cert: bytes) -> str:
    with scratch_dir() as home:
        listing = gpg_in(home, "--with-colons", "--show-keys", input=cert).decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def make_reporter(address: str = "rita@example.org", name: str = "Rita Reporter") -> Reporter:
    secret = run("sqop", "generate-key", f"{name} <{address}>")
    cert = run("sqop", "extract-cert", input=secret)
    return Reporter(address, name, secret, cert, fingerprint_of(cert))


def gpg_key(uid: str, *, faked_time: str | None = None, expire: str = "1y") -> tuple[bytes, bytes]:
    """(secret, public) of a gpg-made ed25519/cv25519 key, made at faked_time if given
    (e.g. "20200101T000000") so that it is already expired now."""
    with scratch_dir() as home:
        fake = ["--faked-system-time", faked_time] if faked_time else []
        gpg_in(home, *fake, "--quick-gen-key", uid, "ed25519", "sign", expire)
        listing = gpg_in(home, "--with-colons", "--list-secret-keys").decode()
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        gpg_in(home, *fake, "--quick-add-key", fpr, "cv25519", "encr", expire)
        return gpg_in(home, "--armor", "--export-secret-keys", fpr), gpg_in(
            home, "--armor", "--export", fpr
        )


# -- OpenPGP data --------------------------------------------------------------------------------


def sqop_encrypt(cert: bytes | str, data: bytes, signer: Reporter | None = None) -> bytes:
    with scratch_dir() as folder:
        (folder / "cert").write_bytes(_bytes(cert))
        signing = []
        if signer is not None:
            (folder / "key").write_bytes(signer.secret)
            signing = ["--sign-with", str(folder / "key")]
        return run("sqop", "encrypt", *signing, str(folder / "cert"), input=data)


def gpg_encrypt(
    cert: bytes | str,
    data: bytes,
    signer_secret: bytes | None = None,
    compress_level: int | None = None,
    armor: bool = True,
) -> bytes:
    """gpg --encrypt (--sign with signer_secret): gpg compresses what it signs by default."""
    with scratch_dir() as home:
        (home / "cert").write_bytes(_bytes(cert))
        args = ["--armor"] if armor else []
        if compress_level is not None:
            args += ["--compress-algo", "zlib", "-z", str(compress_level)]
        if signer_secret is not None:
            gpg_in(home, "--import", input=signer_secret)
            args += ["--sign"]
        return gpg_in(home, *args, "--recipient-file", str(home / "cert"), "--encrypt", input=data)


def sqop_sign_detached(signer: Reporter, data: bytes) -> bytes:
    with scratch_dir() as folder:
        (folder / "key").write_bytes(signer.secret)
        return run("sqop", "sign", "--as", "binary", str(folder / "key"), input=data)


def sqop_clearsign(signer: Reporter, text: bytes) -> bytes:
    with scratch_dir() as folder:
        (folder / "key").write_bytes(signer.secret)
        return run("sqop", "inline-sign", "--as", "clearsigned", str(folder / "key"), input=text)


def password_encrypt(data: bytes) -> bytes:
    with scratch_dir() as folder:
        (folder / "password").write_bytes(b"hunter2")
        return run("sqop", "encrypt", "--with-password", str(folder / "password"), input=data)


def corrupt_armor(armored: bytes) -> bytes:
    """Flip characters in the middle of the radix-64 body (the CRC no longer matches)."""
    lines = armored.split(b"\n")
    middle = len(lines) // 2
    lines[middle] = bytes(reversed(lines[middle]))
    return b"\n".join(lines)


def compression_bomb(cert: bytes | str, size: int = 50_000_000) -> bytes:
    """size zeros, compressed by gpg at level 9 and encrypted: a small message that inflates."""
    with scratch_dir() as home:
        (home / "cert").write_bytes(_bytes(cert))
        zeros = home / "zeros"
        with open(zeros, "wb") as handle:
            handle.truncate(size)
        compress = ["--compress-algo", "zlib", "-z", "9"]
        recipient = ["--recipient-file", str(home / "cert")]
        return gpg_in(
            home, "--armor", *compress, *recipient, "--output", "-", "--encrypt", str(zeros)
        )


def stored_bzip2_bomb(size: int) -> bytes:
    """size zeros, bzip2-compressed by gpg into an armored message that is not encrypted."""
    with scratch_dir() as home:
        zeros = home / "zeros"
        with open(zeros, "wb") as handle:
            handle.truncate(size)
        compress = ["--compress-algo", "bzip2", "-z", "9"]
        return gpg_in(home, "--armor", *compress, "--output", "-", "--store", str(zeros))


# -- MIME ------------------------------------------------------------------------------------------


def entity(headers: list[tuple[str, str]], body: bytes | str) -> bytes:
    """A MIME entity with CRLF line ends, as it travels."""
    body = _bytes(body).replace(b"\r\n", b"\n").replace(b"\n", CRLF)
    lines = [f"{name}: {value}".encode() for name, value in headers]
    return CRLF.join(lines) + CRLF + CRLF + body


def multipart(subtype: str, parts: list[bytes], boundary: str, params: str = "") -> bytes:
    body = b"This is a multi-part message in MIME format." + CRLF
    for part in parts:
        body += b"--" + boundary.encode() + CRLF + part + CRLF
    body += b"--" + boundary.encode() + b"--" + CRLF
    ctype = f'multipart/{subtype}; boundary="{boundary}"{params}'
    return CRLF.join([f"Content-Type: {ctype}".encode(), b"", body])


def text_part(text: str, protected_subject: str | None = None, charset: str = "utf-8") -> bytes:
    if protected_subject is None:
        return entity(
            [
                ("Content-Type", f"text/plain; charset={charset}"),
                ("Content-Transfer-Encoding", "8bit"),
            ],
            text.encode(charset),
        )
    return entity(
        [
            ("Content-Type", f'text/plain; charset={charset}; protected-headers="v1"'),
            ("Content-Transfer-Encoding", "8bit"),
            ("Subject", protected_subject),
            ("From", "Rita Reporter <rita@example.org>"),
        ],
        text.encode(charset),
    )


def attachment_part(filename: str, data: bytes, ctype: str = "application/octet-stream") -> bytes:
    encoded = base64.encodebytes(data)
    return entity(
        [
            ("Content-Type", f'{ctype}; name="{filename}"'),
            ("Content-Disposition", f'attachment; filename="{filename}"'),
            ("Content-Transfer-Encoding", "base64"),
        ],
        encoded,
    )


def key_part(cert: bytes | str, filename: str = "OpenPGP_0xKEY.asc") -> bytes:
    return entity(
        [
            ("Content-Type", f'application/pgp-keys; name="{filename}"'),
            ("Content-Disposition", f'attachment; filename="{filename}"'),
        ],
        _bytes(cert),
    )


def message(
    body_entity: bytes,
    subject: str = "Vulnerability report",
    sender: str | None = "Rita Reporter <rita@example.org>",
    headers: list[tuple[str, str]] = (),
) -> bytes:
    """A whole message: outer headers, then the entity's own (Content-Type...) and body."""
    outer = [("From", sender)] if sender else []
    outer += [("To", SERVICE), ("Subject", subject), ("Date", "Wed, 25 Nov 2026 12:00:00 +0000")]
    outer += [("Message-ID", "<report-1@example.org>"), ("MIME-Version", "1.0"), *headers]
    return CRLF.join(f"{name}: {value}".encode() for name, value in outer) + CRLF + body_entity


def pgp_mime_encrypted(ciphertext: bytes, subject: str = "...", **kwargs) -> bytes:
    """RFC 3156 section 4: a version part, then the armored data."""
    version = entity([("Content-Type", "application/pgp-encrypted")], "Version: 1\n")
    data = entity(
        [
            ("Content-Type", 'application/octet-stream; name="encrypted.asc"'),
            ("Content-Disposition", 'inline; filename="encrypted.asc"'),
        ],
        ciphertext,
    )
    body = multipart(
        "encrypted", [version, data], "enc-boundary", '; protocol="application/pgp-encrypted"'
    )
    return message(body, subject, **kwargs)


def signed_entity(inner: bytes, signer: Reporter) -> bytes:
    """RFC 3156 section 5: multipart/signed over the exact bytes of inner."""
    signature = entity(
        [("Content-Type", "application/pgp-signature")], sqop_sign_detached(signer, inner)
    )
    params = '; protocol="application/pgp-signature"; micalg=pgp-sha512'
    return multipart("signed", [inner, signature], "sig-boundary", params)


def plain(text: str, **kwargs) -> bytes:
    return message(text_part(text), **kwargs)


def inline_pgp(before: str, armored: bytes, after: str, **kwargs) -> bytes:
    body = before.encode() + b"\n\n" + armored + b"\n" + after.encode() + b"\n"
    return message(entity([("Content-Type", "text/plain; charset=utf-8")], body), **kwargs)


def autocrypt_header(reporter: Reporter) -> tuple[str, str]:
    with scratch_dir() as home:
        binary = gpg_in(home, "--dearmor", input=reporter.cert)
    keydata = base64.b64encode(binary).decode()
    folded = "\r\n ".join(keydata[i : i + 72] for i in range(0, len(keydata), 72))
    return ("Autocrypt", f"addr={reporter.address}; prefer-encrypt=mutual; keydata=\r\n {folded}")


# -- broken and hostile input ---------------------------------------------------------------------


def nested_multipart(depth: int, text: str = "deep inside") -> bytes:
    inner = text_part(text)
    for level in range(depth):
        inner = multipart("mixed", [inner], f"b{level}")
    return message(inner)


def broken_multipart() -> bytes:
    """multipart/mixed whose boundary never occurs in the body."""
    body = entity(
        [("Content-Type", 'multipart/mixed; boundary="nowhere"')],
        "--elsewhere\nContent-Type: text/plain\n\nlost\n--elsewhere--\n",
    )
    return message(body)


def garbage_8bit() -> bytes:
    """Raw 8-bit bytes (latin-1 and invalid UTF-8) in headers and body, no MIME labels."""
    return (
        b"From: J\xf6rg \xff\xfe <joerg@example.org>\r\n"
        b"Subject: Sicherheitsl\xfccke \xc3\x28 im Treiber\r\n"
        b"Message-ID: <garbage@example.org>\r\n"
        b"X-Junk: \x80\x81\x82\x00\x01\r\n"
        b"\r\n"
        b"Der Puffer \xfcberl\xe4uft bei \xc3\x28 langen Paketen.\r\n"
    )


def binary_blob(size: int = 4096) -> bytes:
    return bytes((i * 151 + 89) % 256 for i in range(size))


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def gpg_sign(secret: bytes, data: bytes, faked_time: str | None = None) -> bytes:
    """An inline-signed (not encrypted) OpenPGP message, made by gpg at faked_time if given."""
    with scratch_dir() as home:
        gpg_in(home, "--import", input=secret)
        fake = ["--faked-system-time", faked_time] if faked_time else []
        return gpg_in(home, *fake, "--armor", "--sign", input=data)


def gpg_revoked_signer(data: bytes) -> tuple[bytes, bytes]:
    """(revoked certificate, data signed by it before the revocation), made by gpg."""
    with scratch_dir() as home:
        gpg_in(home, "--quick-gen-key", "Revoked <revoked@example.org>", "ed25519", "sign", "1y")
        listing = gpg_in(home, "--with-colons", "--list-secret-keys").decode()
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        signed = gpg_in(home, "--armor", "--sign", input=data)
        # gpg writes a revocation certificate at generation; its armor line is defused by ":".
        revocation = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_bytes()
        gpg_in(home, "--import", input=revocation.replace(b":-----BEGIN", b"-----BEGIN"))
        return gpg_in(home, "--armor", "--export", fpr), signed
