"""Mail in (raw messages, correspondence) and mail out (one Delivery per message and recipient)."""

import peewee

from app.models.accounts import User
from app.models.base import BaseModel, UTCDateTimeField
from app.models.vulns import Advisory, Vulnerability

INBOUND_STATES = ("received", "processed", "quarantined", "junk")
DELIVERY_STATES = ("queued", "sent", "failed", "bounced")


class InboundMessage(BaseModel):
    raw = peewee.BlobField()
    sha256 = peewee.CharField(index=True)
    envelope_from = peewee.CharField(default="")
    envelope_to = peewee.TextField(default="")  # recipients, one per line
    received_at = UTCDateTimeField(index=True)
    state = peewee.CharField(default="received", choices=[(s, s) for s in INBOUND_STATES])
    attempts = peewee.IntegerField(default=0)
    error = peewee.TextField(default="")
    processed_at = UTCDateTimeField(null=True)
    # A worker's lease: while it is in the future, the reconciler leaves the row alone.
    claimed_until = UTCDateTimeField(null=True)
    # Set by processing: a sender's retry of the same message has both the same.
    message_id_header = peewee.CharField(null=True, index=True)
    body_sha256 = peewee.CharField(null=True)


class Delivery(BaseModel):
    kind = peewee.CharField()  # ack, alert, notice, announcement, verification, ...
    advisory = peewee.ForeignKeyField(Advisory, null=True, backref="deliveries")
    vulnerability = peewee.ForeignKeyField(Vulnerability, null=True, backref="deliveries")
    user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    recipient = peewee.CharField()
    fingerprint = peewee.CharField(null=True)
    payload = peewee.TextField(default="{}")  # JSON: what the composer needs besides the rows
    state = peewee.CharField(default="queued", choices=[(s, s) for s in DELIVERY_STATES])
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True)
    last_answer = peewee.TextField(default="")
    message_id = peewee.CharField(null=True)
    created_at = UTCDateTimeField()
    sent_at = UTCDateTimeField(null=True)
    claimed_until = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),)


class Correspondence(BaseModel):
    vulnerability = peewee.ForeignKeyField(
        Vulnerability, backref="correspondence", on_delete="CASCADE"
    )
    direction = peewee.CharField(choices=[("in", "in"), ("out", "out")])
    message = peewee.ForeignKeyField(InboundMessage, null=True)
    delivery = peewee.ForeignKeyField(Delivery, null=True)
    author = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    at = UTCDateTimeField()
    subject = peewee.CharField(default="")
    text = peewee.TextField(default="")
    signature_status = peewee.CharField(default="unsigned")
    encrypted = peewee.BooleanField(default=False)
    signer_fingerprint = peewee.CharField(null=True)
