"""Embargo policy: default dates from a report's receipt, and instants as people write them.

Every instant is stored in UTC and shown with its zone. A default embargo ends at the
publication hour (FOREWARN_PUBLICATION_HOUR, 14:00 UTC) of a working day.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from app.core import timefmt
from app.core.config import Settings
from app.core.errors import Refused


@dataclass(frozen=True)
class Dates:
    fix_due: datetime
    embargo_until: datetime


def publication_instant(earliest: datetime, hour: int) -> datetime:
    """The first publication hour on a working day (Monday to Friday) at or after earliest."""
    earliest = earliest.astimezone(UTC)
    candidate = datetime.combine(earliest.date(), time(hour), tzinfo=UTC)
    if candidate < earliest:
        candidate += timedelta(days=1)
    while candidate.weekday() >= 5:  # Saturday, Sunday
        candidate += timedelta(days=1)
    return candidate


def default_dates(received_at: datetime, settings: Settings) -> Dates:
    return Dates(
        fix_due=received_at + timedelta(days=settings.fix_target_days),
        embargo_until=publication_instant(
            received_at + timedelta(days=settings.embargo_days), settings.publication_hour
        ),
    )


def parse_instant(text: str, date_only_hour: time) -> datetime:
    """ISO 8601 as people type it: a date alone means date_only_hour UTC on that day; a time
    without a zone is UTC; any zone is converted to UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), date_only_hour, tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(
            f"{text!r} is not a date or time; write it like 2027-02-23 or 2027-02-23T14:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def shown(at: datetime | None) -> str:
    """An instant as the team and the public read it: always with its zone."""
    return timefmt.minute(at)
