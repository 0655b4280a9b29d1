"""Embargo dates: defaults from receipt, the publication hour on a working day, UTC always."""

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from app.core.config import load_settings
from app.core.errors import Refused
from app.vulns import embargo


@pytest.mark.parametrize(
    ("earliest", "expected"),
    [
        # A Tuesday before 14:00 -> that day at 14:00.
        (datetime(2027, 2, 23, 9, 30, tzinfo=UTC), datetime(2027, 2, 23, 14, 0, tzinfo=UTC)),
        # After 14:00 -> the next working day.
        (datetime(2027, 2, 23, 15, 0, tzinfo=UTC), datetime(2027, 2, 24, 14, 0, tzinfo=UTC)),
        # Friday after 14:00 and Saturday -> Monday.
        (datetime(2027, 2, 26, 16, 0, tzinfo=UTC), datetime(2027, 3, 1, 14, 0, tzinfo=UTC)),
        (datetime(2027, 2, 27, 8, 0, tzinfo=UTC), datetime(2027, 3, 1, 14, 0, tzinfo=UTC)),
        # Exactly 14:00 stays.
        (datetime(2027, 2, 23, 14, 0, tzinfo=UTC), datetime(2027, 2, 23, 14, 0, tzinfo=UTC)),
        # An instant in another zone is judged in UTC: 01:00+03:00 is 22:00 UTC the day before.
        (datetime(2027, 2, 24, 1, 0, tzinfo=timezone(timedelta(hours=3))),
         datetime(2027, 2, 24, 14, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_the_embargo_ends_at_the_publication_hour_of_a_working_day(earliest, expected):
    assert embargo.publication_instant(earliest, 14) == expected


def test_default_dates_follow_the_policy_from_receipt():
    settings = load_settings({})
    received = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    dates = embargo.default_dates(received, settings)
    assert dates.fix_due == received + timedelta(days=30)
    # +90 days is Tuesday 2027-02-23 12:00 -> 14:00 that day.
    assert dates.embargo_until == datetime(2027, 2, 23, 14, 0, tzinfo=UTC)
    assert dates.embargo_until.weekday() < 5


def test_the_publication_hour_and_lengths_are_configurable():
    settings = load_settings({"FOREWARN_PUBLICATION_HOUR": "9", "FOREWARN_EMBARGO_DAYS": "10"})
    received = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert embargo.default_dates(received, settings).embargo_until == datetime(
        2026, 12, 7, 9, 0, tzinfo=UTC
    )  # +10 days is Saturday 5 Dec 12:00 -> Monday 7 Dec 09:00


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-02-23", datetime(2027, 2, 23, 14, 0, tzinfo=UTC)),
        ("2027-02-23T10:15", datetime(2027, 2, 23, 10, 15, tzinfo=UTC)),
        ("2027-02-23T10:15Z", datetime(2027, 2, 23, 10, 15, tzinfo=UTC)),
        ("2027-02-23T10:15+02:00", datetime(2027, 2, 23, 8, 15, tzinfo=UTC)),
    ],
)
def test_instants_are_read_as_utc(text, expected):
    assert embargo.parse_instant(text, time(14)) == expected


def test_a_bad_instant_says_how_to_write_one():
    with pytest.raises(Refused, match="2027-02-23T14:00Z"):
        embargo.parse_instant("next tuesday", time(14))


def test_instants_are_shown_with_their_zone():
    shown = embargo.shown(datetime(2027, 2, 23, 16, 0, tzinfo=timezone(timedelta(hours=2))))
    assert shown == "2027-02-23 14:00 UTC"
