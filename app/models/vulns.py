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
    affected = peewee.TextField(default="")  # "PRODUCT RANGE; ..." (app/vulns/affected.py)
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
    # The full hash of the commit that introduced it (OSV's GIT range), or "": private until the
    # lift as fix_refs.
    introduced_commit = peewee.CharField(default="")
    mitigation = peewee.TextField(default="")  # what to do until a fix is deployed
    # May registrants deploy the fix before the lift (without saying what it fixes)?
    deploy_before_lift = peewee.BooleanField(default=True)
    reported_at = UTCDateTimeField()
    fix_due = UTCDateTimeField(null=True)
    embargo_until = UTCDateTimeField(null=True, index=True)
    published_at = UTCDateTimeField(null=True)
    # A published vulnerability that proved not to be one (app.vulns.withdrawal): its page and
    # records stay, saying so with the reason.
    withdrawn_at = UTCDateTimeField(null=True)
    withdrawn_reason = peewee.TextField(default="")
    reminders_sent = peewee.TextField(default="{}")  # JSON: which reminders went out
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    # The case: the vulnerability this one was split from (the report that started it); NULL
    # when it is a case of its own, as every vulnerability not split from anything is.
    case_root = peewee.ForeignKeyField(
        "self", null=True, backref="case_members", on_delete="SET NULL"
    )
    # Another vulnerability this one duplicates (set by a later slice of cases; NULL: none).
    duplicate_of = peewee.ForeignKeyField(
        "self", null=True, backref="duplicates", on_delete="SET NULL"
    )


class Finding(BaseModel):
    """A reporter's label for what a vulnerability covers ("NCC-ZEP-031", "Issue 7"): one label
    may sit on several vulnerabilities and one vulnerability may carry several labels."""

    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="findings", on_delete="CASCADE")
    label = peewee.CharField(max_length=100, index=True)

    class Meta:
        indexes = ((("vulnerability", "label"), True),)


class AdvisoryBundle(BaseModel):
    """One pre-disclosure mail covering several vulnerabilities (#15): each keeps its own
    advisory version (its section of the mail); registrants get one mail for them all."""

    subject = peewee.CharField()  # the protected subject; the outer one names ids alone
    text = peewee.TextField()  # the whole mail: a lead naming them, then one section each
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField()


class Advisory(BaseModel):
    """Versioned like Xen's XSAs: v1, v2, ... each a complete text."""

    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="advisories", on_delete="CASCADE")
    version = peewee.IntegerField()
    subject = peewee.CharField()
    text = peewee.TextField()
    created_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField()
    attachments = peewee.TextField(default="[]")  # JSON: ids of the patches this version carries
    # The signed entity every registrant gets (each encrypted to them alone), made at the first
    # delivery and kept, so that a retry sends the same bytes. In a bundle, the deliveries
    # point at its first version, which keeps the bundle's entity.
    signed_entity = peewee.BlobField(null=True)
    # The bundle this version went out in (NULL: sent alone, as every version before #15).
    bundle = peewee.ForeignKeyField(
        AdvisoryBundle, null=True, backref="advisories", on_delete="SET NULL"
    )
    # JSON when the team narrowed this version to registrants whose products match
    # (app.registry.targeting): how many were approved, who was left out, who was added back.
    # NULL: sent to every approved registrant.
    audience = peewee.TextField(null=True)

    class Meta:
        indexes = ((("vulnerability", "version"), True),)


class Patch(BaseModel):
    """A file the team attaches to advisories (a fix); sent as it was uploaded, with its sha256."""

    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="patches", on_delete="CASCADE")
    filename = peewee.CharField()
    content_type = peewee.CharField(default="text/x-diff")
    content = peewee.BlobField()
    sha256 = peewee.CharField()
    size = peewee.IntegerField()
    removed = peewee.BooleanField(default=False)  # kept: earlier versions may carry it
    uploaded_by = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    uploaded_at = UTCDateTimeField()


PUBLICATION_STATES = ("pending", "complete")


class Publication(BaseModel):
    """What the lift still has to do after it published a vulnerability: check its exports and
    page, publish its CVE record. Retried until complete, and shown to the team meanwhile."""

    vulnerability = peewee.ForeignKeyField(
        Vulnerability, unique=True, backref="publication", on_delete="CASCADE"
    )
    lifted_at = UTCDateTimeField()
    state = peewee.CharField(default="pending", choices=[(s, s) for s in PUBLICATION_STATES])
    steps = peewee.TextField(default="{}")  # JSON: step -> "done", "skipped: why", "failed: why"
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True, index=True)
    completed_at = UTCDateTimeField(null=True)


class Revision(BaseModel):
    """A change to a published vulnerability's public fields (#18): the exports number their
    versions from these (1 is the publication itself, each revision the next)."""

    vulnerability = peewee.ForeignKeyField(Vulnerability, backref="revisions", on_delete="CASCADE")
    at = UTCDateTimeField()
    summary = peewee.TextField()  # what changed and why, in the team's words

    class Meta:
        indexes = ((("vulnerability", "at"), False),)
