"""Helpers of the fault tests: many real registrant keys made fast, real worker processes
killed and restarted, and what an SMTP sink received, read back by Message-ID."""

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path

from tests.conftest import ROOT
from tests.mailcorpus import run
from tests.smtpsink import SmtpSink

DELIVERY_ID = re.compile(rb"^Message-ID: <forewarn\.delivery\.(\d+)@", re.MULTILINE | re.IGNORECASE)


class CountingSink(SmtpSink):
    """An SmtpSink that also keeps the delivery id of every message it accepted, as it goes."""

    def __init__(self, delay: float = 0.0):
        self.delivery_ids: set[int] = set()
        self.delay = delay  # a relay's time to accept, so that sends are in flight for a while
        super().__init__()

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        found = DELIVERY_ID.search(envelope.original_content.split(b"\r\n\r\n", 1)[0])
        if reply.startswith("250") and found:
            self.delivery_ids.add(int(found.group(1)))
        return reply


def registrant_certificates(addresses: list[str], threads: int = 8) -> dict[str, bytes]:
    """A certificate of its own for each address (the registry refuses a fingerprint that
    another registrant already has): Sequoia's `sqop generate-key`, ed25519 with a cv25519
    encryption subkey and no passphrase, about 15 ms each, several at a time."""

    def make(address: str) -> bytes:
        secret = run("sqop", "generate-key", f"PSIRT <{address}>")
        return run("sqop", "extract-cert", input=secret)

    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(addresses, pool.map(make, addresses), strict=True))


def children(pid: int) -> list[int]:
    """The direct children of a process, from /proc (fast when the kernel lists them)."""
    with contextlib.suppress(OSError, ValueError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


def kill_trees(pids: list[int]) -> None:
    """kill -9 each process's group and the groups of its children, as a crash of the machine,
    an OOM kill or systemd's KillMode=control-group would. RQ 2.x moves each work-horse into a
    process group of its own (os.setpgrp), so killpg of the worker alone leaves the job in
    flight running to its end: not the failure this test is about. The workers are stopped
    first so that they fork no new horse while their children are looked up."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGSTOP)
    for child in [child for pid in pids for child in children(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(child), signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


class Workers:
    """`python -m app worker` processes, each in a process group of its own."""

    def __init__(self, env: dict[str, str], count: int, log_dir: Path):
        self.env = {**os.environ, **env}
        self.count = count
        self.log_dir = log_dir
        self.started = 0
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        for _ in range(self.count):
            self.started += 1
            with open(self.log_dir / f"worker-{self.started}.log", "wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app", "worker"],
                        cwd=ROOT,
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def kill(self) -> None:
        """kill -9 every worker with its work-horse (see kill_trees)."""
        kill_trees([process.pid for process in self.processes])
        for process in self.processes:
            process.wait()
        self.processes = []

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to each worker alone: RQ's warm shutdown lets the job in hand finish."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        self.kill()  # whatever did not stop in time, and any leftover child

    def logs(self, tail: int = 20) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out += [f"--- {path.name}", *lines]
        return "\n".join(out)


def received_by_message_id(received) -> Counter:
    """(Message-ID, envelope recipients) of every message the sink accepted, with counts."""
    parser = BytesHeaderParser(policy=default)
    return Counter(
        (str(parser.parsebytes(r.data)["Message-ID"]), tuple(r.recipients)) for r in received
    )


def queued_deliveries(connection) -> list[str]:
    """Each delivery still queued, with its lease and its job's state in Redis (for a timeout's
    message)."""
    from app.models import Delivery
    from app.workers import reconcile

    lines = []
    for d in Delivery.select().where(Delivery.state == "queued"):
        job = connection.hget(f"rq:job:{reconcile.delivery_job_id(d.id)}", "status")
        lines.append(
            f"delivery {d.id}: attempts {d.attempts}, lease {d.claimed_until}, job {job!r}, "
            f"last answer {d.last_answer!r}"
        )
    return lines
