"""The public pages benchmark: /vulnerabilities with 2,000 vulnerabilities against a trivial
route of the same server, and the lift's latency. A script that prints numbers; it asserts
nothing. See bench/README.md.

Everything runs as real processes in a throwaway instance under /tmp: its own redis-server on a
unix socket, `python -m app init`, `python -m app web` (gunicorn) and `python -m app worker`.
The vulnerabilities are inserted with peewee bulk inserts into the app's own models (and the
lift's through app.vulns.lifecycle and app.workers.scheduling, as the team's form does). All the
processes, and the folder, are removed at the end, also on error or Ctrl-C.
"""

import argparse
import contextlib
import http.client
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from common import ROOT, Bench, free_port, nearest_rank, run_benchmark, wait_for

sys.path.insert(0, str(ROOT))

# The goals of the issue.
GOAL_RATIO = 0.5  # /vulnerabilities / the trivial route, requests per second
GOAL_LIFT_MEDIAN = 5.0  # seconds from the embargo's end to published_at
GOAL_LIFT_MIN = 0.0  # never early

LIST = "/vulnerabilities"
TRIVIAL = "/static/forewarn.css"  # Flask's static files: no database, no template
KEY = "/key.asc"  # the service key, cached in the process after the first request

VECTORS = [
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H",
    "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:L/A:N",
    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
    "",
]
WORDS = [
    *("buffer", "frame", "parser", "length", "header", "packet", "stack", "heap", "overflow"),
    *("bounds", "check", "kernel", "driver", "bluetooth", "mesh", "advertising", "socket"),
    *("timer", "thread", "mutex", "queue", "descriptor", "offset", "payload"),
]


# -- the data ------------------------------------------------------------------------------------


