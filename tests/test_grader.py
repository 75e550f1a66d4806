"""End-to-end tests of the instructor autograder (python -m autograder grade) on a fixture assignment.

One class holds a correct student and one student per failure or attack; it is graded with 2 jobs and
again with 1 job. Each student must get a clear status and only the points their work earns, and the
correct student's grade must equal the solution's whatever the others did.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "grader" / "source"
SOURCE_NB = FIXTURE / "fx1" / "fx1.ipynb"
sys.path.insert(0, str(REPO))

from autograder import sandbox, scoring, submissions  # noqa: E402
from autograder.rebuild import load_assignment, nbgrader_meta, rebuild  # noqa: E402

CORRECT_SQUARE = "def square(x):\n    return np.asarray(x, dtype=float) ** 2"
CORRECT_MEAN = "def mean_reward(rewards):\n    return float(np.mean(rewards))"
WRONG_MEAN = "def mean_reward(rewards):\n    return float(np.median(rewards))"
FULL, SQUARE_ONLY = 5.0, 2.0
FAST = ["--timeout", "8", "--total-timeout", "40", "--memory", "1024"]
PROCESS_CAP = os.access(sandbox.PIDS_CGROUP_ROOT, os.W_OK) or os.getuid() != 0
needs_bwrap = pytest.mark.skipif(sandbox.check_bwrap() is not None, reason="bubblewrap does not work here")


@pytest.fixture(scope="module")
def assignment():
    return load_assignment(FIXTURE / "fx1")


def student_nb(assignment, square=CORRECT_SQUARE, mean=CORRECT_MEAN, explain="By linearity of expectation."):
    """The released notebook with the student's answers typed into the answer cells."""
    nb = copy.deepcopy(assignment.released)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid == "explain" and explain is not None:
            cell.source = explain
        if gid == "square" and square is not None:
            cell.source = square
        if gid == "mean_reward" and mean is not None:
            cell.source = mean
    return nb


def index_of(nb, gid):
    return next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == gid)


