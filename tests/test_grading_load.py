"""A class with hostile submissions spread through it grades every honest student exactly as a class
without them does, and a grader killed halfway resumes without losing or changing anything.

The default class has 24 honest students; ``MARLPG_HEAVY=1`` grades the full class of 200 (a few minutes
per pass on 2 cores), as the issue asks of a release.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
FIXTURE = REPO / "tests" / "fixtures" / "grader" / "source"

from autograder.rebuild import load_assignment  # noqa: E402
from autograder.sandbox import check_bwrap  # noqa: E402
from test_grader import CORRECT_MEAN, WRONG_MEAN, student_nb  # noqa: E402

pytestmark = pytest.mark.skipif(check_bwrap() is not None, reason="bubblewrap does not work here")
HONEST = 200 if os.environ.get("MARLPG_HEAVY") == "1" else 16
HOSTILE = {  # answer to mean_reward -> what it tries
    "zz-memory": "hog = [bytearray(10**8) for _ in range(200)]",
    "zz-loop": "while True:\n    pass",
    "zz-flood": "for _ in range(20000):\n    print('x' * 1000)\n" + CORRECT_MEAN,
    "zz-killgroup": "import os, signal\nos.killpg(0, signal.SIGKILL)",
    "zz-spawn": "import subprocess\nfor _ in range(40):\n    subprocess.Popen(['python3', '-c', 'while True: pass'])\n"
                + CORRECT_MEAN,
}


def write_class(root: Path, hostile: bool) -> None:
    a = load_assignment(FIXTURE / "fx1")
    for i in range(HONEST):
        nb = student_nb(a, mean=CORRECT_MEAN if i % 3 else WRONG_MEAN)
        (root / f"s{i:03d}" / "fx1").mkdir(parents=True)
        nbformat.write(nb, root / f"s{i:03d}" / "fx1" / "fx1.ipynb")
    for name, answer in (HOSTILE.items() if hostile else ()):
        (root / name / "fx1").mkdir(parents=True)
        nbformat.write(student_nb(a, mean=answer), root / name / "fx1" / "fx1.ipynb")


def command(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", "--submissions", str(root), "--out", str(out),
            "--source", str(FIXTURE), "--timeout", "10", "--total-timeout", "20", "--memory", "1024", "--jobs", "2"]


def honest_grades(out: Path) -> dict:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {r["student"]: (r["autograded_score"], r["status"], r["details"])
                for r in csv.DictReader(fh) if r["student"].startswith("s")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    write_class(tmp / "plain" / "submitted", hostile=False)
    result = subprocess.run(command(tmp / "plain", tmp / "plain-out"), capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
    return tmp, honest_grades(tmp / "plain-out")


def test_hostile_neighbours_change_no_honest_grade_even_through_a_crash(baseline):
    tmp, expected = baseline
    assert len(expected) == HONEST
    write_class(tmp / "mixed" / "submitted", hostile=True)
    out = tmp / "mixed-out"
    process = subprocess.Popen(command(tmp / "mixed", out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    half, deadline = (HONEST + len(HOSTILE)) // 2, time.monotonic() + 3600
    while len(list((out / "results").glob("*/*.json"))) < half and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the grader and its workers die halfway
    process.wait()
    saved = len(list((out / "results").glob("*/*.json")))
    assert 0 < saved < HONEST + len(HOSTILE)
    resumed = subprocess.run(command(tmp / "mixed", out), capture_output=True, text=True, timeout=3600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{saved} already graded" in resumed.stdout
    assert honest_grades(out) == expected
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        statuses = {r["student"]: r["status"] for r in csv.DictReader(fh) if r["student"].startswith("zz")}
    assert set(statuses) == set(HOSTILE) and "timeout" in statuses["zz-loop"] and "memory" in statuses["zz-memory"]


def session_processes(session: int) -> dict[int, int]:
    """pid -> parent pid of every process in a session (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # fields after the name: state, ppid, pgrp, session
                found[int(entry.name)] = int(fields[1])
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def test_a_killed_worker_costs_no_grade(baseline):
    """One of the grader's worker processes is killed from outside while grading: the submissions it held are
    graded again in a fresh worker, and the run ends normally with every grade as in the plain class."""
    tmp, expected = baseline
    out = tmp / "worker-out"
    process = subprocess.Popen(command(tmp / "plain", out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 3600
    while len(list((out / "results").glob("*/*.json"))) < 2 and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    tree = session_processes(process.pid)
    servers = [pid for pid, parent in tree.items() if parent == process.pid and "forkserver" in cmdline(pid)]
    workers = [pid for pid, parent in tree.items() if parent in servers]  # forked by multiprocessing's server
    assert workers, tree
    os.kill(workers[0], signal.SIGKILL)
    output, _ = process.communicate(timeout=3600)
    assert process.returncode == 0, output
    assert honest_grades(out) == expected
