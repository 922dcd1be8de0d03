"""The benchmark's quick mode still runs (it is not a performance test: figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "load" / "bench_acd.py"


def test_quick_benchmark_runs():
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "decisions/s at 10,000 agents" in done.stdout
    assert "growth cost(10,000)/cost(1,000)" in done.stdout
    assert "1000 waiting at the end" in done.stdout
