"""Score test cells by comparing their reports with the instructor's reference reports (trusted side).

Protects against faked passing: rebinding ``report``, ``assert``, ``numpy.allclose`` or builtins in the
kernel changes nothing here, because a test cell earns its points only if it ran without error and the
``@@grade`` lines it printed equal, id by id and in order, what the instructor's solution printed for the
same cell in the same sandbox. No expected value is ever sent to the kernel.
"""
from __future__ import annotations

import builtins
import json
import math
import re

from .rebuild import Assignment, nbgrader_meta, role
from .results import TestResult
from .runner import run_notebook
from .sandbox import Limits

PREFIX = "@@grade "
RTOL, ATOL = 1e-6, 1e-9
UNREADABLE = object()


def stdout_text(cell) -> str:
    return "".join(str(o.get("text", "")) for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def parse_reports(cell) -> list[tuple]:
    """The (id, value) pairs of a cell's ``@@grade {json}`` stdout lines, in order; (id, value, tolerances)
    where a line declares its own ``rtol``/``atol`` (only the reference's declaration is ever used)."""
    reports = []
    for line in stdout_text(cell).splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            data = json.loads(line[len(PREFIX):])
            tolerances = {k: float(data[k]) for k in ("rtol", "atol") if is_number(data.get(k))}
            reports.append((str(data["id"]), data.get("value"), tolerances) if tolerances
                           else (str(data["id"]), data.get("value")))
        except (ValueError, KeyError, TypeError):
            reports.append(("<unreadable>", UNREADABLE))
    return reports


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def values_match(got, expected, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Numbers within rtol=1e-6, atol=1e-9 by default (NaN matches NaN); lists elementwise; dicts by key;
    other values equal."""
    if got is UNREADABLE or expected is UNREADABLE:
        return False
    if is_number(got) and is_number(expected):
        got, expected = float(got), float(expected)
        if math.isnan(got) or math.isnan(expected):
            return math.isnan(got) and math.isnan(expected)
        if math.isinf(got) or math.isinf(expected):
            return got == expected
        return abs(got - expected) <= atol + rtol * abs(expected)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(values_match(a, b, rtol, atol) for a, b in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(values_match(got[k], expected[k], rtol, atol) for k in expected)
    return type(got) is type(expected) and got == expected


def reports_match(got: list, expected: list) -> tuple[bool, str]:
    """Whether two report lists agree, and if not, which check first differs (in plain words)."""
    for i, (exp_id, exp_value, *declared) in enumerate(expected):
        if i >= len(got):
            return False, f"check '{exp_id}' was not reported"
        got_id, got_value = got[i][0], got[i][1]
        if got_id != exp_id:  # the student's id is never echoed: the kernel could put anything in it
            return False, f"check '{exp_id}' was missing or out of order"
        tolerances = {"rtol": RTOL, "atol": ATOL, **(declared[0] if declared else {})}
        if not values_match(got_value, exp_value, tolerances["rtol"], tolerances["atol"]):
            return False, f"check '{exp_id}' gave a different value"
    if len(got) > len(expected):
        return False, f"{len(got) - len(expected)} unexpected extra report(s)"
    return True, ""


class ReferenceError(RuntimeError):
    """The instructor's own solution did not run cleanly: grading this assignment would be unfair."""


def test_cells(nb) -> list[tuple[int, str, float]]:
    return [(i, nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c).get("points", 0) or 0))
            for i, c in enumerate(nb.cells) if role(c) == "test"]


def compute_references(assignment: Assignment, *, cell_timeout: float, total_timeout: float, limits: Limits,
                       sandboxed: bool = True) -> dict[str, list]:
    """Run the source notebook (solutions and hidden tests) in the sandbox; its reports per test cell."""
    nb = nbformat_copy(assignment.source)
    run = run_notebook(nb, cell_timeout=cell_timeout, total_timeout=total_timeout, limits=limits, sandboxed=sandboxed)
    if run.ending != "ok":
        raise ReferenceError(f"{assignment.name}: the solution notebook did not finish: {run.ending_detail}")
    failed = [f"cell {c.index + 1} ({c.error}: {c.error_value})" for c in run.cells if c.error]
    if failed:
        raise ReferenceError(f"{assignment.name}: the solution notebook raised errors: {'; '.join(failed)}")
    refs = {gid: parse_reports(nb.cells[i]) for i, gid, _ in test_cells(nb)}
    bad = [gid for gid, reports in refs.items() if any(r[1] is UNREADABLE for r in reports)]
    if bad:
        raise ReferenceError(f"{assignment.name}: unreadable @@grade lines in {', '.join(bad)}")
    return refs


def nbformat_copy(nb):
    import copy
    return copy.deepcopy(nb)


BUILTIN_ERRORS = {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}


def safe_error_name(name: str) -> str:
    """An exception's name as it may be shown to a student: only Python's own exception names, since a class
    defined by student code could be named after anything it read during the hidden tests."""
    return name if name in BUILTIN_ERRORS else "an error"


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failing_line(cell, error_output: dict | None) -> str:
    """The line of a cell's own text at which its error was raised (from IPython's traceback), or ''."""
    if not error_output:
        return ""
    frames = [ANSI.sub("", str(t)) for t in error_output.get("traceback", [])]
    for frame in frames:
        found = re.search(r"Cell In\[\d+\], line (\d+)", frame) or re.search(r"<ipython-input-[^>]*> in <module>", frame)
        if found and found.groups():
            lines = str(cell.get("source", "")).splitlines()
            number = int(found.group(1))
            return lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return ""


def first_error(cell) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def score_tests(nb, cell_runs: dict, references: dict[str, list], visible_nb=None, visible_runs: dict | None = None,
                unanswered: set | frozenset = frozenset()) -> list[TestResult]:
    """One TestResult per test cell of the executed, rebuilt notebook.

    Points come from the grading run (``nb``, hidden checks included); the words a student reads come from
    the visible run (``visible_nb``: the same notebook with the hidden checks removed) or are fixed phrases,
    so nothing the kernel saw during the hidden checks is echoed back."""
    results = []
    visible_runs = visible_runs or {}
    for index, gid, points in test_cells(nb):
        run = cell_runs.get(index)
        seen = visible_runs.get(index)
        failed_visible = seen is not None and seen.ran and seen.error
        if run is None or not run.ran:
            results.append(TestResult(gid, points, 0.0, "did not run (the notebook stopped earlier)"))
        elif run.output_truncated:
            results.append(TestResult(gid, points, 0.0, "printed too much output"))
        elif failed_visible:
            line = failing_line(visible_nb.cells[index], first_error(visible_nb.cells[index]))
            why = "not answered yet" if seen.error == "NotImplementedError" and unanswered else \
                f"failed: {seen.error}: {seen.error_value}".strip().rstrip(":")
            results.append(TestResult(gid, points, 0.0, why[:300], failed_line=line))
        elif run.error:
            results.append(TestResult(gid, points, 0.0, f"a hidden check raised {safe_error_name(run.error)}"))
        else:
            ok, why = reports_match(parse_reports(nb.cells[index]), references.get(gid, []))
            results.append(TestResult(gid, points, points if ok else 0.0,
                                      "passed" if ok else f"hidden checks failed: {why}"))
    return results
