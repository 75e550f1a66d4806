"""Score test cells by comparing their reports with the instructor's reference reports (trusted side).

Protects against faked passing: rebinding ``report``, ``assert``, ``numpy.allclose`` or builtins in the
kernel changes nothing here, because a test cell earns its points only if it ran without error and the
``@@grade`` lines it printed equal, id by id and in order, what the instructor's solution printed for the
same cell in the same sandbox. No expected value is ever sent to the kernel.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .rebuild import Assignment, nbgrader_meta, role
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
        if got_id != exp_id:
            return False, f"expected check '{exp_id}' but got '{got_id}'"
        tolerances = {"rtol": RTOL, "atol": ATOL, **(declared[0] if declared else {})}
        if not values_match(got_value, exp_value, tolerances["rtol"], tolerances["atol"]):
            return False, f"check '{exp_id}' gave a different value"
    if len(got) > len(expected):
        return False, f"{len(got) - len(expected)} unexpected extra report(s)"
    return True, ""


@dataclass
class TestResult:
    grade_id: str
    points: float
    earned: float
    reason: str  # plain words: 'passed' or why not


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


def score_tests(nb, cell_runs: dict, references: dict[str, list]) -> list[TestResult]:
    """One TestResult per test cell of the executed, rebuilt notebook."""
    results = []
    for index, gid, points in test_cells(nb):
        run = cell_runs.get(index)
        if run is None or not run.ran:
            results.append(TestResult(gid, points, 0.0, "did not run (the notebook stopped earlier)"))
        elif run.output_truncated:
            results.append(TestResult(gid, points, 0.0, "printed too much output"))
        elif run.error:
            results.append(TestResult(gid, points, 0.0, f"failed: {run.error}: {run.error_value}".strip()))
        else:
            ok, why = reports_match(parse_reports(nb.cells[index]), references.get(gid, []))
            results.append(TestResult(gid, points, points if ok else 0.0,
                                      "passed" if ok else f"hidden checks failed: {why}"))
    return results
