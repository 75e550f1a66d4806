"""An nbgrader course folder for Exercises 30.7.1-30.7.3, made and kept by the course's grader.

``init`` makes, outside the repository, a folder nbgrader recognises::

    COURSE/nbgrader_config.py      course id, exchange, gradebook; nbgrader's autograde refused (nbgrader_guard)
    COURSE/gradebook.db            nbgrader's gradebook (assignments, students, scores, hand marks)
    COURSE/source/<a>/<a>.ipynb    the instructor notebooks (copied from solutions/; edit them here)
    COURSE/release/<a>/<a>.ipynb   what students fetch (nbgrader generate_assignment)
    COURSE/releases/<a>/           every version ever released, with releases.json (digests, times)
    COURSE/submitted/ autograded/ feedback/   nbgrader's own folders (collect, the grader, release_feedback)
    COURSE/grades/                 the grader's results, overrides, grades.csv, report, summary

``release`` regenerates the student version, records it (a later edit of a locked or test cell is reported
as drift between releases, and each submission is later checked against the version it was fetched
from), and releases it through nbgrader's exchange. After grading, :func:`sync_gradebook` writes every test
cell's sandboxed score and the executed notebook into nbgrader's gradebook and ``autograded/``, so
formgrader shows each submission with its automatic scores and only the hand-graded cells left to grade.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from .rebuild import Assignment, load_assignments, nbgrader_meta, normalized, role
from .results import Mark, Result, atomic_write

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"

CONFIG_TEMPLATE = '''"""nbgrader configuration of the course {course_id!r} (written by 'marlpg-autograder init')."""
import sys

sys.path.insert(0, {repo!r})  # the course's grader, for the guard below

from autograder.nbgrader_guard import RefuseUnsandboxed, refuse_command  # noqa: E402

refuse_command(sys.argv, {root!r})  # 'nbgrader autograde' / 'generate_feedback' stop here, before touching anything
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = {db_url!r}
c.Exchange.root = {exchange!r}
c.Exchange.timezone = "UTC"
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.enforce_metadata = True
# Student code runs only in the course's sandbox: nbgrader's own autograde and feedback are refused.
c.Autograde.sanitize_preprocessors = [RefuseUnsandboxed]
c.GenerateFeedback.preprocessors = [RefuseUnsandboxed]
'''


class CourseError(ValueError):
    """A course folder that cannot be made or used; the message says why and what to do."""


def inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def is_course(path: Path) -> bool:
    return (Path(path) / "nbgrader_config.py").is_file() and (Path(path) / "source").is_dir()


def course_id_of(course: Path) -> str:
    return json.loads((Path(course) / "course.json").read_text(encoding="utf-8"))["course_id"]


def db_url(course: Path) -> str:
    return "sqlite:///" + str(Path(course).resolve() / "gradebook.db")


def environment_on_path() -> dict:
    """This environment's bin/ first on PATH: nbgrader's gradebook runs the ``alembic`` command by name, which
    a grader started as ``.venv/bin/python -m autograder`` (no activated environment) would not find."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    return dict(os.environ)


def gradebook(course: Path):
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning
    warnings.filterwarnings("ignore", category=SAWarning)  # nbgrader's own session use; harmless
    environment_on_path()
    return Gradebook(db_url(course), course_id_of(course))


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """An nbgrader command run in the course folder (nbgrader reads nbgrader_config.py from there)."""
    command = [sys.executable, "-m", "nbgrader", *args]
    return subprocess.run(command, cwd=course, capture_output=True, text=True, env=environment_on_path(),
                          timeout=600)


