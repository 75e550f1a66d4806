"""Grade a class: references once per assignment, then every submission in its own sandboxed kernel.

Protects each student's grade from every other submission: one kernel, one folder and one process per
submission, so a crash, a timeout or a memory blow-up ends only that submission's run, and the grades
do not depend on the number of parallel jobs.
"""
from __future__ import annotations

import csv
import html
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .feedback import feedback_html
from .rebuild import Assignment, rebuild, role
from .runner import run_notebook
from .sandbox import Limits
from .scoring import TestResult, compute_references, score_tests, test_cells
from .submissions import Submission

STATUS_WORDS = {
    "ok": "graded normally",
    "missing": "no notebook was found for this assignment",
    "invalid file": "the file could not be read (a link, not a regular file, or too large)",
    "invalid json": "the file is not a readable notebook (invalid JSON or not nbformat)",
    "empty": "the notebook is empty",
    "misnamed": "the notebook had another name; it was graded anyway",
    "tampered": "test or locked cells were changed; the originals ran instead",
    "exception": "a cell raised an error",
    "timeout": "the notebook ran too long and was stopped",
    "kernel died": "the Python kernel stopped (exit, crash or CPU limit)",
    "memory": "the notebook ran out of memory",
}


@dataclass
class Settings:
    cell_timeout: float = 60
    total_timeout: float = 600
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True


@dataclass
class Result:
    student: str
    assignment: str
    statuses: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    auto_max: float = 0.0
    manual_max: float = 0.0
    notebook: nbformat.NotebookNode | None = None
    html: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(t.earned for t in self.tests)

    @property
    def status(self) -> str:
        return "; ".join(self.statuses) if self.statuses else "ok"

    def add(self, status: str, detail: str = "") -> None:
        if status not in self.statuses:
            self.statuses.append(status)
        if detail:
            self.details.append(detail)


def parse_notebook(sub: Submission, result: Result) -> nbformat.NotebookNode | None:
    """The submitted notebook, or None with status 'empty' / 'invalid json'."""
    text = (sub.content or b"").decode("utf-8", errors="replace")
    if not text.strip():
        result.add("empty", f"{sub.filename} is an empty file")
        return None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        result.add("invalid json", f"{sub.filename} is not a valid notebook: {str(exc).splitlines()[0][:200]}")
        return None
    if not nb.get("cells"):
        result.add("empty", f"{sub.filename} has no cells")
        return None
    return nb


def grade_submission(sub: Submission, assignment: Assignment, references: dict, settings: Settings) -> Result:
    """Grade one submission; every failure becomes a status and plain words, never an exception."""
    start = time.monotonic()
    result = Result(sub.student, sub.assignment, auto_max=assignment.points("test"),
                    manual_max=assignment.points("manual"))
    if sub.misnamed:
        result.add("misnamed")
    result.details += sub.notes
    if sub.problem:
        result.add(sub.problem)
    else:
        nb = parse_notebook(sub, result)
        if nb is not None:
            try:
                run_rebuilt(nb, assignment, references, settings, result)
            except Exception as exc:  # a notebook malformed in a way nbformat let through
                result.tests = []
                result.add("invalid json", f"{sub.filename} could not be graded as a notebook: "
                                           f"{type(exc).__name__}: {exc}"[:300])
    if not result.tests:
        result.tests = [TestResult(gid, pts, 0.0, "not graded") for gid, pts in test_points(assignment)]
    result.html = render_feedback(result, assignment)
    result.seconds = time.monotonic() - start
    return result


def test_points(assignment: Assignment) -> list[tuple[str, float]]:
    return [(gid, pts) for _, gid, pts in test_cells(assignment.source)]


def run_rebuilt(nb, assignment: Assignment, references: dict, settings: Settings, result: Result) -> None:
    rebuilt = rebuild(assignment, nb)
    for note in rebuilt.tampering:
        result.add("tampered", note)
    result.details += rebuilt.notes
    run = run_notebook(rebuilt.notebook, cell_timeout=settings.cell_timeout, total_timeout=settings.total_timeout,
                       limits=settings.limits, sandboxed=settings.sandboxed)
    if run.ending != "ok":
        result.add(run.ending, run.ending_detail)
    report_cell_errors(rebuilt, run, result)
    runs = {c.index: c for c in run.cells}
    result.tests = score_tests(rebuilt.notebook, runs, references)
    result.notebook = rebuilt.notebook


def report_cell_errors(rebuilt, run, result: Result) -> None:
    """'exception' for errors outside test cells (a failing test is a lost test, not a status)."""
    for c in run.cells:
        if not c.error or "MemoryError" in c.error or is_test(rebuilt, c.index):
            continue
        origin = rebuilt.notebook.cells[c.index].metadata.get("autograder", {}).get("origin")
        kind = {"added": "your added cell", "student": "your answer cell"}.get(origin, "a locked cell")
        if c.error == "SystemExit":
            result.add("exception", f"cell {c.index + 1} ({kind}) called sys.exit({c.error_value}); "
                                    "the kernel ignored it and went on")
        else:
            result.add("exception", f"cell {c.index + 1} ({kind}) raised {c.error}: {c.error_value}"[:300])


def is_test(rebuilt, index: int) -> bool:
    return role(rebuilt.notebook.cells[index]) == "test"


