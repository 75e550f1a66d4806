"""Seconds per submission of the sandboxed grader, the speed-up of N parallel jobs over 1, and the memory of
the trusted grader processes.

    python benchmarks/bench_grading.py              # 16 synthetic submissions, jobs 1 and all cores
    python benchmarks/bench_grading.py --size 200   # the class of 200 (several minutes per job count)
    python benchmarks/bench_grading.py --quick      # 4 submissions (seconds; run by tests/test_benchmarks.py)
    python benchmarks/bench_grading.py --assignment ex30_7_2 --source solutions   # a real exercise

Each submission runs twice (the visible run and the grading run, autograder/DESIGN.md section 4). Memory is
the peak resident size of the grader process and, separately, of its worker processes (getrusage), so a
submission that floods output shows up here rather than in the sandbox's own accounting.

The synthetic class is made from the assignment's own notebooks: its solution, its blank student
version, and half-solved copies, in turn. References are computed once, outside the timing.
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.grading import Settings, grade_all  # noqa: E402
from autograder.rebuild import load_assignment, nbgrader_meta, role  # noqa: E402
from autograder.sandbox import Limits, check_bwrap  # noqa: E402
from autograder.scoring import compute_references  # noqa: E402
from autograder.submissions import Submission  # noqa: E402


def half_solved(assignment) -> nbformat.NotebookNode:
    """The solution's answers in the first half of the answer cells, the blank template in the rest."""
    nb = copy.deepcopy(assignment.released)
    answers = {nbgrader_meta(c)["grade_id"]: c.source for c in assignment.source.cells if role(c) == "solution"}
    for i, gid in enumerate(list(answers)[: len(answers) // 2 + 1]):
        for cell in nb.cells:
            if nbgrader_meta(cell).get("grade_id") == gid:
                cell.source = answers[gid]
    return nb


def synthetic_class(assignment, size: int) -> list[Submission]:
    kinds = [assignment.source, assignment.released, half_solved(assignment)]
    return [Submission(student=f"s{i:03d}", assignment=assignment.name, filename=assignment.notebook_name,
                       content=nbformat.writes(kinds[i % len(kinds)]).encode()) for i in range(size)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="4 submissions, 2 jobs at most")
    p.add_argument("--source", type=Path, default=REPO / "tests" / "fixtures" / "grader" / "source")
    p.add_argument("--assignment", default="fx1")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    size, jobs = (4, min(2, args.jobs)) if args.quick else (args.size, args.jobs)
    sandboxed = check_bwrap() is None
    settings = Settings(cell_timeout=120, total_timeout=900, limits=Limits(), sandboxed=sandboxed)
    assignment = load_assignment(args.source / args.assignment)
    refs = {assignment.name: compute_references(assignment, cell_timeout=120, total_timeout=900,
                                                limits=settings.limits, sandboxed=sandboxed)}
    subs = synthetic_class(assignment, size)
    timings, grades = {}, {}
    for n in sorted({1, jobs}):
        start = time.perf_counter()
        results, _ = grade_all(subs, {assignment.name: assignment}, settings, n, progress=lambda *_: None,
                               references=refs)
        timings[n] = time.perf_counter() - start
        grades[n] = sorted((r.student, r.score, r.status) for r in results)
        print(f"{assignment.name}: {size} submissions with {n} job(s): {timings[n]:.2f} s, "
              f"{timings[n] / size:.2f} s per submission" + ("" if sandboxed else " (NO SANDBOX: bwrap unavailable)"))
    own, workers = (resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"peak memory: grader process {own:.0f} MB, largest worker or kernel process {workers:.0f} MB")
    assert all(g == grades[1] for g in grades.values()), "grades differ between job counts"
    print(f"{jobs} jobs: {timings[1] / timings[jobs]:.2f}x faster than 1 job (grades identical)")


if __name__ == "__main__":
    main()
