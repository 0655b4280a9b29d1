"""The append-only audit log: every privileged action is recorded with its actor and time."""

import json
from datetime import datetime

from app.models import AuditEvent, User


def record(
    actor: User | None,
    action: str,
    at: datetime,
    target: str = "",
    details: dict | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    label = actor_label or (actor.email if actor is not None else "system")
    return AuditEvent.create(
        actor=actor,
        actor_label=label,
        action=action,
        target=target,
        at=at,
        details=json.dumps(details or {}, sort_keys=True),
    )
