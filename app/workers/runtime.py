"""What every process opens from its Settings: the database, the service keyring, Redis.

`initialise` is `forewarn init`: instance folder, schema, GnuPG home and service key, and the
key's public side published for the web (app/servicekey/public.py). The web opens no keyring.
"""

import functools
import logging
from dataclasses import dataclass

import peewee

from app.core import clock, db
from app.core.config import Settings
from app.core.errors import OperatorError
from app.core.instance import ensure_instance, secret_key
from app.servicekey import public
from keys.errors import KeysError
from keys.keyring import ServiceKeyring

log = logging.getLogger("forewarn.service_key")


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
    if fingerprint is not None:
        publish(keyring, settings)
    return Initialised(applied, fingerprint or "", generated)


def publish(keyring: ServiceKeyring, settings: Settings) -> None:
    """Publish the service key's public side for the web now (after init, an import, a
    renewal). A key that cannot sign (expired) still has its certificate published; the
    reason is logged, and /healthz says it too."""
    try:
        public.publish(keyring, settings, clock.now())
    except KeysError as exc:
        log.warning("security.txt is not signed again: %s", exc)
