"""Grade a class: references once per assignment, then every submission in its own sandboxed kernel.

Protects each student's grade from every other submission: one kernel, one folder and one process per
submission, so a crash, a timeout or a memory blow-up ends only that submission's run, and the grades
do not depend on the number of parallel jobs.
"""
from __future__ import annotations

import copy
import hashlib
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .rebuild import Assignment, nbgrader_meta, rebuild, role
from .results import ManualCell, Result, TestResult
from .runner import run_notebook
from .sandbox import Limits
from .scoring import compute_references, score_tests, test_cells
from .submissions import Submission


@dataclass
class Settings:
    cell_timeout: float = 60
    total_timeout: float = 600
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True


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


def new_result(sub: Submission, assignment: Assignment) -> Result:
    return Result(student=sub.student, assignment=sub.assignment, name=getattr(sub, "name", "") or sub.student,
                  lms_id=getattr(sub, "lms_id", ""), auto_max=assignment.points("test"),
                  manual_max=assignment.points("manual"), manual=manual_cells(assignment),
                  timestamp=iso(getattr(sub, "timestamp", None)), submission_digest=content_digest(sub),
                  source_digest=assignment.digest, layout=getattr(sub, "layout", ""), origin=getattr(sub, "origin", ""),
                  late_marker=getattr(sub, "late_marker", False))


def iso(moment) -> str:
    return moment.isoformat() if moment is not None else ""


def content_digest(sub: Submission) -> str:
    return hashlib.sha256(sub.content).hexdigest() if sub.content is not None else ""


def manual_cells(assignment: Assignment) -> list[ManualCell]:
    """The hand-graded cells with their maxima and the instructor's model answer as the rubric."""
    cells = []
    for cell in assignment.source.cells:
        if role(cell) == "manual":
            meta = nbgrader_meta(cell)
            cells.append(ManualCell(meta["grade_id"], float(meta.get("points", 0) or 0), rubric_text(cell.source)))
    return cells


def rubric_text(source: str) -> str:
    inside = source.split("### BEGIN SOLUTION", 1)[-1].split("### END SOLUTION", 1)[0]
    return inside.strip()


def grade_submission(sub: Submission, assignment: Assignment, references: dict, settings: Settings) -> Result:
    """Grade one submission; every failure becomes a status and plain words, never an exception."""
    start = time.monotonic()
    result = new_result(sub, assignment)
    if sub.misnamed:
        result.add("misnamed")
    result.details += sub.notes
    result.instructor_notes += getattr(sub, "instructor_notes", [])
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
    answers = {c.metadata.get("autograder", {}).get("grade_id"): c.source for c in
               (result.notebook.cells if result.notebook is not None else [])}
    for cell in result.manual:
        cell.answer = str(answers.get(cell.grade_id, ""))[:4000]
    result.seconds = time.monotonic() - start
    return result


def test_points(assignment: Assignment) -> list[tuple[str, float]]:
    return [(gid, pts) for _, gid, pts in test_cells(assignment.source)]


def visible_version(rebuilt_nb, assignment: Assignment) -> nbformat.NotebookNode:
    """The rebuilt notebook as the student was given it: every test cell holds its released text only, so
    the hidden checks never reach this run's kernel, and whatever this run prints can be shown."""
    nb = copy.deepcopy(rebuilt_nb)
    released = assignment.released_cells()
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if role(cell) == "test" and gid in released:
            cell.source = released[gid].source
    return nb


def run_rebuilt(nb, assignment: Assignment, references: dict, settings: Settings, result: Result) -> None:
    """Two runs of the rebuilt notebook, each in a fresh sandbox: the visible run (hidden checks removed) gives
    everything a student reads; the grading run (hidden checks in) gives the points and nothing else."""
    rebuilt = rebuild(assignment, nb)
    for note in rebuilt.tampering:
        result.add("tampered", note)
    result.details += rebuilt.notes
    for gid in rebuilt.unanswered:
        result.add("unanswered", f"you have not answered {gid} yet")
    visible = visible_version(rebuilt.notebook, assignment)
    kwargs = dict(cell_timeout=settings.cell_timeout, total_timeout=settings.total_timeout,
                  limits=settings.limits, sandboxed=settings.sandboxed)
    seen = run_notebook(visible, **kwargs)
    graded = run_notebook(rebuilt.notebook, **kwargs)
    ending = graded if graded.ending != "ok" else seen
    if ending.ending != "ok":
        result.add(ending.ending, name_cells(ending.ending_detail, visible))
    report_cell_errors(visible, seen, result, set(rebuilt.unanswered))
    result.tests = score_tests(rebuilt.notebook, {c.index: c for c in graded.cells}, references,
                               visible, {c.index: c for c in seen.cells}, set(rebuilt.unanswered))
    result.notebook = visible
    result.graded_notebook = rebuilt.notebook


