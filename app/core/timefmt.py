"""Instants as Forewarn writes them, in mail, on pages, in the CLI, logs, feeds and exports.

Every instant is stored in UTC; an aware one is shown in UTC, a naive one is taken as UTC.
"""

from datetime import UTC, datetime


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at


def minute(at: datetime | None, missing: str = "not set") -> str:
    """As people read it, always with its zone: "2026-11-25 12:00 UTC" (`missing` if none)."""
    return _utc(at).strftime("%Y-%m-%d %H:%M UTC") if at else missing


def day(at: datetime) -> str:
    """The UTC day: "2026-11-25"."""
    return _utc(at).strftime("%Y-%m-%d")


def zulu(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z` (OSV's schema refuses `+00:00`): "2026-11-25T12:00:00Z"."""
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%SZ")


def zulu_minute(at: datetime) -> str:
    """To the minute, as the team types it into a form: "2026-11-25T12:00Z"."""
    return _utc(at).strftime("%Y-%m-%dT%H:%MZ")


def compact(at: datetime) -> str:
    """For file names: "20261125T120000Z"."""
    return _utc(at).strftime("%Y%m%dT%H%M%SZ")
