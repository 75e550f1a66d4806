"""scripts/under_load.sh: the command runs beside the hogs, its exit status passes through, the hogs stop."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "under_load.sh"


def _script_processes() -> set[str]:
    return set(subprocess.run(["pgrep", "-f", str(SCRIPT)], capture_output=True, text=True).stdout.split())


def test_status_passes_through_and_the_hogs_stop():
    already = _script_processes()  # the suite itself may be running under this script, with its own hogs
    run = subprocess.run(["bash", str(SCRIPT), "bash", "-c", "ps -o pid= --ppid $PPID | wc -l; exit 3"],
                         capture_output=True, text=True, timeout=60, env={"HOGS": "2", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 3, run.stderr
    assert int(run.stdout.strip()) >= 3  # two hogs and the command itself were children of the script
    assert "2 busy process(es)" in run.stderr and "status 3" in run.stderr
    time.sleep(0.5)  # the hogs are forks of the script: a survivor would still carry its command line
    leftover = _script_processes() - already
    assert leftover == set(), leftover


def test_bad_hog_count_is_refused():
    run = subprocess.run(["bash", str(SCRIPT), "true"], capture_output=True, text=True, timeout=60,
                         env={"HOGS": "many", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2 and "HOGS must be a whole number" in run.stderr and "'many'" in run.stderr
