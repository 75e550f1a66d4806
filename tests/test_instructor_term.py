"""One instructor's whole term with the real tools: the course grader, nbgrader, Unix students, formgrader, Chromium.

The module-scoped fixture ``term`` runs the term once, in order, and records what every command did; the test
functions below check one thing each. The term:

* ``marlpg-autograder init`` a course folder and exchange, ``release`` Exercise 30.7.3;
* five students, each a real Unix user running Debian's python3.11 with the course environment's packages
  (``nbgrader fetch_assignment`` / ``submit``): ``perfect`` (every answer), ``partial`` (one answer wrong),
  ``blank`` (submitted untouched), ``tamperer`` (perfect, and one test cell edited), ``late`` (perfect,
  submitted after the deadline);
* between the fetches the instructor fixes a typo in a locked markdown cell and releases again: the release
  prints a drift line, and the students who fetched the first version are not marked ``tampered``;
* ``nbgrader collect``, ``marlpg-autograder grade --course`` with a deadline between the on-time submissions
  and the late one (``--late-penalty 10%/day``);
* exports refused while hand-graded cells are ungraded; ``marks template`` / ``marks import`` (a bad marks file
  refused, changing nothing); ``nbgrader autograde`` refused, changing nothing;
* formgrader (``jupyter server``) in headless Chromium: the sandboxed automatic scores are there, one hand
  score is typed into the manual grading page and counts like the marks file's;
* ``feedback``, ``export`` (Canvas, Moodle, csv), ``nbgrader release_feedback``, ``fetch_feedback`` as two
  students, every feedback page opened in Chromium from file:// (rendered, typeset, offline, no hidden tests,
  the student's own comments);
* a Moodle zip (two students with the same full name, one with an accented name) and a Canvas zip (a
  ``_late_`` file, a ``-1`` resubmission) graded with ``--submissions``, marked and exported.

Every expected point is computed here from the source notebook's nbgrader metadata and the marks given.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import html
import json
import os
import pwd
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest


import chromium  # tests/chromium.py
from chromium import open_local_page

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ex30_7_3"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "marl-test"
SOLUTION_NB = REPO / "solutions" / ASSIGNMENT / NOTEBOOK
VENV_BIN = Path(sys.prefix) / "bin"
GRADER = VENV_BIN / "marlpg-autograder"
STUDENT_PYTHON = Path("/usr/bin/python3.11")
USER_PREFIX = "mlpgterm_"
STUDENTS = ("perfect", "partial", "blank", "tamperer", "late")
ON_TIME = ("perfect", "partial", "blank", "tamperer")
FAST = ["--jobs", "2", "--timeout", "30", "--total-timeout", "120", "--memory", "2048"]
PENALTY_RULE = "10%/day"

# Which answer is wrong for 'partial', and (computed by hand from solutions/ex30_7_3) which test cell then fails:
# ALGORITHM_B is checked only by ex30_7_3-b-algorithm-test (the hidden check reports ALGORITHM_B), so "MAPPO"
# instead of "COMA" there loses exactly that test's point.
WRONG_ANSWER_CELL = "ex30_7_3-b-answer"
WRONG_ANSWER = ('ALGORITHM_B = "COMA"', 'ALGORITHM_B = "MAPPO"')
PARTIAL_FAILS = {"ex30_7_3-b-algorithm-test"}
TAMPERED_TEST = "ex30_7_3-a-algorithm-test"
TYPO_CELL = "ex30_7_3-intro"
TYPO_FIX = ("spelled exactly so.", "spelled exactly as shown.")
FORMGRADER_STUDENT, FORMGRADER_CELL, FORMGRADER_POINTS = "perfect", "ex30_7_3-a-defense", 1.5
ACCENT_COMMENT = "Défense solide, mais l'élève oublie la contrainte — très bien quand même"

# Hand marks (points, comment) for each student and hand-graded cell of the course; the formgrader cell is
# left empty in the marks file and typed into formgrader instead.
COURSE_MARKS = {
    "perfect": {"ex30_7_3-a-defense": None, "ex30_7_3-b-defense": (2, "perfect: credit assignment well argued"),
                "ex30_7_3-c-defense": (2, "perfect: clipping explained")},
    "partial": {"ex30_7_3-a-defense": (2, "partial: good on per-agent critics"),
                "ex30_7_3-b-defense": (0.5, ACCENT_COMMENT), "ex30_7_3-c-defense": (1, "partial: half the rubric")},
    "blank": {"ex30_7_3-a-defense": (0, "blank: no answer"), "ex30_7_3-b-defense": (0, "blank: no answer (b)"),
              "ex30_7_3-c-defense": (0, "blank: no answer (c)")},
    "tamperer": {"ex30_7_3-a-defense": (1, "tamperer: thin"), "ex30_7_3-b-defense": (1, "tamperer: thin (b)"),
                 "ex30_7_3-c-defense": (1, "tamperer: thin (c)")},
    "late": {"ex30_7_3-a-defense": (2, "late: fine"), "ex30_7_3-b-defense": (1.5, "late: mostly"),
             "ex30_7_3-c-defense": (2, "late: fine (c)")},
}

# The LMS classes: Moodle participant id -> (full name, kind of answer); Canvas user id -> (file name, kind)
MOODLE = {"2005": ("Alex Smith", "perfect"), "2006": ("Alex Smith", "partial"), "2007": ("José Muñoz", "perfect")}
CANVAS = {"3001": ("smithjane_late_3001_9001_ex30_7_3.ipynb", "perfect"),
          "3002": ("doejohn_3002_9102_ex30_7_3-1.ipynb", "partial")}
LMS_MARKS = {"ex30_7_3-a-defense": (2, "argued"), "ex30_7_3-b-defense": (1, "half"), "ex30_7_3-c-defense": (1.5, "ok")}
CANVAS_DUE = "2026-01-01T00:00+00:00"  # before any run of this test: only the _late_ marker makes a student late


# ---------------------------------------------------------------------------------------------------------------
# Notebooks


def nbg(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def solution_region(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
    end = next(i for i, line in enumerate(lines) if line.strip() == "### END SOLUTION")
    return lines[start + 1:end]


def perfect_answer(source_cell) -> str:
    """The instructor's answer: for a code cell its lines with the solution markers removed (the solution region
    sits inside the cell, after the instructions), for a markdown cell the text between the markers."""
    if source_cell.cell_type == "code":
        return "\n".join(line for line in source_cell.source.splitlines()
                         if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return "\n".join(solution_region(source_cell.source))


def hidden_lines(source_nb) -> list[str]:
    lines = []
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() == "### BEGIN HIDDEN TESTS":
                inside = True
            elif line.strip() == "### END HIDDEN TESTS":
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def answered(fetched, source_nb, kind: str):
    """The notebook a student of this kind submits, built from the one they fetched."""
    nb = copy.deepcopy(fetched)
    if kind == "blank":
        return nb
    sources = {nbg(c).get("grade_id"): c for c in source_nb.cells if nbg(c).get("grade_id")}
    for cell in nb.cells:
        gid = nbg(cell).get("grade_id")
        if nbg(cell).get("solution"):
            cell.source = perfect_answer(sources[gid])
            if kind == "partial" and gid == WRONG_ANSWER_CELL:
                assert WRONG_ANSWER[0] in cell.source, cell.source
                cell.source = cell.source.replace(*WRONG_ANSWER)
        if kind == "tamperer" and gid == TAMPERED_TEST:
            cell.source = "assert True  # I edited this test"
    return nb


@dataclass
class Points:
    tests: dict  # test cell -> points
    manual: dict  # hand-graded cell -> points

    @property
    def auto_max(self) -> float:
        return sum(self.tests.values())

    @property
    def manual_max(self) -> float:
        return sum(self.manual.values())

    @property
    def max(self) -> float:
        return self.auto_max + self.manual_max


def points_of(source_nb) -> Points:
    tests, manual = {}, {}
    for cell in source_nb.cells:
        meta = nbg(cell)
        if not meta.get("grade"):
            continue
        if meta.get("solution") or meta.get("task"):
            manual[meta["grade_id"]] = float(meta.get("points", 0))
        elif cell.cell_type == "code":
            tests[meta["grade_id"]] = float(meta.get("points", 0))
    return Points(tests, manual)


def expected_auto(points: Points, kind: str) -> float:
    if kind == "blank":
        return 0.0
    if kind == "partial":
        return sum(p for gid, p in points.tests.items() if gid not in PARTIAL_FAILS)
    return points.auto_max


# ---------------------------------------------------------------------------------------------------------------
# Running things


@dataclass
class Step:
    name: str
    command: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (f"{self.name}: {' '.join(map(str, self.command))} -> exit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


def instructor_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    return env


def run(name: str, command: list, cwd: Path | None = None, env: dict | None = None, timeout: float = 400,
        **kw) -> Step:
    start = time.monotonic()
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env or instructor_env(), capture_output=True,
                          text=True, timeout=timeout, **kw)
    return Step(name, [str(c) for c in command], done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def ok(step: Step) -> Step:
    assert step.returncode == 0, str(step)
    return step


def student_site_packages() -> str:
    return sysconfig.get_paths(vars={"base": sys.prefix, "platbase": sys.prefix})["purelib"]


def readable_by_others(path: Path) -> list[str]:
    """Why other users cannot read ``path`` (every folder above it traversable, itself readable), or []."""
    problems = []
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        need = stat.S_IXOTH | (stat.S_IROTH if folder == path else 0)
        if mode & need != need:
            problems.append(f"{folder} (mode {stat.filemode(mode)})")
    return problems


def check_student_python() -> str:
    """The PYTHONPATH students use; fails the test (no skip) with what to install or fix."""
    if not STUDENT_PYTHON.is_file():
        pytest.fail(f"{STUDENT_PYTHON} is missing: students run nbgrader with Debian's Python 3.11, because the "
                    f"course environment's interpreter lives under /root. Install it: apt-get install python3.11")
    site = student_site_packages()
    problems = readable_by_others(Path(site))
    if problems:
        pytest.fail(f"the course environment's packages ({site}) are not readable by other users, so a student "
                    f"cannot run nbgrader: chmod o+rx {', '.join(problems)}")
    return site


@dataclass
class Student:
    kind: str
    user: str
    uid: int
    gid: int
    home: Path


def make_student(kind: str) -> Student:
    user = USER_PREFIX + kind
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        made = subprocess.run(["useradd", "-m", user], capture_output=True, text=True)
        assert made.returncode == 0 or subprocess.run(["id", user], capture_output=True).returncode == 0, \
            f"useradd -m {user} failed: {made.stderr}"
    entry = pwd.getpwnam(user)
    home = Path(entry.pw_dir)
    shutil.rmtree(home / ASSIGNMENT, ignore_errors=True)  # a previous run's copy would stop fetch_assignment
    return Student(kind, user, entry.pw_uid, entry.pw_gid, home)


def as_student(student: Student, site: str, exchange: Path, *nbgrader_args: str) -> Step:
    env = {"HOME": str(student.home), "USER": student.user, "LOGNAME": student.user, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": site, "LANG": "C.UTF-8"}
    command = [str(STUDENT_PYTHON), "-s", "-m", "nbgrader", *nbgrader_args, "--course", COURSE_ID,
               f"--Exchange.root={exchange}"]
    return run(f"{student.kind}: nbgrader {nbgrader_args[0]}", command, cwd=student.home, env=env,
               user=student.uid, group=student.gid, extra_groups=[])


def grader(name: str, *args, cwd: Path | None = None) -> Step:
    return run(name, [GRADER, *args], cwd=cwd)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def grades_by_student(folder: Path) -> dict[str, dict]:
    return {row["student"]: row for row in read_csv(folder / "grades.csv") if row["assignment"] == ASSIGNMENT}


def read_timestamp(path: Path) -> datetime:
    text = path.read_text(encoding="utf-8").strip().replace(" UTC", "+00:00")
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def gradebook_rows(course: Path) -> dict:
    with sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
                for table in ("grade", "comment", "submitted_notebook", "submitted_assignment")}


def fill_marks(template: Path, out: Path, marks_for) -> list[dict]:
    """The template with points and comments from ``marks_for(row) -> (points, comment) | None``."""
    rows = read_csv(template)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            mark = marks_for(row)
            if mark is not None:
                row["points"], row["comment"] = f"{mark[0]:g}", mark[1]
            writer.writerow(row)
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read().decode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# Browser


PAGE_PROBE = """() => ({
  headings: Array.from(document.querySelectorAll('h1, h2, h3')).map(h => h.innerText.trim()).filter(t => t),
  text: document.body ? document.body.innerText : '',
  mjx: document.querySelectorAll('mjx-container').length,
  mathjax: !!(window.MathJax),
  tex_errors: document.querySelectorAll('mjx-merror').length,
})"""


def open_page(browser, path: Path) -> dict:
    """A feedback page opened from file://: what a reader sees, and every request that left the machine."""
    context, page, outside, errors = open_local_page(browser, path)
    if page.evaluate("() => !!window.MathJax"):
        try:
            page.wait_for_function("() => document.querySelector('mjx-container')", timeout=15000)
        except Exception:
            pass
    seen = page.evaluate(PAGE_PROBE)
    context.close()
    raw = path.read_text(encoding="utf-8", errors="replace")
    seen.update(outside=outside, errors=errors, raw=raw, path=str(path))
    return seen


