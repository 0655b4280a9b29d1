"""The database goes away and comes back: a private PostgreSQL cluster of the test's own is
stopped (`pg_ctl stop -m fast`) under the running intake, portal and worker, then started again.

While it is down the intake answers 451 to every message (never 250: nothing it could not
commit is acknowledged), the portal answers its friendly 503 page (no traceback), and the
worker stays up. Once it is back, everything resumes without restarting our processes: a new
message gets 250, is processed and acknowledged, and the portal answers 200 again.
"""

import contextlib
import glob
import http.cookiejar
import os
import shutil
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis

from app.models import Delivery, InboundMessage
from app.workers import queue
from tests.conftest import ROOT, csrf_token, free_port, short_tempdir, wait_for
from tests.faults.harness import CountingSink, Workers, kill_trees

pytestmark = pytest.mark.faults

FULL = os.environ.get("FOREWARN_FAULTS_FULL", "") == "1"
BEFORE = 6 if FULL else 3  # reports sent while the database is up
DURING = 6 if FULL else 3  # reports sent while it is down: each must get 451
PROBES = 10 if FULL else 4  # portal requests while it is down: each must get 503
NOBODY = 65534


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries, or None."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for folder in reversed(found):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class Cluster:
    """A PostgreSQL cluster in a temporary folder, on a free port of 127.0.0.1, its socket in
    the same folder. initdb refuses to run as root: then it (and the server) run as nobody,
    through setpriv, in a folder nobody owns."""

    def __init__(self, binaries: Path):
        self.bin = binaries
        self.folder = short_tempdir("fwpg")
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_nobody = os.geteuid() == 0
        if self.as_nobody:
            os.chown(self.folder, NOBODY, NOBODY)

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        prefix = []
        if self.as_nobody:
            prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        result = subprocess.run(
            [*prefix, *argv],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        if self.data.is_dir() and self.running():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def cluster():
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) are missing")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (to run initdb as nobody) is missing")
    made = Cluster(binaries)
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.remove()


@pytest.fixture
def database_url(cluster):
    """Overrides conftest's: this test's database lives in its private cluster."""
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE forewarn")
    return cluster.url("forewarn")


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app", *argv],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def report(n: int, phase: str) -> tuple[str, bytes]:
    """A plaintext report from a sender of its own (acknowledgements are rate-limited per
    sender)."""
    sender = f"reporter{n:02d}@example.net"
    token = f"db-down-{phase}-{n:02d}"
    raw = (
        f"From: Reporter {n} <{sender}>\r\nTo: security@localhost\r\n"
        f"Subject: Crash in the parser ({token})\r\nMessage-ID: <{token}@example.net>\r\n\r\n"
        f"The parser crashes on input {token}.\r\n"
    ).encode()
    return sender, raw


def send(host: str, port: int, sender: str, raw: bytes) -> int:
    """The intake's answer to the message's DATA (250, 451...)."""
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        try:
            smtp.sendmail(sender, ["security@localhost"], raw)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code
    return 250


