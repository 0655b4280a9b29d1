"""The database proxy every model binds to, and the field types shared by the tables."""

from datetime import UTC, datetime

import peewee

database = peewee.DatabaseProxy()


class UTCDateTimeField(peewee.DateTimeField):
    """Stores naive UTC, hands back aware UTC: no local time ever enters the database."""

    def db_value(self, value):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{self.name}: naive datetime {value!r}; use clock.now()")
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
