"""bench/results.py: the figures `make bench` recorded become one table, in results.md and
between the README's markers, with what did not run said under it."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = [
    {
        "benchmark": "fan-out",
        "figure": "alerts to N=1000, 2 workers vs gpg loop",
        "ours": 125.3,
        "unit": "alerts/s",
        "baseline": 98.5,
        "baseline_unit": "alerts/s",
        "ratio": 1.272,
        "goal": ">= 1.0",
        "verdict": "PASS",
        "at": "2026-11-26T01:00:00+00:00",
    },
    {
        "benchmark": "intake",
        "figure": "throughput, real intake vs no-op sink",
        "ours": 420.0,
        "unit": "msg/s",
        "baseline": 900.0,
        "baseline_unit": "msg/s",
        "ratio": 0.4667,
        "goal": ">= 0.5",
        "verdict": "MISS",
        "at": "2026-11-26T00:58:00+00:00",
    },
]


def make_table(tmp_path: Path, lines: list[str], readme_text: str):
    recorded = tmp_path / "results.jsonl"
    recorded.write_text("\n".join(lines) + "\n")
    output, readme = tmp_path / "results.md", tmp_path / "README.md"
    readme.write_text(readme_text)
    said = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "results.py"), str(recorded)]
        + ["--output", str(output), "--readme", str(readme)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return said, output.read_text(), readme.read_text()


def rows(markdown: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("| ") and not line.startswith("| -")
    ]


def test_one_table_in_run_order_with_misses_marked_and_the_machine(tmp_path):
    readme = "# Forewarn\n\nintro\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nafter\n"
    lines = [json.dumps(figure) for figure in FIGURES]
    said, results, new_readme = make_table(tmp_path, lines, readme)

    table = rows(results)
    assert table[0] == ["benchmark", "figure", "ours", "baseline", "ratio", "goal", "verdict"]
    assert [row[0] for row in table[1:]] == ["intake", "fan-out"]  # make bench's order
    assert table[1][2:] == ["420.0 msg/s", "900.0 msg/s", "0.47", ">= 0.5", "**MISS**"]
    assert table[2][2:] == ["125.3 alerts/s", "98.5 alerts/s", "1.27", ">= 1.0", "PASS"]
    assert "2026-11-26 01:00 UTC" in results  # when the last figure was measured
    assert " cores, " in results and "GnuPG " in results
    # What did not record anything is said, not left out silently.
    assert "- public pages: nothing recorded" in results
    assert rows(said.stdout) == table

    assert new_readme.startswith("# Forewarn\n\nintro\n<!-- bench:start -->\nRan on: ")
    assert "old table" not in new_readme
    assert new_readme.endswith("<!-- bench:end -->\nafter\n")
    assert rows(new_readme) == table


def test_a_script_that_stopped_early_is_named_and_a_readme_without_markers_is_kept(tmp_path):
    lines = [
        json.dumps(FIGURES[0]),
        "not json",
        json.dumps({"benchmark": "intake", "failed": "the intake did not start"}),
    ]
    said, results, readme = make_table(tmp_path, lines, "# Forewarn\n")

    assert "- intake stopped early: the intake did not start" in results
    assert [row[0] for row in rows(results)[1:]] == ["fan-out"]
    assert "not JSON, skipped" in said.stderr
    assert readme == "# Forewarn\n"
    assert "not updated" in said.stderr
