"""When the lift runs: its job scheduled for the embargo's end (RQ's scheduler), rescheduled
when the end moves, queued at once when the end has passed; the publication steps queued after
a lift; and the reconciler's part, which schedules the lifts coming soon and catches up on
anything Redis lost.

The lift (app.disclosure.lift) says what is due and knows nothing of the queue; this module
puts the jobs where the workers find them. Redis being away only delays a schedule to the
reconciler's next pass: the database says what is due.
"""

import logging
from datetime import datetime, timedelta

import redis

from app.core.config import Settings
from app.disclosure import lift
from app.models import Vulnerability
from app.vulns import revisions
from app.workers import queue

log = logging.getLogger("forewarn.lift")

HORIZON = timedelta(minutes=10)  # the reconciler schedules the lifts this close (each minute)


def lift_job_id(v: Vulnerability) -> str:
    """One job per vulnerability and embargo end: moving the embargo schedules a new one, and
    the old one, if it runs, finds nothing due."""
    return f"lift-{v.id}-{int(v.embargo_until.timestamp())}"


def schedule_lift(connection: redis.Redis, v: Vulnerability, at: datetime) -> str:
    """Queue the lift for v's embargo end (at once, when it has passed). Returns "scheduled",
    "queued", "waiting" (it already is) or "none" (no embargo end, or nothing to lift)."""
    if not lift.awaits_lift(v):
        return "none"
    name = lift_job_id(v)
    due_now = v.embargo_until <= at
    if queue.is_waiting(connection, queue.LIFT, name, due_now=due_now):
        return "waiting"
    if due_now:
        queue.enqueue(connection, queue.LIFT, v.id, job_id=name)
        return "queued"
    queue.work_queue(connection).enqueue_at(v.embargo_until, queue.LIFT, v.id, job_id=name)
    return "scheduled"


def queue_publication_steps(connection: redis.Redis, vulnerability_id: int) -> None:
    """The steps after a lift (exports, the public page, the CVE record), for a worker."""
    name = f"publication-{vulnerability_id}"
    if not queue.is_waiting(connection, queue.COMPLETE_PUBLICATION, name):
        queue.enqueue(connection, queue.COMPLETE_PUBLICATION, vulnerability_id, job_id=name)


def after_revision(connection: redis.Redis, v: Vulnerability, since: datetime) -> bool:
    """After an action that began at `since` changed a published vulnerability's public
    fields (a revision): queue the publication steps it made due (app.vulns.revisions) now,
    rather than at the reconciler's next pass. Returns whether it made a revision."""
    if not revisions.made_since(v, since):
        return False
    try:
        queue_publication_steps(connection, v.id)
    except redis.RedisError as exc:
        log.warning("publication steps of %s wait for the reconciler: %s", v.tracking_id, exc)
    return True


def follow(connection: redis.Redis, change: lift.AfterChange, at: datetime) -> str:
    """Do with the workers what a change means for the lift (lift.after_change): queue the
    publication steps of a lift that just happened, or (re)schedule the lift. Returns the
    lift's outcome, "scheduled", or "none"."""
    v = change.vulnerability
    if change.outcome == "lifted":
        try:
            queue_publication_steps(connection, v.id)
        except redis.RedisError as exc:
            log.warning("publication steps of %s wait for the reconciler: %s", v.id, exc)
    elif change.outcome == lift.SCHEDULE:
        try:
            schedule_lift(connection, v, at)
        except redis.RedisError as exc:
            log.warning("lift of %s scheduled by the reconciler instead: %s", v.tracking_id, exc)
        return "scheduled"
    return change.outcome


def after_change(
    connection: redis.Redis, v: Vulnerability, at: datetime, settings: Settings
) -> str:
    """After the team moved an embargo end or a state: lift now when it is due (an embargo
    end in the past is an early lift), otherwise (re)schedule the lift. Returns lift()'s
    outcome, "scheduled", or "none"."""
    return follow(connection, lift.after_change(v, at, settings), at)


def reconcile(connection: redis.Redis, at: datetime) -> int:
    """The reconciler's part: lifts overdue or coming within the horizon, and publications
    with a step to retry. Returns how many jobs it queued or scheduled."""
    count = 0
    for v in lift.to_schedule(at, at + HORIZON):
        count += schedule_lift(connection, v, at) in ("queued", "scheduled")
    for publication in lift.pending(at):
        queue_publication_steps(connection, publication.vulnerability_id)
        count += 1
    return count
