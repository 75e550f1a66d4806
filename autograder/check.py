"""``marlpg-autograder check NOTEBOOK``: what a student runs before submitting.

It rebuilds the notebook as the grader will (the released test and instruction cells, the student's answers
and added cells), runs it top to bottom with the visible checks, and says in plain words what will be graded:
which visible checks pass, which answers are still the template, which locked cells were changed (the
originals will run instead), which cells are graded by hand, and that hidden checks will also run. It needs
only the released notebooks (``notebooks/exercises/``), never the solutions, and runs the student's own code
on the student's own machine (no sandbox: it is their code).
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from .rebuild import Assignment, nbgrader_meta, rebuild, role
from .runner import run_notebook
from .sandbox import Limits, check_bwrap
from .scoring import failing_line, first_error

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO / "notebooks" / "exercises"


def released_assignments(folder: Path = RELEASED) -> dict[str, Assignment]:
    found = {}
    for path in sorted(folder.glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found[path.parent.name] = Assignment(name=path.parent.name, notebook_name=path.name, source=nb,
                                             released=copy.deepcopy(nb), digest="")
    return found


def which_assignment(nb, assignments: dict[str, Assignment]) -> Assignment | None:
    """The assignment whose cell ids the notebook shares most."""
    ids = {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}
    best = max(assignments.values(), key=lambda a: len(ids & set(a.source_cells)), default=None)
    return best if best is not None and ids & set(best.source_cells) else None


def check(path: Path, released: Path = RELEASED, timeout: float = 600) -> tuple[int, str]:
    """(exit code, report): 0 when every visible check passes and nothing was changed, 1 otherwise."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        return 2, f"{path} is not a readable notebook: {exc}"
    assignments = released_assignments(released)
    assignment = which_assignment(nb, assignments)
    if assignment is None:
        return 2, (f"{path} has none of the cells of {', '.join(assignments) or 'the exercises'}: open the "
                   "released notebook and answer in it")
    rebuilt = rebuild(assignment, nb)
    lines = [f"Checking {path.name} as {assignment.name}."]
    if path.name != assignment.notebook_name:
        lines.append(f"! Submit it as {assignment.notebook_name} (it is named {path.name}).")
    lines += [f"! {note}" for note in rebuilt.tampering + rebuilt.notes]
    lines += [f"! You have not answered {gid} yet." for gid in rebuilt.unanswered]
    sandboxed = check_bwrap() is None
    run = run_notebook(rebuilt.notebook, cell_timeout=timeout, total_timeout=timeout * 4,
                       limits=Limits(cpu_seconds=int(timeout * 4) + 60, memory_mb=8192), sandboxed=sandboxed)
    if run.ending != "ok":
        lines.append(f"! The notebook did not finish: {run.ending}: {run.ending_detail}")
    runs = {c.index: c for c in run.cells}
    failures = 0
    for index, cell in enumerate(rebuilt.notebook.cells):
        kind, gid = role(cell), nbgrader_meta(cell).get("grade_id")
        points = float(nbgrader_meta(cell).get("points", 0) or 0)
        if kind == "test":
            c = runs.get(index)
            if c is None or not c.ran:
                lines.append(f"  ? {gid} ({points:g} points): did not run")
                failures += 1
            elif c.error:
                line = failing_line(cell, first_error(cell))
                lines.append(f"  x {gid} ({points:g} points): visible check failed: {c.error}"
                             + (f" at: {line}" if line else ""))
                failures += 1
            else:
                lines.append(f"  ok {gid} ({points:g} points): visible checks pass; hidden checks will also run")
        elif kind == "manual":
            lines.append(f"  .. {gid} ({points:g} points): graded by hand")
        elif c_error := (runs.get(index).error if runs.get(index) else ""):
            lines.append(f"  ! cell {index + 1} raised {c_error}")
            failures += kind == "locked"  # a self-check of the exercise failed: the answer above it is not valid
    if not any(role(c) == "test" for c in rebuilt.notebook.cells):
        lines.append("No cell of this exercise is graded automatically: every point is given by hand.")
    lines.append("Cells you added run before the tests but earn no points; only answer cells are graded.")
    bad = failures or rebuilt.tampering or rebuilt.unanswered or run.ending != "ok"
    lines.append("Ready to submit." if not bad else "Not ready: see the lines marked above.")
    return (1 if bad else 0), "\n".join(lines)
