"""Checks before a process listens: is the address free, and can we bind it?"""

import errno
import socket

from app.core.config import Listen
from app.core.errors import OperatorError


def ensure_free(listen: Listen, variable: str) -> None:
    """Raise a one-line OperatorError when listen cannot be bound (in use, bad address)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((listen.host, listen.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OperatorError(
                f"{listen} is already in use: stop the program using it or set {variable}"
            ) from None
        raise OperatorError(f"cannot listen on {listen} ({exc.strerror}); set {variable}") from None
    finally:
        probe.close()
