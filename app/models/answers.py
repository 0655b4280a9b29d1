"""Product makers' answers to pre-disclosure alerts (#17)."""

import peewee

from app.models.base import BaseModel, UTCDateTimeField
from app.models.registry import Registrant
from app.models.vulns import Advisory, Vulnerability


class Answer(BaseModel):
    """What one registrant said about one vulnerability. Rows are never changed: the newest of
    a pair is the registrant's current answer, the older ones its history. No row at all is
    "no_answer", which is never read as "not affected" (app.registry.answers)."""

    registrant = peewee.ForeignKeyField(Registrant, backref="answers", on_delete="CASCADE")
    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="answers", on_delete="CASCADE")
    # The alert version they answered, when known (a reply names it; the web page shows one).
    advisory = peewee.ForeignKeyField(Advisory, null=True, on_delete="SET NULL")
    status = peewee.CharField()
    justification = peewee.CharField(null=True)  # with "not_affected" only
    statement = peewee.TextField(default="")  # shown to the team; public only with consent
    public_consent = peewee.BooleanField(default=False)
    via = peewee.CharField()  # "web" or "mail"
    at = UTCDateTimeField()

    class Meta:
        indexes = ((("vulnerability", "registrant"), False),)
