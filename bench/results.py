"""The benchmarks' headline figures as one table: bench/results.md, the terminal, and README.md.

`python bench/results.py FILE` reads the JSON lines bench/intake.py, bench/fanout.py,
bench/public_pages.py and bench/registry_page.py appended to FILE (FOREWARN_BENCH_RESULTS;
`make bench` sets it) and writes bench/results.md: the machine they ran on and one Markdown
table. It prints the same, and puts it between `<!-- bench:start -->` and `<!-- bench:end -->`
in README.md.
"""

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In the order `make bench` runs them.
BENCHMARKS = ("intake", "fan-out", "public pages", "registry page")
COLUMNS = ("benchmark", "figure", "ours", "baseline", "ratio", "goal", "verdict")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
NONE = "—"


def load(path: Path) -> tuple[list[dict], list[dict]]:
    """(figures, failures) in the order they were recorded."""
    figures, failures = [], []
    if not path.exists():
        return figures, failures
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            print(f"{path}:{number}: not JSON, skipped", file=sys.stderr)
            continue
        (failures if "failed" in entry else figures).append(entry)
    return figures, failures


def number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def amount(value: float | None, unit: str, note: str = "") -> str:
    text = NONE if value is None else f"{number(value)} {unit}".strip()
    return f"{text} ({note})" if note else text


def cells(figure: dict) -> list[str]:
    ratio = figure.get("ratio")
    return [
        figure["benchmark"],
        figure["figure"],
        amount(figure.get("ours"), figure.get("unit", ""), figure.get("note", "")),
        amount(figure.get("baseline"), figure.get("baseline_unit", "")),
        NONE if ratio is None else f"{ratio:.2f}",
        figure.get("goal", ""),
        f"**{figure['verdict']}**" if figure.get("verdict") == "MISS" else figure["verdict"],
    ]


def table(figures: list[dict]) -> list[str]:
    order = {name: position for position, name in enumerate(BENCHMARKS)}
    ordered = sorted(figures, key=lambda f: order.get(f["benchmark"], len(order)))
    rows = [[cell.replace("|", "\\|") for cell in cells(figure)] for figure in ordered]
    # Padded, so that the Markdown reads as a table in the terminal too.
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return [line(list(COLUMNS)), line(["-" * w for w in widths]), *map(line, rows)]


def gnupg_version() -> str:
    try:
        said = subprocess.run(["gpg", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "not found"
    return said.stdout.splitlines()[0].split()[-1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def machine(figures: list[dict]) -> str:
    """The machine this runs on (the benchmarks' own, as `make bench` runs it right after them),
    and when the last figure was measured."""
    times = [f["at"] for f in figures if f.get("at")]
    at = datetime.fromisoformat(max(times)) if times else datetime.now(UTC)
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"GnuPG {gnupg_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )


def failure_lines(figures: list[dict], failures: list[dict]) -> list[str]:
    measured = {f["benchmark"] for f in figures}
    lines = [f"- {f['benchmark']} stopped early: {f['failed']}" for f in failures]
    stopped = {f["benchmark"] for f in failures}
    for name in BENCHMARKS:
        if name not in measured and name not in stopped:
            lines.append(f"- {name}: nothing recorded")
    return lines


def block(figures: list[dict], failures: list[dict], ran_on: str) -> str:
    """The machine line, the table and what did not run: for results.md and README.md."""
    parts = [f"Ran on: {ran_on}.", "", *table(figures)]
    problems = failure_lines(figures, failures)
    if problems:
        parts += ["", *problems]
    return "\n".join(parts)


def update_readme(readme: Path, text: str) -> bool:
    content = readme.read_text()
    start, end = content.find(START), content.find(END)
    if start < 0 or end < start:
        return False
    head = content[: start + len(START)]
    readme.write_text(f"{head}\n{text}\n{content[end:]}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the JSON lines the benchmarks recorded")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    figures, failures = load(args.file)
    if not args.file.exists():
        print(f"{args.file} does not exist: no figures were recorded", file=sys.stderr)
    text = block(figures, failures, machine(figures))
    args.output.write_text(
        "# Benchmark results\n\n"
        "Written by `make bench` (bench/results.py); how each figure is measured: "
        "[README.md](README.md). Ours against a baseline on the same machine at the same time; "
        "numbers compare only within one machine.\n\n" + text + "\n"
    )
    print(text)
    print(f"written to {args.output}")
    if update_readme(args.readme, text):
        print(f"and to {args.readme}")
    else:
        print(f"{args.readme} has no {START} ... {END}: not updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
