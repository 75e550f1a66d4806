"""Every benchmark script runs at a tiny budget (speed itself is measured, never asserted, in tests)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))
STORED = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _stored_files():
    return {path.name: path.read_bytes() for path in STORED.glob("*")}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_runs_quick(script):
    before = _stored_files()
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "faster" in result.stdout or "x" in result.stdout
    assert _stored_files() == before, "a --quick run must never touch the stored results in benchmarks/results"


def test_there_is_a_benchmark():
    assert BENCHMARKS, "benchmarks/ holds no bench_*.py script"
