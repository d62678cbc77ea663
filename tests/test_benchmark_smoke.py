"""Smoke test of the benchmark script: it runs end to end and prints its table.

Timings are never asserted here; benchmarks/run.py reports them and benchmarks/results.md
records a full run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_the_table(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--output",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| measure | target | result | status |" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.endswith(("| PASS |", "| FAIL |"))]
    assert len(rows) >= 6, done.stdout  # one verdict per target, whatever the verdicts are
    assert "benchmarks/run.py --quick" in done.stdout  # the reproduce command
    assert report.read_text(encoding="utf-8").strip() == done.stdout.strip()
