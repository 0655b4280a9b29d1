"""How long a worker holds what it claimed, and how long failed work waits before its next try."""

from datetime import timedelta

# A worker's hold on a row it claimed (a delivery, an inbound message): while the lease lasts,
# the reconciler leaves the row alone; once it ends (the worker died), the row is due again.
# Deliveries take theirs from FOREWARN_DELIVERY_LEASE_SECONDS, whose default this is.
LEASE = timedelta(minutes=5)
LEASE_SECONDS = int(LEASE.total_seconds())

# The waits after the 1st, 2nd, ... failed try; past the end, the last one again.
DELIVERY_BACKOFF = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360))
PUBLICATION_BACKOFF = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60))


def backoff(attempts: int, table: tuple[timedelta, ...]) -> timedelta:
    """The wait before the next try, after `attempts` tries have failed."""
    return table[min(attempts - 1, len(table) - 1)]