def smtp_answers(host: str, port: int) -> bool:
    try:
        with smtplib.SMTP(host, port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


class Browser:
    """urllib with a cookie jar: (status, body) of each request, errors included."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(self, path: str, data: dict | None = None) -> tuple[int | None, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, data=body, timeout=10) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError:
            return None, ""


def acknowledged(senders: list[str]) -> bool:
    """Every sender's report processed and its acknowledgement sent."""
    sent = {
        d.recipient
        for d in Delivery.select(Delivery.recipient).where(
            Delivery.kind == "ack", Delivery.state == "sent", Delivery.recipient.in_(senders)
        )
    }
    return sent == set(senders)


def test_the_intake_portal_and_worker_ride_out_a_database_restart(
    env, forewarn, db, cluster, redis_url, tmp_path
):
    assert forewarn("init").returncode == 0
    sink = CountingSink()
    env = {**env, "FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}"}
    host, port = env["FOREWARN_INTAKE_LISTEN"].split(":")
    port = int(port)
    browser = Browser(f"http://{env['FOREWARN_WEB_LISTEN']}")
    connection = redis.Redis.from_url(redis_url)
    connection.flushall()
    workers = Workers(env, 1, tmp_path)
    intake = web = None

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.log")
        )

    try:
        intake = start(["intake"], env, tmp_path / "intake.log")
        web = start(["web", "--workers", "1"], env, tmp_path / "web.log")
        workers.start()
        wait_for(lambda: smtp_answers(host, port), timeout=30, what=f"the intake\n{logs()}")
        wait_for(
            lambda: browser.request("/login")[0] == 200, timeout=30, what=f"the portal\n{logs()}"
        )

        # -- up: reports are stored and acknowledged -------------------------------------------
        senders_before = []
        for n in range(BEFORE):
            sender, raw = report(n, "before")
            assert send(host, port, sender, raw) == 250
            senders_before.append(sender)
        wait_for(
            lambda: acknowledged(senders_before),
            timeout=60,
            what=f"the acknowledgements before the outage\n{logs()}",
        )
        login_page = browser.request("/login")[1]
        token = csrf_token(login_page)

        # -- down ------------------------------------------------------------------------------
        db.close()  # this process's own connection would not survive the restart
        cluster.stop("fast")
        down_at = time.monotonic()
        during = []
        for n in range(DURING):
            sender, raw = report(BEFORE + n, "during")
            during.append(send(host, port, sender, raw))
        pages = [browser.request("/login") for _ in range(PROBES)]
        posted = browser.request(
            "/login",
            {"csrf_token": token, "email": "nobody@example.org", "password": "x", "code": ""},
        )
        pages.append(posted)
        # A job that needs the database, run by the worker while the database is down.
        queue.enqueue(connection, queue.PROCESS_INBOUND, 1, job_id="inbound-during-outage")
        failed = wait_for(
            lambda: queue.inbound_queue(connection).failed_job_registry.get_job_ids(),
            timeout=20,
            what=lambda: f"the worker to fail the job it could not run\n{workers.logs()}",
        )
        time.sleep(1)  # the worker had time to die, if it were to
        worker_alive_during = workers.processes[0].poll() is None
        intake_alive = intake.poll() is None
        web_alive = web.poll() is None
        down_seconds = time.monotonic() - down_at

        # -- up again, no process restarted ------------------------------------------------
        cluster.start()
        up_at = time.monotonic()
        retries_451 = 0
        sender, raw = report(BEFORE + DURING, "after")
        while (answer := send(host, port, sender, raw)) != 250:
            assert answer == 451, f"the intake answered {answer} after the restart"
            retries_451 += 1
            assert time.monotonic() - up_at < 30, f"the intake never resumed\n{logs()}"
            time.sleep(0.2)
        intake_resumed = time.monotonic() - up_at
        wait_for(
            lambda: browser.request("/login")[0] == 200,
            timeout=30,
            interval=0.1,
            what=f"the portal to answer again\n{logs()}",
        )
        web_resumed = time.monotonic() - up_at
        wait_for(
            lambda: acknowledged([sender]),
            timeout=60,
            what=f"the acknowledgement after the restart\n{logs()}",
        )
        acknowledged_after = time.monotonic() - up_at

        worker_alive_after = workers.processes[0].poll() is None
        processes_same = intake.poll() is None and web.poll() is None
    finally:
        for process in (intake, web):
            if process is not None:
                kill_trees([process.pid])
                process.wait()
        workers.stop()
        sink.stop()
        connection.close()

    stored = [bytes(m.raw) for m in InboundMessage.select(InboundMessage.raw)]
    stored_during = [raw for raw in stored if b"db-down-during-" in raw]
    statuses = [status for status, _ in pages]
    print(
        f"\ndatabase down: {BEFORE} reports before (all 250, acknowledged), {DURING} during "
        f"(answers {sorted(set(during))}, {during.count(451)} x 451), {len(pages)} portal "
        f"requests during ({statuses.count(503)} x 503), down {down_seconds:.1f} s; after "
        f"`pg_ctl start`: intake 250 in {intake_resumed:.2f} s ({retries_451} x 451 first), "
        f"portal 200 in {web_resumed:.2f} s, report acknowledged in {acknowledged_after:.1f} s; "
        f"worker alive {worker_alive_during and worker_alive_after}, failed jobs {len(failed)}"
    )
    assert during == [451] * DURING  # never 250 for a message it could not commit
    assert stored_during == []
    assert statuses == [503] * len(pages)
    for _, body in pages:
        assert "Temporarily unavailable" in body
        assert "Traceback" not in body and "OperationalError" not in body
    assert intake_alive and web_alive and processes_same
    assert worker_alive_during and worker_alive_after
    assert sum(b"db-down-after-" in raw for raw in stored) == 1
    assert acknowledged(senders_before + [sender])


def test_the_first_report_after_a_quiet_database_restart_gets_250(
    env, forewarn, db, cluster, redis_url, tmp_path
):
    """A restart (a minor upgrade at night) while no mail comes in: the next report must be
    stored at once; a 451 holds it back for the sending server's retry interval (often 15
    minutes or more)."""
    assert forewarn("init").returncode == 0
    sink = CountingSink()
    env = {**env, "FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}"}
    host, port = env["FOREWARN_INTAKE_LISTEN"].split(":")
    port = int(port)
    workers = Workers(env, 1, tmp_path)
    intake = None
    try:
        intake = start(["intake"], env, tmp_path / "intake.log")
        workers.start()
        wait_for(lambda: smtp_answers(host, port), timeout=30, what="the intake")
        sender, raw = report(0, "before")
        assert send(host, port, sender, raw) == 250
        wait_for(
            lambda: acknowledged([sender]), timeout=60, what=lambda: f"the ack\n{workers.logs()}"
        )
        db.close()
        cluster.stop("fast")
        cluster.start()
        answers = []
        senders = []
        for n in range(1, 4):
            sender, raw = report(n, "quiet")
            answers.append(send(host, port, sender, raw))
            if answers[-1] == 250:
                senders.append(sender)
        wait_for(
            lambda: acknowledged(senders), timeout=60, what=lambda: f"the acks\n{workers.logs()}"
        )
    finally:
        if intake is not None:
            kill_trees([intake.pid])
            intake.wait()
        workers.stop()
        sink.stop()
    print(f"\nquiet database restart: answers to the next {len(answers)} reports {answers}")
    assert answers[0] == 250
    assert answers == [250] * len(answers)
