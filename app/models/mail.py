"""Mail in (raw messages, correspondence) and mail out (one Delivery per message and recipient)."""

import peewee

from app.models.accounts import User
from app.models.base import BaseModel, UTCDateTimeField
from app.models.registry import PublicKey
from app.models.vulns import Advisory, Vulnerability

# "answer": a product maker's answer to an alert, read (recorded or refused: the note says which;
# app/registry/mail_answers.py), never a report.
INBOUND_STATES = ("received", "processed", "quarantined", "junk", "answer")
DELIVERY_STATES = ("queued", "sent", "failed", "bounced")
# Every kind of mail the outbox sends: app/outbox/deliveries.py queues only these, and
# app/outbox/letters.py has one composer for each.
DELIVERY_KINDS = (
    # reports: answers to whoever wrote in, replies to the reporter, forwards to the team
    "ack",
    "reply-ack",
    "receipt",
    "unreadable",
    "reply",
    "rejected",
    "team-forward",
    "follow-up-link",  # the reporter's follow-up link, reissued by the team
    # vulns: reminders and the embargo's changes, to the team and the reporter; a case's
    # finding map to its reporter; a duplicate's reporter told where it is tracked
    "reminder",
    "embargo-changed",
    "lift-held",
    "case-map",
    "duplicate",
    # registry: alerts, vetting, key expiry and re-confirmation, subscriptions
    "alert",
    "alert-missed",
    "alert-embargo",
    "verify-key",
    "registrant-rejected",
    "key-expiry",
    "reconfirm",
    "registry-admin",
    "unsubscribed",
    "sign-up-attempt",
    "answer-nudge",  # the one reminder to answer an alert before the lift (#17)
    # registry: a product maker's answer to an alert by mail, recorded or refused
    "answer-recorded",
    "answer-refused",
    # disclosure: the lift's mails
    "announcement",
    "embargo-lifted",
    "publication",
    # disclosure: what the pre-flight found wrong before a lift (or all clear again)
    "preflight",
    # servicekey: the service key's expiry, rotation and compromise
    "service-key-expiry",
    "key-rotation",
    "key-compromise",
    "key-compromise-reporter",
    # accounts
    "password-reset",
)


INBOUND_CHANNELS = ("mail", "web-report", "web-reply")


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
    # How it came (INBOUND_CHANNELS): by mail, or through the portal (the report form, or a
    # reply from a follow-up page), already encrypted to the service key by the web process.
    channel = peewee.CharField(default="mail", choices=[(c, c) for c in INBOUND_CHANNELS])
    # A web report: the tracking id its answer page gave (processing files it under that id).
    # A web reply: the tracking id of the case whose follow-up link sent it.
    tracking_id = peewee.CharField(null=True, index=True)


class FollowUpLink(BaseModel):
    """A reporter's private way back to their case without an account (app/reports/followup.py).
    The token is HMAC(secret key, nonce): recomputed to mail it, never stored; only its sha256
    is, to find the link. Reissuing revokes the old row and makes a new one."""

    tracking_id = peewee.CharField(index=True)  # the case's (its root's) tracking id
    nonce = peewee.CharField()
    token_hash = peewee.CharField(unique=True)
    created_at = UTCDateTimeField()
    revoked_at = UTCDateTimeField(null=True)


class Delivery(BaseModel):
    kind = peewee.CharField(choices=[(k, k) for k in DELIVERY_KINDS])
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
    encrypted = peewee.BooleanField(default=False)  # any of its content arrived encrypted
    signer_fingerprint = peewee.CharField(null=True)
    # JSON list: the parts of an inbound message that arrived without encryption ("the text",
    # "the attachment poc.py", ...); empty when all of it arrived encrypted.
    unencrypted_parts = peewee.TextField(default="[]")
    # Inbound: the From address as the message gave it (unauthenticated: "" when not recorded),
    # and a key it carried that the team may confirm as the reporter's (never pinned by itself).
    sender = peewee.CharField(default="")
    offered_key = peewee.ForeignKeyField(PublicKey, null=True, on_delete="SET NULL")


class ReceivedFile(BaseModel):
    """A file attached to an inbound message, as the reporter meant it (decrypted when it
    arrived encrypted). Not called Attachment: mail.parse and mail.compose have theirs."""

    correspondence = peewee.ForeignKeyField(Correspondence, backref="files", on_delete="CASCADE")
    name = peewee.CharField(max_length=255)
    content_type = peewee.CharField(default="application/octet-stream")
    size = peewee.IntegerField()
    sha256 = peewee.CharField(index=True)
    content = peewee.BlobField(null=True)  # None: dropped (too large) or purged
    encrypted = peewee.BooleanField(default=False)  # it arrived encrypted
    dropped = peewee.TextField(default="")  # why the content is not kept; empty when it is
