"""What grading one submission produces, and how it is stored: one JSON file per student and assignment.

A result is written the moment its submission finishes (``ResultStore.save``), so a crash or a kill loses at
most the submissions in flight, and a later run with the same ``--out`` resumes where the last one stopped.
Hand marks and instructor overrides live beside the results (``marks.json``) and are merged in when grades,
exports and feedback are written, so a regrade never loses them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat


@dataclass
class TestResult:
    """One autograded test cell: its points, what was earned, why (plain words), and, when a visible check
    failed, the line of the visible test text that failed (never a hidden line)."""

    __test__ = False  # not a pytest class

    grade_id: str
    points: float
    earned: float
    reason: str  # 'passed' or why not
    failed_line: str = ""


@dataclass
class ManualCell:
    """A cell graded by hand: its id, maximum points, the rubric the instructor wrote, and what the student
    answered (text only, for the marks template)."""

    grade_id: str
    points: float
    rubric: str = ""
    answer: str = ""


@dataclass
class Mark:
    """Points and a comment entered by hand for one cell (``points`` None: a comment without a mark yet)."""

    points: float | None
    comment: str = ""
    by: str = ""  # where it came from: 'marks file', 'formgrader', 'override'


@dataclass
class Result:
    student: str  # the layout's own id (nbgrader student id, Canvas user id, Moodle participant id)
    assignment: str
    name: str = ""  # display name, as the layout spells it (Unicode kept)
    lms_id: str = ""
    statuses: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    instructor_notes: list[str] = field(default_factory=list)  # report.txt only, never the student's page
    tests: list[TestResult] = field(default_factory=list)
    manual: list[ManualCell] = field(default_factory=list)
    auto_max: float = 0.0
    manual_max: float = 0.0
    timestamp: str = ""  # submission time, ISO 8601 UTC ('' when the layout gives none)
    due: str = ""  # the deadline that applied to this student (extensions included), ISO 8601 UTC
    late_seconds: float = 0.0  # past the deadline and its grace period (0 when on time)
    late_penalty: float = 0.0  # points taken off for lateness
    late_marker: bool = False  # the LMS marked the submission late (Canvas's _late_)
    seconds: float = 0.0
    submission_digest: str = ""  # sha256 of the graded file: a rerun skips a submission already graded
    source_digest: str = ""  # sha256 of the instructor notebook it was graded against
    layout: str = ""
    origin: str = ""  # the folder or zip member it came from (for the instructor)
    notebook: nbformat.NotebookNode | None = None  # the visible run, executed (what the student may see)
    graded_notebook: nbformat.NotebookNode | None = None  # the grading run (hidden checks): instructor only
    marks: dict[str, Mark] = field(default_factory=dict)  # filled when outputs are written
    overrides: dict[str, Mark] = field(default_factory=dict)  # test cell -> points set by the instructor

    @property
    def status(self) -> str:
        return "; ".join(self.statuses) if self.statuses else "ok"

    def add(self, status: str, detail: str = "") -> None:
        if status not in self.statuses:
            self.statuses.append(status)
        if detail:
            self.details.append(detail)

    def test_points(self, test: TestResult) -> float:
        override = self.overrides.get(test.grade_id)
        return test.earned if override is None or override.points is None else override.points

    @property
    def score(self) -> float:
        """Automatic points (instructor overrides applied), before any late penalty."""
        return sum(self.test_points(t) for t in self.tests)

    @property
    def manual_score(self) -> float:
        return sum(m.points for gid, m in self.marks.items()
                   if m.points is not None and gid in {c.grade_id for c in self.manual})

    @property
    def ungraded(self) -> list[str]:
        """The hand-graded cells that have no mark yet."""
        return [c.grade_id for c in self.manual
                if self.marks.get(c.grade_id) is None or self.marks[c.grade_id].points is None]

    @property
    def total(self) -> float:
        return max(0.0, self.score + self.manual_score - self.late_penalty)

    @property
    def max_score(self) -> float:
        return self.auto_max + self.manual_max

    @property
    def final(self) -> bool:
        return not self.ungraded

    def to_json(self) -> dict:
        notebooks = self.notebook, self.graded_notebook
        self.notebook = self.graded_notebook = None
        try:
            data = asdict(self)
        finally:
            self.notebook, self.graded_notebook = notebooks
        for transient in ("notebook", "graded_notebook", "marks", "overrides"):
            data.pop(transient)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Result":
        data = dict(data)
        data["tests"] = [TestResult(**t) for t in data.get("tests", [])]
        data["manual"] = [ManualCell(**c) for c in data.get("manual", [])]
        for transient in ("notebook", "graded_notebook", "marks", "overrides"):
            data.pop(transient, None)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


def safe_key(student: str) -> str:
    """A folder name for a student id: the id itself when it is already safe, otherwise a readable reduction
    plus a hash of the exact id, so that two different ids never share a folder (``a b`` and ``a_b``)."""
    if SAFE.match(student) and not student.endswith("."):
        return student
    reduced = re.sub(r"[^A-Za-z0-9._@+-]+", "_", student).strip("._-+@")[:60] or "student"
    return f"{reduced}-{hashlib.sha256(student.encode('utf-8')).hexdigest()[:10]}"


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file. ``mode`` 0o600 keeps
    grades to the instructor; pages a student fetches (through nbgrader's exchange) need 0o644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.fchmod(fd, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class ResultStore:
    """``DIR/results/<student key>/<assignment>.json`` (and the visible run's notebook beside it)."""

    def __init__(self, out: Path):
        self.root = Path(out) / "results"

    def path(self, student: str, assignment: str) -> Path:
        return self.root / safe_key(student) / f"{assignment}.json"

    def save(self, result: Result) -> None:
        """Write one result (its notebooks first, the JSON last: a JSON file present means complete)."""
        path = self.path(result.student, result.assignment)
        for notebook, suffix in ((result.notebook, ".ipynb"), (result.graded_notebook, ".graded.ipynb")):
            target = path.with_name(path.stem + suffix)
            if notebook is not None:
                atomic_write(target, nbformat.writes(notebook))
            elif target.exists():
                target.unlink()
        atomic_write(path, json.dumps(result.to_json(), ensure_ascii=False, indent=1))

    def load(self, student: str, assignment: str) -> Result | None:
        path = self.path(student, assignment)
        return self._read(path) if path.exists() else None

    def _read(self, path: Path) -> Result:
        result = Result.from_json(json.loads(path.read_text(encoding="utf-8")))
        for attribute, suffix in (("notebook", ".ipynb"), ("graded_notebook", ".graded.ipynb")):
            notebook = path.with_name(path.stem + suffix)
            if notebook.exists():
                setattr(result, attribute, nbformat.read(notebook, as_version=4))
        return result

    def all(self, with_notebooks: bool = False) -> list[Result]:
        results = []
        for path in sorted(self.root.glob("*/*.json")) if self.root.is_dir() else []:
            if with_notebooks:
                results.append(self._read(path))
            else:
                results.append(Result.from_json(json.loads(path.read_text(encoding="utf-8"))))
        return sorted(results, key=lambda r: (r.student, r.assignment))

    def keys(self) -> set[tuple[str, str]]:
        return {(r.student, r.assignment) for r in self.all()}
