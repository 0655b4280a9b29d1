"""Product makers in the vulnerability registry, and the OpenPGP certificates we encrypt to."""

import peewee

from app.models.accounts import User
from app.models.base import BaseModel, UTCDateTimeField

REGISTRANT_STATES = ("unverified", "pending_review", "approved", "rejected", "suspended", "removed")


class PublicKey(BaseModel):
    """A certificate held in the database (never in the service keyring), by pinned fingerprint."""

    fingerprint = peewee.CharField(index=True)
    armored = peewee.TextField()
    owner = peewee.ForeignKeyField(User, null=True, backref="keys", on_delete="SET NULL")
    expires = UTCDateTimeField(null=True)
    usable = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField()


class Registrant(BaseModel):
    user = peewee.ForeignKeyField(User, unique=True, backref="registrant", on_delete="CASCADE")
    organisation = peewee.CharField()
    products = peewee.TextField(default="")
    # Package URLs (purls) of what they ship, one a line, checked by app.registry.targeting.
    package_urls = peewee.TextField(default="")
    website = peewee.CharField(default="")
    justification = peewee.TextField(default="")
    status = peewee.CharField(
        default="unverified", choices=[(s, s) for s in REGISTRANT_STATES], index=True
    )
    reviewer = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    notes = peewee.TextField(default="")
    key = peewee.ForeignKeyField(PublicKey, null=True, on_delete="SET NULL")
    pinned_fingerprint = peewee.CharField(null=True, unique=True)
    encryption_expires = UTCDateTimeField(null=True)
    policy_version = peewee.CharField(null=True)
    policy_agreed_at = UTCDateTimeField(null=True)
    listed_publicly = peewee.BooleanField(default=False)
    unsubscribed = peewee.BooleanField(default=False)
    # Unsubscribe links of alerts queued before this no longer work (app.registry.subscriptions).
    resubscribed_at = UTCDateTimeField(null=True)
    last_confirmed_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    @classmethod
    def approved(cls):
        return cls.select().where(cls.status == "approved", cls.unsubscribed == False)  # noqa: E712
