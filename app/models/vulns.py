"""Vulnerabilities, the CVE ids they get, and the advisory versions written about them."""

import peewee

from app.models.accounts import User
from app.models.base import BaseModel, UTCDateTimeField
from app.models.registry import PublicKey

VULN_STATES = ("new", "triage", "accepted", "fixed", "published", "rejected")
PUBLIC_STATES = ("accepted", "fixed", "published")
CVE_STATES = ("available", "assigned", "published", "rejected")


class CveId(BaseModel):
    cve_id = peewee.CharField(unique=True)
    block = peewee.CharField(index=True)
    year = peewee.IntegerField()
    number = peewee.IntegerField()
    state = peewee.CharField(default="available", choices=[(s, s) for s in CVE_STATES])
    source = peewee.CharField(default="block")  # "block" or "cve-services"
    assigned_at = UTCDateTimeField(null=True)
    reason = peewee.TextField(default="")

    class Meta:
        indexes = ((("state", "year", "number"), False),)


class Vulnerability(BaseModel):
    tracking_id = peewee.CharField(unique=True)
    title = peewee.CharField(default="")
    description = peewee.TextField(default="")
    severity = peewee.CharField(default="")  # a CVSS vector
    cvss_score = peewee.FloatField(null=True)
    affected = peewee.TextField(default="")  # "PRODUCT RANGE; ..." (CONTRACT.md)
    cwe = peewee.CharField(default="")
    status = peewee.CharField(default="new", choices=[(s, s) for s in VULN_STATES], index=True)
    rejection_reason = peewee.TextField(default="")
    reporter_email = peewee.CharField(default="")
    reporter_name = peewee.CharField(default="")
    reporter_key = peewee.ForeignKeyField(PublicKey, null=True, on_delete="SET NULL")
    credit_reporter = peewee.BooleanField(default=True)
    credits = peewee.TextField(default="")
    assignee = peewee.ForeignKeyField(User, null=True, backref="assigned", on_delete="SET NULL")
    cve = peewee.ForeignKeyField(CveId, null=True, unique=True, backref="vulnerability")
    fix_refs = peewee.TextField(default="")  # private until the lift
    reported_at = UTCDateTimeField()
    fix_due = UTCDateTimeField(null=True)
    embargo_until = UTCDateTimeField(null=True, index=True)
    published_at = UTCDateTimeField(null=True)
    reminders_sent = peewee.TextField(default="{}")  # JSON: which reminders went out
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()


class Advisory(BaseModel):
    """Versioned like Xen's XSAs: v1, v2, ... each a complete text."""

    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="advisories", on_delete="CASCADE")
    version = peewee.IntegerField()
    subject = peewee.CharField()
    text = peewee.TextField()
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("vulnerability", "version"), True),)
