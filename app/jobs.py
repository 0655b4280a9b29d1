"""The job names of releases before app/ was regrouped (app.jobs.*): jobs queued or
scheduled in Redis by such a release still run after an upgrade."""

from app.workers.jobs import *  # noqa: F403
