"""Final grades in the files an LMS imports as they stand.

* ``canvas``: Canvas's gradebook import CSV: ``Student, ID, SIS User ID, SIS Login ID, Section``, then one
  column per assignment, and a ``Points Possible`` row. Students are matched by Canvas user id (``ID``);
  a student without one (an nbgrader-only id) goes in ``SIS Login ID``, which Canvas also matches on.
  ``--column ex30_7_1="Exercise 30.7.1 (4711)"`` names the column after an existing Canvas assignment.
* ``moodle``: Moodle's grading worksheet for one assignment (``Identifier`` = ``Participant <id>``,
  ``Full name``, ``Grade``, ``Maximum Grade``, ``Feedback comments``), imported with "Upload grading
  worksheet"; every student needs a Moodle participant id.
* ``moodle-feedback``: a zip of feedback pages named as Moodle's "Upload multiple feedback files in a zip" wants.
* ``csv``: one row per student and assignment (id, name, LMS id, total, maximum, final).

A total is final only when every hand-graded cell has a mark: an export with pending cells is refused, naming
them, unless ``--allow-pending`` is given (then the file says which totals are not final).
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from .outputs import GradingDir, feedback_path, spreadsheet_safe
from .results import Result, atomic_write

FORMATS = ("canvas", "moodle", "moodle-feedback", "csv")


class ExportError(ValueError):
    """An export that would be wrong or incomplete; the message says which students and what to do."""


def check_final(results: list[Result], allow_pending: bool) -> None:
    pending = [f"{r.student} ({r.name}) {r.assignment}: {', '.join(r.ungraded)}" for r in results if r.ungraded]
    if pending and not allow_pending:
        raise ExportError("these totals are not final, hand-graded cells have no mark yet (enter them with "
                          "formgrader or 'marks import', or pass --allow-pending):\n  " + "\n  ".join(pending))


def by_student(results: list[Result]) -> dict[str, dict[str, Result]]:
    table: dict[str, dict[str, Result]] = {}
    for r in results:
        table.setdefault(r.student, {})[r.assignment] = r
    return table


def canvas_csv(results: list[Result], columns: dict[str, str]) -> str:
    assignments = sorted({r.assignment for r in results})
    maxima = {r.assignment: r.max_score for r in results}
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                     *[columns.get(a, a) for a in assignments]])
    writer.writerow(["    Points Possible", "", "", "", "", *[f"{maxima[a]:g}" for a in assignments]])
    for student, row in sorted(by_student(results).items()):
        any_result = next(iter(row.values()))
        canvas_id = any_result.lms_id if any_result.lms_id.isdigit() else ""
        writer.writerow([spreadsheet_safe(any_result.name), canvas_id, "",
                         "" if canvas_id else spreadsheet_safe(student), "",
                         *[f"{row[a].total:g}" if a in row else "" for a in assignments]])
    return buffer.getvalue()


def moodle_csv(results: list[Result]) -> str:
    assignments = sorted({r.assignment for r in results})
    if len(assignments) != 1:
        raise ExportError(f"a Moodle grading worksheet holds one assignment; these results hold "
                          f"{', '.join(assignments)}: pass --assignment NAME")
    missing = [f"{r.student} ({r.name})" for r in results if not r.lms_id.isdigit()]
    if missing:
        raise ExportError("Moodle matches rows by participant id, and these students have none (grade a Moodle zip, "
                          "or import a roster with lms_user_id into the gradebook):\n  " + "\n  ".join(missing))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["Identifier", "Full name", "Status", "Grade", "Maximum Grade", "Grade can be changed",
                     "Feedback comments"])
    for r in sorted(results, key=lambda r: int(r.lms_id)):
        comment = "" if r.final else f"not final: {', '.join(r.ungraded)} still to be graded by hand"
        writer.writerow([f"Participant {r.lms_id}", spreadsheet_safe(r.name), r.status, f"{r.total:g}",
                         f"{r.max_score:g}", "Yes", spreadsheet_safe(comment)])
    return buffer.getvalue()


def plain_csv(results: list[Result]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["student", "name", "lms_id", "assignment", "total", "max_score", "final"])
    for r in results:
        writer.writerow([spreadsheet_safe(r.student), spreadsheet_safe(r.name), r.lms_id, r.assignment,
                         f"{r.total:g}", f"{r.max_score:g}", "yes" if r.final else "no"])
    return buffer.getvalue()


def moodle_feedback_zip(grading: GradingDir, results: list[Result], path: Path) -> None:
    missing = [r.student for r in results if not r.lms_id.isdigit()]
    if missing:
        raise ExportError(f"Moodle feedback files are named by participant id; none for: {', '.join(missing)}")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in results:
            page = feedback_path(grading.out, r)
            if page.is_file():
                zf.write(page, f"{r.name}_{r.lms_id}_assignsubmission_file_/{r.assignment}_feedback.html")


def export(grading: GradingDir, fmt: str, out: Path, assignment: str | None = None,
           allow_pending: bool = False, columns: dict[str, str] | None = None) -> int:
    """Write the export; returns the number of results in it."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    results = grading.results()
    if assignment is not None:
        known = sorted({r.assignment for r in results})
        if assignment not in known:
            raise ExportError(f"--assignment {assignment!r}: the results hold {', '.join(known) or 'nothing'}")
        results = [r for r in results if r.assignment == assignment]
    if not results:
        raise ExportError(f"{grading.out} holds no graded results to export")
    check_final(results, allow_pending)
    if fmt == "moodle-feedback":
        moodle_feedback_zip(grading, results, out)
        return len(results)
    text = {"canvas": lambda: canvas_csv(results, columns or {}), "moodle": lambda: moodle_csv(results),
            "csv": lambda: plain_csv(results)}[fmt]()
    atomic_write(out, text)
    return len(results)
