"""Short-lived counters in Redis that limit how often something may be tried."""

import contextlib
import logging
from dataclasses import dataclass

import redis

log = logging.getLogger("forewarn.ratelimit")


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


LOGIN = Limit("login", attempts=10, window_seconds=15 * 60)


def hit(connection: redis.Redis | None, limit: Limit, key: str) -> bool:
    """Count one attempt for key; False when the limit is exceeded in the current window.

    Without Redis the attempt is allowed (and logged): a lost Redis must not lock the security
    team out of their own desk.
    """
    if connection is None:
        return True
    counter = f"forewarn:ratelimit:{limit.name}:{key}"
    try:
        with connection.pipeline() as pipe:
            pipe.incr(counter)
            pipe.expire(counter, limit.window_seconds, nx=True)
            count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit %s not enforced: Redis unavailable (%s)", limit.name, exc)
        return True
    return int(count) <= limit.attempts


def reset(connection: redis.Redis | None, limit: Limit, key: str) -> None:
    if connection is None:
        return
    with contextlib.suppress(redis.RedisError):
        connection.delete(f"forewarn:ratelimit:{limit.name}:{key}")
