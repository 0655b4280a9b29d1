"""RQ job functions: ids in, one domain call, no logic of their own.

Each job opens the database itself (a forking worker must not share its parent's connection)
and reads the settings from the environment the worker was started with.
"""

import functools

from app import clock, outbox, queue, reconcile, reports, runtime
from app import lift as lift_module
from app.config import Settings, load_settings


@functools.cache
def _settings() -> Settings:
    return load_settings()


def _redis():
    return queue.connect(runtime.redis_url(_settings()))


def process_inbound(message_id: int) -> str:
    settings = _settings()
    with runtime.open_db(settings).connection_context():
        keyring = runtime.service_keyring(settings)
        outcome = reports.process_inbound(message_id, keyring, settings, clock.now())
        # Acknowledgements and forwards go out now, not at the reconciler's next pass.
        reconcile.queue_due_deliveries(_redis(), clock.now())
    return outcome


def send_delivery(delivery_id: int) -> str:
    settings = _settings()
    with runtime.open_db(settings).connection_context():
        keyring = runtime.service_keyring(settings)
        transport = outbox.transport_for(settings)
        return outbox.send(delivery_id, keyring, settings, transport, clock.now())


def lift(vulnerability_id: int) -> str:
    settings = _settings()
    with runtime.open_db(settings).connection_context():
        outcome = lift_module.lift(vulnerability_id, clock.now(), settings)
        if outcome == "lifted":
            reconcile.queue_due_deliveries(_redis(), clock.now())  # the announcement, now
            lift_module.complete(vulnerability_id, clock.now(), settings)
        elif outcome == "held":
            reconcile.queue_due_deliveries(_redis(), clock.now())
    return outcome


def complete_publication(vulnerability_id: int) -> dict:
    settings = _settings()
    with runtime.open_db(settings).connection_context():
        return lift_module.complete(vulnerability_id, clock.now(), settings)
