"""Redis connections and RQ queues. Jobs carry ids only and go through the JSON serializer.

Two queues, so that mail to send and embargoes to lift never wait behind a slow inbound
message: QUEUE_NAME holds the urgent work (deliveries, lifts, publication, everything but
inbound processing), INBOUND_QUEUE the processing of received messages. Workers serve the
urgent queue first, and `forewarn up` runs one worker for the urgent queue alone.
"""

import traceback

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import UnixSignalDeathPenalty

from app.core.errors import OperatorError, OutOfTime

QUEUE_NAME = "forewarn"
INBOUND_QUEUE = "forewarn-inbound"

# The jobs, by the dotted path RQ stores in Redis: named here alone, for every enqueuer (the
# functions are in app/workers/jobs.py; app/jobs.py keeps the app.jobs.* names of releases
# before app/ was regrouped, for jobs such a release left queued or scheduled).
PROCESS_INBOUND = "app.workers.jobs.process_inbound"
SEND_DELIVERIES = "app.workers.jobs.send_deliveries"
LIFT = "app.workers.jobs.lift"
COMPLETE_PUBLICATION = "app.workers.jobs.complete_publication"
JOBS = (PROCESS_INBOUND, SEND_DELIVERIES, LIFT, COMPLETE_PUBLICATION)
_INBOUND_JOBS = frozenset({PROCESS_INBOUND})


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
    """The urgent queue: deliveries, lifts, publication steps and any other job but inbound."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def inbound_queue(connection: redis.Redis) -> Queue:
    """Processing of received messages: it may be slow, so nothing urgent waits behind it."""
    return Queue(INBOUND_QUEUE, connection=connection, serializer=JSONSerializer)


def queue_for(connection: redis.Redis, function: str) -> Queue:
    """The queue a job of `function` (a dotted path) goes to."""
    return inbound_queue(connection) if function in _INBOUND_JOBS else work_queue(connection)


def is_waiting(
    connection: redis.Redis,
    function: str,
    job_id: str,
    due_now: bool = True,
    queued: set[str] | None = None,
) -> bool:
    """Is this job sure to run, so that queueing it again would only add noise? A job that
    runs twice finds the second time that its work is done (a delivery's lease in the
    database, a lift's state), so when in doubt the answer is no.

    For work due now only a job in its queue counts: a worker killed with -9 leaves its job
    "started" for good, or "queued" but out of the queue when it died between taking it and
    starting it, and a killed worker's scheduler lock can keep a "scheduled" job from being
    moved for many minutes. Work due later counts as waiting while RQ holds it for its time.
    `queued`: the queue's job ids, when the caller asks about many jobs at once."""
    if due_now:
        if queued is None:
            queued = set(queue_for(connection, function).get_job_ids())
        return job_id in queued
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status() in ("queued", "scheduled", "deferred")


def worker_queues(connection: redis.Redis, urgent_only: bool = False) -> list[Queue]:
    """What a worker serves, in order: RQ takes the next job from the first non-empty queue,
    so urgent work always goes before waiting inbound messages."""
    if urgent_only:
        return [work_queue(connection)]
    return [work_queue(connection), inbound_queue(connection)]


class _Deadline(UnixSignalDeathPenalty):
    """RQ's job timeout, raising OutOfTime (a BaseException) instead of JobTimeoutException
    (an Exception, which any `except Exception` in the job would swallow and carry on)."""

    def __init__(self, timeout, exception=None, **kwargs):
        super().__init__(timeout, OutOfTime, **kwargs)


class Worker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process, no fork) whose job timeout cannot be
    caught by the job, and which logs a failed job in one line."""

    death_penalty_class = _Deadline

    def handle_exception(self, job, *exc_info):
        """RQ logs the whole traceback with the exception's text, which may quote a message
        (and a RecursionError's runs to thousands of lines): here the type and where it was
        raised. The traceback stays with the failed job in Redis."""
        kind, _, trace = exc_info
        frames = traceback.extract_tb(trace)
        where = (
            f" at {frames[-1].filename.rpartition('/')[2]}:{frames[-1].lineno}" if frames else ""
        )
        self.log.error("job %s failed: %s%s", job.id, getattr(kind, "__name__", kind), where)
        for handler in self._exc_handlers:
            if handler(job, *exc_info) is False:
                break


def _only_ids(ids) -> None:
    for value in ids:
        if not isinstance(value, int | str):
            raise TypeError(f"jobs carry ids only, not {type(value).__name__}")


def enqueue(connection: redis.Redis, function: str, *ids: int | str, job_id: str | None = None):
    """Queue `function` (a dotted path) with ids as its only arguments."""
    _only_ids(ids)
    return queue_for(connection, function).enqueue(function, *ids, job_id=job_id)


def enqueue_each(connection: redis.Redis, function: str, jobs: list[tuple[int | str, str]]) -> int:
    """Queue `function` once for each (id, job id), in one round trip to Redis (the intake's
    writer queues a whole committed batch this way); returns how many."""
    _only_ids(value for value, _ in jobs)
    if jobs:
        queue_for(connection, function).enqueue_many(
            [Queue.prepare_data(function, (value,), job_id=job_id) for value, job_id in jobs]
        )
    return len(jobs)
