"""The one clock. Adapters call now(); domain functions take the time as an argument.

Tests freeze and move it with freeze()/thaw() (see tests/conftest.py).
"""

from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


def freeze(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    global _frozen
    _frozen = at.astimezone(UTC)


def thaw() -> None:
    global _frozen
    _frozen = None
