"""The one error of key inspection (keys/inspect.py, keys/packets.py)."""

from app.core.errors import ForewarnError


class CertificateError(ForewarnError):
    """The data is not one usable public certificate; the message says why, in one line."""
