"""The benchmark harness must keep working: run its smoke mode (Joey and raw, few rounds).

No timing is asserted here; speed targets live in benchmarks/RESULTS.md (`make bench`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_runs_every_joey_scenario() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke"], cwd=ROOT, capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plaintext GET" in result.stdout
    assert "error" not in result.stdout.lower()