def checked(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise CourseError(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def init_course(course: Path, course_id: str, exchange: Path | None = None, source: Path = SOLUTIONS,
                assignments: list[str] | None = None) -> list[str]:
    """Make the course folder; returns the assignments registered. Refuses a folder inside the repository
    (student data must never land there) and a folder that already holds something else."""
    course = Path(course).absolute()
    if not course_id or not all(ch.isalnum() or ch in "-_." for ch in course_id):
        raise CourseError(f"--course-id {course_id!r}: use letters, digits, '-', '_' or '.' (nbgrader's exchange "
                          "uses it as a folder name)")
    if inside(course, REPO):
        raise CourseError(f"{course} is inside the course repository ({REPO}); student submissions, grades and "
                          "feedback must live outside it: choose a folder elsewhere, e.g. ~/courses/" + course_id)
    if course.exists() and any(course.iterdir()) and not is_course(course):
        raise CourseError(f"{course} exists and is not empty; give a new or empty folder")
    exchange = Path(exchange or course.parent / "exchange").absolute()
    for folder in ("source", "release", "releases", "submitted", "autograded", "feedback", "grades"):
        (course / folder).mkdir(parents=True, exist_ok=True)
    # The course holds the solutions, the hidden tests, the gradebook and every student's work: nobody else
    # may read it (students use the exchange, which nbgrader keeps apart, and fetch feedback through it).
    os.chmod(course, 0o700)
    make_exchange(exchange)
    names = sorted(load_assignments(source, assignments))
    for name in names:
        target = course / "source" / name
        if not target.exists():
            shutil.copytree(source / name, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (course / "nbgrader_config.py").write_text(CONFIG_TEMPLATE.format(
        course_id=course_id, repo=str(REPO), root=str(course), db_url=db_url(course), exchange=str(exchange)),
        encoding="utf-8")
    atomic_write(course / "course.json", json.dumps({"course_id": course_id, "exchange": str(exchange),
                                                      "assignments": names}, indent=1))
    for name in names:
        generate(course, name)
    return names


def make_exchange(exchange: Path) -> None:
    """nbgrader's exchange root: writable by every user, as nbgrader's documentation asks."""
    if not exchange.exists():
        exchange.mkdir(parents=True)
        os.chmod(exchange, 0o777)
    elif not os.access(exchange, os.W_OK):
        raise CourseError(f"the exchange {exchange} is not writable by this user")


def generate(course: Path, assignment: str) -> Path:
    """``nbgrader generate_assignment`` (registers the assignment and its cells in the gradebook)."""
    checked(nbgrader(course, "generate_assignment", assignment, "--force"), f"nbgrader generate_assignment {assignment}")
    notebook = course / "release" / assignment / f"{assignment}.ipynb"
    if not notebook.exists():
        raise CourseError(f"nbgrader generate_assignment wrote no {notebook}")
    return notebook


def fixed_cells(nb) -> dict[str, str]:
    return {nbgrader_meta(c)["grade_id"]: normalized(c.source) for c in nb.cells if role(c) in ("locked", "test")}


def release(course: Path, assignment: str) -> list[str]:
    """Regenerate, record and release one assignment; returns the drift (locked or test cells changed since
    the previous release, in plain words: empty for a first release or an unchanged one)."""
    course = Path(course)
    notebook = generate(course, assignment)
    drift = record_release(course, assignment, notebook)
    checked(nbgrader(course, "release_assignment", assignment, "--force"), f"nbgrader release_assignment {assignment}")
    return drift


def releases_index(course: Path, assignment: str) -> tuple[Path, list[dict]]:
    folder = Path(course) / "releases" / assignment
    index = folder / "releases.json"
    return folder, json.loads(index.read_text(encoding="utf-8")) if index.exists() else []


def record_release(course: Path, assignment: str, notebook: Path) -> list[str]:
    folder, entries = releases_index(course, assignment)
    nb = nbformat.read(notebook, as_version=4)
    digest = hashlib.sha256(json.dumps(fixed_cells(nb), sort_keys=True).encode()).hexdigest()
    if entries and entries[-1]["digest"] == digest:
        return []
    drift = []
    if entries:
        before = fixed_cells(nbformat.read(folder / entries[-1]["file"], as_version=4))
        now = fixed_cells(nb)
        drift += [f"cell {gid} was edited since release {len(entries)}" for gid in now if gid in before and now[gid] != before[gid]]
        drift += [f"cell {gid} is new since release {len(entries)}" for gid in now if gid not in before]
        drift += [f"cell {gid} was removed since release {len(entries)}" for gid in before if gid not in now]
    name = f"{len(entries) + 1:03d}-{digest[:12]}.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, folder / name)
    entries.append({"version": len(entries) + 1, "digest": digest, "file": name,
                    "released": datetime.now(timezone.utc).isoformat(), "drift": drift})
    atomic_write(folder / "releases.json", json.dumps(entries, indent=1))
    return drift


def load_course_assignments(course: Path, names: list[str] | None = None) -> dict[str, Assignment]:
    """The course's source notebooks, each with the versions released before the current one."""
    assignments = load_assignments(Path(course) / "source", names)
    for name, assignment in assignments.items():
        folder, entries = releases_index(course, name)
        versions = [nbformat.read(folder / e["file"], as_version=4) for e in entries]
        current = fixed_cells(assignment.released)
        assignment.earlier_releases = [v for v in versions if fixed_cells(v) != current]
    return assignments


def roster(course: Path) -> dict[str, dict]:
    """student id -> {name, lms_id} from the gradebook (``nbgrader db student import``)."""
    with gradebook(course) as gb:
        return {s.id: {"name": " ".join(filter(None, [s.first_name, s.last_name])) or s.id,
                       "lms_id": s.lms_user_id or ""} for s in gb.students}


def sync_gradebook(course: Path, results: list[Result]) -> None:
    """Each test cell's sandboxed score into nbgrader's gradebook, and the grading run's notebook into
    ``autograded/`` (with the submission's timestamp), so formgrader shows them."""
    course = Path(course)
    with gradebook(course) as gb:
        for result in results:
            if result.layout != "course" or result.graded_notebook is None and not (result.tests or result.manual):
                continue  # nothing to show (an exercise without autograded tests still has hand-graded cells)
            gb.update_or_create_student(result.student)
            stamp = result.timestamp or None
            gb.update_or_create_submission(result.assignment, result.student,
                                           **({"timestamp": stamp} if stamp else {}))
            for test in result.tests:
                grade = gb.find_grade(test.grade_id, result.assignment, result.assignment, result.student)
                grade.auto_score = test.earned
                grade.needs_manual_grade = False
            for cell in result.manual:
                grade = gb.find_grade(cell.grade_id, result.assignment, result.assignment, result.student)
                grade.auto_score = None
                grade.needs_manual_grade = grade.manual_score is None
            gb.db.commit()
            write_autograded(course, result)


def write_autograded(course: Path, result: Result) -> None:
    folder = Path(course) / "autograded" / result.student / result.assignment
    folder.mkdir(parents=True, exist_ok=True)
    if result.graded_notebook is not None:
        nb = nbformat.from_dict(result.graded_notebook)
        for cell in nb.cells:
            cell.metadata.pop("autograder", None)
        atomic_write(folder / f"{result.assignment}.ipynb", nbformat.writes(nb))  # 0600: it holds the hidden tests
    submitted = Path(course) / "submitted" / result.student / result.assignment / "timestamp.txt"
    if submitted.is_file() and not submitted.is_symlink():
        shutil.copyfile(submitted, folder / "timestamp.txt")


class GradebookMarks:
    """Hand marks kept in nbgrader's gradebook: what formgrader shows and edits (Grade.manual_score and the
    cell's Comment.manual_comment). Test cells' manual scores set in formgrader are overrides."""

    def __init__(self, course: Path):
        self.course = Path(course)

    def _grades(self, gb, student: str, assignment: str):
        try:
            notebook = gb.find_submission_notebook(assignment, assignment, student)
        except Exception:
            return None
        return notebook

    @staticmethod
    def _marks_of(notebook) -> dict[str, Mark]:
        comments = {c.name: c.manual_comment or "" for c in notebook.comments}
        return {grade.name: Mark(grade.manual_score, comments.get(grade.name, ""), "formgrader")
                for grade in notebook.grades if grade.manual_score is not None or comments.get(grade.name)}

    def get(self, student: str, assignment: str) -> dict[str, Mark]:
        with gradebook(self.course) as gb:
            notebook = self._grades(gb, student, assignment)
            return {} if notebook is None else self._marks_of(notebook)

    def all(self) -> dict[tuple[str, str], dict[str, Mark]]:
        """Every submission's hand marks from one opening of the gradebook (each opening runs its migrations)."""
        found = {}
        with gradebook(self.course) as gb:
            for assignment in gb.assignments:
                for submission in assignment.submissions:
                    for notebook in submission.notebooks:
                        if notebook.name == assignment.name:
                            marks = self._marks_of(notebook)
                            if marks:
                                found[submission.student.id, assignment.name] = marks
        return found

    def set_many(self, marks: list[tuple[str, str, str, Mark]]) -> None:
        with gradebook(self.course) as gb:
            for student, assignment, gid, mark in marks:
                grade = gb.find_grade(gid, assignment, assignment, student)
                grade.manual_score = mark.points
                grade.needs_manual_grade = mark.points is None
                try:
                    gb.find_comment(gid, assignment, assignment, student).manual_comment = mark.comment or None
                except Exception:
                    pass
            gb.db.commit()


def write_course_feedback(course: Path, result: Result, page: str) -> Path | None:
    """``feedback/<student>/<assignment>/<notebook>.html`` with the submission's timestamp and secret, the
    layout ``nbgrader release_feedback`` reads (students then run ``nbgrader fetch_feedback``)."""
    submitted = Path(course) / "submitted" / result.student / result.assignment
    if result.layout != "course" or not submitted.is_dir():
        return None
    folder = Path(course) / "feedback" / result.student / result.assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("timestamp.txt", "submission_secret.txt"):
        if (submitted / name).is_file() and not (submitted / name).is_symlink():
            shutil.copyfile(submitted / name, folder / name)
    target = folder / f"{result.assignment}.html"
    atomic_write(target, page, mode=0o644)  # nbgrader copies it with its mode into the exchange
    return target
