"""The report renders end to end from a recorded suite (``--render``), as ``make bench`` writes it.

tests/loadtest/data/bench-runs.json is the full ``make bench`` run of 2026-11-30 18:01 that wrote bench/results.md,
with the load tester's figures the report does not read left out (per-room counts, latency per
second); rendered, it gives results.md's text. Its open-file limit is recorded (20,000).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from suite.report.document import build, results_text, suite_commands
from suite.report.model import load_saved

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "data" / "bench-runs.json"
HEADINGS = [
    "Targets",
    "1. Burst: server CPU per delivery",
    "2. Fixed offered loads",
    "3. Memory per idle socket",
    "4. Most sockets held",
    "5. Slow consumer",
    "6. Scaling out: the database, Redis and worker processes",
    "7. A join storm over worker processes",
    # Issue 13's scenario: the recorded suite predates it, and its section says so.
    "8. Search over 1,000,000 stored messages",
    "Reading the columns",
    "Commands",
]


def rendered() -> str:
    report = load_saved(RECORDED)
    return build(report, suite_commands(report.runs))


def section(text: str, heading: str) -> str:
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_a_recorded_suite_renders_every_section_in_order():
    text = rendered()
    assert re.findall(r"^## (.*)$", text, flags=re.M) == HEADINGS
    assert "Written by `make bench`" in text
    assert "Not measured" not in text  # every scenario ran
    assert "Not run (this suite predates issue 13's search scenario)." in section(text, HEADINGS[8])


def test_the_recorded_targets_get_the_verdicts_their_figures_give():
    rows = [line.split(" | ") for line in section(rendered(), "Targets").splitlines() if line.startswith("| ")][1:]
    verdicts = {row[0].lstrip("| "): row[2].rstrip(" |") for row in rows}
    assert verdicts == {
        "burst: CPU per delivery at most 1/10 of naive Tornado's": "**met**",  # 18.6x
        "burst: CPU per delivery at most 1/5 of websockets broadcast()'s": "**met**",  # 5.0x
        "40,000 deliveries/s: no loss, duplicate or reorder; p99 ≤ 100 ms": "**met**",
        "at most 20 KB of server memory per idle socket": "**met**",  # 19.5 KB
        "one process holds 50,000 sockets": "cannot be shown here (20,000 open files per process at most)",
        "slow consumer: memory flat (within 20 MB), others' p99 moves < 20 %, gap notice and recovery": "**missed**",
        "(9) steady 20,000 deliveries/s: CPU per delivery at most 1.25x the floor's": "**met**",  # 1.09x
        "(9) join storm at 500 connections/s: every socket connects and joins": "**missed**",  # 982 timed out
        "(9) join storm at 2,000 connections/s: none refused `unavailable` or closed 1013": "**met**",
    }


def test_a_partial_render_keeps_the_sections_it_did_not_measure(tmp_path):
    report = load_saved(RECORDED)
    report.only = ["redis"]
    output = tmp_path / "results.md"
    output.write_text("# Benchmark results\n\nmachine\n\n## 1. Burst: server CPU per delivery\nkept burst\n")
    text = results_text(report, suite_commands(report.runs), output)
    assert "kept burst" in text
    assert "A partial run `--only redis`" in text
    assert "2 workers + Redis" in section(text, "6. Scaling out: the database, Redis and worker processes")


def test_run_py_renders_a_recorded_suite_from_the_command_line(tmp_path):
    output = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--render", str(RECORDED), "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^## (.*)$", output.read_text(), flags=re.M) == HEADINGS
