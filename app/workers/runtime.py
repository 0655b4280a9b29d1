"""What every process opens from its Settings: the database, the service keyring, Redis.

`initialise` is `forewarn init`: instance folder, schema, GnuPG home and service key.
"""

import functools
from dataclasses import dataclass

import peewee

from app.core import db
from app.core.config import Settings
from app.core.errors import OperatorError
from app.core.instance import ensure_instance, secret_key
from keys.keyring import ServiceKeyring


def open_db(settings: Settings) -> peewee.Database:
    return db.open_database(settings.database_url)


@functools.cache
def _opened(url: str) -> peewee.Database:
    return db.open_database(url, worker=True)


def shared_db(settings: Settings) -> peewee.Database:
    """A worker process's one database object for these settings (a connection per thread),
    bound to the models; see app.core.db.WORKER_PRAGMAS."""
    database = _opened(settings.database_url)
    db.database.initialize(database)
    return database


def open_current_db(settings: Settings) -> peewee.Database:
    """The database, refusing a schema that `forewarn init` has not brought up to date."""
    database = open_db(settings)
    if db.pending_migrations(database):
        raise OperatorError("the database schema is not up to date: run `forewarn init`")
    return database


def service_keyring(settings: Settings) -> ServiceKeyring:
    passphrase = None
    if settings.key_passphrase_file is not None:
        try:
            passphrase = settings.key_passphrase_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise OperatorError(
                f"cannot read FOREWARN_KEY_PASSPHRASE_FILE {settings.key_passphrase_file}: "
                f"{exc.strerror}"
            ) from None
    return ServiceKeyring(settings.gnupg_home, passphrase)


def redis_url(settings: Settings) -> str:
    """FOREWARN_REDIS_URL, or the socket of the redis-server `forewarn up` manages."""
    return settings.redis_url or f"unix://{settings.managed_redis_socket}"


@dataclass(frozen=True)
class Initialised:
    applied_migrations: list[str]
    fingerprint: str
    key_generated: bool


def initialise(settings: Settings, generate_key: bool = True) -> Initialised:
    """Create or migrate everything an instance needs; safe to run any number of times."""
    ensure_instance(settings)
    secret_key(settings)
    settings.mail_out.mkdir(mode=0o700, exist_ok=True)
    database = open_db(settings)
    applied = db.migrate(database)
    keyring = service_keyring(settings)
    fingerprint = keyring.fingerprint()
    generated = False
    if fingerprint is None and generate_key:
        fingerprint = keyring.generate(settings.security_address)
        generated = True
    return Initialised(applied, fingerprint or "", generated)
