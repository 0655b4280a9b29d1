"""The instance folder: created private (0700), holding the database, keys and the secret key."""

import os
import secrets

from app.core.config import Settings
from app.core.errors import OperatorError


def ensure_instance(settings: Settings) -> None:
    """Create the instance folder (mode 0700) and check we can use it."""
    path = settings.instance
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OperatorError(
            f"cannot create the instance folder {path}: {exc.strerror}; "
            "set FOREWARN_INSTANCE to a folder you can write"
        ) from None
    if not path.is_dir():
        raise OperatorError(f"{path} is not a folder; set FOREWARN_INSTANCE to a folder")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise OperatorError(
            f"the instance folder {path} is not readable and writable by this user; "
            "fix its permissions or set FOREWARN_INSTANCE"
        )
    probe = path / ".write-check"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OperatorError(
            f"cannot write in the instance folder {path}: {exc.strerror}; "
            "fix its permissions or set FOREWARN_INSTANCE"
        ) from None


def secret_key(settings: Settings) -> str:
    """FOREWARN_SECRET_KEY, or the key generated once and kept in the instance."""
    if settings.secret_key_env:
        return settings.secret_key_env
    path = settings.secret_key_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror}; fix its permissions") from None
    ensure_instance(settings)
    key = secrets.token_urlsafe(48)
    # O_EXCL: if two processes start at once, the first key wins and both use it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