def render_feedback(result: Result, assignment: Assignment) -> str:
    try:
        return feedback_html(result, assignment)
    except Exception as exc:  # feedback must never cost a grade
        return f"<html><body><pre>{html.escape(result.status)}\n{html.escape(str(exc))}</pre></body></html>"


def worker_context():
    """Fresh worker processes (no inherited kernels, sockets or event loops), forked from a server that has
    already imported the grader, so that starting one costs little."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["autograder.grading"])
        return ctx
    return multiprocessing.get_context("spawn")


def _grade_task(args):
    return grade_submission(*args)


def _reference_task(args):
    assignment, settings = args
    return compute_references(assignment, cell_timeout=settings.cell_timeout, total_timeout=settings.total_timeout,
                              limits=settings.limits, sandboxed=settings.sandboxed)


def ray_map(address: str | None, jobs: int):
    """A ``map`` whose calls run as Ray tasks (one submission per task), results in order.

    ``address`` None starts a local Ray instance with ``jobs`` CPUs; otherwise it joins that cluster, whose
    nodes must hold this repository at the same path with the course's environment and bubblewrap: each task
    runs the same sandboxed grading as a local job, on whichever node Ray places it.
    """
    try:
        import ray
    except ImportError as exc:
        raise SystemExit("grading on Ray needs Ray: pip install 'ray>=2.50' (the course installs it with "
                         "scripts/setup_env.sh)") from exc
    if not ray.is_initialized():
        repo = str(Path(__file__).resolve().parents[1])
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}}
        local = {"num_cpus": jobs} if address is None else {}
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False, **local)
    remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def mapper(fn, items):
        pending = [remote.remote(fn, item) for item in items]
        for ref in pending:
            yield ray.get(ref)

    return mapper


def _call(fn, item):
    return fn(item)


def grade_all(submissions: list[Submission], assignments: dict[str, Assignment], settings: Settings,
              jobs: int, progress=print, references: dict | None = None,
              mapper=None) -> tuple[list[Result], dict[str, str]]:
    """References (one sandboxed run per assignment, unless given), then all submissions, ``jobs`` at a time.

    ``mapper`` (e.g. :func:`ray_map`) replaces the local worker processes. Returns the results and, per
    assignment that could not be graded, why (its solution failed)."""
    references, failed = dict(references or {}), {}
    todo = [a for name, a in assignments.items() if name not in references]
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=worker_context()) if jobs > 1 and mapper is None else None
    try:
        mapper = mapper or (pool.map if pool else map)
        outcomes = mapper(_safe_reference_task, [(a, settings) for a in todo])
        for assignment, (refs, error) in zip(todo, outcomes):
            if error:
                failed[assignment.name] = error
                progress(f"cannot grade {assignment.name}: {error}")
            else:
                references[assignment.name] = refs
        tasks = [(s, assignments[s.assignment], references[s.assignment], settings)
                 for s in submissions if s.assignment in references]
        results = []
        for result in mapper(_grade_task, tasks):
            results.append(result)
            progress(f"{result.student}/{result.assignment}: {result.score:g} of {result.auto_max:g} ({result.status})")
    finally:
        if pool:
            pool.shutdown()
    return results, failed


def _safe_reference_task(args):
    try:
        return _reference_task(args), ""
    except Exception as exc:
        return None, str(exc)


CSV_FIELDS = ["student", "assignment", "score", "max_score", "autograded_score", "autograded_max",
              "manual_max", "status", "details"]


def write_outputs(results: list[Result], out: Path, unplaced: list[str], failed: dict[str, str]) -> None:
    """DIR/grades.csv, DIR/feedback/<student>/<assignment>.html and DIR/report.txt."""
    out.mkdir(parents=True, exist_ok=True)
    results = sorted(results, key=lambda r: (r.student, r.assignment))
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            writer.writerow({"student": r.student, "assignment": r.assignment, "score": f"{r.score:g}",
                             "max_score": f"{r.auto_max + r.manual_max:g}", "autograded_score": f"{r.score:g}",
                             "autograded_max": f"{r.auto_max:g}", "manual_max": f"{r.manual_max:g}",
                             "status": r.status, "details": " | ".join(r.details)})
    for r in results:
        folder = out / "feedback" / r.student
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r.assignment}.html").write_text(r.html, encoding="utf-8")
    (out / "report.txt").write_text(report_text(results, unplaced, failed), encoding="utf-8")


def report_text(results: list[Result], unplaced: list[str], failed: dict[str, str]) -> str:
    lines = []
    for name, why in failed.items():
        lines.append(f"NOT GRADED {name}: {why}")
    for member in unplaced:
        lines.append(f"NOT PLACED {member}: no assignment name in its path")
    for r in results:
        lines.append(f"{r.student} / {r.assignment}: {r.score:g} of {r.auto_max:g} automatic points"
                     f" ({r.manual_max:g} by hand pending); status: {r.status}; {r.seconds:.1f} s"
                     + "".join(f"\n    - {d}" for d in r.details)
                     + "".join(f"\n    - {STATUS_WORDS[s]}" for s in r.statuses if s in STATUS_WORDS and s != "ok")
                     + "".join(f"\n    - test {t.grade_id}: {t.earned:g} of {t.points:g}, {t.reason}"
                               for t in r.tests if t.earned < t.points and r.notebook is not None))
    return "\n".join(lines) + "\n"


def default_jobs() -> int:
    return os.cpu_count() or 1
