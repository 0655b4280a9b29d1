"""Jobs for the queue tests, importable by dotted path like real ones (RQ's habit)."""

from app.core import audit, clock
from app.models import User


def record_sign_in_reminder(user_id: int) -> str:
    user = User.get_by_id(user_id)
    audit.record(None, "test.reminder", clock.now(), target=user.email)
    return user.email


def spin_in_header_fallback(seconds: int) -> str:
    """A header parse that takes `seconds`, inside the fallback that takes a failed parse for an
    absent header: the job's timeout must end the job, not be taken for a bad header."""
    import time

    from mail import mime

    def parse_slowly() -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass
        return "parsed"

    return mime.safe(parse_slowly, "taken for a bad header")


def hold_until_released(key: str) -> str:
    """A slow inbound job: says it has started, then waits (at most a minute) until the test
    releases it. The worker running it is busy all that time."""
    import os

    import redis

    connection = redis.Redis.from_url(os.environ["FOREWARN_REDIS_URL"])
    connection.set(f"{key}-started", 1)
    released = connection.blpop([key], timeout=60)
    return "released" if released else "gave up"


def recurse_forever(depth: int) -> int:
    """A job that crashes with a RecursionError (thousands of frames)."""
    return recurse_forever(depth + 1) + 1