def write_nb(folder: Path, nb, name="fx1.ipynb"):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def class_notebooks(assignment, tmp: Path) -> dict:
    """student -> notebook (or a callable writing something else) for the class under test."""
    a = assignment
    nbs = {
        "alice": student_nb(a),
        "solution": nbformat.read(SOURCE_NB, as_version=4),
        "blank": copy.deepcopy(a.released),
        "partial": student_nb(a, mean=WRONG_MEAN),
        "loop": student_nb(a, mean="while True:\n    pass"),
        "osexit": student_nb(a, mean="import os\nos._exit(0)"),
        "segfault": student_nb(a, mean="import ctypes\nctypes.string_at(0)"),
        "memory": student_nb(a, mean="hog = [bytearray(10**8) for _ in range(200)]"),
        "sysexit": student_nb(a, mean="import sys\nsys.exit(0)\n" + CORRECT_MEAN),
        "fakereport": student_nb(a, square="def square(x):\n    return x", mean=WRONG_MEAN + (
            "\nimport json, builtins\nnp.allclose = lambda *args, **kw: True\nbuiltins.abs = lambda x: 0\n"
            "def report(check_id, value):\n    print('@@grade ' + json.dumps({'id': check_id, 'value': 1.0}))")),
        "reader": student_nb(a, mean=f"print(open({str(SOURCE_NB)!r}).read())\n" + CORRECT_MEAN),
        "reader2": student_nb(a, mean="def mean_reward(rewards):\n    import marlpg\n    return 0.0"),
        "writer": student_nb(a, mean=f"open({str(REPO / 'pwned.txt')!r}, 'w').write('x')\n"
                             + CORRECT_MEAN),
        "writer2": student_nb(a, mean=f"open({str(tmp / 'out' / 'grades.csv')!r}, 'w').write('x')\n" + CORRECT_MEAN),
        "remount": student_nb(a, mean=f"import subprocess\nsubprocess.run(['mount', '-o', 'remount,rw,bind', "
                              f"{sys.prefix!r}])\nopen({str(Path(sys.prefix) / 'PWNED_BY_TEST')!r}, 'w')\n" + CORRECT_MEAN),
        "forkbomb": student_nb(a, mean="import os, time\nfor _ in range(3000):\n    if os.fork() == 0:\n"
                               "        time.sleep(20)\n        os._exit(0)\n" + CORRECT_MEAN),
        "flood": student_nb(a, mean="for _ in range(5000):\n    print('x' * 1000)\n" + CORRECT_MEAN),
        "network": student_nb(a, mean="import socket\nsocket.create_connection(('1.1.1.1', 80), 3)\n" + CORRECT_MEAN),
    }
    first = student_nb(a)
    first.cells.insert(0, nbformat.v4.new_code_cell("raise RuntimeError('boom')"))
    nbs["firstcell"] = first
    deleted = student_nb(a)
    del deleted.cells[index_of(deleted, "test_square")]
    nbs["deleted"] = deleted
    edited = student_nb(a, mean=WRONG_MEAN)
    edited.cells[index_of(edited, "test_mean")].source = "assert True"
    nbs["edited"] = edited
    duplicated = student_nb(a)
    duplicated.cells.insert(index_of(duplicated, "test_square"), copy.deepcopy(duplicated.cells[index_of(duplicated, "test_square")]))
    nbs["duplicated"] = duplicated
    retyped = student_nb(a, mean=WRONG_MEAN)
    i = index_of(retyped, "test_mean")
    retyped.cells[i] = nbformat.v4.new_markdown_cell(retyped.cells[i].source, metadata=retyped.cells[i].metadata)
    nbs["retyped"] = retyped
    # Hidden checks' text and inputs must not reach a student by any route the kernel offers.
    nbs["history"] = student_nb(a)
    nbs["history"].cells.append(nbformat.v4.new_code_cell("print('\\n'.join(In)); print(_ih); print(Out)"))
    nbs["hook"] = student_nb(a, mean=CORRECT_MEAN + "\nseen = []\nget_ipython().events.register("
                             "'pre_run_cell', lambda info: seen.append(info.raw_cell))")
    nbs["hook"].cells.append(nbformat.v4.new_code_cell("print(seen)"))
    nbs["frames"] = student_nb(a, mean="import inspect\nstash = []\ndef mean_reward(rewards):\n"
                               "    caller = inspect.currentframe().f_back\n"
                               "    stash.append((inspect.getsource(caller), dict(caller.f_globals.get('_ih', {})\n"
                               "                 if isinstance(caller.f_globals.get('_ih'), dict) else {})))\n"
                               "    print('FRAME', inspect.getframeinfo(caller).code_context)\n"
                               "    return float(np.mean(rewards))")
    nbs["frames"].cells.append(nbformat.v4.new_code_cell("print(stash)\nraise ValueError(str(stash))"))
    nbs["history2"] = student_nb(a)
    nbs["history2"].cells.append(nbformat.v4.new_code_cell(
        "import IPython\nrows = list(IPython.get_ipython().history_manager.get_range())\n"
        "raise RuntimeError(repr(rows)[:5000])"))
    forged = student_nb(a, mean=WRONG_MEAN)
    forged.cells.append(nbformat.v4.new_code_cell("print('all good')", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "grade_id": "bonus", "points": 100, "schema_version": 3}}))
    nbs["forged"] = forged
    # Resource attacks on the sandbox and on the grader itself (tests/test_sandbox_limits.py has one per limit).
    widget_flood = ("from ipykernel.comm import Comm\ncomm = Comm(target_name='jupyter.widget', data={'state': {"
                    "'_model_name': 'M', '_model_module': 'm', '_model_module_version': '1'}})\nfor i in range(40):\n"
                    "    comm.send({'method': 'update', 'state': {'k%d' % i: 'y' * 500_000}})\n")
    display_flood = ("from IPython.display import display\nhandle = display('start', display_id=True)\n"
                     "for i in range(40):\n    handle.update('z' * 500_000 + str(i))\n")
    many_processes_memory = ("import multiprocessing as mp, time\ndef hold(mb):\n    block = bytearray(mb * 2**20)\n"
                             "    block[::4096] = b'1' * (len(block) // 4096)\n    time.sleep(2)\n"
                             "children = [mp.get_context('fork').Process(target=hold, args=(250,)) for _ in range(6)]\n"
                             "[c.start() for c in children]\n[c.join() for c in children]\n")
    cpu_hog = ("import os, time\nfor _ in range(48):\n    if os.fork() == 0:\n        try:\n            os.setsid()\n"
               "        except OSError:\n            pass\n        end = time.time() + 4\n"
               "        while time.time() < end:\n            pass\n        os._exit(0)\n")
    nbs["killpg"] = student_nb(a, mean="import os, signal\nos.killpg(0, signal.SIGKILL)")
    nbs["widgetflood"] = student_nb(a, mean=widget_flood + CORRECT_MEAN)
    nbs["displayflood"] = student_nb(a, mean=display_flood + CORRECT_MEAN)
    nbs["hugeline"] = student_nb(a, mean="print('x' * 12_000_000)\n" + CORRECT_MEAN)
    nbs["manycells"] = student_nb(a)
    nbs["manycells"].cells += [nbformat.v4.new_code_cell("print('m' * 1_900_000)") for _ in range(12)]
    nbs["shmfill"] = student_nb(a, mean="with open('/dev/shm/fill', 'wb') as out:\n    for _ in range(1024):\n"
                                "        out.write(b'0' * 2**20)\n" + CORRECT_MEAN)
    nbs["socketfill"] = student_nb(a, mean="import os, sys\nfolder = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
                                   "open(os.path.join(folder, 'fill'), 'wb').write(b'0' * 2**27)\n" + CORRECT_MEAN)
    nbs["manymemory"] = student_nb(a, mean=many_processes_memory + CORRECT_MEAN)
    nbs["cpuhog"] = student_nb(a, mean=cpu_hog + CORRECT_MEAN)
    nbs["userns"] = student_nb(a, mean="import subprocess\nsubprocess.run(['unshare', '--user', '--map-root-user', 'true'], "
                               "check=True)\n" + CORRECT_MEAN)
    points = student_nb(a)
    nbgrader_meta(points.cells[index_of(points, "test_mean")])["points"] = 100
    nbs["points"] = points
    return nbs


