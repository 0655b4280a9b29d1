"""The alert fan-out benchmark: one advisory to N registrants, against a plain gpg loop.

One pre-disclosure alert to N approved registrants, each with a key of their own, sent by 1 and
then 2 workers, against a plain `gpg --sign --encrypt` loop over the same certificates. A script
that prints numbers; it asserts nothing. See bench/README.md.

Everything runs as real processes in a throwaway instance under /tmp: its own redis-server on a
unix socket, `python -m app init`, `python -m app registrants import --approve`, `python -m app
alert send` and `python -m app worker`, and an SMTP sink that accepts and discards (this file
with --sink) as FOREWARN_SMTP_RELAY. All of them, and the folder, are removed at the end, also
on error or Ctrl-C. The registrants' keys (sqop generate-key) are kept in a cache folder under
/tmp, one per N, so that a second run does not make them again.
"""

import argparse
import asyncio
import contextlib
import csv
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from common import (
    ROOT,
    Bench,
    free_port,
    memory_kib,
    run,
    run_benchmark,
    smtp_answers,
    wait_for,
)

CACHE = Path("/tmp")  # noqa: S108 (the key cache: /tmp/forewarn-fanout-keys-<N>)

# The goals of the issue.
GOAL_RATIO_ONE = 0.6  # ours with one worker / the gpg loop, alerts per second
GOAL_RATIO_TWO = 1.0  # ours with two workers (both cores) / the gpg loop
GOAL_MEMORY = 1.5  # peak memory at the largest size / at the smallest


# -- the registrants' keys -----------------------------------------------------------------------


def address(number: int) -> str:
    return f"psirt{number}@maker{number}.example"


def make_keys(count: int) -> Path:
    """count real OpenPGP keys (ed25519/cv25519, v4, made by Sequoia's sqop), certificate and
    secret key each, in /tmp/forewarn-fanout-keys-<count>; made once, reused afterwards."""
    folder = CACHE / f"forewarn-fanout-keys-{count}"
    if (folder / "complete").exists():
        print(f"keys: {count} from the cache {folder}", flush=True)
        return folder
    sqop = shutil.which("sqop")
    if sqop is None:
        raise RuntimeError("sqop is missing (apt-get install sqop): it makes the registrants' keys")
    folder.mkdir(mode=0o700, exist_ok=True)
    started, made = time.perf_counter(), [0]
    lock = threading.Lock()

    def one(number: int) -> None:
        cert = folder / f"{number}.asc"
        if not cert.exists():
            uid = f"Maker {number} PSIRT <{address(number)}>"
            secret = run([sqop, "generate-key", uid])
            (folder / f"{number}.key").write_bytes(secret)
            part = folder / f"{number}.part"
            part.write_bytes(run([sqop, "extract-cert"], input=secret))
            part.rename(cert)  # a complete certificate or none, also after a Ctrl-C
        with lock:
            made[0] += 1
            if made[0] % 1000 == 0 or made[0] == count:
                print(
                    f"keys: {made[0]}/{count} ({time.perf_counter() - started:.0f} s)", flush=True
                )

    with ThreadPoolExecutor(2 * (os.cpu_count() or 2)) as pool:
        list(pool.map(one, range(count)))
    (folder / "complete").write_text(f"{count}\n")
    return folder


# -- the sink (this file with --sink) ------------------------------------------------------------


def sink(port: int, stats_file: Path, sample_to: str, sample_file: Path) -> None:
    """Accepts every message and keeps nothing but a count, its bytes and one sample message
    (the first one to sample_to), written to stats_file on SIGTERM."""
    from aiosmtpd.smtp import SMTP

    stats = {"messages": 0, "bytes": 0}

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            stats["messages"] += 1
            stats["bytes"] += len(envelope.original_content)
            if sample_to in envelope.rcpt_tos and not sample_file.exists():
                sample_file.write_bytes(envelope.original_content)
            return "250 2.0.0 OK"

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Sink(), hostname="sink", data_size_limit=None), "127.0.0.1", port
        )
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with server:
            await stop.wait()
        stats_file.write_text(json.dumps(stats))

    asyncio.run(main())


# -- `alert send` in a process whose peak memory we can read (this file with --send) --------------


