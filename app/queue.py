"""Redis connections and RQ queues. Jobs carry ids only and go through the JSON serializer."""

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from app.errors import OperatorError

QUEUE_NAME = "forewarn"


def connect(url: str) -> redis.Redis:
    try:
        return redis.Redis.from_url(url)
    except ValueError as exc:
        raise OperatorError(f"FOREWARN_REDIS_URL={url!r} is not usable: {exc}") from None


def check(connection: redis.Redis, url: str) -> None:
    """Fail with one line when Redis does not answer."""
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise OperatorError(
            f"Redis at {url} does not answer ({exc}); start it or fix FOREWARN_REDIS_URL"
        ) from None


def work_queue(connection: redis.Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def _only_ids(ids) -> None:
    for value in ids:
        if not isinstance(value, int | str):
            raise TypeError(f"jobs carry ids only, not {type(value).__name__}")


def enqueue(connection: redis.Redis, function: str, *ids: int | str, job_id: str | None = None):
    """Queue `function` (a dotted path) with ids as its only arguments."""
    _only_ids(ids)
    return work_queue(connection).enqueue(function, *ids, job_id=job_id)


def enqueue_each(connection: redis.Redis, function: str, jobs: list[tuple[int | str, str]]) -> int:
    """Queue `function` once for each (id, job id), in one round trip to Redis (the intake's
    writer queues a whole committed batch this way); returns how many."""
    _only_ids(value for value, _ in jobs)
    if jobs:
        work_queue(connection).enqueue_many(
            [Queue.prepare_data(function, (value,), job_id=job_id) for value, job_id in jobs]
        )
    return len(jobs)
