"""The append-only audit log of privileged actions."""

import peewee

from app.models.accounts import User
from app.models.base import BaseModel, UTCDateTimeField


class AuditEvent(BaseModel):
    actor = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    actor_label = peewee.CharField()  # kept even if the account goes: "admin@x", "cli", "system"
    action = peewee.CharField(index=True)
    target = peewee.CharField(default="", index=True)
    at = UTCDateTimeField(index=True)
    details = peewee.TextField(default="{}")  # JSON
