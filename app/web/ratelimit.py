"""Short-lived counters in Redis that limit how often something may be tried.

Two shapes: a `Limit` counts attempts in a fixed window and refuses past its number; a
`Backoff` lets a few failures pass, then makes each further try wait longer (it slows an
attacker down without locking the real owner out for long). Waits are judged by the caller's
clock (`at`), so they follow app.core.clock; Redis only forgets the counts in the end.
"""

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

import redis

log = logging.getLogger("forewarn.ratelimit")


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


@dataclass(frozen=True)
class Backoff:
    name: str
    free_failures: int  # failures before the first wait
    first_wait_seconds: int  # after the last free failure; doubled by each failure after it
    longest_wait_seconds: int
    forget_after_seconds: int  # the count is dropped this long after the last failure

    def wait_after(self, failures: int) -> int:
        if failures < self.free_failures:
            return 0
        doublings = min(failures - self.free_failures, 16)
        return min(self.first_wait_seconds * 2**doublings, self.longest_wait_seconds)


# Failed sign-ins from one address, whatever the accounts (successful ones are not counted).
LOGIN = Limit("login", attempts=10, window_seconds=15 * 60)
# Failed sign-ins for one account from one address: keyed on both, so failures from an
# attacker's address never keep the owner out from theirs.
LOGIN_PAIR = Backoff(
    "login-pair",
    free_failures=5,
    first_wait_seconds=60,
    longest_wait_seconds=15 * 60,
    forget_after_seconds=3600,
)
# Wrong authenticator codes after the right password, per account from any address: only
# someone who has the password can use this up.
LOGIN_CODE = Limit("login-code", attempts=10, window_seconds=15 * 60)


def _key(name: str, key: str) -> str:
    return f"forewarn:ratelimit:{name}:{key}"


def hit(connection: redis.Redis | None, limit: Limit, key: str) -> bool:
    """Count one attempt for key; False when the limit is exceeded in the current window.

    Without Redis the attempt is allowed (and logged): a lost Redis must not lock the security
    team out of their own desk.
    """
    if connection is None:
        return True
    counter = _key(limit.name, key)
    try:
        with connection.pipeline() as pipe:
            pipe.incr(counter)
            pipe.expire(counter, limit.window_seconds, nx=True)
            count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit %s not enforced: Redis unavailable (%s)", limit.name, exc)
        return True
    return int(count) <= limit.attempts


def exhausted(connection: redis.Redis | None, limit: Limit, key: str) -> bool:
    """Whether the limit is already used up for key (counts nothing)."""
    if connection is None:
        return False
    try:
        count = connection.get(_key(limit.name, key))
    except redis.RedisError as exc:
        log.warning("rate limit %s not enforced: Redis unavailable (%s)", limit.name, exc)
        return False
    return count is not None and int(count) >= limit.attempts


def retry_after(connection: redis.Redis | None, limit: Limit, key: str) -> int:
    """Seconds until the current window of key ends (and with it, the refusals)."""
    if connection is None:
        return 0
    try:
        left = connection.ttl(_key(limit.name, key))
    except redis.RedisError:
        return limit.window_seconds
    return int(left) if left and left > 0 else limit.window_seconds


# Takes back one counted attempt, only while its window lasts (a DECR after the key expired
# would leave a negative count without an expiry).
_REFUND = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end"


def refund(connection: redis.Redis | None, limit: Limit, key: str) -> None:
    """Give back the attempt hit() counted, for an attempt that turned out not to count (a
    successful sign-in). Counting first and giving back after keeps parallel attempts within
    the limit."""
    if connection is None:
        return
    with contextlib.suppress(redis.RedisError):
        connection.eval(_REFUND, 1, _key(limit.name, key))


def reset(connection: redis.Redis | None, limit: Limit | Backoff, key: str) -> None:
    if connection is None:
        return
    with contextlib.suppress(redis.RedisError):
        connection.delete(_key(limit.name, key))


def wait_left(connection: redis.Redis | None, backoff: Backoff, key: str, at: datetime) -> int:
    """Seconds before key may try again (0: now)."""
    if connection is None:
        return 0
    try:
        until = connection.hget(_key(backoff.name, key), "until")
    except redis.RedisError as exc:
        log.warning("back-off %s not enforced: Redis unavailable (%s)", backoff.name, exc)
        return 0
    if until is None:
        return 0
    return max(0, int(float(until) - at.timestamp() + 0.999))


def failed(connection: redis.Redis | None, backoff: Backoff, key: str, at: datetime) -> int:
    """Count one failure for key; the seconds it must now wait before its next try."""
    if connection is None:
        return 0
    counter = _key(backoff.name, key)
    try:
        failures = connection.hincrby(counter, "failures", 1)
        wait = backoff.wait_after(int(failures))
        with connection.pipeline() as pipe:
            if wait:
                pipe.hset(counter, "until", at.timestamp() + wait)
            pipe.expire(counter, max(backoff.forget_after_seconds, wait))
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("back-off %s not enforced: Redis unavailable (%s)", backoff.name, exc)
        return 0
    return wait
