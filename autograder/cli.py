"""The instructor command: ``python -m autograder grade ...`` and ``python -m autograder generate ...``.

Refuses to grade without a working sandbox unless ``--unsafe-no-sandbox`` is given explicitly.
"""
from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path

from .grading import Settings, default_jobs, grade_all, ray_map, write_outputs
from .rebuild import load_assignments
from .sandbox import Limits, check_bwrap
from .submissions import collect

REPO = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="autograde a class (nbgrader submitted/ folder or LMS zip)")
    g.add_argument("--submissions", required=True, type=Path, help="folder submitted/<student>/<assignment>/ or a zip")
    g.add_argument("--out", required=True, type=Path, help="output folder (grades.csv, feedback/, report.txt)")
    g.add_argument("--source", type=Path, default=REPO / "solutions",
                   help="instructor source notebooks, <source>/<assignment>/<assignment>.ipynb (default: solutions/)")
    g.add_argument("--assignments", nargs="+", help="grade only these assignments (default: all in --source)")
    g.add_argument("--jobs", type=int, default=default_jobs(), help="submissions graded at once (default: all cores)")
    g.add_argument("--ray", action="store_true",
                   help="grade each submission as a Ray task: a local Ray instance with --jobs CPUs, or the "
                        "cluster at --ray-address (every node sandboxes as a local run does)")
    g.add_argument("--ray-address", default=None, help="address of a running Ray cluster (implies --ray)")
    g.add_argument("--timeout", type=float, default=60, help="seconds per cell (default 60)")
    g.add_argument("--total-timeout", type=float, default=600, help="seconds per notebook (default 600)")
    g.add_argument("--memory", type=int, default=4096, help="address-space limit per kernel in MB (default 4096)")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code WITHOUT bubblewrap (it can then read the solutions and write anywhere)")
    sub.add_parser("generate", help="release the student notebooks (autograder/generate.py; its options pass through)")
    return p


def grade(args) -> int:
    if args.jobs < 1:
        print(f"error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    problem = check_bwrap()
    if problem and not args.unsafe_no_sandbox:
        print(f"Refusing to grade: the sandbox does not work here: {problem}.\n"
              "Fix it, or pass --unsafe-no-sandbox to run student code unisolated (not recommended).",
              file=sys.stderr)
        return 2
    if args.unsafe_no_sandbox:
        print("WARNING: grading WITHOUT the sandbox: student code can read the solutions and write anywhere.",
              file=sys.stderr)
    assignments = load_assignments(args.source, args.assignments)
    if not assignments:
        print(f"No source notebooks under {args.source}", file=sys.stderr)
        return 2
    expected = {name: a.notebook_name for name, a in assignments.items()}
    submissions, unplaced = collect(args.submissions, expected)
    limits = Limits(cpu_seconds=int(args.total_timeout) + 60, memory_mb=args.memory)
    settings = Settings(cell_timeout=args.timeout, total_timeout=args.total_timeout, limits=limits,
                        sandboxed=not args.unsafe_no_sandbox)
    start = time.monotonic()
    mapper = ray_map(args.ray_address, args.jobs) if (args.ray or args.ray_address) else None
    results, failed = grade_all(submissions, assignments, settings, args.jobs, mapper=mapper)
    write_outputs(results, args.out, unplaced, failed)
    seconds = time.monotonic() - start
    where = f"on Ray ({args.ray_address or 'local instance'})" if mapper else f"with {args.jobs} job(s)"
    print(f"Graded {len(results)} submission(s) in {seconds:.1f} s {where}; see {args.out}/grades.csv")
    return 1 if failed else 0


def generate(rest: list[str]) -> int:
    script = REPO / "autograder" / "generate.py"
    if not script.exists():
        print("autograder/generate.py does not exist yet", file=sys.stderr)
        return 2
    sys.argv = [str(script), *[a for a in rest if a != "--"]]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def main(argv=None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if args.command == "generate":
        return generate(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return grade(args)
