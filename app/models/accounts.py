"""People who sign in: the security team, admins and registrants; single-use tokens."""

import peewee

from app.models.base import BaseModel, UTCDateTimeField

ROLES = ("admin", "team", "registrant")


class User(BaseModel):
    email = peewee.CharField(unique=True)
    password_hash = peewee.CharField()
    role = peewee.CharField(choices=[(r, r) for r in ROLES])
    totp_secret = peewee.CharField(null=True)
    totp_last_step = peewee.IntegerField(null=True)  # RFC 6238: each code is accepted once
    active = peewee.BooleanField(default=True)
    # Rotated at every password change and logout-everywhere; flask-login's id is this token,
    # so old sessions and remember-me cookies stop working.
    session_token = peewee.CharField(unique=True)
    created_at = UTCDateTimeField()
    last_login_at = UTCDateTimeField(null=True)
    away = peewee.BooleanField(default=False)  # skipped by the triage rotation
    last_assigned_at = UTCDateTimeField(null=True)  # round-robin: the longest-waiting is next

    @classmethod
    def security_team(cls):
        return cls.select().where(cls.role.in_(("admin", "team")), cls.active == True)  # noqa: E712


class UsedToken(BaseModel):
    """itsdangerous tokens are signed, not stateful: single use is recorded here."""

    purpose = peewee.CharField()
    token_hash = peewee.CharField()
    used_at = UTCDateTimeField()

    class Meta:
        indexes = ((("purpose", "token_hash"), True),)