def send_and_report(vuln_id: str) -> int:
    """`forewarn alert send VULN_ID` in this process; then its VmHWM on stdout's last line."""
    sys.path.insert(0, str(ROOT))
    from app.cli import cli

    code = 0
    try:
        cli.main(["alert", "send", vuln_id], prog_name="forewarn", standalone_mode=False)
    except Exception as exc:  # noqa: BLE001 (said on stderr; the benchmark reports it)
        print(f"alert send failed: {exc}", file=sys.stderr)
        code = 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"cpu_seconds {usage.ru_utime + usage.ru_stime:.3f}", flush=True)
    print(f"vmhwm_kib {memory_kib(os.getpid())['VmHWM']}", flush=True)
    return code


# -- peak memory of a process group ---------------------------------------------------------------


class GroupPeaks:
    """Samples the VmHWM of every process in some process groups (a worker and the work horses
    it forks, one per job) until stopped; the worker's own is read again at the end."""

    def __init__(self, groups: list[int]):
        self.groups = set(groups)
        self.peak: dict[int, int] = {}  # pid -> VmHWM KiB
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def sample(self) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as handle:
                    fields = handle.read().rpartition(")")[2].split()
                group = int(fields[2])
                if group not in self.groups:
                    continue
                pid = int(name)
                hwm = memory_kib(pid).get("VmHWM", 0)
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            self.peak[pid] = max(self.peak.get(pid, 0), hwm)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.05)

    def workers(self) -> list[int]:
        return [self.peak.get(group, 0) for group in sorted(self.groups)]

    def horses(self) -> int:
        return max((kib for pid, kib in self.peak.items() if pid not in self.groups), default=0)


# -- CPU time of processes ----------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process (with children=True: of the children it has
    waited for, such as the gpg processes a worker runs); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    first = 13 if children else 11  # utime, stime; cutime, cstime (after the state field)
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def named_pids(name: bytes) -> list[int]:
    """Processes whose program is called name (e.g. a local PostgreSQL server's)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_bytes().strip() == name:
                found.append(int(entry))
        except OSError:
            continue
    return found


def agent_pids(home: Path) -> list[int]:
    """gpg-agent processes serving a GnuPG home."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"gpg-agent") and str(home).encode() in b" ".join(argv):
            found.append(int(name))
    return found


def epoch(stamp) -> float:
    """A UTC instant as stored (SQLite: ISO text; PostgreSQL: a datetime), in seconds."""
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp)
    return stamp.replace(tzinfo=UTC).timestamp()


def pg_connect(url: str):
    """A PostgreSQL connection (psycopg, as the app's own driver) in autocommit mode."""
    import psycopg

    return psycopg.connect(url, autocommit=True)


# -- the benchmark ----------------------------------------------------------------------------


