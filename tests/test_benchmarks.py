"""Every benchmark script runs at a tiny budget (speed itself is measured, never asserted, in tests)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_runs_quick(script):
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "faster" in result.stdout or "x" in result.stdout


def test_there_is_a_benchmark():
    assert BENCHMARKS, "benchmarks/ holds no bench_*.py script"
