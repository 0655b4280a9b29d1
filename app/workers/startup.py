"""Starting the processes: `forewarn up` (everything, supervised) and `forewarn worker`."""

import asyncio
import logging
import signal
import socket
import ssl
import sys
import threading
import time

import click
from rq.serializers import JSONSerializer

from app.core import clock
from app.core.config import Settings, child_environment
from app.core.errors import OperatorError
from app.models import User
from app.reports import inbound
from app.servicekey import public
from app.workers import queue, reconcile, runtime
from app.workers.listening import ensure_free
from app.workers.redis_server import ManagedRedis
from app.workers.supervisor import Child, Supervisor, component_argv
from mail.intake import GroupCommitter, IntakeHandler, IntakePolicy, protocol_factory, serve

log = logging.getLogger("forewarn.up")


def intake(settings: Settings) -> None:
    """The SMTP intake: commit each message, then queue its processing. Like the web, it
    opens no keyring: only the workers decrypt and sign."""
    database = runtime.open_current_db(settings)
    listen = settings.intake_listen
    ensure_free(listen, "FOREWARN_INTAKE_LISTEN")
    url = runtime.redis_url(settings)
    connection = queue.connect(url)
    # The published fingerprint: the intake stores bytes and never holds the secret key.
    fingerprint = public.fingerprint(settings) or "(none yet)"

    committer = GroupCommitter(
        inbound.committer(database, clock.now),
        lambda ids: reconcile.queue_new_inbound(connection, ids),
    )

    policy = IntakePolicy(
        security_address=settings.security_address,
        max_message_bytes=settings.max_message_bytes,
        refuse_plaintext=settings.refuse_plaintext,
        plaintext_refusal=(
            f"Reports must be encrypted to OpenPGP key {fingerprint}, "
            f"published at {settings.base_url}/key.asc; please encrypt and send again"
        ),
    )
    tls = None
    if settings.intake_tls_cert and settings.intake_tls_key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(settings.intake_tls_cert, settings.intake_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise OperatorError(
                f"cannot load the intake's TLS certificate: {exc}; "
                "check FOREWARN_INTAKE_TLS_CERT and FOREWARN_INTAKE_TLS_KEY"
            ) from None
    hostname = settings.security_address.rpartition("@")[2]
    factory = protocol_factory(
        IntakeHandler(policy, committer.store),
        hostname,
        lmtp=settings.intake_protocol == "lmtp",
        tls_context=tls,
    )
    try:
        asyncio.run(serve(listen.host, listen.port, factory))
    finally:
        committer.close()


def worker(settings: Settings, urgent_only: bool = False) -> None:
    """An RQ worker with the scheduler, and the reconciler in a thread beside it.

    It serves the urgent queue (deliveries, lifts, publication) before inbound processing;
    with urgent_only, the urgent queue alone and no reconciler (`forewarn up` runs one such
    worker beside the full one, so a slow inbound message never holds up an alert or a lift).

    Jobs run in this process (SimpleWorker), never in a forked child: a child would inherit the
    reconciler's open database connection, and SQLite (or a PostgreSQL socket) does not survive
    that; it also saves a fork and a keyring start per job."""
    runtime.open_current_db(settings)  # refuses an out-of-date schema
    database = runtime.shared_db(settings)
    url = runtime.redis_url(settings)
    connection = queue.connect(url)
    queue.check(connection, url)
    stop = threading.Event()
    if not urgent_only:
        reconciler = threading.Thread(
            target=reconcile.run_forever,
            args=(queue.connect(url), database, clock.now, stop, settings),
            name="reconciler",
            daemon=True,
        )
        reconciler.start()
    kind = "urgent" if urgent_only else "all"
    name = f"forewarn-{kind}-{socket.gethostname()}-{time.monotonic_ns() % 10**6}"
    try:
        queue.Worker(
            queue.worker_queues(connection, urgent_only=urgent_only),
            connection=connection,
            serializer=JSONSerializer,
            name=name,
        ).work(with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        runtime.service_keyring(settings).stop_agent()


def children() -> list[Child]:
    """What `forewarn up` runs: the portal, the intake, a worker for all work (urgent first)
    and one for urgent work alone, which a slow inbound message cannot hold up."""
    return [
        Child("web", component_argv("web")),
        Child("intake", component_argv("intake")),
        Child("worker", component_argv("worker")),
        Child("urgent worker", [*component_argv("worker"), "--urgent-only"]),
    ]


def _wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _banner(settings: Settings, has_admin: bool) -> str:
    venv_bin = sys.executable.rpartition("/")[0]
    relay = (
        f"relay {settings.smtp_relay}" if settings.smtp_relay else f"written to {settings.mail_out}"
    )
    lines = [
        "Forewarn is running. Ctrl-C stops it.",
        f"  portal      {settings.base_url}/  (listening on {settings.web_listen})",
        f"  intake      SMTP {settings.intake_listen} for {settings.security_address}",
        f"  mail out    {relay}",
        f"  instance    {settings.instance}",
    ]
    if not has_admin:
        lines += [
            "First admin: in another terminal run",
            f"  {venv_bin}/forewarn admin create you@example.org",
            f"  then sign in at {settings.base_url}/login",
        ]
    lines += [
        "Send a test report:",
        f"  {venv_bin}/forewarn test-report",
        f"  (or any mail client: SMTP {settings.intake_listen}, To: {settings.security_address})",
    ]
    return "\n".join(lines)


def up(settings: Settings) -> None:
    # Stop requests during start-up are honoured once the children exist.
    supervisor = Supervisor([], {})
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    keyring = runtime.service_keyring(settings)
    managed = None
    try:
        result = runtime.initialise(settings)
        if result.key_generated:
            log.info("generated the service key %s", result.fingerprint)
        ensure_free(settings.web_listen, "FOREWARN_WEB_LISTEN")
        ensure_free(settings.intake_listen, "FOREWARN_INTAKE_LISTEN")
        with runtime.open_db(settings).connection_context():
            has_admin = User.select().where(User.role == "admin").exists()
        if settings.redis_url is None:
            managed = ManagedRedis(settings.instance)
            url = managed.start()
        else:
            url = settings.redis_url
            queue.check(queue.connect(url), url)
        supervisor.env = child_environment(settings, FOREWARN_REDIS_URL=url)
        supervisor.children = children()

        def ready() -> None:
            listen = settings.web_listen
            if _wait_for_port(listen.host, listen.port, timeout=30):
                click.echo(_banner(settings, has_admin))
            else:
                log.warning("the portal is not answering on %s yet", listen)

        if not supervisor.stopping:
            supervisor.run(ready=ready)
    finally:
        supervisor.stop_all()
        if managed is not None:
            managed.stop()
        keyring.stop_agent()
    log.info("forewarn stopped")
