"""Opening the database (SQLite or PostgreSQL) from a URL, and forward-only schema migrations."""

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import peewee
from playhouse import db_url
from playhouse.migrations import Runner

from app.core.errors import OperatorError
from app.models import database

MIGRATIONS = Path(__file__).resolve().parents[1] / "models" / "migrations"

# WAL lets readers work while one writer commits; synchronous=full because intake promises
# that a 250 means the message survives a power cut; foreign keys are off by default in SQLite.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}


def write_transaction():
    """A transaction that will write. SQLite must take its write lock at BEGIN (IMMEDIATE):
    a deferred transaction that upgrades later fails at once with SQLITE_BUSY."""
    db = database.obj
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def serialise(name: str) -> None:
    """Inside a write transaction: wait until no other transaction holding the same name is
    open (PostgreSQL: a transaction-level advisory lock; SQLite's write transactions already
    run one at a time). For read-then-insert steps such as choosing the next tracking id."""
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"forewarn:{name}",))


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# A worker's writes (claims, sent marks, processing results) are all redone from the rows
# before them if lost: its SQLite connections may skip the disk sync at each commit (WAL keeps
# them safe from a crash of the process; only a power cut can lose the last ones, which the
# reconciler then redoes), and its PostgreSQL connections commit without waiting for the WAL
# flush (synchronous_commit off: only a crash of the database server can lose the last ones,
# never half of one). The intake and the portal always sync: a 250 and a person's action must
# survive anything.
WORKER_PRAGMAS = {**SQLITE_PRAGMAS, "synchronous": "normal"}


class WorkerPostgresqlDatabase(peewee.PostgresqlDatabase):
    """A worker's PostgreSQL connections: commits do not wait for the WAL flush (see above)."""

    def _initialize_connection(self, conn):
        super()._initialize_connection(conn)
        with conn.cursor() as cursor:  # the connection is in autocommit mode: session-wide
            cursor.execute("SET synchronous_commit TO off")


def open_database(url: str, worker: bool = False, **connect_params) -> peewee.Database:
    """Bind the models to the database at url and check that it answers."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            raise OperatorError(
                f"the folder of the SQLite database {path} does not exist; "
                "fix FOREWARN_DATABASE_URL or run `forewarn init`"
            )
        pragmas = WORKER_PRAGMAS if worker else SQLITE_PRAGMAS
        db = peewee.SqliteDatabase(str(path), pragmas=pragmas, **connect_params)
    else:
        url = url.replace("postgres://", "postgresql://", 1)
        db = db_url.connect(url, **connect_params)
        if worker and type(db) is peewee.PostgresqlDatabase:
            db = WorkerPostgresqlDatabase(db.database, **db.connect_params)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OperatorError(
            f"cannot open the database {redact_url(url)}: {reason}; check FOREWARN_DATABASE_URL"
        ) from None
    finally:
        if not db.is_closed():
            db.close()
    return db


def runner(db: peewee.Database) -> Runner:
    return Runner(db, directory=str(MIGRATIONS), table_name="schema_migration")


def pending_migrations(db: peewee.Database) -> list[str]:
    with db.connection_context():
        return [m.name for m in runner(db).status() if not m.applied and m.path is not None]


def migrate(db: peewee.Database, target: str | None = None) -> list[str]:
    """Apply the migrations not yet applied (all of them on an empty database), in order."""
    # peewee's runner logs each step at INFO; the CLI reports what was applied itself.
    logging.getLogger("peewee.migrations").setLevel(logging.WARNING)
    with db.connection_context():
        return runner(db).up(target)