def formgrader_session(browser, base: str, token: str, submission_id: str, cell: str, points: float) -> dict:
    """Type a hand score for one cell into formgrader's manual grading page, then Tab (formgrader saves it
    through its API on the input's change)."""
    context = browser.new_context()
    outside = []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            outside.append(r.request.url)  # formgrader's page asks a CDN for MathJax: not ours, not needed
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(f"{base}/api/status?token={token}")  # the login cookie a page under /formgrader/submissions/
    # sets is for that path only, and the page's API calls go to /formgrader/api/: log in at the root first
    page.goto(f"{base}/formgrader/submissions/{submission_id}/?token={token}", wait_until="load")
    page.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded"
                           " && formgrader.comments && formgrader.comments.loaded", timeout=30000)
    inputs = page.eval_on_selector_all("input.score", "els => els.map(e => [e.id, e.placeholder])")
    score = page.locator(f"input.score[id='{cell}']")
    score.click()
    score.fill("")
    score.type(f"{points:g}")
    score.press("Tab")
    saved = None
    for _ in range(40):
        grades = get_json(f"{base}/formgrader/api/grades?submission_id={submission_id}&token={token}")
        saved = next((g["manual_score"] for g in grades if g["name"] == cell), None)
        if saved is not None:
            break
        time.sleep(0.5)
    context.close()
    return {"inputs": dict(inputs), "saved": saved, "outside": outside}


