"""The initial schema: the tables of the first release (frozen copies, independent of
app.models)."""
# ruff: noqa: F403, F405

from peewee import *


def up(migrator, db):
    class User(Model):
        email = CharField(unique=True)
        password_hash = CharField()
        role = CharField()
        totp_secret = CharField(null=True)
        active = BooleanField(default=True)
        session_token = CharField(unique=True)
        created_at = DateTimeField()
        last_login_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "user"

    db.create_tables([User])

    class PublicKey(Model):
        fingerprint = CharField(index=True)
        armored = TextField()
        owner = ForeignKeyField(User, null=True, on_delete="SET NULL")
        expires = DateTimeField(null=True)
        usable = BooleanField(default=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "public_key"

    db.create_tables([PublicKey])

    class CveId(Model):
        cve_id = CharField(unique=True)
        block = CharField(index=True)
        year = IntegerField()
        number = IntegerField()
        state = CharField(default="available")
        assigned_at = DateTimeField(null=True)
        reason = TextField(default="")

        class Meta:
            database = db
            table_name = "cve_id"
            indexes = ((("state", "year", "number"), False),)

    db.create_tables([CveId])

    class Vulnerability(Model):
        tracking_id = CharField(unique=True)
        title = CharField(default="")
        description = TextField(default="")
        severity = CharField(default="")
        cvss_score = FloatField(null=True)
        affected = TextField(default="")
        cwe = CharField(default="")
        status = CharField(index=True, default="new")
        rejection_reason = TextField(default="")
        reporter_email = CharField(default="")
        reporter_name = CharField(default="")
        reporter_key = ForeignKeyField(PublicKey, null=True, on_delete="SET NULL")
        credit_reporter = BooleanField(default=True)
        credits = TextField(default="")
        assignee = ForeignKeyField(User, null=True, on_delete="SET NULL")
        cve = ForeignKeyField(CveId, unique=True, null=True)
        fix_refs = TextField(default="")
        reported_at = DateTimeField()
        fix_due = DateTimeField(null=True)
        embargo_until = DateTimeField(index=True, null=True)
        published_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "vulnerability"

    db.create_tables([Vulnerability])

    class Advisory(Model):
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        version = IntegerField()
        subject = CharField()
        text = TextField()
        created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "advisory"
            indexes = ((("vulnerability", "version"), True),)

    db.create_tables([Advisory])

    class AuditEvent(Model):
        actor = ForeignKeyField(User, null=True, on_delete="SET NULL")
        actor_label = CharField()
        action = CharField(index=True)
        target = CharField(default="")
        at = DateTimeField(index=True)
        details = TextField(default="{}")

        class Meta:
            database = db
            table_name = "audit_event"

    db.create_tables([AuditEvent])

    class InboundMessage(Model):
        raw = BlobField()
        sha256 = CharField(index=True)
        envelope_from = CharField(default="")
        envelope_to = TextField(default="")
        received_at = DateTimeField(index=True)
        state = CharField(default="received")
        attempts = IntegerField(default=0)
        error = TextField(default="")
        processed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "inbound_message"

    db.create_tables([InboundMessage])

    class Delivery(Model):
        kind = CharField()
        advisory = ForeignKeyField(Advisory, null=True)
        vulnerability = ForeignKeyField(Vulnerability, null=True)
        user = ForeignKeyField(User, null=True, on_delete="SET NULL")
        recipient = CharField()
        fingerprint = CharField(null=True)
        payload = TextField(default="{}")
        state = CharField(default="queued")
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        last_answer = TextField(default="")
        message_id = CharField(null=True)
        created_at = DateTimeField()
        sent_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "delivery"
            indexes = ((("state", "next_attempt_at"), False),)

    db.create_tables([Delivery])

    class Correspondence(Model):
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        direction = CharField()
        message = ForeignKeyField(InboundMessage, null=True)
        delivery = ForeignKeyField(Delivery, null=True)
        author = ForeignKeyField(User, null=True, on_delete="SET NULL")
        at = DateTimeField()
        subject = CharField(default="")
        text = TextField(default="")
        signature_status = CharField(default="unsigned")
        signer_fingerprint = CharField(null=True)

        class Meta:
            database = db
            table_name = "correspondence"

    db.create_tables([Correspondence])

    class Registrant(Model):
        user = ForeignKeyField(User, unique=True, on_delete="CASCADE")
        organisation = CharField()
        products = TextField(default="")
        website = CharField(default="")
        justification = TextField(default="")
        status = CharField(default="unverified")
        reviewer = ForeignKeyField(User, null=True, on_delete="SET NULL")
        notes = TextField(default="")
        key = ForeignKeyField(PublicKey, null=True, on_delete="SET NULL")
        pinned_fingerprint = CharField(unique=True, null=True)
        encryption_expires = DateTimeField(null=True)
        policy_version = CharField(null=True)
        policy_agreed_at = DateTimeField(null=True)
        listed_publicly = BooleanField(default=False)
        unsubscribed = BooleanField(default=False)
        last_confirmed_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "registrant"

    db.create_tables([Registrant])

    class UsedToken(Model):
        purpose = CharField()
        token_hash = CharField()
        used_at = DateTimeField()

        class Meta:
            database = db
            table_name = "used_token"
            indexes = ((("purpose", "token_hash"), True),)

    db.create_tables([UsedToken])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("used_token"))
    migrator.migrate(migrator.drop_table("registrant"))
    migrator.migrate(migrator.drop_table("correspondence"))
    migrator.migrate(migrator.drop_table("delivery"))
    migrator.migrate(migrator.drop_table("inbound_message"))
    migrator.migrate(migrator.drop_table("audit_event"))
    migrator.migrate(migrator.drop_table("advisory"))
    migrator.migrate(migrator.drop_table("vulnerability"))
    migrator.migrate(migrator.drop_table("cve_id"))
    migrator.migrate(migrator.drop_table("public_key"))
    migrator.migrate(migrator.drop_table("user"))
