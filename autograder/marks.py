"""Points given by hand: hand-graded cells' marks and instructor overrides of automatic scores.

Marks live in one place per grading folder: the nbgrader gradebook when the folder belongs to a course
(so marks entered in formgrader and marks imported from a file are the same marks), otherwise
``DIR/marks.json``. Overrides (points set by the instructor on an autograded test, with a reason) live in
``DIR/overrides.json``. Neither is touched by grading, so a regrade keeps them.

``marks template`` writes one row per student and hand-graded cell; ``marks import`` checks every row
(known student and cell, a number between 0 and the cell's maximum) and writes nothing unless all are good.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .results import Mark, Result, atomic_write

TEMPLATE_FIELDS = ["student", "name", "lms_id", "assignment", "cell_id", "max_points", "rubric", "points",
                   "comment", "answer"]


class MarksError(ValueError):
    """Bad rows in a marks file; the message names every one."""


class FileMarks:
    """Marks kept in ``DIR/marks.json``: {student: {assignment: {cell: {points, comment, by}}}}."""

    def __init__(self, out: Path):
        self.path = Path(out) / "marks.json"

    def _data(self) -> dict:
        return json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}

    def get(self, student: str, assignment: str) -> dict[str, Mark]:
        cells = self._data().get(student, {}).get(assignment, {})
        return {gid: Mark(**value) for gid, value in cells.items()}

    def all(self) -> dict[tuple[str, str], dict[str, Mark]]:
        """Every student's and assignment's cells, from one read of the file."""
        return {(student, assignment): {gid: Mark(**value) for gid, value in cells.items()}
                for student, per_assignment in self._data().items() for assignment, cells in per_assignment.items()}

    def set_many(self, marks: list[tuple[str, str, str, Mark]]) -> None:
        data = self._data()
        for student, assignment, gid, mark in marks:
            data.setdefault(student, {}).setdefault(assignment, {})[gid] = vars(mark)
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, indent=1))


class Overrides(FileMarks):
    """Instructor overrides of autograded tests, ``DIR/overrides.json`` (same shape as marks.json)."""

    def __init__(self, out: Path):
        self.path = Path(out) / "overrides.json"

    def clear(self, student: str, assignment: str, gid: str) -> bool:
        data = self._data()
        removed = data.get(student, {}).get(assignment, {}).pop(gid, None) is not None
        atomic_write(self.path, json.dumps(data, ensure_ascii=False, indent=1))
        return removed


def number(text: str, where: str) -> float | None:
    value = (text or "").strip()
    if not value:
        return None
    try:
        points = float(value)
    except ValueError:
        raise MarksError(f"{where}: points {text!r} is not a number") from None
    if points != points or points in (float("inf"), float("-inf")):
        raise MarksError(f"{where}: points {text!r} is not a finite number")
    return points


def write_template(results: list[Result], marks_for, path: Path) -> int:
    """One row per student and hand-graded cell, with any mark already entered; returns the row count."""
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TEMPLATE_FIELDS)
        writer.writeheader()
        for result in results:
            marks = marks_for(result)
            for cell in result.manual:
                mark = marks.get(cell.grade_id)
                writer.writerow({"student": result.student, "name": result.name, "lms_id": result.lms_id,
                                 "assignment": result.assignment, "cell_id": cell.grade_id,
                                 "max_points": f"{cell.points:g}", "rubric": cell.rubric,
                                 "points": "" if mark is None or mark.points is None else f"{mark.points:g}",
                                 "comment": mark.comment if mark else "", "answer": cell.answer})
                rows += 1
    return rows


def read_marks(path: Path, results: list[Result]) -> list[tuple[str, str, str, Mark]]:
    """Every row of a marks file, checked against the graded results; raises MarksError naming each bad row."""
    known = {(r.student, r.assignment): {c.grade_id: c.points for c in r.manual} for r in results}
    marks, problems = [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"student", "assignment", "cell_id", "points"} - set(reader.fieldnames or [])
        if missing:
            raise MarksError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                             "write a template with 'marks template' and fill in points and comment")
        for line, row in enumerate(reader, start=2):
            where = f"{path.name} line {line} ({row.get('student')}, {row.get('assignment')}, {row.get('cell_id')})"
            try:
                marks.append(checked_mark(row, known, where))
            except MarksError as exc:
                problems.append(str(exc))
    if problems:
        raise MarksError("no marks were imported; fix these rows:\n  " + "\n  ".join(problems))
    return [m for m in marks if m is not None]


def checked_mark(row: dict, known: dict, where: str):
    key = ((row.get("student") or "").strip(), (row.get("assignment") or "").strip())
    if key not in known:
        raise MarksError(f"{where}: no graded submission of {key[1]!r} by student {key[0]!r}")
    cell = (row.get("cell_id") or "").strip()
    if cell not in known[key]:
        allowed = ", ".join(known[key]) or "none"
        raise MarksError(f"{where}: {cell!r} is not a hand-graded cell of {key[1]} (they are: {allowed})")
    points, comment = number(row.get("points", ""), where), (row.get("comment") or "").strip()
    if points is not None and not 0 <= points <= known[key][cell]:
        raise MarksError(f"{where}: points {points:g} is outside 0..{known[key][cell]:g}")
    if points is None and not comment:
        return None
    return key[0], key[1], cell, Mark(points, comment, "marks file")
