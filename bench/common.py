"""What the benchmarks share: a throwaway folder with its processes and its own redis-server,
the table each prints, and the headline figures each records for bench/results.py.

The figures go as JSON lines to the file named by FOREWARN_BENCH_RESULTS (`make bench` sets it);
without it nothing is recorded.
"""

import contextlib
import json
import math
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
RESULTS_VARIABLE = "FOREWARN_BENCH_RESULTS"


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts, each in its own process group, stopped at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        try:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.running[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Anything its children left in the group (RQ work horses).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run(argv: list[str], env=None, timeout: float = 120, input: bytes | None = None) -> bytes:
    result = subprocess.run(
        argv, input=input, capture_output=True, env=env, timeout=timeout, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1:4]} failed: {result.stderr.decode()[-800:]}")
    return result.stdout


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def smtp_answers(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- the headline figures (bench/results.py reads them) ------------------------------------------


def record(line: dict) -> None:
    """One JSON line appended to $FOREWARN_BENCH_RESULTS, when it is set."""
    path = os.environ.get(RESULTS_VARIABLE)
    if not path:
        return
    line = {**line, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def rounded(value: float | None) -> float | None:
    """Four significant digits: what the measurement can tell."""
    return None if value is None else float(f"{value:.4g}")


# -- a benchmark ---------------------------------------------------------------------------------


class Bench:
    """A throwaway folder under /tmp with an instance in it, the processes started for it, and
    the rows and notes printed at the end. Subclasses measure; run_benchmark drives them."""

    name = ""  # the benchmark column of bench/results.md
    title = ""  # the first line of the printed table
    storage = "SQLite"

    def __init__(self, args, prefix: str):
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # noqa: S108 (short path)
        self.instance = self.folder / "i"
        (self.folder / "logs").mkdir()
        self.procs = Processes(self.folder / "logs")
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []
        base = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        self.env = {
            **base,
            "FOREWARN_INSTANCE": str(self.instance),
            "FOREWARN_REDIS_URL": f"unix://{self.folder / 'r.sock'}",
            "FOREWARN_WEB_LISTEN": f"127.0.0.1:{free_port()}",
            "FOREWARN_DATABASE_URL": f"sqlite:///{self.instance / 'forewarn.db'}",
        }

    def forewarn(self, *args: str, timeout: float = 120, **extra: str) -> bytes:
        return run([sys.executable, "-m", "app", *args], env={**self.env, **extra}, timeout=timeout)

    def row(self, what: str, result: str, goal: str = "", verdict: str = "") -> None:
        self.rows.append((what, result, goal, verdict))

    def figure(
        self,
        figure: str,
        ours: float | None,
        unit: str,
        goal: str,
        verdict: str,
        baseline: float | None = None,
        baseline_unit: str = "",
        ratio: float | None = None,
        note: str = "",
    ) -> None:
        """A headline figure for bench/results.md (the printed rows stay as they are)."""
        record(
            {
                "benchmark": self.name,
                "figure": figure,
                "ours": rounded(ours),
                "unit": unit,
                "baseline": rounded(baseline),
                "baseline_unit": None if baseline is None else baseline_unit or unit,
                "ratio": rounded(ratio),
                "goal": goal,
                "verdict": verdict,
                "note": note,
            }
        )

    def start_redis(self) -> None:
        sock = self.folder / "r.sock"
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is missing: run `make test-setup`")
        argv = [redis, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly"]
        self.procs.start("redis", [*argv, "no"], self.env)
        wait_for(sock.exists, 20, "redis-server")

    def setup(self) -> None:
        raise NotImplementedError

    def measure(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Every process, the gpg-agents of the instance's and the benchmark's GnuPG homes, and
        the folder (unless --keep)."""
        self.procs.stop_all()
        for home in (self.folder / "g", self.instance / "gpg"):
            if home.is_dir():
                subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        if self.args.keep:
            print(f"kept {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def report(self, total: float) -> None:
        widths = [max(len(r[i]) for r in self.rows) for i in range(4)]
        print(
            f"Forewarn {self.title}: {os.cpu_count()} CPUs, {self.storage} under "
            f"{self.folder.parent}, {total:.0f} s in all"
        )
        for line in [("measurement", "result", "goal", ""), *self.rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        for note in self.notes:
            print(f"- {note}")


def run_benchmark(make_bench) -> int:
    """Set up, measure, clean up (also on an error or SIGTERM), print the table. Exit code 0
    once measured, 1 if a process did not start or answer (said on stderr, and recorded)."""

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    started = time.perf_counter()
    bench = make_bench()
    failure = None
    try:
        bench.setup()
        bench.measure()
    except RuntimeError as exc:  # a process did not start or answer: say which, then stop
        failure = exc
    finally:
        bench.cleanup()
    if bench.rows:
        bench.report(time.perf_counter() - started)
    if failure is not None:
        print(f"benchmark failed: {failure}", file=sys.stderr)
        said = str(failure).strip().splitlines() or ["?"]
        record({"benchmark": bench.name, "failed": said[0].rstrip(":")})
        return 1
    return 0