def markdown(rng: random.Random, n: int) -> str:
    """A description as the team writes them: paragraphs, emphasis, code, a list, a link."""

    def sentence() -> str:
        words = rng.choices(WORDS, k=rng.randint(8, 18))
        words[rng.randrange(len(words))] = f"**{rng.choice(WORDS)}**"
        words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}_{n}()`"
        return " ".join(words).capitalize() + "."

    paragraphs = [" ".join(sentence() for _ in range(rng.randint(2, 5))) for _ in range(3)]
    steps = "\n".join(f"- {sentence()}" for _ in range(rng.randint(2, 4)))
    link = f"See [the report](https://bugs.example.org/{n}) for the details."
    return "\n\n".join([paragraphs[0], steps, paragraphs[1], link, paragraphs[2]])


def insert_vulnerabilities(count: int, now: datetime, seed: int = 7) -> dict[str, int]:
    """count rows through peewee bulk inserts: about 2/3 published (Markdown descriptions, most
    with a CVE id), 1/3 accepted or fixed and still under embargo (placeholders)."""
    from app.core.db import write_transaction
    from app.models import CveId, Vulnerability
    from app.vulns import lifecycle as vulns

    rng = random.Random(seed)
    scores = {vector: vulns.cvss_score(vector) if vector else None for vector in VECTORS}
    counts = {"published": 0, "embargoed": 0, "with a CVE id": 0}
    cve_rows, rows = [], []
    for n in range(1, count + 1):
        embargoed = n % 3 == 0
        year = 2024 + n % 3
        reported = now - timedelta(days=rng.randint(100, 900))
        cve_id = None
        if rng.random() < (0.5 if embargoed else 0.9):
            cve_id = f"CVE-{year}-{10000 + n}"
            cve_rows.append(
                {
                    "cve_id": cve_id,
                    "block": f"CVE-{year}-10000..CVE-{year}-19999",
                    "year": year,
                    "number": 10000 + n,
                    "state": "assigned" if embargoed else "published",
                    "assigned_at": reported,
                }
            )
        vector = rng.choice(VECTORS)
        if embargoed:
            until = now + timedelta(days=rng.randint(1, 90))
            status, published = rng.choice(("accepted", "fixed")), None
        else:
            published = now - timedelta(days=rng.randint(1, 700), hours=rng.randint(0, 23))
            status, until = "published", published
        rows.append(
            {
                "tracking_id": f"SEC-{year}-{n:05d}",
                "title": f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} in the "
                f"{rng.choice(WORDS)} {rng.choice(WORDS)} (#{n})",
                "description": markdown(rng, n),
                "severity": vector,
                "cvss_score": scores[vector],
                "affected": f"zephyr >=3.{n % 7} <4.{n % 5 + 1}; zephyr =2.7.{n % 9}",
                "cwe": f"CWE-{rng.choice((787, 125, 20, 416, 476, 190))}",
                "status": status,
                "credits": rng.choice(("", "Alice Example", "Bob Finder of Example Labs")),
                "fix_refs": f"https://github.com/zephyrproject-rtos/zephyr/pull/{50000 + n}",
                "mitigation": "" if n % 4 else "Disable the feature until the fix is deployed.",
                "reporter_email": f"reporter{n}@example.org",
                "reporter_name": f"Reporter {n}",
                "reported_at": reported,
                "embargo_until": until,
                "published_at": published,
                "created_at": reported,
                "updated_at": published or reported,
                "cve_id": cve_id,  # replaced by the row's key below
            }
        )
        counts["embargoed" if embargoed else "published"] += 1
        counts["with a CVE id"] += cve_id is not None
    with write_transaction():
        for start in range(0, len(cve_rows), 200):
            CveId.insert_many(cve_rows[start : start + 200]).execute()
        keys = dict(CveId.select(CveId.cve_id, CveId.id).tuples())
        for row in rows:
            row["cve"] = keys.get(row.pop("cve_id"))
        for start in range(0, len(rows), 100):
            Vulnerability.insert_many(rows[start : start + 100]).execute()
    return counts


# -- the HTTP client -----------------------------------------------------------------------------


class Client:
    """One thread's connection: kept alive while the server allows it (gunicorn's sync workers
    close after each response, so it reconnects then; the same for every route measured)."""

    def __init__(self, port: int):
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.connects = 0

    def get(self, path: str) -> tuple[int, int]:
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.connects += 1
            try:
                # As browsers, curl --compressed and feed readers ask: gzip when the server has it.
                self.connection.request("GET", path, headers={"Accept-Encoding": "gzip, deflate"})
                response = self.connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, len(body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def load(port: int, path: str, threads: int, seconds: float) -> dict:
    """threads clients GET path in a loop for seconds; requests/s, latencies, errors, bytes."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    sizes: set[int] = set()
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def client(number: int) -> None:
        c = Client(port)
        mine = latencies[number]
        try:
            start.wait(30)
            while not stop.is_set():
                began = time.perf_counter()
                status, size = c.get(path)
                mine.append(time.perf_counter() - began)
                if status != 200:
                    errors.append(f"HTTP {status}")
                sizes.add(size)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            c.close()

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait(30)
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    every = [value for mine in latencies for value in mine]
    return {
        "rate": len(every) / elapsed,
        "latencies": every,
        "errors": errors,
        "bytes": max(sizes, default=0),
    }


def answers(port: int, path: str) -> bool:
    try:
        return Client(port).get(path)[0] == 200
    except OSError:
        return False


# -- the benchmark -------------------------------------------------------------------------------


class PublicBench(Bench):
    name = "public pages"
    title = "public pages benchmark"

    def __init__(self, args):
        super().__init__(args, prefix="fwp")
        self.port = free_port()
        self.env["FOREWARN_WEB_LISTEN"] = f"127.0.0.1:{self.port}"
        self.env["FOREWARN_BASE_URL"] = f"http://127.0.0.1:{self.port}"
        self.settings = None

    # set-up

    def setup(self) -> None:
        from app.core import db as app_db
        from app.core.config import load_settings

        self.start_redis()
        self.forewarn("init")
        self.settings = load_settings(self.env)
        app_db.open_database(self.settings.database_url)

    def measure(self) -> None:
        self.pages()
        self.lift()

    def start_web(self) -> None:
        self.procs.start("web", [sys.executable, "-m", "app", "web"], self.env)
        try:
            wait_for(lambda: answers(self.port, TRIVIAL), 60, "the web portal")
        except RuntimeError:
            raise RuntimeError(f"the web portal did not start:\n{self.procs.tail('web')}") from None

    # /vulnerabilities against a trivial route

    def pages(self) -> None:
        a = self.args
        started = time.perf_counter()
        counts = insert_vulnerabilities(a.vulnerabilities, datetime.now(UTC))
        inserted = time.perf_counter() - started
        self.start_web()
        targets = {"list": LIST, "trivial": TRIVIAL, "key": KEY}
        for path in targets.values():  # warm-up: every worker renders and caches once
            load(self.port, path, a.threads, a.warmup)
        results: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(a.rounds):  # alternating, so that a noisy moment hits all of them
            for name, path in targets.items():
                results[name].append(load(self.port, path, a.threads, a.seconds))

        def summary(name: str) -> tuple[float, float, float, list[str], str, int]:
            rates = [r["rate"] for r in results[name]]
            every = [value for r in results[name] for value in r["latencies"]]
            errors = [e for r in results[name] for e in r["errors"]]
            spread = "/".join(f"{rate:.0f}" for rate in rates)
            size = max(r["bytes"] for r in results[name])
            return statistics.median(rates), *self._p50_p99(every), errors, spread, size

        rate = {}
        for name, path in targets.items():
            rate[name], p50, p99, errors, spread, size = summary(name)
            self.row(
                f"GET {path} ({size / 1024:.0f} KiB)",
                f"{rate[name]:7.1f} req/s ({spread})  p50 {p50 * 1000:6.1f} ms"
                f"  p99 {p99 * 1000:6.1f} ms",
            )
            if errors:
                self.notes.append(f"{path}: {len(errors)} errors; first: {errors[0]}")
        ratio = rate["list"] / rate["trivial"]
        clean = not any(e for r in results["list"] + results["trivial"] for e in r["errors"])
        verdict = "PASS" if ratio >= GOAL_RATIO and clean else "MISS"
        self.row(f"ratio {LIST} / {TRIVIAL}", f"{ratio:7.2f}", f">= {GOAL_RATIO}", verdict)
        self.figure(
            f"GET {LIST} vs {TRIVIAL}",
            rate["list"],
            "req/s",
            f">= {GOAL_RATIO}",
            verdict,
            baseline=rate["trivial"],
            ratio=ratio,
        )
        self.notes.append(
            f"pages: {a.vulnerabilities} vulnerabilities inserted in {inserted:.1f} s "
            f"({counts['published']} published with Markdown descriptions, "
            f"{counts['embargoed']} accepted/fixed under embargo, {counts['with a CVE id']} with "
            f"a CVE id); `python -m app web` (gunicorn, 2 sync workers: app/web/server.py); "
            f"{a.threads} client threads with http.client in this process (gunicorn's sync "
            f"workers close the connection after each response, so each request reconnects); "
            f"{a.warmup:g} s warm-up per route, then {a.rounds} alternating rounds of "
            f"{a.seconds:g} s; median req/s (each round in brackets), p50/p99 over all rounds. "
            f"{TRIVIAL} is the cheapest route (no database, no template); {KEY} for comparison."
        )

    @staticmethod
    def _p50_p99(values: list[float]) -> tuple[float, float]:
        if not values:
            return float("nan"), float("nan")
        return nearest_rank(values, 0.50), nearest_rank(values, 0.99)

    # the lift

    def lift(self) -> None:
        import redis as redis_lib
        from rq import Worker

        from app.models import Vulnerability
        from app.vulns import lifecycle as vulns
        from app.workers import scheduling

        a = self.args
        connection = redis_lib.Redis(unix_socket_path=str(self.folder / "r.sock"))
        self.procs.start("worker", [sys.executable, "-m", "app", "worker"], self.env)
        try:
            wait_for(lambda: Worker.all(connection=connection), 60, "the worker")
        except RuntimeError:
            raise RuntimeError(f"the worker did not start:\n{self.procs.tail('worker')}") from None
        actor = vulns.Actor(None, "bench")
        now = datetime.now(UTC)
        whole = now.replace(microsecond=0) + timedelta(seconds=1)
        ids = []
        for n in range(a.lifts):
            # Whole seconds, as the team sets them; 3 to 10 s ahead, spread out.
            until = whole + timedelta(seconds=3 + round(7 * n / max(1, a.lifts - 1)))
            v = vulns.create(
                f"Lift benchmark {n}", "To be published.", actor, now, self.settings, until
            )
            v = vulns.set_field(v, "affected", "zephyr <4.2", actor, now)
            v = vulns.set_status(v, "accepted", actor, datetime.now(UTC))
            outcome = scheduling.after_change(connection, v, datetime.now(UTC), self.settings)
            if outcome != "scheduled":
                self.notes.append(f"lift {n}: after_change said {outcome!r}")
            ids.append(v.id)
        last = whole + timedelta(seconds=10)

        def published():
            rows = Vulnerability.select().where(Vulnerability.id.in_(ids))
            done = [v for v in rows if v.status == "published"]
            return done if len(done) == len(ids) else None

        with contextlib.suppress(RuntimeError):  # those never published are counted below
            wait_for(
                published,
                (last - datetime.now(UTC)).total_seconds() + a.lift_timeout,
                "the lifts",
                interval=0.2,
            )
        rows = list(Vulnerability.select().where(Vulnerability.id.in_(ids)))
        self.procs.stop("worker")
        connection.close()
        delays = [
            (v.published_at - v.embargo_until).total_seconds()
            for v in rows
            if v.status == "published"
        ]
        missing = len(ids) - len(delays)
        what = f"lift: published_at - embargo_until ({len(ids)} lifts)"
        median_figure = "lift latency median, embargo end -> published"
        if not delays:
            self.row(what, "nothing was published", f"median <= {GOAL_LIFT_MEDIAN:g} s", "MISS")
            self.figure(
                median_figure,
                None,
                "s",
                f"<= {GOAL_LIFT_MEDIAN:g} s",
                "MISS",
                note="nothing was published",
            )
            return
        median = statistics.median(delays)
        result = f"median {median:5.2f} s  min {min(delays):5.2f} s  max {max(delays):5.2f} s"
        if missing:
            result += f"  ({missing} never published)"
        ok = median <= GOAL_LIFT_MEDIAN and not missing
        goal = f"<= {GOAL_LIFT_MEDIAN:g} s"
        note = f"{missing} never published" if missing else ""
        self.row(what, result, f"median {goal}", "PASS" if ok else "MISS")
        self.figure(median_figure, median, "s", goal, "PASS" if ok else "MISS", note=note)
        early = min(delays) < GOAL_LIFT_MIN
        verdict = "MISS" if early or missing else "PASS"
        goal = f">= {GOAL_LIFT_MIN:g} s"
        self.row("lift: never early", f"min {min(delays):5.2f} s", f"min {goal}", verdict)
        self.figure("lift never early, min", min(delays), "s", goal, verdict, note=note)
        self.notes.append(
            f"lift: `python -m app worker` (RQ with its scheduler, and the reconciler); {len(ids)} "
            "accepted vulnerabilities made with app.vulns.lifecycle, their embargo ending on whole "
            "seconds 3 to 10 s ahead (real clock), scheduled with "
            "app.workers.scheduling.after_change as the team's form does; published_at is the "
            "worker's clock when the lift job ran; web running (the lift's page check fetches "
            "the page)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vulnerabilities", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per route")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per route")
    parser.add_argument("--lifts", type=int, default=10, help="embargoes to lift")
    parser.add_argument("--lift-timeout", type=float, default=60.0, help="seconds to wait after")
    parser.add_argument("--keep", action="store_true", help="keep the folder (and its logs)")
    args = parser.parse_args()

    return run_benchmark(lambda: PublicBench(args))


if __name__ == "__main__":
    sys.exit(main())
