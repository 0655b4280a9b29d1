"""The test harness: a temporary instance per test, real GnuPG, a real redis-server of our own,
SQLite or PostgreSQL (FOREWARN_TEST_DATABASE_URL), a frozen clock, and RQ burst workers."""

import ipaddress
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import redis as redis_lib
from rq.serializers import JSONSerializer

from app.core import clock as app_clock
from app.core import db as app_db
from app.core.config import load_settings
from app.models import database as database_proxy
from app.workers import queue
from keys.keyring import ServiceKeyring

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("FOREWARN_TEST_DATABASE_URL")


def pytest_collection_modifyitems(items):
    # Every test that opens the database runs again on PostgreSQL (`make test-postgres`).
    for item in items:
        if "db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def pytest_sessionfinish(session, exitstatus):
    # "No tests ran" must fail CI, not pass it quietly.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- no mail leaves this machine ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_outside_smtp(monkeypatch):
    """Fail any test that would talk SMTP to anything but a server on this machine."""
    original = smtplib.SMTP.connect

    def guarded(self, host="localhost", port=0, source_address=None):
        name = host.rpartition(":")[0] if ":" in host and not port else host
        try:
            loopback = ipaddress.ip_address(name).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            pytest.fail(f"a test tried to open SMTP to {host}:{port}; only local sinks are allowed")
        return original(self, host, port, source_address)

    monkeypatch.setattr(smtplib.SMTP, "connect", guarded)


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def short_tempdir(prefix: str) -> Path:
    """Under /tmp with a short name: gpg-agent and redis sockets have a 108-byte path limit."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what="condition"):
    """Poll a real process's state (not a clock) until predicate() is true. `what` names it in
    the failure; a callable is asked then (e.g. for the processes' logs at that moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    said = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout}s waiting for {said}")


# -- Redis: a server of our own, not the machine's shared one ----------------------------------


@pytest.fixture(scope="session")
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: run `make test`, which installs it")
    folder = short_tempdir("fwr")
    sock = folder / "redis.sock"
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(sock.exists, what="the test redis-server")
    yield f"unix://{sock}"
    process.terminate()
    process.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_conn(redis_url):
    connection = redis_lib.Redis.from_url(redis_url)
    connection.flushall()
    yield connection
    connection.close()


def run_jobs(connection) -> None:
    """Run every queued job in this process, then return (RQ's burst mode), as `forewarn
    worker` would: urgent work first, then inbound processing."""
    queue.Worker(
        queue.worker_queues(connection), connection=connection, serializer=JSONSerializer
    ).work(burst=True)


# -- the database ------------------------------------------------------------------------------


@pytest.fixture
def database_url():
    """SQLite in the instance (None), or a fresh PostgreSQL schema for this test alone."""
    if not PG_URL:
        yield None
        return
    schema = f"fw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- an instance -------------------------------------------------------------------------------


@pytest.fixture
def instance_dir():
    folder = short_tempdir("fw")
    yield folder / "instance"
    gpg_home = folder / "instance" / "gpg"
    if gpg_home.is_dir():
        subprocess.run(["gpgconf", "--homedir", str(gpg_home), "--kill", "all"], check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def env(instance_dir, database_url, redis_url):
    """The environment of a Forewarn process for this test (also given to subprocesses)."""
    values = {
        "FOREWARN_INSTANCE": str(instance_dir),
        "FOREWARN_REDIS_URL": redis_url,
        "FOREWARN_WEB_LISTEN": f"127.0.0.1:{free_port()}",
        "FOREWARN_INTAKE_LISTEN": f"127.0.0.1:{free_port()}",
    }
    if database_url:
        values["FOREWARN_DATABASE_URL"] = database_url
    return values


@pytest.fixture
def settings(env):
    return load_settings(env)


@pytest.fixture
def db(settings):
    """The migrated database of this test's instance, bound to the models."""
    settings.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database)
    database.connect(reuse_if_open=True)
    yield database
    if not database.is_closed():
        database.close()
    database_proxy.initialize(None)


@pytest.fixture
def keyring(settings):
    """The service key, generated and published for the web, as `forewarn init` leaves it."""
    from app.servicekey import public

    ring = ServiceKeyring(settings.gnupg_home)
    ring.generate(settings.security_address)
    public.publish(ring, settings, app_clock.now())
    yield ring
    ring.stop_agent()


# -- the clock ---------------------------------------------------------------------------------


class FrozenClock:
    def __init__(self, at: datetime):
        self.at = at
        app_clock.freeze(at)

    def move(self, **delta) -> datetime:
        self.at = self.at + timedelta(**delta)
        app_clock.freeze(self.at)
        return self.at


@pytest.fixture
def clock():
    frozen = FrozenClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    yield frozen
    app_clock.thaw()


# -- processes -----------------------------------------------------------------------------------


@pytest.fixture
def forewarn(env):
    """Run `python -m app ARGS` as an operator would, in this test's environment."""

    def run(*args, input=None, extra_env=None, timeout=60):
        full = {**os.environ, **env, **(extra_env or {})}
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=full,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


# -- the web -----------------------------------------------------------------------------------


@pytest.fixture
def app(settings, db, redis_conn):
    from app.web import create_app

    # Tests change rows and look at once: the public list checks the database on every request.
    return create_app(settings, test_config={"TESTING": True, "FOREWARN_LIST_FRESH_FOR": 0})


@pytest.fixture
def client(app):
    return app.test_client()


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the form has no CSRF token"
    return match.group(1)


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email, password, code=""):
        page = self.client.get("/login")
        return self.client.post(
            "/login",
            data={
                "csrf_token": csrf_token(page.get_data(as_text=True)),
                "email": email,
                "password": password,
                "code": code,
            },
        )


@pytest.fixture
def auth(client):
    return Auth(client)


PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_user(db, clock):
    from app.accounts import team

    return team.create_team_account(
        "admin@example.org", PASSWORD, "admin", clock.at, by="test"
    ).user
