"""RQ job functions: ids in, one domain call, no logic of their own.

Jobs run inside the worker process (RQ's SimpleWorker: no fork, so no database connection is
ever carried into a child), with the settings of the environment the worker was started with.
The database, the service keyring and the relay connection are opened once per process; each
job holds a database connection of its own for its duration.
"""

import functools
import logging

from app.core import clock
from app.core.config import Settings, load_settings
from app.disclosure import lift as lift_module
from app.disclosure import provider
from app.outbox import sending
from app.reports import processing
from app.workers import queue, reconcile, runtime

log = logging.getLogger("forewarn.jobs")


@functools.cache
def _settings() -> Settings:
    return load_settings()


def _redis():
    return queue.connect(runtime.redis_url(_settings()))


def _database(settings: Settings):
    return runtime.shared_db(settings)


@functools.cache
def _keyring(settings: Settings):
    return runtime.service_keyring(settings)


@functools.cache
def _transport(settings: Settings):
    return sending.transport_for(settings)


def process_inbound(message_id: int) -> str:
    settings = _settings()
    with _database(settings).connection_context():
        keyring = _keyring(settings)
        outcome = processing.process_inbound(message_id, keyring, settings, clock.now())
        # Acknowledgements and forwards go out now, not at the reconciler's next pass.
        reconcile.queue_due_deliveries(_redis(), clock.now())
    return outcome


def send_deliveries(bucket: int) -> dict:
    """The due deliveries whose ids fall in this bucket (app.workers.reconcile.BUCKET of them)."""
    settings = _settings()
    first = bucket * reconcile.BUCKET
    with _database(settings).connection_context():
        return sending.send_many(
            list(range(first, first + reconcile.BUCKET)),
            _keyring(settings),
            settings,
            _transport(settings),
            clock.now,
        )


def lift(vulnerability_id: int) -> str:
    settings = _settings()
    with _database(settings).connection_context():
        outcome = lift_module.lift(vulnerability_id, clock.now(), settings)
        if outcome == "lifted":
            reconcile.queue_due_deliveries(_redis(), clock.now())  # the announcement, now
            lift_module.complete_publication(vulnerability_id, clock.now(), settings)
            _csaf_directory(settings)
        elif outcome == "held":
            reconcile.queue_due_deliveries(_redis(), clock.now())
    return outcome


def complete_publication(vulnerability_id: int) -> dict:
    settings = _settings()
    with _database(settings).connection_context():
        return lift_module.complete(vulnerability_id, clock.now(), settings)


def _csaf_directory(settings: Settings) -> None:
    """The CSAF provider directory with the advisories just published, now rather than at the
    reconciler's next pass (which tries again if this fails)."""
    try:
        provider.tick(clock.now(), settings, lambda: _keyring(settings))
    except Exception as exc:
        log.warning("CSAF provider directory not built after the lift: %s", type(exc).__name__)
