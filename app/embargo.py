"""Embargo policy: default dates from a report's receipt."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings


@dataclass(frozen=True)
class Dates:
    fix_due: datetime
    embargo_until: datetime


def default_dates(received_at: datetime, settings: Settings) -> Dates:
    return Dates(
        fix_due=received_at + timedelta(days=settings.fix_target_days),
        embargo_until=received_at + timedelta(days=settings.embargo_days),
    )