@pytest.fixture(scope="module")
def class_dir(assignment, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    root = tmp / "course" / "submitted"
    for student, nb in class_notebooks(assignment, tmp).items():
        write_nb(root / student / "fx1", nb)
    write_nb(root / "misnamed" / "fx1", student_nb(assignment), name="my homework.ipynb")
    (root / "invalidjson" / "fx1").mkdir(parents=True)
    (root / "invalidjson" / "fx1" / "fx1.ipynb").write_text('{"cells": [', encoding="utf-8")
    (root / "notanotebook" / "fx1").mkdir(parents=True)
    (root / "notanotebook" / "fx1" / "fx1.ipynb").write_text('{"cells": [1, 2], "nbformat": 4}', encoding="utf-8")
    (root / "emptyfile" / "fx1").mkdir(parents=True)
    (root / "emptyfile" / "fx1" / "fx1.ipynb").write_bytes(b"")
    (root / "missing" / "other").mkdir(parents=True)
    (root / "symlink" / "fx1").mkdir(parents=True)
    os.symlink(SOURCE_NB, root / "symlink" / "fx1" / "fx1.ipynb")
    return tmp


def run_grader(submissions_path: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "autograder", "grade", "--submissions", str(submissions_path), "--out", str(out),
           "--source", str(FIXTURE), *FAST, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)


def read_grades(out: Path) -> dict:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(class_dir):
    out = class_dir / "out"
    result = run_grader(class_dir / "course", out, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    return read_grades(out)


@pytest.fixture(scope="module")
def graded_one_job(class_dir):
    out = class_dir / "out1"
    result = run_grader(class_dir / "course", out, "--jobs", "1")
    assert result.returncode == 0, result.stderr
    return read_grades(out)


# A repository under the host's /tmp (a CI clone, say) is not mounted either, but its .venv is bound
# read-only inside the sandbox's private /tmp tmpfs, so the repository's folder exists there and is
# writable: the write then lands in the sandbox's own memory, never on the host (which is what
# test_nothing_written_outside_the_sandbox checks), and the submission keeps its points.
REPO_UNDER_TMP = str(REPO).startswith("/tmp/")

EXPECTED = {  # student: (automatic score, a status it must show)
    "alice": (FULL, "ok"),
    "solution": (FULL, "ok"),
    "blank": (0.0, "unanswered"),
    "partial": (SQUARE_ONLY, "ok"),
    "loop": (SQUARE_ONLY, "timeout"),
    "osexit": (SQUARE_ONLY, "kernel died"),
    "segfault": (SQUARE_ONLY, "kernel died"),
    "memory": (SQUARE_ONLY, "memory"),
    "sysexit": (SQUARE_ONLY, "exception"),
    "firstcell": (FULL, "exception"),
    "fakereport": (0.0, "ok"),
    "reader": (SQUARE_ONLY, "exception"),
    "reader2": (SQUARE_ONLY, "ok"),
    "writer": (FULL, "ok") if REPO_UNDER_TMP else (SQUARE_ONLY, "exception"),
    "writer2": (SQUARE_ONLY, "exception"),
    "network": (SQUARE_ONLY, "exception"),
    "remount": (SQUARE_ONLY, "exception"),
    "flood": (FULL, "ok"),
    # the process cap binds where a pids cgroup can be made, or the grader is not root (RLIMIT_NPROC)
    "forkbomb": (SQUARE_ONLY, "exception") if PROCESS_CAP else (FULL, "ok"),
    "deleted": (FULL, "tampered"),
    "edited": (SQUARE_ONLY, "tampered"),
    "duplicated": (FULL, "tampered"),
    "retyped": (SQUARE_ONLY, "tampered"),
    "forged": (SQUARE_ONLY, "tampered"),
    "history": (FULL, "ok"),
    "hook": (FULL, "ok"),
    "frames": (FULL, "exception"),
    "history2": (FULL, "exception"),
    "misnamed": (FULL, "misnamed"),
    "invalidjson": (0.0, "invalid json"),
    "notanotebook": (0.0, "invalid json"),
    "emptyfile": (0.0, "empty"),
    "missing": (0.0, "missing"),
    "symlink": (0.0, "invalid file"),
    "killpg": (SQUARE_ONLY, "kernel died"),  # its own kill, not reported as memory
    "widgetflood": (SQUARE_ONLY, "output limit"),  # past the notebook's output cap even the reports are dropped
    "displayflood": (SQUARE_ONLY, "output limit"),
    "hugeline": (SQUARE_ONLY, "output limit"),  # refused by the grader's sockets; the notebook stops there
    "manycells": (FULL, "output limit"),  # the added cells come after every test
    "shmfill": (SQUARE_ONLY, "exception"),
    "socketfill": (SQUARE_ONLY, "exception") if os.geteuid() == 0 else (SQUARE_ONLY, "kernel died"),
    # with a memory cgroup the children are stopped and the kernel goes on; the fallback stops the sandbox
    "manymemory": (FULL, "memory") if "memory" in sandbox.available_controllers() else (SQUARE_ONLY, "memory"),
    "cpuhog": (FULL, "ok"),
    "userns": (SQUARE_ONLY, "exception"),  # seccomp: unshare(CLONE_NEWUSER) gets EPERM
    "points": (FULL, "tampered"),
}


@needs_bwrap
@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_its_status_and_only_its_points(graded, student):
    score, status = EXPECTED[student]
    row = graded[student]
    assert float(row["autograded_score"]) == score, row
    statuses = row["status"].split("; ")
    assert status in statuses, row
    assert float(row["autograded_max"]) == FULL and float(row["manual_max"]) == 2.0
    assert float(row["max_score"]) == FULL + 2.0
    if status != "ok":
        assert row["details"] or status in ("misnamed",), row


@needs_bwrap
def test_class_rows_and_correct_student_unaffected(graded):
    assert set(graded) == set(EXPECTED)
    assert graded["alice"]["autograded_score"] == graded["solution"]["autograded_score"] == "5"
    assert graded["alice"]["status"] == "ok"


@needs_bwrap
def test_grades_do_not_depend_on_jobs(graded, graded_one_job):
    pick = lambda rows: {s: (r["autograded_score"], r["status"]) for s, r in rows.items()}  # noqa: E731
    assert pick(graded) == pick(graded_one_job)


@pytest.fixture(scope="module")
def graded_on_ray(class_dir):
    out = class_dir / "out_ray"
    result = run_grader(class_dir / "course", out, "--ray", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "on Ray (local instance)" in result.stdout
    return read_grades(out)


# Where a sandbox's memory and socket-folder limits are enforced by cgroups locally, a Ray worker (in Ray's own
# cgroup) falls back to the grader's watchdog, which stops these two attacks later: same protection, another
# status. Every other student, honest or hostile, must grade identically.
ENFORCEMENT_DEPENDENT = {"manymemory", "socketfill"}


def same_grades(rows) -> dict:
    return {s: (r["autograded_score"], r["status"], r["details"]) for s, r in rows.items()
            if s not in ENFORCEMENT_DEPENDENT}


@needs_bwrap
def test_grades_on_ray_equal_the_local_run(graded, graded_on_ray):
    # One submission per Ray task, each still in its sandbox: the hostile class grades as locally.
    assert same_grades(graded_on_ray) == same_grades(graded)
    for student in ENFORCEMENT_DEPENDENT:  # stopped either way, and never more points than the honest answer
        assert graded_on_ray[student]["status"] != "ok"
        assert float(graded_on_ray[student]["autograded_score"]) <= FULL


@pytest.fixture(scope="module")
def graded_on_cluster(class_dir, ray_cluster):
    address, env = ray_cluster  # a head and a worker node started with `ray start`, joined by address
    out = class_dir / "out_cluster"
    result = run_grader(class_dir / "course", out, "--ray-address", address, env=env)
    assert result.returncode == 0, result.stderr
    assert f"on Ray ({address})" in result.stdout
    return read_grades(out)


@needs_bwrap
def test_grades_on_a_ray_cluster_equal_the_local_run(graded, graded_on_cluster):
    assert same_grades(graded_on_cluster) == same_grades(graded)


def test_jobs_below_one_is_refused(assignment, tmp_path):
    result = run_grader(tmp_path, tmp_path / "out", "--jobs", "0")
    assert result.returncode == 2
    assert "--jobs must be at least 1, got 0" in result.stderr


@needs_bwrap
def test_nothing_written_outside_the_sandbox(graded, class_dir):
    assert not (REPO / "pwned.txt").exists()
    assert not (Path(sys.prefix) / "PWNED_BY_TEST").exists()  # the environment cannot be remounted writable
    assert (class_dir / "out" / "grades.csv").read_text().startswith("student,")
    if not REPO_UNDER_TMP:
        assert "Read-only file system" in graded["writer"]["details"]
    assert "No such file" in graded["writer2"]["details"]
    assert "marlpg" in graded["reader2"]["details"] or graded["reader2"]["status"] == "ok"
    assert "No such file" in graded["reader"]["details"]
    assert "Network is unreachable" in graded["network"]["details"] or "OSError" in graded["network"]["details"]
    assert "sys.exit(0)" in graded["sysexit"]["details"]


def hidden_lines() -> list[str]:
    """Every line of the fixture's hidden checks (their text, seeds and inputs)."""
    lines = []
    for cell in nbformat.read(SOURCE_NB, as_version=4).cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
            lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


@needs_bwrap
def test_feedback_html_shows_results_not_hidden_tests(graded, class_dir):
    for student in EXPECTED:
        page = (class_dir / "out" / "feedback" / student / "fx1" / "fx1.html").read_text(encoding="utf-8")
        assert "fx1" in page
        assert "BEGIN HIDDEN TESTS" not in page and "default_rng(7)" not in page
    page = (class_dir / "out" / "feedback" / "partial" / "fx1" / "fx1.html").read_text(encoding="utf-8")
    assert "test_square" in page and "test_mean" in page
    report = (class_dir / "out" / "report.txt").read_text()
    assert "loop (loop) / fx1" in report and "time limit" in report


@needs_bwrap
@pytest.mark.parametrize("student", ["history", "hook", "frames", "history2"])
def test_no_hidden_check_text_reaches_the_student(graded, class_dir, student):
    """In, _ih, Out, the history database, a pre_run_cell hook and the caller's frame all ran in the
    student's kernel; none of them may carry the hidden checks' text to the page, the stored notebook a
    student's feedback is made from, or grades.csv."""
    out = class_dir / "out"
    seen = [(out / "feedback" / student / "fx1" / "fx1.html").read_text(encoding="utf-8"),
            (out / "results" / student / "fx1.ipynb").read_text(encoding="utf-8"),
            json.dumps(graded[student])]
    assert any("mean_reward" in text for text in seen)  # the routes did print something
    for line in hidden_lines():
        for text in seen:
            assert line not in text and json.dumps(line)[1:-1] not in text, (student, line)


@needs_bwrap
def test_lms_zip_layout(assignment, tmp_path):
    buf = tmp_path / "canvas.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bob_12345_67890_fx1.ipynb", nbformat.writes(student_nb(assignment)))
        zf.writestr("sub/carol_late_111_222_fx1-1.ipynb", nbformat.writes(student_nb(assignment, mean=WRONG_MEAN)))
        zf.writestr("dave_9_10_homework.ipynb", nbformat.writes(student_nb(assignment)))
        zf.writestr("../../evil_1_2_fx1.ipynb", "{")
        zf.writestr("__MACOSX/._bob_fx1.ipynb", "junk")
    out = tmp_path / "out"
    result = run_grader(buf, out, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    rows = read_grades(out)
    assert (rows["12345"]["name"], rows["12345"]["autograded_score"]) == ("bob", "5")
    assert rows["111"]["autograded_score"] == "2" and "misnamed" not in rows["111"]["status"]  # -1: a resubmission
    assert rows["9"]["autograded_score"] == "5" and "misnamed" in rows["9"]["status"]
    assert rows["1"]["status"] == "invalid json"
    assert not (tmp_path.parent / "evil_1_2_fx1.ipynb").exists()
    assert {p.name for p in (out / "feedback").iterdir()} == {"12345", "111", "9", "1"}


def test_zip_bomb_is_read_with_a_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 1000)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("eve_1_2_fx1.ipynb", b"0" * 10_000_000)
    found = submissions.collect(path, {"fx1": "fx1.ipynb"}).submissions
    assert [(s.student, s.problem) for s in found] == [("1", "invalid file")]
    assert "larger than" in found[0].notes[0]


def test_refuses_to_grade_without_a_working_sandbox(tmp_path):
    env = dict(os.environ, PATH="/nonexistent")
    code = ("import sys; sys.argv[0] = 'x'; import autograder.sandbox as s; s.BWRAP = '/nonexistent/bwrap';"
            "from autograder.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", code, "grade", "--submissions", str(tmp_path), "--out", str(tmp_path / "o"),
           "--source", str(FIXTURE)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert result.returncode == 2
    assert "Refusing to grade" in result.stderr and "--unsafe-no-sandbox" in result.stderr
    assert not (tmp_path / "o").exists()


def test_report_comparison_tolerances():
    assert scoring.values_match(1.0, 1.0 + 1e-8) and not scoring.values_match(1.0, 1.001)
    assert scoring.values_match([1, [2.0, 3]], [1.0, [2, 3.0000000001]])
    assert not scoring.values_match([1, 2], [1, 2, 3]) and not scoring.values_match("a", "b")
    assert not scoring.values_match(True, 1) and scoring.values_match(float("nan"), float("nan"))
    cell = {"outputs": [{"output_type": "stream", "name": "stdout",
                         "text": 'x\n@@grade {"id": "a", "value": [1, 2]}\n@@grade nonsense\n'}]}
    reports = scoring.parse_reports(cell)
    assert reports[0] == ("a", [1, 2]) and reports[1][0] == "<unreadable>"
    assert scoring.reports_match(reports[:1], [("a", [1, 2.0])])[0]
    assert not scoring.reports_match(reports, [("a", [1, 2])])[0]
    declared = scoring.parse_reports({"outputs": [{"output_type": "stream", "name": "stdout",
                                                   "text": '@@grade {"id": "b", "value": 1.0, "rtol": 0.1}\n'}]})
    assert declared == [("b", 1.0, {"rtol": 0.1})]
    assert scoring.reports_match([("b", 1.05)], declared)[0] and not scoring.reports_match([("b", 1.2)], declared)[0]
    # a student's own declaration is ignored: only the reference's counts
    assert not scoring.reports_match([("b", 1.05, {"rtol": 1.0})], [("b", 1.0)])[0]


def test_rebuild_takes_tests_from_the_source(assignment):
    nb = student_nb(assignment, mean=WRONG_MEAN)
    nb.cells[index_of(nb, "test_mean")].source = "assert True"
    rebuilt = rebuild(assignment, nb)
    test = rebuilt.notebook.cells[index_of(rebuilt.notebook, "test_mean")]
    assert "BEGIN HIDDEN TESTS" in test.source and rebuilt.tampering
    answer = rebuilt.notebook.cells[index_of(rebuilt.notebook, "mean_reward")]
    assert "median" in answer.source
    assert not rebuild(assignment, student_nb(assignment)).tampering


def test_exchange_inbound_layout_takes_the_latest(assignment, tmp_path):
    inbound = tmp_path / "inbound"
    write_nb(inbound / "bob+fx1+2026-11-20 10:00:00.000000 UTC+abc", copy.deepcopy(assignment.released))
    write_nb(inbound / "bob+fx1+2026-11-21 10:00:00.000000 UTC+def", student_nb(assignment))
    write_nb(inbound / "carol+other+2026-11-21 10:00:00.000000 UTC+x", student_nb(assignment))
    from autograder.deadlines import Deadlines, pick_attempts
    found = pick_attempts(submissions.collect(inbound, {"fx1": "fx1.ipynb"}).submissions, Deadlines())
    # carol submitted only another assignment: she is a student of the course with fx1 missing
    assert sorted((s.student, s.problem) for s in found) == [("bob", ""), ("carol", "missing")]
    assert b"np.mean" in next(s for s in found if s.student == "bob").content


REAL = sorted(p.parent.name for p in (REPO / "solutions").glob("ex*/ex*.ipynb") if p.stem == p.parent.name)


@needs_bwrap
@pytest.mark.skipif(not REAL, reason="no exercise notebooks in solutions/ yet")
def test_real_exercises_solution_full_blank_zero(tmp_path):
    root = tmp_path / "submitted"
    for name in REAL:
        source = nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)
        write_nb(root / "solution" / name, source, name=f"{name}.ipynb")
        released = REPO / "notebooks" / "exercises" / name / f"{name}.ipynb"
        if released.exists():
            write_nb(root / "blank" / name, nbformat.read(released, as_version=4), name=f"{name}.ipynb")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "autograder", "grade", "--submissions", str(tmp_path), "--out", str(out),
           "--jobs", "2", "--timeout", "120", "--memory", "4096"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # Exercise 30.7.1 has no automatic points (its predictions can be looked up; only the arguments count).
    hand_only = {name for name in REAL if not scoring.test_cells(nbformat.read(
        REPO / "solutions" / name / f"{name}.ipynb", as_version=4))}
    assert "ex30_7_1" in hand_only
    for row in rows:
        if row["student"] == "solution":
            assert row["autograded_score"] == row["autograded_max"], row
            assert (float(row["autograded_max"]) == 0) == (row["assignment"] in hand_only), row
            assert row["status"] == "ok", row
        elif row["student"] == "blank" and row["status"] != "missing":
            assert float(row["autograded_score"]) == 0 and "unanswered" in row["status"], row


def test_unsafe_no_sandbox_still_grades_and_warns(assignment, tmp_path):
    write_nb(tmp_path / "submitted" / "alice" / "fx1", student_nb(assignment))
    write_nb(tmp_path / "submitted" / "bob" / "fx1", student_nb(assignment, mean=WRONG_MEAN))
    result = run_grader(tmp_path, tmp_path / "out", "--jobs", "1", "--unsafe-no-sandbox")
    assert result.returncode == 0, result.stderr
    assert "WITHOUT the sandbox" in result.stderr
    rows = read_grades(tmp_path / "out")
    assert (rows["alice"]["autograded_score"], rows["bob"]["autograded_score"]) == ("5", "2")


def test_command_lists_grade_and_generate():
    result = subprocess.run([sys.executable, "-m", "autograder", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "grade" in result.stdout and "generate" in result.stdout


@needs_bwrap
def test_a_failing_solution_notebook_stops_that_assignment(assignment, tmp_path):
    broken = nbformat.read(SOURCE_NB, as_version=4)
    broken.cells[index_of(broken, "mean_reward")].source = "def mean_reward(rewards):\n    return 1 / 0"
    source = tmp_path / "source"
    write_nb(source / "fx1", broken)
    write_nb(tmp_path / "submitted" / "alice" / "fx1", student_nb(assignment))
    cmd = [sys.executable, "-m", "autograder", "grade", "--submissions", str(tmp_path), "--out", str(tmp_path / "out"),
           "--source", str(source), "--jobs", "1", *FAST]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1
    report = (tmp_path / "out" / "report.txt").read_text()
    assert "NOT GRADED fx1" in report and "ZeroDivisionError" in report


@needs_bwrap
def test_writable_folders_are_size_capped():
    from autograder.runner import run_notebook

    code = ("for name in ('/tmp/a', '/tmp/b', 'c', 'd'):\n    with open(name, 'wb') as fh:\n"
            "        fh.write(b'0' * 10 * 2**20)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    run = run_notebook(nb, cell_timeout=20, total_timeout=30, limits=sandbox.Limits(disk_mb=16, memory_mb=1024))
    assert run.cells[0].error == "OSError" and "No space left" in run.cells[0].error_value


def test_private_tmp_comes_before_the_python_binds(monkeypatch):
    # A clone's .venv may live under the host's /tmp (CI clones anywhere): the sandbox's own /tmp must be
    # mounted first, or it hides the environment and the kernel dies before it starts.
    monkeypatch.setattr(sandbox, "python_dirs", lambda: ["/tmp/clone/.venv", "/root/.pyenv/versions/3.11.7"])
    cmd = sandbox.bwrap_prefix("/tmp/autograder-kernel-x", sandbox.Limits())
    tmpfs = cmd.index("--tmpfs")
    assert cmd[tmpfs + 1] == "/tmp"
    binds = [i for i, arg in enumerate(cmd) if arg == "--ro-bind" and cmd[i + 1] == "/tmp/clone/.venv"]
    assert binds and all(i > tmpfs for i in binds)
