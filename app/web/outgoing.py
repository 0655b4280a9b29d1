"""After a request queued mail: hand it to the workers now rather than at the reconciler's
next pass."""

import logging

import redis
from flask import current_app

from app.core import clock
from app.workers import reconcile

log = logging.getLogger("forewarn.web")


def send_soon() -> None:
    """Queue due deliveries now; if Redis does not answer, the reconciler sends them within a
    minute (the rows are already committed)."""
    try:
        reconcile.queue_due_deliveries(current_app.extensions["forewarn.redis"], clock.now())
    except redis.RedisError as exc:
        log.warning("could not queue deliveries now (%s); the reconciler will", exc)
