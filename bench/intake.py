"""The intake benchmark: throughput against a no-op sink, report -> acknowledgement latency, and
the intake's memory with eight maximum-size messages at once. A script that prints numbers; it
asserts nothing. See bench/README.md.

Everything runs as real processes in a throwaway instance under /tmp: its own redis-server on a
unix socket, `python -m app init`, `python -m app intake` and `python -m app worker`, and a no-op
aiosmtpd sink (this file with --sink) for comparison. All of them, and the folder, are removed
at the end, also on error or Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesHeaderParser
from email.utils import formatdate
from pathlib import Path

from common import (
    MIB,
    ROOT,
    Bench,
    free_port,
    memory_kib,
    nearest_rank,
    run,
    run_benchmark,
    smtp_answers,
    wait_for,
)

SERVICE = "security@localhost"
CRLF = b"\r\n"

# The goals of the issue.
GOAL_RATIO = 0.5  # real intake / no-op sink, messages per second
GOAL_P95 = 10.0  # seconds from 250 to the acknowledgement sent
GOAL_COPIES = 3.0  # intake memory per in-flight message, in copies of it


# -- mail ----------------------------------------------------------------------------------------


class Encryptor:
    """gpg --recipient-file with a scratch home of its own: no keyring, no trust questions (its
    gpg-agent is stopped with the others by Bench.cleanup)."""

    def __init__(self, home: Path, cert: Path):
        home.mkdir(mode=0o700)
        self.home, self.cert = home, cert

    def encrypt(self, data: bytes) -> bytes:
        argv = ["gpg", "--homedir", str(self.home), "--batch", "--quiet", "--armor"]
        argv += ["--compress-algo", "none", "--recipient-file", str(self.cert), "--encrypt"]
        return run(argv, input=data)


def report_plaintext(number: int, size: int) -> bytes:
    """A text/plain MIME entity: a report and a log excerpt, size bytes in all."""
    head = (
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello security team,\r\n\r\nreport {number}: the packet parser overflows a heap "
        f"buffer when a TLV length exceeds the remaining frame. Steps to reproduce and the "
        f"sanitizer output follow.\r\n\r\n"
    ).encode()
    body = bytearray(head)
    line = 0
    while len(body) < size:
        body += f"[{line:05d}] frame {os.urandom(24).hex()} len={line * 37 % 4096}\r\n".encode()
        line += 1
    return bytes(body[:size])


def pgp_mime(ciphertext: bytes, number: int, tag: str) -> tuple[str, str, bytes]:
    """(envelope sender, Message-ID, raw message): RFC 3156 multipart/encrypted."""
    sender = f"reporter{number}@example.org"
    message_id = f"<bench.{tag}.{number}.{os.urandom(4).hex()}@example.org>"
    headers = [
        ("From", f"Reporter {number} <{sender}>"),
        ("To", SERVICE),
        ("Subject", "..."),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        (
            "Content-Type",
            'multipart/encrypted; boundary="enc-boundary"; protocol="application/pgp-encrypted"',
        ),
    ]
    armored = ciphertext.replace(b"\r\n", b"\n").replace(b"\n", CRLF)
    body = CRLF.join(
        [
            b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)",
            b"--enc-boundary",
            b"Content-Type: application/pgp-encrypted",
            b"",
            b"Version: 1",
            b"",
            b"--enc-boundary",
            b'Content-Type: application/octet-stream; name="encrypted.asc"',
            b'Content-Disposition: inline; filename="encrypted.asc"',
            b"",
            armored.rstrip(CRLF),
            b"--enc-boundary--",
            b"",
        ]
    )
    head = CRLF.join(f"{name}: {value}".encode() for name, value in headers)
    return sender, message_id, head + CRLF + CRLF + body


def make_reports(encryptor: Encryptor, count: int, size: int, tag: str, start: int = 0):
    """count encrypted reports of about size bytes each, made in parallel before any timing."""
    # Armor: 4/3 of the ciphertext plus line ends; the headers and MIME frame about 600 bytes.
    plain = max(1000, int((size - 700) * 64 / 65 * 3 / 4) - 120)

    def one(number: int):
        return pgp_mime(encryptor.encrypt(report_plaintext(number, plain)), number, tag)

    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(one, range(start, start + count)))


def big_message(encryptor: Encryptor, limit: int) -> tuple[str, bytes]:
    """One encrypted message as close under limit (as counted on the wire) as armor allows."""
    target = limit - 2048
    plain = int(target * 64 / 65 * 3 / 4)
    while True:
        sender, _, raw = pgp_mime(encryptor.encrypt(os.urandom(plain)), 0, "big")
        if len(raw) + 8 <= target:  # + the ".\r\n" and a margin; armor never starts with "."
            return sender, raw
        plain -= (len(raw) - target) * 3 // 4 + 1024


# -- SMTP clients --------------------------------------------------------------------------------


def concurrent_send(port: int, shares: list[list[tuple[str, bytes]]]) -> tuple[float, int, str]:
    """One thread and one connection per share; each sends its messages in turn, RSET between
    them. Connections are made before the clock starts. Returns (seconds, refused, an error)."""
    barrier = threading.Barrier(len(shares) + 1)
    refused = []
    errors: list[str] = []

    def session(share):
        smtp = None
        try:
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
            smtp.ehlo()
            barrier.wait(60)
            for position, (sender, raw) in enumerate(share):
                if position:
                    smtp.rset()
                try:
                    smtp.sendmail(sender, [SERVICE], raw)
                except smtplib.SMTPResponseException as exc:
                    refused.append(f"{exc.smtp_code} {exc.smtp_error!r}")
                except smtplib.SMTPRecipientsRefused as exc:
                    refused.append(str(exc.recipients))
        except (OSError, smtplib.SMTPException, threading.BrokenBarrierError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    smtp.close()

    threads = [threading.Thread(target=session, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(60)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return elapsed, len(refused), (errors + refused + [""])[0]


def send_one(port: int, sender: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.sendmail(sender, [SERVICE], raw)


class AckWatcher:
    """Polls the Maildir the worker writes to; notes when each In-Reply-To first appears."""

    def __init__(self, maildir: Path):
        self.new = maildir / "new"
        self.seen_files: set[str] = set()
        self.arrived: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        parser = BytesHeaderParser()
        while not self.stop.is_set():
            now = time.perf_counter()
            try:
                names = os.listdir(self.new)
            except FileNotFoundError:
                names = []
            for name in names:
                if name in self.seen_files:
                    continue
                self.seen_files.add(name)
                with open(self.new / name, "rb") as handle:
                    headers = parser.parsebytes(handle.read(65536))
                replied = str(headers.get("In-Reply-To", "")).strip()
                if replied and replied not in self.arrived:
                    self.arrived[replied] = now
            self.stop.wait(0.02)


# -- the no-op sink (this file with --sink) ------------------------------------------------------


def sink(port: int, limit: int) -> None:
    """The same aiosmtpd protocol class and limits as the intake; DATA answers 250 at once."""
    sys.path.insert(0, str(ROOT))
    from mail.intake import ACCEPTED, ConnectionLimits, IntakeSMTP

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return ACCEPTED

    limits = ConnectionLimits(200, 100)

    def make():
        server = IntakeSMTP(
            Sink(), hostname="localhost", ident="sink", data_size_limit=limit, timeout=120
        )
        server.limits = limits
        return server

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(make, "127.0.0.1", port)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# -- the benchmark ----------------------------------------------------------------------------


class IntakeBench(Bench):
    name = "intake"
    title = "intake benchmark"
    storage = "SQLite (WAL, synchronous=full)"

    def __init__(self, args):
        super().__init__(args, prefix="fwb")
        self.encryptor: Encryptor | None = None

    def setup(self) -> None:
        self.start_redis()
        self.forewarn("init")
        cert = self.folder / "service.asc"
        cert.write_bytes(self.forewarn("key", "export"))
        self.encryptor = Encryptor(self.folder / "g", cert)

    def measure(self) -> None:
        self.throughput()
        self.memory()
        self.latency()

    def flush_redis(self) -> None:
        import redis

        connection = redis.Redis(unix_socket_path=str(self.folder / "r.sock"))
        connection.flushall()
        connection.close()

    def start_intake(self, **extra: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        env = {**self.env, "FOREWARN_INTAKE_LISTEN": f"127.0.0.1:{port}", **extra}
        process = self.procs.start("intake", [sys.executable, "-m", "app", "intake"], env)
        self._ready("intake", port)
        return process, port

    def _ready(self, name: str, port: int) -> None:
        try:
            wait_for(lambda: smtp_answers(port), 30, f"the {name} on port {port}")
        except RuntimeError:
            raise RuntimeError(f"the {name} did not start:\n{self.procs.tail(name)}") from None

    # throughput

    def throughput(self) -> None:
        a = self.args
        reports = make_reports(self.encryptor, a.messages + a.sessions, a.size, "tp")
        warmup, reports = reports[: a.sessions], reports[a.sessions :]
        mean = sum(len(raw) for _, _, raw in reports) / len(reports)
        shares = [[(s, raw) for s, _, raw in reports[i :: a.sessions]] for i in range(a.sessions)]
        warm = [[(s, raw)] for s, _, raw in warmup]
        self.notes.append(
            f"throughput: {len(reports)} encrypted reports of {mean / 1024:.1f} KiB on average, "
            f"{a.sessions} concurrent SMTP sessions, each reusing one connection for its "
            f"{len(reports) // a.sessions} messages in turn with RSET between them; "
            f"one warm-up round per target first, then {a.rounds} alternating rounds; "
            f"median (each round in brackets)"
        )

        port = free_port()
        argv = [sys.executable, str(Path(__file__).resolve()), "--sink", str(port)]
        self.procs.start("sink", [*argv, "--limit", str(26214400)], self.env)
        self._ready("sink", port)
        _, intake_port = self.start_intake()
        targets = {"sink": port, "intake": intake_port}
        rates: dict[str, list[float]] = {"sink": [], "intake": []}
        problems: list[str] = []
        for target in targets.values():
            concurrent_send(target, warm)
        for _ in range(a.rounds):  # alternating, so that a noisy moment hits both
            for name, target in targets.items():
                seconds, refused, error = concurrent_send(target, shares)
                rates[name].append(len(reports) / seconds)
                if error:
                    problems.append(f"{name}: {refused} refused; first problem: {error}")
        self.procs.stop("sink")
        self.procs.stop("intake")

        sink_rate, real_rate = statistics.median(rates["sink"]), statistics.median(rates["intake"])
        ratio = real_rate / sink_rate
        spread = {k: "/".join(f"{r:.0f}" for r in v) for k, v in rates.items()}
        self.row("throughput, no-op aiosmtpd sink", f"{sink_rate:7.1f} msg/s ({spread['sink']})")
        self.row(
            "throughput, real intake (SQLite commit)",
            f"{real_rate:7.1f} msg/s ({spread['intake']})",
        )
        verdict = "PASS" if ratio >= GOAL_RATIO and not problems else "MISS"
        self.row("throughput ratio real / no-op", f"{ratio:7.2f}", f">= {GOAL_RATIO}", verdict)
        self.figure(
            "throughput, real intake vs no-op sink",
            real_rate,
            "msg/s",
            f">= {GOAL_RATIO}",
            verdict,
            baseline=sink_rate,
            ratio=ratio,
        )
        self.notes.extend(problems[:2])

    # memory

    def memory(self) -> None:
        limit = self.args.limit_mib * MIB
        sender, raw = big_message(self.encryptor, limit)
        small = make_reports(self.encryptor, 1, self.args.size, "mw", start=9000)[0]
        process, port = self.start_intake(FOREWARN_MAX_MESSAGE_BYTES=str(limit))
        send_one(port, small[0], small[2])  # warm-up: threads, database and Redis connections
        time.sleep(0.5)
        before = memory_kib(process.pid)
        seconds, refused, error = concurrent_send(port, [[(sender, raw)]] * self.args.sessions)
        after = memory_kib(process.pid)
        self.procs.stop("intake")
        grown = (after["VmHWM"] - before["VmRSS"]) / 1024
        per_message = len(raw) / MIB
        copies_total = grown / per_message
        copies_each = copies_total / self.args.sessions
        verdict = "PASS" if copies_each <= GOAL_COPIES and not error else "MISS"
        self.row(
            f"intake memory, {self.args.sessions} x {per_message:.2f} MiB at once",
            f"peak {after['VmHWM'] / 1024:.0f} - baseline {before['VmRSS'] / 1024:.0f}"
            f" = {grown:.0f} MiB = {copies_total:.1f} messages"
            f" = {copies_each:.1f} copies of each",
            f"<= {GOAL_COPIES:.0f} copies each",
            verdict,
        )
        self.figure(
            f"memory, {self.args.sessions} messages of {per_message:.0f} MiB at once",
            copies_each,
            "copies of each",
            f"<= {GOAL_COPIES:.0f} copies",
            verdict,
            note=f"{refused} refused" if error else "",
        )
        self.notes.append(
            f"memory: FOREWARN_MAX_MESSAGE_BYTES={limit} ({self.args.limit_mib} MiB), messages of "
            f"{len(raw)} bytes, {self.args.sessions} x = {self.args.sessions * per_message:.0f} "
            f"MiB is one copy of each; VmHWM after, VmRSS before (after a warm-up message); "
            f"sent in {seconds:.1f} s" + (f"; {refused} refused: {error}" if error else "")
        )

    # latency

    def latency(self) -> None:
        a = self.args
        reports = make_reports(self.encryptor, a.latency_reports + 1, a.size, "lat", start=1000)
        warmup, reports = reports[0], reports[1:]
        # A database of its own, so the worker does not process the throughput messages.
        self.env["FOREWARN_DATABASE_URL"] = f"sqlite:///{self.instance / 'latency.db'}"
        self.forewarn("init")
        self.flush_redis()
        _, port = self.start_intake()
        self.procs.start("worker", [sys.executable, "-m", "app", "worker"], self.env)
        latencies: list[float] = []
        with AckWatcher(self.instance / "mail-out") as watcher:
            send_one(port, warmup[0], warmup[2])
            try:
                wait_for(lambda: warmup[1] in watcher.arrived, 60, "the warm-up acknowledgement")
            except RuntimeError:
                raise RuntimeError(
                    f"no acknowledgement came:\n{self.procs.tail('worker')}"
                ) from None
            accepted: dict[str, float] = {}
            next_at = time.perf_counter()
            for sender, message_id, raw in reports:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                send_one(port, sender, raw)
                accepted[message_id] = time.perf_counter()
                next_at += a.interval
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline and accepted.keys() - watcher.arrived.keys():
                time.sleep(0.05)
            arrived = dict(watcher.arrived)
        self.procs.stop("worker")
        self.procs.stop("intake")
        latencies = [arrived[m] - t for m, t in accepted.items() if m in arrived]
        missing = len(accepted) - len(latencies)
        what = f"250 -> ack sent ({len(accepted)} reports, 1 per {a.interval:g} s)"
        latency_figure = "latency p95, 250 -> acknowledgement sent"
        if not latencies:
            self.row(what, "no acknowledgement arrived", f"p95 <= {GOAL_P95:g} s", "MISS")
            self.figure(
                latency_figure, None, "s", f"<= {GOAL_P95:g} s", "MISS", note="no acknowledgement"
            )
            return
        p50, p95 = nearest_rank(latencies, 0.50), nearest_rank(latencies, 0.95)
        result = f"p50 {p50:5.2f} s  p95 {p95:5.2f} s  max {max(latencies):5.2f} s"
        if missing:
            result += f"  ({missing} never acknowledged)"
        verdict = "PASS" if p95 <= GOAL_P95 and not missing else "MISS"
        self.row(what, result, f"p95 <= {GOAL_P95:g} s", verdict)
        note = f"{missing} never acknowledged" if missing else ""
        self.figure(latency_figure, p95, "s", f"<= {GOAL_P95:g} s", verdict, note=note)
        self.notes.append(
            "latency: one new connection per report; from the 250 to the acknowledgement "
            "appearing in the instance's mail-out/new (matched by In-Reply-To), which the "
            "worker writes just before it commits the delivery as sent"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="throughput messages")
    parser.add_argument("--size", type=int, default=20_000, help="bytes of each report")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent SMTP sessions")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds")
    parser.add_argument("--latency-reports", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    parser.add_argument("--limit-mib", type=int, default=8, help="message size limit (memory)")
    parser.add_argument("--keep", action="store_true", help="keep the folder (and its logs)")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=26214400, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink, args.limit)
        return 0
    return run_benchmark(lambda: IntakeBench(args))


if __name__ == "__main__":
    sys.exit(main())
