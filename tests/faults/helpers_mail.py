"""Helpers of the mail fault tests: the real intake process started and killed, a relay that
refuses for a while (451 at MAIL, RCPT or DATA, or nothing listening at all), and acknowledged
reports made encrypted to the service key."""

import asyncio
import contextlib
import os
import signal
import smtplib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiosmtpd.smtp import SMTP

from tests import mailcorpus as mc
from tests.conftest import ROOT
from tests.smtpsink import LoopServer, Received

TEMPORARY = "451 4.3.0 Relay busy; try again later"


# -- the intake ----------------------------------------------------------------------------------


class Intake:
    """`python -m app intake` in a process group of its own, killed with -9 and started again."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = {**os.environ, **env}
        host, port = env["FOREWARN_INTAKE_LISTEN"].split(":")
        self.host, self.port = host, int(port)
        self.log_dir = log_dir
        self.started = 0
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.started += 1
        with open(self.log_dir / f"intake-{self.started}.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "intake"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def answers(self) -> bool:
        """Does it answer NOOP (it listens only once the database and key are ready)?"""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the intake exited ({self.process.returncode})\n{self.logs()}")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    def kill(self) -> None:
        """kill -9 of its whole process group."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the intake answers what it has, commits, and exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()

    def logs(self, tail: int = 20) -> str:
        out = []
        for path in sorted(self.log_dir.glob("intake-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out += [f"--- {path.name}", *lines]
        return "\n".join(out)


# -- a relay that refuses for a while ----------------------------------------------------------


class FlakyRelay(LoopServer):
    """An SMTP relay on a given loopback port that answers 451 at one stage of the transaction
    (mode "mail", "rcpt" or "data") or accepts ("accept"); it keeps what it accepted and counts
    what it refused."""

    MODES = ("mail", "rcpt", "data", "accept")

    def __init__(self, port: int, mode: str = "accept"):
        self.mode = mode
        self.received: list[Received] = []
        self.refused: dict[str, int] = dict.fromkeys(self.MODES[:3], 0)
        self._lock = threading.Lock()
        # LoopServer binds port 0; this one must take the port the workers were told about.
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SMTP(self, hostname="flaky"), "127.0.0.1", port)
        )
        self.port = port
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _refuses(self, stage: str) -> bool:
        with self._lock:
            if self.mode != stage:
                return False
            self.refused[stage] += 1
            return True

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self._refuses("mail"):
            return TEMPORARY
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._refuses("rcpt"):
            return TEMPORARY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._refuses("data"):
            return TEMPORARY
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 OK"


# -- reports -----------------------------------------------------------------------------------


def reporter_address(n: int) -> str:
    return f"reporter{n:04d}@example.org"


def report_message_id(n: int) -> str:
    return f"<fault-report-{n:04d}@example.org>"


def encrypted_reports(service_cert: str, count: int, threads: int = 4) -> list[bytes]:
    """count PGP/MIME reports encrypted to the service key by Sequoia's sqop, each from a
    reporter of its own (acknowledgements are rate-limited per sender) with a Message-ID of its
    own."""

    def make(n: int) -> bytes:
        inner = mc.text_part(f"Report {n}: an overflow in parser {n}.\nfault-report-{n:04d}\n")
        raw = mc.pgp_mime_encrypted(
            mc.sqop_encrypt(service_cert, inner),
            subject="...",
            sender=f"Reporter {n} <{reporter_address(n)}>",
        )
        return raw.replace(b"<report-1@example.org>", report_message_id(n).encode())

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(make, range(count)))


def send_all(host: str, port: int, messages: list[tuple[str, bytes]], clients: int = 4) -> None:
    """Hand every (envelope sender, raw) to the intake over SMTP; each must get 250."""

    def send(batch: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            for sender, raw in batch:
                assert smtp.sendmail(sender, [mc.SERVICE], raw) == {}

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, [messages[i::clients] for i in range(clients)]))