def cell_name(nb, index: int) -> str:
    """A cell named as the student sees it: by its grade id and its place in the student's own notebook."""
    label = nb.cells[index].metadata.get("autograder", {}) if 0 <= index < len(nb.cells) else {}
    where = f" (cell {label['student_index']} of your notebook)" if label.get("student_index") else ""
    gid = label.get("grade_id")
    if label.get("origin") == "added":
        return f"a cell you added{where}"
    if role(nb.cells[index]) == "test":
        return f"the test {gid}{where}"
    if label.get("origin") == "student":
        return f"your answer {gid}{where}"
    return f"the assignment's cell {gid}{where}" if gid else "one of the assignment's own cells"


def name_cells(text: str, nb) -> str:
    """Replace the runner's 'cell N' (a position in the rebuilt notebook) with the cell's name."""
    return re.sub(r"\bcell (\d+)\b", lambda m: cell_name(nb, int(m.group(1)) - 1), text)


def report_cell_errors(nb, run, result: Result, unanswered: set) -> None:
    """'exception' for errors outside test cells (a failing test is a lost test, not a status); an untouched
    answer's NotImplementedError is 'unanswered' (already recorded), not an exception."""
    for c in run.cells:
        if not c.error or "MemoryError" in c.error or role(nb.cells[c.index]) == "test":
            continue
        label = nb.cells[c.index].metadata.get("autograder", {})
        if c.error == "NotImplementedError" and label.get("grade_id") in unanswered:
            continue
        if c.error == "NameError" and unanswered and label.get("origin") == "source":
            continue  # a locked cell using a name that an unanswered cell above was to define
        name = cell_name(nb, c.index)
        if c.error == "SystemExit":
            result.add("exception", f"{name} called sys.exit({c.error_value}); the kernel ignored it and went on")
        else:
            result.add("exception", f"{name} raised {c.error}: {c.error_value}"[:300])


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
              jobs: int, progress=print, references: dict | None = None, mapper=None,
              on_result=None) -> tuple[list[Result], dict[str, str]]:
    """References (one sandboxed run per assignment, unless given), then all submissions, ``jobs`` at a time.

    ``on_result`` is called with each result the moment it is ready (the command line saves it then, so a
    crash loses only the submissions in flight). ``mapper`` (e.g. :func:`ray_map`) replaces the local worker
    processes. Returns the results and, per assignment that could not be graded, why (its solution failed)."""
    references, failed = dict(references or {}), {}
    todo = [a for name, a in assignments.items() if name not in references and
            any(s.assignment == name for s in submissions)]
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=worker_context()) if jobs > 1 and mapper is None else None
    results = []

    def finished(result: Result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)
        progress(f"{result.student}/{result.assignment}: {result.score:g} of {result.auto_max:g} ({result.status})")

    try:
        run = mapper or (pool.map if pool else map)
        for assignment, (refs, error) in zip(todo, run(_safe_reference_task, [(a, settings) for a in todo])):
            if error:
                failed[assignment.name] = error
                progress(f"cannot grade {assignment.name}: {error}")
            else:
                references[assignment.name] = refs
        tasks = [(s, assignments[s.assignment], references[s.assignment], settings)
                 for s in submissions if s.assignment in references]
        if pool is not None:
            failed.update(run_in_pool(pool, tasks, finished, jobs))
        else:
            for result in run(_grade_task, tasks):
                finished(result)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return results, failed


def run_in_pool(pool, tasks: list, finished, jobs: int) -> dict[str, str]:
    """Each task's result as soon as it completes; if a worker process dies (killed from outside), the
    submissions it left unfinished are graded again in a fresh pool, once."""
    pending, fresh = list(tasks), None
    try:
        for attempt in range(2):
            futures = {pool.submit(_grade_task, task): task for task in pending}
            pending = []
            for future in as_completed(futures):
                try:
                    finished(future.result())
                except BrokenProcessPool:
                    pending.append(futures[future])
            if not pending:
                return {}
            fresh = pool = ProcessPoolExecutor(max_workers=jobs, mp_context=worker_context())
    finally:
        if fresh is not None:
            fresh.shutdown(cancel_futures=True)
    return {f"{t[0].student}/{t[0].assignment}": "the grader's worker process died twice while grading it"
            for t in pending}


def _safe_reference_task(args):
    try:
        return _reference_task(args), ""
    except Exception as exc:
        return None, str(exc)


def default_jobs() -> int:
    return os.cpu_count() or 1