class FanoutBench(Bench):
    name = "fan-out"
    title = "alert fan-out benchmark"

    def __init__(self, args):
        super().__init__(args, prefix="fwf")
        self.registered = 0
        self.version = 0
        self.keys: Path | None = None
        self.vuln_id = ""
        self.fingerprint = ""
        self.sink_port = 0
        self.sample = self.folder / "sample.eml"
        self.peaks: dict[int, dict[str, int]] = {}  # N -> peak memory (KiB) of each kind
        self.schema = ""  # with --database: the PostgreSQL schema of this run, dropped at the end
        if args.database:
            self.schema = f"fw_bench_{os.getpid()}_{int(time.time())}"
            self.storage = f"PostgreSQL (schema {self.schema})"
            with pg_connect(args.database) as db:
                db.execute(f'CREATE SCHEMA "{self.schema}"')
            separator = "&" if "?" in args.database else "?"
            search_path = urllib.parse.quote(f"-csearch_path={self.schema}")
            self.env["FOREWARN_DATABASE_URL"] = f"{args.database}{separator}options={search_path}"

    def query(self, sql: str, *params) -> list[tuple]:
        if self.schema:
            with pg_connect(self.env["FOREWARN_DATABASE_URL"]) as db:
                return db.execute(sql.replace("?", "%s"), params).fetchall()
        database = self.instance / "forewarn.db"
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return db.execute(sql, params).fetchall()

    # set-up and clean-up

    def setup(self) -> None:
        self.start_redis()
        said = self.forewarn("init").decode()  # "... service key: FINGERPRINT (generated)"
        self.fingerprint = said.split("service key:", 1)[1].split()[0]
        (self.folder / "service.asc").write_bytes(self.forewarn("key", "export"))
        self.sink_port = free_port()
        argv = [sys.executable, str(Path(__file__).resolve()), "--sink", str(self.sink_port)]
        argv += ["--sink-stats", str(self.folder / "sink.json"), "--sample", str(self.sample)]
        self.procs.start("sink", argv, self.env)
        try:
            wait_for(lambda: smtp_answers(self.sink_port), 30, "the SMTP sink")
        except RuntimeError:
            raise RuntimeError(f"the sink did not start:\n{self.procs.tail('sink')}") from None
        self.env["FOREWARN_SMTP_RELAY"] = f"127.0.0.1:{self.sink_port}"
        description = self.folder / "description.txt"
        description.write_text(advisory_description(self.args.size))
        title = "Heap overflow in the TLV parser of the frame decoder"
        self.vuln_id = (
            self.forewarn(
                "vulns", "create", "--title", title, "--description-file", str(description)
            )
            .decode()
            .strip()
        )
        self.forewarn("vulns", "set", self.vuln_id, "status", "accepted")

    def cleanup(self) -> None:
        self.procs.stop("sink")  # it writes its counts as it stops
        stats = self.folder / "sink.json"
        if stats.exists():
            counts = json.loads(stats.read_text())
            self.notes.append(
                f"the sink accepted {counts['messages']} messages, "
                f"{counts['bytes'] / max(1, counts['messages']) / 1024:.1f} KiB each on average"
            )
        super().cleanup()
        if self.schema and not self.args.keep:
            with pg_connect(self.args.database) as db:
                db.execute(f'DROP SCHEMA "{self.schema}" CASCADE')

    def register(self, count: int) -> None:
        """Registrants up to count, approved, through `forewarn registrants import --approve`:
        one CSV per core, imported in parallel."""
        if count <= self.registered:
            return
        self.keys = make_keys(count)
        numbers = list(range(self.registered, count))
        shards = max(1, min(os.cpu_count() or 2, len(numbers) // 50))
        running = []
        for shard in range(shards):
            path = self.folder / f"registrants-{count}-{shard}.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["email", "org", "product", "key_file"])
                for number in numbers[shard::shards]:
                    key = self.keys / f"{number}.asc"
                    writer.writerow([address(number), f"Maker {number}", "Gateway", str(key)])
            argv = [sys.executable, "-m", "app", "registrants", "import", str(path), "--approve"]
            running.append(self.procs.start(f"import-{count}-{shard}", argv, self.env))
        started, shown = time.perf_counter(), 0.0
        while any(process.poll() is None for process in running):
            time.sleep(0.5)
            if time.perf_counter() - shown >= 10:
                shown = time.perf_counter()
                (done,) = self.query("SELECT COUNT(*) FROM registrant")[0]
                print(f"registrants: {done}/{count} ({shown - started:.0f} s)", flush=True)
        for shard, process in enumerate(running):
            self.procs.running.pop(f"import-{count}-{shard}", None)
            if process.returncode != 0:
                raise RuntimeError(
                    f"registrants import failed:\n{self.procs.tail(f'import-{count}-{shard}')}"
                )
        (done,) = self.query("SELECT COUNT(*) FROM registrant WHERE status = 'approved'")[0]
        print(f"registrants: {done} approved ({time.perf_counter() - started:.0f} s)", flush=True)
        self.registered = count

    # ours: `alert send`, then workers send every delivery

    def fanout(self, workers: int) -> tuple[float, int]:
        """Send the next advisory version to every registrant with `workers` workers running;
        returns (alerts per second, deliveries); notes the peak memory of each process."""
        count = self.registered
        names = [f"worker-{count}-{w}" for w in range(workers)]
        groups = [
            self.procs.start(name, [sys.executable, "-m", "app", "worker"], self.env).pid
            for name in names
        ]
        try:
            wait_for(lambda: self.rq_workers() >= workers, 30, f"{workers} RQ workers", 0.1)
        except RuntimeError:
            raise RuntimeError(f"the workers did not start:\n{self.procs.tail(names[0])}") from None
        self.version += 1
        version = self.version
        load = os.getloadavg()
        others = {"sink": [self.procs.running["sink"].pid]}
        others["redis"] = [self.procs.running["redis"].pid]
        others["gpg-agent"] = agent_pids(self.instance / "gpg")
        if self.schema:  # the server's processes (a local server's, on this machine's cores)
            others["PostgreSQL"] = named_pids(b"postgres")
        before = {pid: cpu_seconds(pid) for pid in groups}
        before |= {-pid: cpu_seconds(pid, children=True) for pid in groups}
        before |= {pid: cpu_seconds(pid) for pids in others.values() for pid in pids}
        with GroupPeaks(groups) as peaks:
            started, started_epoch = time.perf_counter(), time.time()
            argv = [sys.executable, str(Path(__file__).resolve()), "--send", self.vuln_id]
            sender = self.procs.start(f"send-{count}-{workers}", argv, self.env)
            done, last_change, last_done = {}, time.perf_counter(), -1
            shown = started
            while True:
                done = dict(
                    self.query(
                        "SELECT d.state, COUNT(*) FROM delivery d JOIN advisory a "
                        "ON d.advisory_id = a.id WHERE a.version = ? GROUP BY d.state",
                        version,
                    )
                )
                total = sum(done.values())
                finished = total - done.get("queued", 0)
                if sender.poll() not in (None, 0):
                    break
                if total == count and finished == count:
                    break
                if finished != last_done:
                    last_done, last_change = finished, time.perf_counter()
                if time.perf_counter() - shown >= 10:
                    shown = time.perf_counter()
                    print(
                        f"{workers} worker(s): {finished}/{count} sent ({shown - started:.0f} s)",
                        flush=True,
                    )
                elif time.perf_counter() - last_change > self.args.stall:
                    break
                time.sleep(0.05)
            # Until the last delivery that was recorded: a stall at the end is not throughput.
            seconds = last_change - started
            peaks.sample()
            spent = {
                "workers (Python)": sum(cpu_seconds(pid) - before[pid] for pid in groups),
                "their gpg": sum(cpu_seconds(pid, True) - before[-pid] for pid in groups),
            }
            for kind, pids in others.items():
                spent[kind] = sum(cpu_seconds(pid) - before[pid] for pid in pids)
        sender.wait(60)
        self.procs.running.pop(f"send-{count}-{workers}", None)
        for name in names:
            self.procs.stop(name)
        send_log = self.procs.tail(f"send-{count}-{workers}", 5)
        sent_hwm = next(
            (int(line.split()[1]) for line in send_log.splitlines() if line.startswith("vmhwm")), 0
        )
        spent["`alert send`"] = next(
            (float(line.split()[1]) for line in send_log.splitlines() if line.startswith("cpu_s")),
            0.0,
        )
        sent = done.get("sent", 0)
        states = ", ".join(f"{state} {n}" for state, n in sorted(done.items()))
        if sent != count:
            (claimed,) = self.query(
                "SELECT COUNT(*) FROM delivery d JOIN advisory a ON d.advisory_id = a.id "
                "WHERE a.version = ? AND d.state = 'queued' AND d.attempts > 0",
                version,
            )[0]
            self.notes.append(
                f"{workers} worker(s), N={count}: {states} (waited {self.args.stall:g} s "
                f"without progress; the rate counts until the last one recorded); "
                f"{claimed} of those queued were claimed by a job (attempts > 0) that never "
                f"recorded an outcome; `alert send` said: {send_log.splitlines()[:1] or '-'}; "
                f"worker log: {self.procs.tail(names[0], 3) or '(empty)'}"
            )
        rate = sent / seconds
        worker_peaks = peaks.workers()
        kinds = self.peaks.setdefault(count, {})
        kinds["worker"] = max(kinds.get("worker", 0), *worker_peaks)
        kinds["horse"] = max(kinds.get("horse", 0), peaks.horses())
        kinds["send"] = max(kinds.get("send", 0), sent_hwm)
        self.row(
            f"ours, {workers} worker{'s' if workers > 1 else ''}, N={count}",
            f"{rate:7.1f} alerts/s ({sent} sent in {seconds:.1f} s)",
        )
        first, last = self.query(
            "SELECT MIN(d.sent_at), MAX(d.sent_at) FROM delivery d JOIN advisory a "
            "ON d.advisory_id = a.id WHERE a.version = ?",
            version,
        )[0]
        if first and last:
            first_s = epoch(first) - started_epoch
            last_s = epoch(last) - started_epoch
            self.notes.append(
                f"{workers} worker(s), N={count}: the first alert was sent {first_s:.1f} s after "
                f"`alert send` started, the last {last_s:.1f} s after: "
                f"{(sent - 1) / max(0.001, last_s - first_s):.1f} alerts/s in between"
            )
        total_cpu = sum(spent.values())
        self.notes.append(
            f"{workers} worker(s), N={count}: CPU per alert "
            f"{total_cpu / max(1, sent) * 1000:.1f} ms "
            f"({total_cpu / seconds:.2f} of {os.cpu_count()} cores busy): "
            + ", ".join(f"{kind} {cpu / max(1, sent) * 1000:.1f}" for kind, cpu in spent.items())
        )
        self.notes.append(
            f"{workers} worker(s), N={count}: load average {load[0]:.1f} before and "
            f"{os.getloadavg()[0]:.1f} after (the machine's other work shares the cores)"
        )
        self.row(
            f"  peak memory (VmHWM), N={count}",
            f"worker {' + '.join(f'{k / 1024:.0f}' for k in worker_peaks)} MiB, "
            f"work horse max {peaks.horses() / 1024:.0f} MiB, "
            f"`alert send` {sent_hwm / 1024:.0f} MiB",
        )
        return rate, sent

    def rq_workers(self) -> int:
        import redis
        from rq import Worker

        connection = redis.Redis(unix_socket_path=str(self.folder / "r.sock"))
        try:
            return Worker.count(connection=connection)
        finally:
            connection.close()

    # the baseline: one gpg process per alert, sign and encrypt at once

    def plaintext(self) -> bytes:
        """What ours encrypts for one registrant (the multipart/signed entity), decrypted from
        the sample the sink kept with registrant 0's key; its signature is checked too."""
        if not self.sample.exists():
            raise RuntimeError("the sink kept no sample message (did any alert arrive?)")
        home = self.folder / "g"
        home.mkdir(mode=0o700, exist_ok=True)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
        run([*gpg, "--import", str(self.keys / "0.key")])
        run([*gpg, "--import", str(self.folder / "service.asc")])
        raw = self.sample.read_bytes()
        start = raw.index(b"-----BEGIN PGP MESSAGE-----")
        end = raw.index(b"-----END PGP MESSAGE-----") + len(b"-----END PGP MESSAGE-----")
        entity = run([*gpg, "--decrypt"], input=raw[start:end])
        # The signed part and its detached signature, split on the boundary of the entity.
        boundary = entity.split(b'boundary="', 1)[1].split(b'"', 1)[0]
        parts = entity.split(b"\r\n--" + boundary)
        signed_part = parts[1].removeprefix(b"\r\n")
        signature = parts[2].split(b"\r\n\r\n", 1)[1]
        (self.folder / "part").write_bytes(signed_part)
        (self.folder / "part.asc").write_bytes(signature)
        result = subprocess.run(
            [*gpg, "--status-fd", "1", "--verify", str(self.folder / "part.asc")]
            + [str(self.folder / "part")],
            capture_output=True,
        )
        good = f"VALIDSIG {self.fingerprint}".encode() in result.stdout
        self.notes.append(
            f"check: an alert the sink received ({len(raw)} bytes) decrypts with registrant 0's "
            f"key to a multipart/signed entity of {len(entity)} bytes whose signature "
            f"{'verifies with the service key' if good else 'DOES NOT VERIFY'}"
        )
        return entity

    def baseline(self, message: bytes) -> float:
        count = min(self.registered, self.args.baseline or self.registered)
        home = str(self.instance / "gpg")
        argv = ["gpg", "--homedir", home, "--batch", "--quiet", "--no-random-seed-file"]
        argv += ["--sign", "--encrypt", "--armor"]
        argv += ["--trust-model", "always", "-u", self.fingerprint, "--recipient-file"]
        run([*argv, str(self.keys / "0.asc")], input=message)  # warm-up: starts gpg-agent
        agents = agent_pids(self.instance / "gpg")
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = cpu.ru_utime + cpu.ru_stime + sum(cpu_seconds(pid) for pid in agents)
        started = time.perf_counter()
        for number in range(count):
            run([*argv, str(self.keys / f"{number}.asc")], input=message)
        seconds = time.perf_counter() - started
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_after = cpu.ru_utime + cpu.ru_stime + sum(cpu_seconds(pid) for pid in agents)
        self.notes.append(
            f"baseline: CPU per alert {(cpu_after - cpu_before) / count * 1000:.1f} ms "
            "(gpg and gpg-agent)"
        )
        rate = count / seconds
        self.row(
            "baseline: gpg --sign --encrypt loop, 1 process",
            f"{rate:7.1f} alerts/s ({count} in {seconds:.1f} s)",
        )
        self.notes.append(
            f"baseline: `{' '.join(argv[3:])} <cert>` with the service key's GnuPG home, "
            f"one process after another over the registrants' certificates, stdin the "
            f"{len(message)}-byte signed entity ours encrypts (so the same size), stdout read"
        )
        return rate

    def memory_row(self, kind: str, what: str) -> None:
        sizes = sorted(self.peaks)
        small, large = self.peaks[sizes[0]][kind], self.peaks[sizes[-1]][kind]
        if not small or not large:
            return
        ratio = large / small
        verdict = "PASS" if ratio <= GOAL_MEMORY else "MISS"
        what = f"peak memory {what}, N={sizes[-1]} / N={sizes[0]}"
        self.row(
            what,
            f"{large / 1024:.0f} / {small / 1024:.0f} MiB = {ratio:.2f}",
            f"<= {GOAL_MEMORY}",
            verdict,
        )
        self.figure(
            what, large / 1024, "MiB", f"<= {GOAL_MEMORY}", verdict, small / 1024, ratio=ratio
        )

    def measure(self) -> None:
        a = self.args
        sizes = a.memory_check or []
        self.register(a.registrants)
        rates = {1: self.fanout(1)}
        base = self.baseline(self.plaintext())
        rates[2] = self.fanout(2)
        for workers, goal in ((1, GOAL_RATIO_ONE), (2, GOAL_RATIO_TWO)):
            rate, sent = rates[workers]
            ratio = rate / base
            verdict = "PASS" if ratio >= goal and sent == self.registered else "MISS"
            plural = "s" if workers > 1 else ""
            self.row(
                f"ratio ours ({workers} worker{plural}) / baseline",
                f"{ratio:7.2f}",
                f">= {goal}",
                verdict,
            )
            self.figure(
                f"alerts to N={self.registered}, {workers} worker{plural} vs gpg loop"
                + (", PostgreSQL" if self.schema else ""),
                rate,
                "alerts/s",
                f">= {goal}",
                verdict,
                baseline=base,
                ratio=ratio,
                note="" if sent == self.registered else f"{sent} of {self.registered} sent",
            )
        for size in sizes:
            if size == a.registrants:
                continue
            self.register(size)
            self.fanout(2)  # both cores: 10 x N takes long enough as it is
        if len(self.peaks) > 1:
            self.memory_row("worker", "of a worker")
            self.memory_row("send", "of `alert send`")
        self.notes.append(
            "ours: from starting `forewarn alert send` (which creates the advisory version and "
            "one delivery per registrant in one transaction, then queues a job for each) until "
            "every delivery of that version is `sent` in the database (polled every 50 ms); "
            "each delivery signed (detached) then encrypted to the registrant's pinned key "
            "alone (RFC 3156, nested), relayed over SMTP to a sink that discards it"
        )


def advisory_description(size: int) -> str:
    """About size bytes of advisory prose, wrapped at 72 columns."""
    sentence = (
        "A frame whose TLV length exceeds the bytes left in the frame makes the decoder copy past "
        "the end of its heap buffer; an unauthenticated peer can crash the process or, with a "
        "prepared heap, run code. "
    )
    words = (sentence * (size // len(sentence) + 1))[:size].split()
    lines, line = [], ""
    for word in words:
        if len(line) + 1 + len(word) > 72:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line]) + "\n"


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", "--registrants", type=int, default=1000, help="registrants (default 1000)"
    )
    parser.add_argument("--large", action="store_true", help="10,000 registrants (-n 10000)")
    parser.add_argument(
        "--memory-check",
        nargs="?",
        const="",
        type=str,
        metavar="SIZES",
        help="also send at 10 x N (or at these comma-separated sizes) with two workers and "
        "compare the peak memory",
    )
    parser.add_argument("--size", type=int, default=2000, help="bytes of advisory description")
    parser.add_argument("--baseline", type=int, default=0, help="baseline alerts (default N)")
    parser.add_argument("--stall", type=float, default=120, help="give up after s without progress")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="PostgreSQL to run on instead of SQLite (a schema of its own, dropped at the end), "
        "e.g. postgresql://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (and its logs)")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink-stats", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--send", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink, args.sink_stats, address(0), args.sample)
        return 0
    if args.send:
        return send_and_report(args.send)
    if args.large:
        args.registrants = 10_000
    if args.memory_check is not None:
        args.memory_check = sizes(args.memory_check) or [args.registrants, 10 * args.registrants]

    return run_benchmark(lambda: FanoutBench(args))


if __name__ == "__main__":
    sys.exit(main())
