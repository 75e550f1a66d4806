"""Everything written from the stored results: grades.csv, feedback pages, report.txt, summary.html.

Written again whenever anything changes (a grading run, imported marks, an override, a new deadline), always
from ``DIR/results/`` plus the marks and overrides, so every output agrees with every other.
"""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import course as course_folder
from .deadlines import Deadlines, apply_lateness
from .marks import FileMarks, Overrides
from .rebuild import Assignment, load_assignments
from .results import Mark, Result, ResultStore, atomic_write, safe_key

CSV_FIELDS = ["student", "name", "lms_id", "assignment", "autograded_score", "autograded_max", "manual_score",
              "manual_max", "late_penalty", "total", "max_score", "final", "ungraded_cells", "submitted", "due",
              "late_seconds", "status", "details"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ (a formula) gets a quote in front."""
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclass
class GradingDir:
    """A grading output folder and how it was made (``grading.json``: the source, the course, deadlines)."""

    out: Path
    source: Path
    course: Path | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    late_markers: dict = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> "GradingDir":
        path = Path(out) / "grading.json"
        if not path.exists():
            raise FileNotFoundError(f"{out} holds no grading results (no grading.json): grade into it first with "
                                    "'marlpg-autograder grade'")
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(Path(out), Path(data["source"]), Path(data["course"]) if data.get("course") else None,
                   Deadlines.from_json(data.get("deadlines")))

    def save(self) -> None:
        atomic_write(self.out / "grading.json", json.dumps({
            "source": str(self.source), "course": str(self.course) if self.course else "",
            "deadlines": self.deadlines.to_json()}, indent=1))

    @property
    def store(self) -> ResultStore:
        return ResultStore(self.out)

    def assignments(self) -> dict[str, Assignment]:
        if self.course is not None:
            return course_folder.load_course_assignments(self.course)
        return load_assignments(self.source)

    def marks(self):
        return course_folder.GradebookMarks(self.course) if self.course is not None else FileMarks(self.out)

    def complete(self, result: Result, roster: dict | None = None, marks: dict | None = None,
                 overrides: dict | None = None) -> Result:
        """A stored result with its marks, overrides, lateness and roster name attached.

        ``marks`` and ``overrides`` map (student, assignment) to cells, read once for a whole class
        (``results``); without them this one result's are read."""
        key = (result.student, result.assignment)
        result.marks = dict(marks.get(key, {})) if marks is not None else self.marks().get(*key)
        overrides = dict(overrides.get(key, {})) if overrides is not None else Overrides(self.out).get(*key)
        tests = {t.grade_id for t in result.tests}
        for gid, mark in list(result.marks.items()):
            if gid in tests:  # a test cell's score changed in formgrader is an override
                overrides.setdefault(gid, Mark(mark.points, mark.comment or "changed in formgrader", "formgrader"))
                del result.marks[gid]
        result.overrides = overrides
        apply_lateness(result, self.deadlines, result.late_marker)
        if roster and result.student in roster:
            result.name = roster[result.student]["name"] or result.name
            result.lms_id = result.lms_id or roster[result.student]["lms_id"]
        return result

    def results(self, with_notebooks: bool = False) -> list[Result]:
        """Every stored result, completed; the gradebook (or marks file) and overrides are read once."""
        roster = course_folder.roster(self.course) if self.course is not None else None
        marks, overrides = self.marks().all(), Overrides(self.out).all()
        return [self.complete(r, roster, marks, overrides) for r in self.store.all(with_notebooks)]


def grades_rows(results: list[Result]) -> list[dict]:
    rows = []
    for r in results:
        rows.append({
            "student": r.student, "name": r.name, "lms_id": r.lms_id, "assignment": r.assignment,
            "autograded_score": f"{r.score:g}", "autograded_max": f"{r.auto_max:g}",
            "manual_score": f"{r.manual_score:g}", "manual_max": f"{r.manual_max:g}",
            "late_penalty": f"{r.late_penalty:g}", "total": f"{r.total:g}", "max_score": f"{r.max_score:g}",
            "final": "yes" if r.final else "no", "ungraded_cells": " ".join(r.ungraded),
            "submitted": r.timestamp, "due": r.due,
            "late_seconds": f"{r.late_seconds:.0f}",
            "status": r.status, "details": " | ".join(r.details)})
    return rows


def write_grades_csv(results: list[Result], path: Path) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in grades_rows(results):
        writer.writerow({k: spreadsheet_safe(v) if k not in ("autograded_score", "total") else v
                         for k, v in row.items()})
    atomic_write(path, buffer.getvalue())


def feedback_path(out: Path, result: Result) -> Path:
    return out / "feedback" / safe_key(result.student) / result.assignment / f"{result.assignment}.html"


RENDER_SECONDS, RENDER_MB = 120, 2048  # one page takes a second or two; a page past this is a hostile one


def render_feedback(result: Result, assignment: Assignment) -> str:
    """The student's page, rendered in a forked child with a time and memory limit (feedback must never cost
    a grade, nor let one notebook stall the class's outputs); a plain page saying so when it fails."""
    from .feedback import feedback_html
    from .runner import run_with_time_limit
    try:
        return run_with_time_limit(feedback_html, RENDER_SECONDS, result, assignment, memory_mb=RENDER_MB)
    except Exception as exc:
        return (f"<html><body><p>Feedback for {html.escape(result.assignment)} could not be rendered "
                f"({html.escape(type(exc).__name__)}); status: {html.escape(result.status)}, "
                f"{result.total:g} / {result.max_score:g} points.</p></body></html>")


def write_feedback(grading: GradingDir, results: list[Result], assignments: dict[str, Assignment]) -> None:
    """One page per result, each rendered from its stored notebook (read one at a time: a class of hundreds
    never sits in memory at once)."""
    for result in results:
        if result.assignment not in assignments:
            continue
        stored = grading.store.load(result.student, result.assignment)
        result.notebook = stored.notebook if stored else None
        page = render_feedback(result, assignments[result.assignment])
        result.notebook = None
        atomic_write(feedback_path(grading.out, result), page)
        if grading.course is not None:
            course_folder.write_course_feedback(grading.course, result, page)


def report_text(results: list[Result], notes: list[str]) -> str:
    lines = list(notes)
    for r in results:
        pending = f"; hand-graded cells still to grade: {', '.join(r.ungraded)}" if r.ungraded else ""
        lines.append(f"{r.student} ({r.name}) / {r.assignment}: {r.total:g} of {r.max_score:g} "
                     f"(automatic {r.score:g}/{r.auto_max:g}, by hand {r.manual_score:g}/{r.manual_max:g}, "
                     f"late penalty {r.late_penalty:g}){pending}; status: {r.status}; {r.seconds:.1f} s"
                     + "".join(f"\n    - {d}" for d in r.details)
                     + "".join(f"\n    - (instructor) {d}" for d in r.instructor_notes)
                     + "".join(f"\n    - test {t.grade_id}: {r.test_points(t):g} of {t.points:g}, {t.reason}"
                               for t in r.tests if r.test_points(t) < t.points))
    return "\n".join(lines) + "\n"


def write_summary(results: list[Result], assignments: dict[str, Assignment], path: Path) -> None:
    try:
        from .summary import summary_html
        page = summary_html(results, assignments)
    except Exception as exc:
        page = f"<html><body><p>The summary could not be rendered: {html.escape(repr(exc))}</p></body></html>"
    atomic_write(path, page)


def sync_course(grading: GradingDir, batch: int = 50) -> None:
    """Every stored result's automatic scores and executed notebook into the course's gradebook and
    ``autograded/`` (again each time: nbgrader itself may have removed a folder after a refused autograde)."""
    keys = sorted(grading.store.keys())
    for start in range(0, len(keys), batch):
        chunk = [grading.store.load(s, a) for s, a in keys[start:start + batch]]
        course_folder.sync_gradebook(grading.course, [r for r in chunk if r is not None])


def write_outputs(grading: GradingDir, notes: list[str] | None = None) -> list[Result]:
    """grades.csv, feedback/, report.txt and summary.html from everything stored; returns the results."""
    assignments = grading.assignments()
    if grading.course is not None:
        sync_course(grading)
    results = grading.results()
    write_grades_csv(results, grading.out / "grades.csv")
    write_feedback(grading, results, assignments)
    notes_file = grading.out / "notes.json"
    if notes is not None:
        atomic_write(notes_file, json.dumps(notes, ensure_ascii=False, indent=1))
    saved_notes = json.loads(notes_file.read_text(encoding="utf-8")) if notes_file.exists() else []
    atomic_write(grading.out / "report.txt", report_text(results, saved_notes))
    write_summary(results, assignments, grading.out / "summary.html")
    return results
