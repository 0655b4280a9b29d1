"""Encrypt to a public certificate alone, without the service's secret key: what the web
process uses to store a reporter's submission encrypted to the service key's public part."""

import tempfile

from keys import gpgrun
from keys.errors import KeyringError
from keys.inspect import scratch_gpg
from keys.packets import primary_fingerprints

ENCRYPT_TIMEOUT_SECONDS = 60


def encrypt_to_certificate(armored_cert: str, data: bytes) -> bytes:
    """`data` encrypted (ASCII armor) to the one primary key of `armored_cert`. The certificate
    is given to gpg as a file in a scratch home of its own: no keyring is read or written."""
    if len(primary_fingerprints(armored_cert)) != 1:
        raise KeyringError("the certificate must hold exactly one public key")
    with (
        scratch_gpg(KeyringError) as gpg,
        tempfile.NamedTemporaryFile("w", prefix="fws", suffix=".asc") as cert_file,
    ):
        cert_file.write(armored_cert)
        cert_file.flush()
        args = ["--no-random-seed-file", "--no-keyring", "--encrypt", "--armor"]
        args += ["--trust-model", "always", "--recipient-file", cert_file.name]
        result = gpgrun.run(
            gpg.make_args(args, False),
            input=data,
            error=KeyringError,
            timeout=ENCRYPT_TIMEOUT_SECONDS,
            max_output=2 * len(data) + 64 * 1024,
        )
    if result.returncode != 0 or not result.stdout.startswith(b"-----BEGIN PGP MESSAGE"):
        said = result.stderr.decode("utf-8", "replace")
        raise KeyringError(f"gpg could not encrypt: {gpgrun.said(said)}")
    return result.stdout
