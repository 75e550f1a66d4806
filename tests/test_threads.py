"""torch's idle threads are told to spin briefly before torch loads, wherever the course starts Python:
`import marlpg`, the notebooks' set-up cell, and the README's two scripts (marlpg.core.threads says why)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import notebook_setup_cell  # noqa: E402


def spincount_after(code: str, **env_changes: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    env.update(env_changes)
    env["PYTHONPATH"] = str(REPO / "src")
    done = subprocess.run([sys.executable, "-c", code + "\nimport os; print(os.environ.get('GOMP_SPINCOUNT'))"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_import_marlpg_sets_a_short_spin_and_keeps_an_explicit_one():
    assert spincount_after("import marlpg") == "10000"
    assert spincount_after("import marlpg", GOMP_SPINCOUNT="5") == "5"


def test_setup_cell_sets_it_before_torch_loads():
    source = notebook_setup_cell.TEMPLATE
    assert 'os.environ.setdefault("GOMP_SPINCOUNT", "10000")' in source
    assert source.index("GOMP_SPINCOUNT") < source.index("import torch")


def test_the_readme_scripts_export_it_before_python_runs():
    for script in ("build_book.sh", "run_tests.sh"):
        text = (REPO / "scripts" / script).read_text(encoding="utf-8")
        export = text.index('export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}"')
        assert export < text.index(".venv/bin/"), script
