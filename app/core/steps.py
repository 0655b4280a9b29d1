"""Warnings before a deadline, in steps ("30 days", "7 days", "past"): which step is due."""

from datetime import datetime, timedelta


def due(steps: tuple[tuple[str, timedelta], ...], deadline: datetime, at: datetime) -> str | None:
    """The step due at `at`: the nearest one reached, of `steps` given nearest first as (name,
    how long before the deadline). A missed pass skips to it; None before the farthest."""
    for name, before in steps:
        if at >= deadline - before:
            return name
    return None
