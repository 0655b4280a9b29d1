"""Forewarn behind a real Postfix on loopback, as docs/deploy.md sets it up: Postfix relays mail for
the security domain to the intake (LMTP or SMTP) by transport_maps, and relays the service's
outgoing mail (FOREWARN_SMTP_RELAY pointing at it) on to its relayhost, here a sink.

The Postfix is a private instance: its own config directory (`postfix -c DIR`), queue in a
temporary folder, chroot off, listening on 127.0.0.1 on a free port, nothing delivered locally.
"""

import os
import shutil
import smtplib
import subprocess
import tempfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.core import clock as app_clock
from app.models import Delivery, InboundMessage, Vulnerability
from app.reports import inbound
from app.workers import jobs, reconcile
from mail.intake import IntakePolicy
from tests.conftest import free_port, run_jobs, wait_for
from tests.smtpsink import SmtpSink
from tests.test_intake import RunningIntake

DOMAIN = "security.test"
SECURITY = f"security@{DOMAIN}"
REPORTER = "rita@example.org"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# Services a relay-only Postfix needs; the chroot column (5th) is "n" everywhere.
MASTER_CF = """\
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _why_postfix_cannot_run() -> str | None:
    if not os.path.exists(POSTFIX):
        return "postfix is not installed (apt-get install postfix; .ci/setup system test does)"
    if os.geteuid() != 0:
        return "`postfix start` needs root (it starts master as root, which drops to `postfix`)"
    try:
        import pwd

        pwd.getpwnam("postfix")
    except KeyError:
        return "the `postfix` system user is missing (the Debian package creates it)"
    return None


class PrivatePostfix:
    """A Postfix of our own: config, queue, data and log in one temporary folder."""

    def __init__(self, port: int, intake: str, relayhost: str):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="fwpf", dir="/tmp"))
        self.root.chmod(0o755)  # the postfix user walks into the queue below it
        self.config = self.root / "etc"
        self.config.mkdir()
        (self.root / "queue").mkdir()  # postfix creates what is inside, not the folder itself
        self.log = self.root / "maillog"
        shutil.copy("/etc/postfix/dynamicmaps.cf", self.config)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.root / "queue",
            "data_directory": self.root / "data",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.root,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.forewarn.test",
            "mydomain": "forewarn.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": DOMAIN,
            # Everything for the security domain goes to the intake; every other destination to
            # the relayhost (the sink standing in for the organisation's outgoing relay).
            "transport_maps": f"inline:{{ {DOMAIN}={intake} }}",
            "relayhost": relayhost,
            "lmtp_destination_recipient_limit": "1",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "lmtp_tls_security_level": "none",
            "smtp_host_lookup": "native",
            "biff": "no",
            "append_dot_mydomain": "no",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.config / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))

    def _postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [POSTFIX, "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr.strip()}\n{self.logged()}")
        wait_for(self._answers, timeout=20, what="the private Postfix to listen")

    def _answers(self) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250
        except OSError:
            return False

    def logged(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no maillog)"

    def stop(self) -> None:
        pid_file = self.root / "queue" / "pid" / "master.pid"
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        self._postfix("stop")
        if pid:
            wait_for(lambda: not _alive(pid), timeout=20, what="Postfix to stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def env(env):
    """This test's Forewarn answers for security@security.test and relays through Postfix."""
    return {
        **env,
        "FOREWARN_SECURITY_ADDRESS": SECURITY,
        "FOREWARN_SMTP_RELAY": f"127.0.0.1:{free_port()}",
    }


@pytest.fixture
def sink():
    server = SmtpSink()
    yield server
    server.stop()


@pytest.fixture(params=["lmtp", "smtp"])
def desk(request, env, settings, db, redis_conn, keyring, sink, clock, monkeypatch):
    """The intake in this process (LMTP or SMTP), jobs run here, Postfix in front and behind."""
    why = _why_postfix_cannot_run()
    if why:
        pytest.skip(why)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    lmtp = request.param == "lmtp"
    intake = RunningIntake(
        IntakePolicy(security_address=SECURITY, max_message_bytes=settings.max_message_bytes),
        inbound.committer(db, app_clock.now),
        lambda ids: reconcile.queue_new_inbound(redis_conn, ids),
        lmtp=lmtp,
    )
    transport = f"{request.param}:[127.0.0.1]:{intake.port}"
    if lmtp:
        transport = f"lmtp:inet:[127.0.0.1]:{intake.port}"
    postfix = PrivatePostfix(
        settings.smtp_relay.port, intake=transport, relayhost=f"[127.0.0.1]:{sink.port}"
    )
    try:
        postfix.start()
        yield postfix
    finally:
        postfix.stop()
        intake.stop()
        jobs._settings.cache_clear()


def _report() -> bytes:
    message = EmailMessage()
    message["From"] = f"Rita <{REPORTER}>"
    message["To"] = SECURITY
    message["Subject"] = "Overflow in the parser"
    message["Message-ID"] = "<report-1@example.org>"
    message.set_content("A long header overflows the parser's buffer.\n")
    return bytes(message)


def test_a_report_through_postfix_is_stored_processed_and_acknowledged_via_postfix(
    desk, db, redis_conn, sink
):
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        assert smtp.sendmail(REPORTER, [SECURITY], _report()) == {}

    stored = wait_for(
        lambda: InboundMessage.select().first(),
        timeout=30,
        what=f"Postfix to hand the report to the intake; maillog:\n{desk.logged()}",
    )
    assert SECURITY in stored.envelope_to
    assert b"A long header overflows" in bytes(stored.raw)

    wait_for(lambda: redis_conn.llen("rq:queue:forewarn-inbound"), what="the processing job")
    run_jobs(redis_conn)  # processes the report, then sends the acknowledgement to Postfix
    stored = InboundMessage.get_by_id(stored.id)
    assert stored.state == "processed", stored.error
    vulnerability = Vulnerability.get()
    ack = Delivery.get(Delivery.kind == "ack")
    assert ack.recipient == REPORTER
    assert ack.state == "sent", ack.last_answer

    relayed = wait_for(
        lambda: [r for r in sink.received if r.recipients == [REPORTER]],
        timeout=30,
        what=f"Postfix to relay the acknowledgement to the sink; maillog:\n{desk.logged()}",
    )
    data = relayed[0].data
    assert b"Received: from " in data and b"mx.forewarn.test" in data  # it went through Postfix
    assert vulnerability.tracking_id.encode() in data
    assert b"multipart/signed" in data
    assert relayed[0].envelope_from == SECURITY
