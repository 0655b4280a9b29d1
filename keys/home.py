"""The service's GnuPG home: its folder (private, short enough for gpg-agent's sockets), the
passphrase of the key in it, the bounded python-gnupg object over it, its lock, and its agent.

The keyring in it holds the service key alone (keys/servicekey.py); certificates of other people
live in the database and never enter it.
"""

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from keys import gpgrun
from keys.errors import KeyringError, KeySetupError

# Longest socket name gpg-agent creates in its home, and the kernel's sun_path limit.
_LONGEST_SOCKET = "S.gpg-agent.browser"
_SUN_PATH_MAX = 107
# A decrypted report larger than this is refused (a decompression bomb inflates gigabytes).
MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024
# Any run on the service key (sign, decrypt a report, list, generate); gpg takes milliseconds
# to a second or two. A run past it is killed (keys/gpgrun.py).
GPG_TIMEOUT_SECONDS = 60
# What one run may write on stdout: a decrypted report (gpg's --max-output stops it first).
MAX_GPG_OUTPUT_BYTES = MAX_PLAINTEXT_BYTES + 1024 * 1024
# gpgconf --kill, run when a home is left.
GPGCONF_TIMEOUT_SECONDS = 10


def require_gpg() -> str:
    """The gpg binary; KeySetupError saying how to install it when it (or gpgconf) is missing."""
    binary = shutil.which("gpg")
    if binary is None or shutil.which("gpgconf") is None:
        raise KeySetupError(
            "gpg not found: install GnuPG (apt-get install gnupg) or run `make run`"
        )
    return binary


def stop_agent(home: Path | str, error: type[Exception]) -> None:
    """Stop the gpg-agent (and any other daemon) of a GnuPG home."""
    gpgrun.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"],
        error=error,
        timeout=GPGCONF_TIMEOUT_SECONDS,
        max_output=64 * 1024,
    )


class GnupgHome:
    """The service's GnuPG home (a folder) and the passphrase of the key in it."""

    def __init__(self, home: Path, passphrase: str | None = None):
        self.home = Path(home).resolve()
        self.passphrase = passphrase
        self._gpg: gpgrun.BoundedGPG | None = None

    @property
    def gpg(self) -> gpgrun.BoundedGPG:
        if self._gpg is None:
            binary = require_gpg()
            self.ensure_home()
            # python-gnupg logs decrypted data at DEBUG: never let it.
            logging.getLogger("gnupg").setLevel(logging.WARNING)
            self._gpg = gpgrun.BoundedGPG(
                error=KeyringError,
                timeout=GPG_TIMEOUT_SECONDS,
                max_output=MAX_GPG_OUTPUT_BYTES,
                gpgbinary=binary,
                gnupghome=str(self.home),
            )
            self._gpg.encoding = "utf-8"
        return self._gpg

    def ensure_home(self) -> None:
        # Folders we create on the way (e.g. the instance folder) are private too: mkdir's
        # parents=True would give them the umask's 0755.
        for folder in reversed([self.home, *self.home.parents]):
            if not folder.exists():
                folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.home, 0o700)
        if len(str(self.home)) + 1 + len(_LONGEST_SOCKET) > _SUN_PATH_MAX:
            # gpg-agent then puts its sockets under /run/user/<uid>, if that exists.
            run_dir = Path(f"/run/user/{os.getuid()}")
            try:
                run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError:
                raise KeySetupError(
                    f"the GnuPG home {self.home} is too long for gpg-agent's socket and "
                    f"{run_dir} cannot be created; use a shorter FOREWARN_INSTANCE"
                ) from None

    @contextmanager
    def _lock(self):
        """Imports and deletes on one home are serialised (parallel gpg processes on one home
        are fine for sign and encrypt, not for changes to its keyrings)."""
        self.ensure_home()
        with open(self.home / ".forewarn.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stop_agent(self) -> None:
        """Stop the gpg-agent of this home, so no secret stays cached after we stop."""
        if not self.home.is_dir() or shutil.which("gpgconf") is None:
            return
        stop_agent(self.home, KeyringError)
