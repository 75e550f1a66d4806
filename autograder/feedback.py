"""Per-student HTML feedback: the graded notebook with each test's result and points, and the status.

Protects the instructor who opens the feedback: student HTML and JavaScript (markdown, rich outputs)
is sanitized by nbconvert (``sanitize_html``), and hidden tests are not revealed (test cells show the
released text, ``@@grade`` lines are removed from their output).
"""
from __future__ import annotations

import copy
import html

import nbformat
from nbconvert import HTMLExporter

from .rebuild import Assignment, nbgrader_meta, role
from .scoring import PREFIX


def without_report_lines(cell) -> None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and isinstance(out.get("text"), str):
            out["text"] = "".join(l for l in out["text"].splitlines(True) if not l.startswith(PREFIX))
    cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream" and not o["text"])]


def without_tracebacks(cell) -> None:
    """A test cell's traceback quotes the hidden lines around the failure: keep only the error itself."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]


def summary_markdown(result) -> str:
    lines = [f"# Feedback: {result.assignment}", "",
             f"**Student:** {html.escape(result.student)}  ",
             f"**Score:** {result.score:g} / {result.auto_max:g} automatic points"
             + (f" (+ {result.manual_max:g} points graded by hand, pending)" if result.manual_max else ""), "",
             f"**Status:** {html.escape(result.status)}", ""]
    lines += [f"* {html.escape(d)}" for d in result.details]
    if result.tests:
        lines += ["", "| test | points | result |", "|---|---|---|"]
        lines += [f"| {t.grade_id} | {t.earned:g} / {t.points:g} | {html.escape(t.reason).replace('|', '/')} |"
                  for t in result.tests]
    return "\n".join(lines)


def feedback_notebook(result, assignment: Assignment) -> nbformat.NotebookNode:
    """The executed notebook, hidden tests removed, a result note after each test cell."""
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(assignment.source.metadata))
    cells = [nbformat.v4.new_markdown_cell(summary_markdown(result))]
    released = {nbgrader_meta(c)["grade_id"]: c for c in assignment.released.cells if role(c)}
    tests = {t.grade_id: t for t in result.tests}
    for cell in (result.notebook.cells if result.notebook is not None else []):
        cell = copy.deepcopy(cell)
        gid = nbgrader_meta(cell).get("grade_id")
        if role(cell) in ("test", "locked") and gid in released:
            cell.source = released[gid].source
        if cell.cell_type == "code":
            without_report_lines(cell)
        if role(cell) == "test":
            without_tracebacks(cell)
        cells.append(cell)
        if role(cell) == "test" and gid in tests:
            t = tests[gid]
            mark = "✔" if t.earned == t.points else "✘"
            cells.append(nbformat.v4.new_markdown_cell(
                f"**{mark} Test `{gid}`: {t.earned:g} / {t.points:g} points** — {html.escape(t.reason)}"))
        elif role(cell) == "manual":
            points = float(nbgrader_meta(cell).get("points", 0) or 0)
            cells.append(nbformat.v4.new_markdown_cell(f"**Graded by hand: {points:g} points (pending).**"))
    for i, cell in enumerate(cells):
        cell["id"] = f"feedback-{i}"
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def feedback_html(result, assignment: Assignment) -> str:
    exporter = HTMLExporter(sanitize_html=True)
    body, _ = exporter.from_notebook_node(feedback_notebook(result, assignment))
    return body