# ---------------------------------------------------------------------------------------------------------------
# The term


@dataclass
class Term:
    root: Path
    course: Path
    exchange: Path
    points: Points
    source: nbformat.NotebookNode
    students: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    timings: list = field(default_factory=list)

    def record(self, step: Step) -> Step:
        self.steps[step.name] = step
        self.timings.append((step.name, step.seconds))
        return step

    @property
    def grades(self) -> Path:
        return self.course / "grades"


def lms_zip(path: Path, members: dict[str, nbformat.NotebookNode]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, nb in members.items():
            zf.writestr(name, nbformat.writes(nb))
    return path


def lms_chain(term: Term, released, layout: str) -> None:
    """Grade an LMS zip (no course), fill every hand mark, export; everything recorded in ``term``."""
    folder = term.root / layout
    folder.mkdir()
    if layout == "moodle":
        members = {f"{name}_{pid}_assignsubmission_file_/{NOTEBOOK}": answered(released, term.source, kind)
                   for pid, (name, kind) in MOODLE.items()}
        extra = []
    else:
        members = {name: answered(released, term.source, kind) for name, kind in CANVAS.values()}
        extra = ["--due", CANVAS_DUE, "--late-penalty", PENALTY_RULE]
    archive = lms_zip(folder / f"{layout}.zip", members)
    out = folder / "grades"
    term.record(grader(f"{layout}: grade", "grade", "--submissions", archive, "--out", out, "--assignments",
                       ASSIGNMENT, *FAST, *extra))
    if term.steps[f"{layout}: grade"].returncode != 0:
        return
    term.record(grader(f"{layout}: marks template", "marks", "template", "--grades", out, "--out",
                       folder / "template.csv"))
    fill_marks(folder / "template.csv", folder / "marks.csv", lambda row: LMS_MARKS[row["cell_id"]])
    term.record(grader(f"{layout}: marks import", "marks", "import", folder / "marks.csv", "--grades", out))
    fmt = "moodle" if layout == "moodle" else "canvas"
    term.record(grader(f"{layout}: export", "export", "--grades", out, "--format", fmt, "--out",
                       folder / f"export-{fmt}.csv", "--assignment", ASSIGNMENT))
    if layout == "moodle":
        term.record(grader("moodle: export feedback zip", "export", "--grades", out, "--format", "moodle-feedback",
                           "--out", folder / "feedback.zip", "--assignment", ASSIGNMENT))
    term.data[f"{layout}: grades"] = grades_by_student(out)
    term.data[f"{layout}: out"] = out


def start_server(term: Term):
    port, token = free_port(), hashlib.sha256(os.urandom(16)).hexdigest()[:32]
    log = open(term.root / "jupyter-server.log", "w")
    process = subprocess.Popen(
        [str(VENV_BIN / "jupyter"), "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={term.course}"],
        cwd=term.course, env=instructor_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            log.close()
            pytest.fail(f"jupyter server exited with {process.returncode} before answering:\n"
                        + (term.root / "jupyter-server.log").read_text()[-4000:])
        try:
            get_json(f"{base}/api/status?token={token}")
            break
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            if time.monotonic() > deadline:
                stop_server(process)
                log.close()
                pytest.fail("jupyter server (formgrader) did not answer within 90 s:\n"
                            + (term.root / "jupyter-server.log").read_text()[-4000:])
            time.sleep(0.5)
    return process, log, base, token


def stop_server(process) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def run_term(term: Term, site: str, browser) -> None:
    course, exchange, grades = term.course, term.exchange, term.grades
    pool = ThreadPoolExecutor(max_workers=4)

    ok(term.record(grader("init", "init", course, "--course-id", COURSE_ID, "--exchange", exchange)))
    ok(term.record(grader("release 1", "release", "--course", course, ASSIGNMENT)))
    released_v1 = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    # The LMS classes need nothing of the course: they run beside it (their own grading folders).
    lms = [pool.submit(lms_chain, term, released_v1, layout) for layout in ("moodle", "canvas")]

    students = term.students
    for step in pool.map(lambda s: as_student(s, site, exchange, "fetch_assignment", ASSIGNMENT),
                         [students[k] for k in ON_TIME]):
        ok(term.record(step))

    # A typo fixed in a locked instruction cell, released again: drift, which earlier fetchers must not pay for.
    source_path = course / "source" / ASSIGNMENT / NOTEBOOK
    source = nbformat.read(source_path, as_version=4)
    intro = next(c for c in source.cells if nbg(c).get("grade_id") == TYPO_CELL)
    assert TYPO_FIX[0] in intro.source
    intro.source = intro.source.replace(*TYPO_FIX)
    nbformat.write(source, source_path)
    ok(term.record(grader("release 2", "release", "--course", course, ASSIGNMENT)))
    ok(term.record(as_student(students["late"], site, exchange, "fetch_assignment", ASSIGNMENT)))

    for kind, student in students.items():
        path = student.home / ASSIGNMENT / NOTEBOOK
        fetched = nbformat.read(path, as_version=4)
        term.data[f"fetched {kind}"] = fetched
        nbformat.write(answered(fetched, term.source, kind), path)  # the file stays the student's own

    for step in pool.map(lambda s: as_student(s, site, exchange, "submit", ASSIGNMENT),
                         [students[k] for k in ON_TIME]):
        ok(term.record(step))
    time.sleep(2.5)
    ok(term.record(as_student(students["late"], site, exchange, "submit", ASSIGNMENT)))
    ok(term.record(run("nbgrader collect", [VENV_BIN / "nbgrader", "collect", ASSIGNMENT], cwd=course)))

    stamps = {k: read_timestamp(course / "submitted" / s.user / ASSIGNMENT / "timestamp.txt")
              for k, s in students.items()}
    term.data["timestamps"] = stamps
    last_on_time = max(stamps[k] for k in ON_TIME)
    assert stamps["late"] - last_on_time > timedelta(seconds=1), stamps
    due = last_on_time + (stamps["late"] - last_on_time) / 2
    term.data["due"] = due
    ok(term.record(grader("grade", "grade", "--course", course, "--assignments", ASSIGNMENT, "--due",
                          due.isoformat(), "--late-penalty", PENALTY_RULE, *FAST)))
    term.data["grades after grading"] = grades_by_student(grades)
    term.data["report after grading"] = (grades / "report.txt").read_text(encoding="utf-8")

    # Before any hand mark: exports refused (unless --allow-pending)
    term.record(grader("export pending", "export", "--course", course, "--format", "csv",
                       "--out", term.root / "pending.csv"))
    term.data["pending export written"] = (term.root / "pending.csv").exists()
    term.record(grader("export allow-pending", "export", "--course", course, "--format", "csv",
                       "--out", term.root / "allow-pending.csv", "--allow-pending"))

    # Hand marks from a file: a bad file first (refused, nothing changed), then the good one
    ok(term.record(grader("marks template", "marks", "template", "--course", course, "--out",
                          term.root / "template.csv")))
    term.data["template rows"] = read_csv(term.root / "template.csv")
    users = {s.user: k for k, s in students.items()}
    bad = term.root / "bad-marks.csv"
    with open(bad, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "cell_id", "points", "comment"])
        writer.writerow([students["perfect"].user, ASSIGNMENT, "ex30_7_3-b-defense", "3", "over the maximum"])
        writer.writerow([USER_PREFIX + "nobody", ASSIGNMENT, "ex30_7_3-b-defense", "1", "unknown student"])
        writer.writerow([students["partial"].user, ASSIGNMENT, "ex30_7_3-c-defense", "two", "not a number"])
        writer.writerow([students["late"].user, ASSIGNMENT, "ex30_7_3-c-defense", "1", "a good row"])
    before = ((grades / "grades.csv").read_bytes(), gradebook_rows(course))
    term.record(grader("marks import bad", "marks", "import", bad, "--course", course))
    term.data["bad import unchanged"] = before == ((grades / "grades.csv").read_bytes(), gradebook_rows(course))

    fill_marks(term.root / "template.csv", term.root / "marks.csv",
               lambda row: COURSE_MARKS[users[row["student"]]][row["cell_id"]])
    ok(term.record(grader("marks import", "marks", "import", term.root / "marks.csv", "--course", course)))
    term.data["grades after marks"] = grades_by_student(grades)
    term.record(grader("export one pending", "export", "--course", course, "--format", "csv",
                       "--out", term.root / "one-pending.csv"))

    # nbgrader's own autograde: refused, nothing changed
    before = (gradebook_rows(course), tree_digest(course / "autograded"), tree_digest(grades))
    term.record(run("nbgrader autograde", [VENV_BIN / "nbgrader", "autograde", ASSIGNMENT], cwd=course))
    term.record(run("nbgrader generate_feedback", [VENV_BIN / "nbgrader", "generate_feedback", ASSIGNMENT],
                    cwd=course))
    term.data["autograde unchanged"] = before == (gradebook_rows(course), tree_digest(course / "autograded"),
                                                  tree_digest(grades))

    # Formgrader: the automatic scores are there; one hand score typed into its page
    process, log, base, token = start_server(term)
    try:
        term.data["formgrader submissions"] = get_json(f"{base}/formgrader/api/submissions/{ASSIGNMENT}?token={token}")
        notebooks = get_json(f"{base}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}?token={token}")
        term.data["formgrader notebooks"] = notebooks
        target = next(n["id"] for n in notebooks if n["student"] == students[FORMGRADER_STUDENT].user)
        term.data["formgrader page"] = formgrader_session(browser, base, token, target, FORMGRADER_CELL,
                                                          FORMGRADER_POINTS)
        term.data["formgrader notebooks after"] = get_json(
            f"{base}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}?token={token}")
    finally:
        stop_server(process)
        log.close()

    ok(term.record(grader("feedback", "feedback", "--course", course)))
    term.data["grades final"] = grades_by_student(grades)
    for fmt in ("canvas", "moodle", "csv"):
        term.record(grader(f"export {fmt}", "export", "--course", course, "--format", fmt, "--out",
                           term.root / f"course-{fmt}.csv"))

    ok(term.record(run("nbgrader release_feedback", [VENV_BIN / "nbgrader", "release_feedback", ASSIGNMENT],
                       cwd=course)))
    fetchers = [students["perfect"], students["partial"]]
    for step in pool.map(lambda s: as_student(s, site, exchange, "fetch_feedback", ASSIGNMENT), fetchers):
        term.record(step)
    for future in lms:
        future.result()
    pool.shutdown()

    pages = {}
    for student in fetchers:
        for page in sorted((student.home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html")):
            pages[f"fetched {student.kind}"] = open_page(browser, page)
    for layout in ("moodle", "canvas"):
        out = term.data.get(f"{layout}: out")
        for page in sorted(out.glob(f"feedback/*/{ASSIGNMENT}/{ASSIGNMENT}.html")) if out else []:
            pages[f"{layout} {page.parts[-3]}"] = open_page(browser, page)
    term.data["pages"] = pages
    term.data["readable by a student"] = readable_as(students["partial"], instructor_only(term))


def instructor_only(term: Term) -> list[Path]:
    """Files of the course folder another student must not read: the solutions and hidden tests, the gradebook,
    another student's submission, grading run, results and feedback page."""
    other, course = term.students["perfect"].user, term.course
    return [course / "source" / ASSIGNMENT / NOTEBOOK, course / "gradebook.db",
            course / "submitted" / other / ASSIGNMENT / NOTEBOOK, course / "autograded" / other / ASSIGNMENT / NOTEBOOK,
            course / "grades" / "grades.csv", course / "grades" / "results" / other / f"{ASSIGNMENT}.graded.ipynb",
            course / "feedback" / other / ASSIGNMENT / f"{ASSIGNMENT}.html"]


READ_PROBE = """import json, sys
readable = []
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        readable.append(path)
    except OSError:
        pass
print(json.dumps(readable))
"""


def readable_as(student: Student, paths: list[Path]) -> list[str]:
    for path in paths:
        assert path.is_file(), path
    done = run(f"{student.kind}: read probe", [STUDENT_PYTHON, "-I", "-c", READ_PROBE, *paths], cwd=student.home,
               env={"HOME": str(student.home), "PATH": "/usr/bin:/bin"}, user=student.uid, group=student.gid,
               extra_groups=[])
    assert done.returncode == 0, str(done)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def browser():
    with chromium.launch() as launched:
        yield launched


@pytest.fixture(scope="module")
def term(browser):
    assert GRADER.is_file(), f"{GRADER} is missing: pip install -e . in the course environment"
    assert os.geteuid() == 0, "the term test makes Unix users for its students: run it as root"
    site = check_student_python()
    root = Path(tempfile.mkdtemp(prefix="marlpg-term-", dir="/tmp"))
    os.chmod(root, 0o755)  # students reach the exchange through it
    source = nbformat.read(SOLUTION_NB, as_version=4)
    t = Term(root=root, course=root / "course", exchange=root / "exchange", points=points_of(source), source=source)
    t.students = {kind: make_student(kind) for kind in STUDENTS}
    start = time.monotonic()
    try:
        run_term(t, site, browser)
        t.data["seconds"] = time.monotonic() - start
        print(f"\nthe term took {t.data['seconds']:.0f} s; slowest steps: "
              + ", ".join(f"{n} {s:.0f} s" for n, s in sorted(t.timings, key=lambda x: -x[1])[:8]))
        yield t
    finally:
        if not os.environ.get("MARLPG_TERM_KEEP"):  # set it to look at the course folder afterwards
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
        for student in t.students.values():
            shutil.rmtree(student.home / ASSIGNMENT, ignore_errors=True)


def user(term: Term, kind: str) -> str:
    return term.students[kind].user


def expected_manual(term: Term, kind: str) -> float:
    total = 0.0
    for cell, mark in COURSE_MARKS[kind].items():
        if mark is not None:
            total += mark[0]
        elif kind == FORMGRADER_STUDENT and cell == FORMGRADER_CELL:
            total += FORMGRADER_POINTS
    return total


def expected_penalty(term: Term, kind: str) -> float:
    return round(0.10 * term.points.max, 6) if kind == "late" else 0.0


def expected_total(term: Term, kind: str) -> float:
    return max(0.0, expected_auto(term.points, kind) + expected_manual(term, kind) - expected_penalty(term, kind))


def lms_expected_total(points: Points, kind: str, late: bool = False) -> float:
    manual = sum(p for p, _ in LMS_MARKS.values())
    return expected_auto(points, kind) + manual - (round(0.10 * points.max, 6) if late else 0.0)


# ---------------------------------------------------------------------------------------------------------------
# The course: release, students, grading


def test_points_of_the_source_notebook(term):
    assert term.points.auto_max == 6 and term.points.manual_max == 6  # what the notebook's own text promises
    assert set(term.points.manual) == {"ex30_7_3-a-defense", "ex30_7_3-b-defense", "ex30_7_3-c-defense"}
    test = next(c for c in term.source.cells if nbg(c).get("grade_id") in PARTIAL_FAILS)
    assert "ALGORITHM_B" in test.source  # the test that checks the answer 'partial' gets wrong


def test_second_release_prints_drift(term):
    assert "drift" not in term.steps["release 1"].stdout
    out = term.steps["release 2"].stdout
    drift = [line for line in out.splitlines() if "drift" in line]
    assert drift and TYPO_CELL in drift[0], out


def test_students_fetched_their_own_version(term):
    for kind in ON_TIME:
        intro = next(c for c in term.data[f"fetched {kind}"].cells if nbg(c).get("grade_id") == TYPO_CELL)
        assert TYPO_FIX[0] in intro.source, kind  # fetched before the typo fix
    intro = next(c for c in term.data["fetched late"].cells if nbg(c).get("grade_id") == TYPO_CELL)
    assert TYPO_FIX[1] in intro.source


def test_every_student_has_a_row(term):
    rows = term.data["grades after grading"]
    assert set(rows) == {user(term, k) for k in STUDENTS}, rows.keys()


@pytest.mark.parametrize("kind", STUDENTS)
def test_automatic_points(term, kind):
    row = term.data["grades after grading"][user(term, kind)]
    assert float(row["autograded_score"]) == expected_auto(term.points, kind), row
    assert float(row["autograded_max"]) == term.points.auto_max
    assert float(row["manual_max"]) == term.points.manual_max
    assert float(row["max_score"]) == term.points.max


@pytest.mark.parametrize("kind", STUDENTS)
def test_status(term, kind):
    statuses = set(term.data["grades after grading"][user(term, kind)]["status"].split("; "))
    expected = {"perfect": {"ok"}, "partial": {"ok"}, "blank": {"unanswered"}, "tamperer": {"tampered"},
                "late": {"late"}}[kind]
    assert statuses == expected, (kind, statuses, term.data["grades after grading"][user(term, kind)]["details"])


def report_block(report: str, student: str) -> str:
    """One submission's block of report.txt: its line and the indented lines under it."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{student} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("kind", STUDENTS)
def test_failed_tests_are_the_hand_computed_ones(term, kind):
    block = report_block(term.data["report after grading"], user(term, kind))
    failed = set(re.findall(r"- test (\S+): 0 of", block))
    expected = {"partial": PARTIAL_FAILS, "blank": set(term.points.tests)}.get(kind, set())
    assert failed == expected, block


def test_tamperer_named_cell_and_originals_ran(term):
    row = term.data["grades after grading"][user(term, "tamperer")]
    assert TAMPERED_TEST in row["details"], row["details"]
    assert float(row["autograded_score"]) == term.points.auto_max  # the original test ran and passed


def test_earlier_fetchers_not_tampered_by_the_typo_fix(term):
    for kind in ("perfect", "partial", "blank", "late"):
        row = term.data["grades after grading"][user(term, kind)]
        assert "tampered" not in row["status"] and TYPO_CELL not in row["details"], (kind, row)


def test_late_penalty(term):
    rows = term.data["grades after grading"]
    late = rows[user(term, "late")]
    assert float(late["late_penalty"]) == pytest.approx(0.10 * term.points.max)
    assert "after the deadline" in late["details"], late["details"]
    assert float(late["late_seconds"]) > 0
    for kind in ON_TIME:
        assert float(rows[user(term, kind)]["late_penalty"]) == 0, kind
        assert float(rows[user(term, kind)]["late_seconds"]) == 0, kind
    due = datetime.fromisoformat(late["due"])
    assert due == term.data["due"]


def test_submission_times_recorded(term):
    rows = term.data["grades after grading"]
    for kind in STUDENTS:
        assert datetime.fromisoformat(rows[user(term, kind)]["submitted"]) == term.data["timestamps"][kind], kind


def test_not_final_before_hand_marks(term):
    for kind in STUDENTS:
        row = term.data["grades after grading"][user(term, kind)]
        assert row["final"] == "no", row
        assert set(row["ungraded_cells"].split()) == set(term.points.manual), row


def test_export_refused_while_cells_ungraded(term):
    step = term.steps["export pending"]
    assert step.returncode == 2, str(step)
    assert not term.data["pending export written"]
    for kind in STUDENTS:
        assert user(term, kind) in step.stderr, str(step)
    for cell in term.points.manual:
        assert cell in step.stderr, str(step)


def test_export_allow_pending_says_not_final(term):
    step = term.steps["export allow-pending"]
    assert step.returncode == 0, str(step)
    rows = read_csv(term.root / "allow-pending.csv") if (term.root / "allow-pending.csv").exists() else []
    assert rows and all(r["final"] == "no" for r in rows), rows


# ---------------------------------------------------------------------------------------------------------------
# Hand marks


def test_template_has_every_hand_graded_cell(term):
    rows = term.data["template rows"]
    pairs = {(r["student"], r["cell_id"]) for r in rows}
    assert pairs == {(user(term, k), c) for k in STUDENTS for c in term.points.manual}
    assert all(float(r["max_points"]) == term.points.manual[r["cell_id"]] for r in rows)


def test_bad_marks_file_refused_naming_each_row(term):
    step = term.steps["marks import bad"]
    assert step.returncode == 2, str(step)
    message = step.stderr
    assert "line 2" in message and "3" in message, message  # over the maximum
    assert "line 3" in message and USER_PREFIX + "nobody" in message, message  # unknown student
    assert "line 4" in message and "two" in message, message  # not a number
    assert "line 5" not in message, message  # the good row is not named


def test_bad_marks_file_changed_nothing(term):
    assert term.data["bad import unchanged"]  # grades.csv and the gradebook's grades and comments, byte for byte


def test_marks_import_and_one_cell_still_pending(term):
    rows = term.data["grades after marks"]
    for kind in STUDENTS:
        row = rows[user(term, kind)]
        if kind == FORMGRADER_STUDENT:
            assert row["final"] == "no" and row["ungraded_cells"] == FORMGRADER_CELL, row
            assert float(row["manual_score"]) == expected_manual(term, kind) - FORMGRADER_POINTS
        else:
            assert row["final"] == "yes" and not row["ungraded_cells"], row
            assert float(row["manual_score"]) == expected_manual(term, kind), row
    step = term.steps["export one pending"]
    assert step.returncode == 2 and FORMGRADER_CELL in step.stderr and user(term, FORMGRADER_STUDENT) in step.stderr
    assert user(term, "partial") not in step.stderr, step.stderr


@pytest.mark.parametrize("command", ["autograde", "generate_feedback"])
def test_nbgrader_own_grading_refused(term, command):
    step = term.steps[f"nbgrader {command}"]
    assert step.returncode != 0, str(step)
    assert "marlpg-autograder" in step.output, str(step)


def test_refused_nbgrader_commands_changed_nothing(term):
    assert term.data["autograde unchanged"]  # the gradebook, autograded/ and grades/, byte for byte


# ---------------------------------------------------------------------------------------------------------------
# Formgrader


def test_formgrader_shows_the_sandboxed_automatic_scores(term):
    graded = term.data["grades after grading"]
    listed = {s["student"]: s for s in term.data["formgrader submissions"]}
    for kind in STUDENTS:
        entry = listed[user(term, kind)]
        assert entry["autograded"] and entry["submitted"], entry
        assert entry["code_score"] == float(graded[user(term, kind)]["autograded_score"]), (kind, entry)
        assert entry["max_score"] == term.points.max


def test_formgrader_shows_the_imported_hand_marks(term):
    for when, listing in (("before", term.data["formgrader notebooks"]),
                          ("after", term.data["formgrader notebooks after"])):
        by_student = {n["student"]: n for n in listing}
        for kind in STUDENTS:
            entry = by_student[user(term, kind)]
            pending = kind == FORMGRADER_STUDENT and when == "before"
            expected = expected_manual(term, kind) - (FORMGRADER_POINTS if pending else 0)
            assert entry["written_score"] == pytest.approx(expected), (when, kind, entry)
            assert entry["needs_manual_grade"] == pending, (when, kind, entry)


def test_formgrader_page_has_a_score_input_per_graded_cell(term):
    inputs = term.data["formgrader page"]["inputs"]
    assert set(inputs) == set(term.points.tests) | set(term.points.manual), inputs
    for test in term.points.tests:  # formgrader shows the automatic score as the input's placeholder
        assert float(inputs[test]) == term.points.tests[test], (test, inputs)


def test_formgrader_hand_score_saved(term):
    assert term.data["formgrader page"]["saved"] == FORMGRADER_POINTS, term.data["formgrader page"]


def test_the_gradebook_read_once_for_the_class_equals_one_read_per_submission(term):
    from autograder.course import GradebookMarks

    gradebook = GradebookMarks(term.course)
    every = gradebook.all()
    assert user(term, FORMGRADER_STUDENT) in {student for student, _ in every}, every
    for kind in STUDENTS:
        key = (user(term, kind), ASSIGNMENT)
        assert gradebook.get(*key) == every.get(key, {}), kind


def test_formgrader_mark_counts_like_the_marks_file(term):
    row = term.data["grades final"][user(term, FORMGRADER_STUDENT)]
    assert float(row["manual_score"]) == expected_manual(term, FORMGRADER_STUDENT), row
    assert row["final"] == "yes" and not row["ungraded_cells"], row


# ---------------------------------------------------------------------------------------------------------------
# Totals and exports


@pytest.mark.parametrize("kind", STUDENTS)
def test_final_totals(term, kind):
    row = term.data["grades final"][user(term, kind)]
    assert float(row["autograded_score"]) == expected_auto(term.points, kind)
    assert float(row["manual_score"]) == pytest.approx(expected_manual(term, kind))
    assert float(row["late_penalty"]) == pytest.approx(expected_penalty(term, kind))
    assert float(row["total"]) == pytest.approx(expected_total(term, kind)), row
    assert row["final"] == "yes", row


def test_course_canvas_export(term):
    step = term.steps["export canvas"]
    assert step.returncode == 0, str(step)
    rows = list(csv.reader(open(term.root / "course-canvas.csv", newline="", encoding="utf-8")))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] and rows[0][5] == ASSIGNMENT
    assert float(rows[1][5]) == term.points.max
    by_login = {r[3]: r for r in rows[2:]}
    for kind in STUDENTS:
        assert float(by_login[user(term, kind)][5]) == pytest.approx(expected_total(term, kind)), kind


def test_course_moodle_export_refused_without_participant_ids(term):
    step = term.steps["export moodle"]
    assert step.returncode == 2, str(step)
    assert "participant" in step.stderr and user(term, "perfect") in step.stderr, step.stderr
    assert not (term.root / "course-moodle.csv").exists()


def test_course_csv_export(term):
    step = term.steps["export csv"]
    assert step.returncode == 0, str(step)
    rows = {r["student"]: r for r in read_csv(term.root / "course-csv.csv")}
    for kind in STUDENTS:
        assert float(rows[user(term, kind)]["total"]) == pytest.approx(expected_total(term, kind)), kind
        assert rows[user(term, kind)]["final"] == "yes"


# ---------------------------------------------------------------------------------------------------------------
# Feedback


def test_students_fetched_feedback(term):
    for kind in ("perfect", "partial"):
        step = term.steps[f"{kind}: nbgrader fetch_feedback"]
        assert step.returncode == 0, str(step)
        assert f"fetched {kind}" in term.data["pages"], (kind, str(step))


def all_pages(term):
    pages = term.data["pages"]
    assert len(pages) == 2 + len(MOODLE) + len(CANVAS), sorted(pages)
    return pages


def test_feedback_pages_rendered(term):
    problems = []
    for name, page in all_pages(term).items():
        if not page["headings"]:
            problems.append(f"{name}: no heading element")
        for raw in ("<p>", "<h1", "&lt;"):
            if raw in page["text"]:
                problems.append(f"{name}: visible text holds {raw!r}")
        if page["errors"]:
            problems.append(f"{name}: JavaScript errors {page['errors'][:3]}")
    assert not problems, "\n".join(problems)


def test_feedback_pages_typeset_math(term):
    intro = next(c for c in term.source.cells if nbg(c).get("grade_id") == "ex30_7_3-intro")
    assert "$Q_i(x, a_1, \\dots, a_n)$" in intro.source  # every page shows this locked cell: every page has math
    problems = [f"{name}: has math, but no mjx-container (MathJax {'loaded' if p['mathjax'] else 'absent'})"
                for name, p in all_pages(term).items() if not p["mjx"]]
    problems += [f"{name}: {p['tex_errors']} TeX error(s)" for name, p in all_pages(term).items() if p["tex_errors"]]
    assert not problems, "\n".join(problems)


def test_feedback_pages_make_no_outside_requests(term):
    problems = [f"{name}: {p['outside'][:3]}" for name, p in all_pages(term).items() if p["outside"]]
    assert not problems, "\n".join(problems)


def test_feedback_pages_hide_the_hidden_tests(term):
    lines = hidden_lines(term.source)
    assert lines and all("report(" in line for line in lines), lines
    problems = []
    for name, page in all_pages(term).items():
        raw = html.unescape(page["raw"])
        for line in lines:
            if line in page["text"] or line in raw:
                problems.append(f"{name}: shows {line!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", ["perfect", "partial"])
def test_feedback_shows_the_students_own_comments(term, kind):
    page = term.data["pages"][f"fetched {kind}"]
    own = [m[1] for m in COURSE_MARKS[kind].values() if m is not None]
    others = [m[1] for k, marks in COURSE_MARKS.items() if k != kind for m in marks.values() if m is not None]
    missing = [c for c in own if c not in page["text"]]
    assert not missing, f"{kind}'s feedback page lacks their hand-mark comments {missing}"
    leaked = [c for c in others if c in page["text"]]
    assert not leaked, f"{kind}'s feedback page shows other students' comments {leaked}"


@pytest.mark.parametrize("kind", ["perfect", "partial"])
def test_feedback_shows_the_final_points(term, kind):
    page = term.data["pages"][f"fetched {kind}"]
    total = f"{expected_total(term, kind):g}"
    assert re.search(rf"\b{re.escape(total)}\s*(/|of)\s*{term.points.max:g}\b", page["text"]), \
        f"{kind}'s page does not show the total {total} / {term.points.max:g}:\n{page['text'][:1500]}"


def test_another_student_cannot_read_the_instructors_files(term):
    """The course folder ``init`` made, as another Unix user on the same machine sees it (the exchange, which
    students must reach, sits beside it in a folder every user can traverse, as on a JupyterHub)."""
    readable = term.data["readable by a student"]
    assert not readable, f"{user(term, 'partial')} can read: " + ", ".join(
        f"{p} ({stat.filemode(os.stat(p).st_mode)})" for p in readable)


# ---------------------------------------------------------------------------------------------------------------
# LMS zips


def test_moodle_graded(term):
    step = term.steps["moodle: grade"]
    assert step.returncode == 0, str(step)
    rows = term.data["moodle: grades"]
    assert set(rows) == set(MOODLE), rows.keys()


def test_moodle_same_name_two_students(term):
    rows = term.data["moodle: grades"]
    assert rows["2005"]["name"] == rows["2006"]["name"] == "Alex Smith"
    assert float(rows["2005"]["autograded_score"]) == expected_auto(term.points, "perfect")
    assert float(rows["2006"]["autograded_score"]) == expected_auto(term.points, "partial")


def test_moodle_accent_kept(term):
    rows = term.data["moodle: grades"]
    assert rows["2007"]["name"] == "José Muñoz", rows["2007"]
    export = read_csv(term.root / "moodle" / "export-moodle.csv")
    assert {r["Identifier"]: r["Full name"] for r in export}["Participant 2007"] == "José Muñoz"
    with zipfile.ZipFile(term.root / "moodle" / "feedback.zip") as zf:
        names = zf.namelist()
    assert any(n.startswith("José Muñoz_2007_assignsubmission_file_/") for n in names), names


def test_moodle_export_totals(term):
    for name in ("moodle: marks import", "moodle: export"):
        assert term.steps[name].returncode == 0, str(term.steps[name])
    export = {r["Identifier"]: r for r in read_csv(term.root / "moodle" / "export-moodle.csv")}
    assert set(export) == {f"Participant {pid}" for pid in MOODLE}
    for pid, (_, kind) in MOODLE.items():
        row = export[f"Participant {pid}"]
        assert float(row["Grade"]) == pytest.approx(lms_expected_total(term.points, kind)), (pid, row)
        assert float(row["Maximum Grade"]) == term.points.max
        assert float(term.data["moodle: grades"][pid]["total"]) == pytest.approx(lms_expected_total(term.points, kind))


def test_canvas_graded_without_misnamed(term):
    step = term.steps["canvas: grade"]
    assert step.returncode == 0, str(step)
    rows = term.data["canvas: grades"]
    assert set(rows) == set(CANVAS), rows.keys()
    report = (term.data["canvas: out"] / "report.txt").read_text(encoding="utf-8")
    for uid, row in rows.items():
        assert "misnamed" not in row["status"] and "instead of" not in row["details"], (uid, row)
    assert "NOT PLACED" not in report, report


def test_canvas_late_marker(term):
    rows = term.data["canvas: grades"]
    assert "late" in rows["3001"]["status"].split("; "), rows["3001"]
    assert float(rows["3001"]["late_penalty"]) == pytest.approx(0.10 * term.points.max)
    assert "late" not in rows["3002"]["status"].split("; ") and float(rows["3002"]["late_penalty"]) == 0


def test_canvas_export_ids_and_totals(term):
    assert term.steps["canvas: export"].returncode == 0, str(term.steps["canvas: export"])
    rows = list(csv.reader(open(term.root / "canvas" / "export-canvas.csv", newline="", encoding="utf-8")))
    assert rows[0][1] == "ID" and rows[0][5] == ASSIGNMENT
    by_id = {r[1]: r for r in rows[2:]}
    assert set(by_id) == set(CANVAS), by_id
    for uid, (_, kind) in CANVAS.items():
        expected = lms_expected_total(term.points, kind, late=uid == "3001")
        assert float(by_id[uid][5]) == pytest.approx(expected), (uid, by_id[uid])


def test_term_duration(term):
    assert term.data["seconds"] < 600, term.timings
