"""The dashboard's picture: each open embargo as a bar from receipt through fix-due to the
embargo's end, today marked. Geometry only; the template draws it as SVG (no JavaScript)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 900  # the drawing's coordinate width; it scales to the page
LABEL = 150  # room for the tracking id on the left
ROW = 28


@dataclass(frozen=True)
class Bar:
    tracking_id: str
    title: str
    y: int
    start: float  # receipt
    fix: float  # fix due (clamped to the bar)
    end: float  # embargo end
    overdue: bool
    reported_at: datetime
    fix_due: datetime | None
    embargo_until: datetime


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    today: float
    height: int
    first: datetime
    last: datetime
    ticks: list[tuple[float, str]]


def chart(vulnerabilities, at: datetime) -> Chart:
    if not vulnerabilities:
        return Chart([], LABEL, ROW, at, at, [])
    first = min(min(v.reported_at for v in vulnerabilities), at) - timedelta(days=2)
    last = max(max(v.embargo_until for v in vulnerabilities), at) + timedelta(days=2)
    span = (last - first).total_seconds()

    def x(instant: datetime) -> float:
        return round(LABEL + (WIDTH - LABEL - 10) * (instant - first).total_seconds() / span, 1)

    bars = []
    for row, v in enumerate(vulnerabilities):
        fix = min(max(v.fix_due or v.reported_at, v.reported_at), v.embargo_until)
        overdue = (v.fix_due is not None and v.fix_due < at and v.status != "fixed") or (
            v.embargo_until < at
        )
        bars.append(
            Bar(
                v.tracking_id,
                v.title,
                20 + row * ROW,
                x(v.reported_at),
                x(fix),
                x(v.embargo_until),
                overdue,
                v.reported_at,
                v.fix_due,
                v.embargo_until,
            )
        )
    ticks, month = [], datetime(first.year, first.month, 1, tzinfo=first.tzinfo)
    while month <= last:
        if month >= first:
            ticks.append((x(month), month.strftime("%b %Y")))
        month = (month + timedelta(days=32)).replace(day=1)
    return Chart(bars, x(at), 30 + len(bars) * ROW, first, last, ticks)
