"""``grade``: from the command's arguments to stored results, the gradebook and every output.

Order of work: refuse without a sandbox; load the assignments (a course's with its earlier releases); find
the submissions (the layout's own ids; ambiguous layouts refused); choose each student's attempt by the
deadline; skip what is already graded (same file, same source) unless asked to regrade; grade the rest,
saving each result the moment it is ready (and, for a course, its scores into the gradebook); write the
outputs from everything stored.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from .course import load_course_assignments
from .deadlines import Deadlines, PenaltyRule, parse_due_arguments, pick_attempts, read_extensions
from .grading import Settings, default_jobs, grade_all, ray_map
from .outputs import GradingDir, write_outputs
from .rebuild import load_assignments
from .results import ResultStore
from .sandbox import Limits, check_bwrap
from .submissions import LayoutError, collect


def refuse_without_sandbox(args) -> str | None:
    problem = check_bwrap()
    if problem and not args.unsafe_no_sandbox:
        return (f"Refusing to grade: the sandbox does not work here: {problem}.\n"
                "Fix it, or pass --unsafe-no-sandbox to run student code unisolated (not recommended).")
    if args.unsafe_no_sandbox:
        print("WARNING: grading WITHOUT the sandbox: student code can read the solutions and write anywhere.",
              file=sys.stderr)
    return None


def grading_dir(args) -> GradingDir:
    """The output folder, its stored settings (deadlines) updated by this command's flags."""
    if args.course is not None:
        from .course import is_course
        if not is_course(args.course):
            raise ValueError(f"--course {args.course} is not a course folder made by 'marlpg-autograder init'")
        out, source, course = args.out or args.course / "grades", args.course / "source", args.course
    else:
        if args.out is None:
            raise ValueError("--out is required with --submissions (where grades.csv and feedback go)")
        out, source, course = args.out, args.source, None
    try:
        grading = GradingDir.load(out)
        if grading.source.resolve() != Path(source).resolve():
            raise ValueError(f"{out} holds results graded against {grading.source}, not {source}: use another --out")
    except FileNotFoundError:
        grading = GradingDir(Path(out), Path(source), course)
    grading.deadlines = updated_deadlines(grading.deadlines, args)
    return grading


def updated_deadlines(old: Deadlines, args) -> Deadlines:
    assignments = [p.name for p in Path(args.source if args.course is None else args.course / "source").iterdir()
                   if p.is_dir()]
    due = {**old.due, **parse_due_arguments(args.due, assignments)}
    rule = PenaltyRule.parse(args.late_penalty, args.late_cap) if args.late_penalty else old.rule
    extensions = {**old.extensions, **(read_extensions(args.extensions) if args.extensions else {})}
    grace = args.grace * 60 if args.grace is not None else old.grace_seconds
    if grace < 0:
        raise ValueError(f"--grace {args.grace:g} must be zero or more minutes")
    return Deadlines(due, grace, rule, extensions)


def to_grade(submissions: list, store: ResultStore, args, assignments: dict) -> list:
    """The submissions this run grades: --students only, else those not yet graded in this form."""
    if args.students:
        known = {s.student for s in submissions}
        unknown = sorted(set(args.students) - known)
        if unknown:
            raise ValueError(f"--students: no submission from {', '.join(unknown)} "
                             f"(the class has {len(known)} student(s), e.g. {', '.join(sorted(known)[:5])})")
        return [s for s in submissions if s.student in set(args.students)]
    if args.regrade:
        return submissions
    kept = []
    for sub in submissions:
        stored = store.load(sub.student, sub.assignment)
        digest = hashlib.sha256(sub.content).hexdigest() if sub.content is not None else ""
        if stored is None or stored.submission_digest != digest \
                or stored.source_digest != assignments[sub.assignment].digest:
            kept.append(sub)
    return kept


def grade_class(args) -> int:
    refusal = refuse_without_sandbox(args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    grading = grading_dir(args)
    assignments = (load_course_assignments(grading.course, args.assignments) if grading.course is not None
                   else load_assignments(grading.source, args.assignments))
    if not assignments:
        raise ValueError(f"no source notebooks under {grading.source}")
    path = grading.course / "submitted" if grading.course is not None else args.submissions
    try:
        found = collect(path, {name: a.notebook_name for name, a in assignments.items()})
    except LayoutError as exc:
        print(f"Refusing to grade {path}: {exc}", file=sys.stderr)
        return 2
    submissions = pick_attempts(found.submissions, grading.deadlines)
    grading.out.mkdir(parents=True, exist_ok=True)
    grading.save()
    store = grading.store
    todo = to_grade(submissions, store, args, assignments)
    settings = Settings(cell_timeout=args.timeout, total_timeout=args.total_timeout,
                        limits=Limits(cpu_seconds=int(args.total_timeout) + 60, memory_mb=args.memory),
                        sandboxed=not args.unsafe_no_sandbox)
    mapper = ray_map(args.ray_address, jobs) if (args.ray or args.ray_address) else None
    start = time.monotonic()
    results, failed = grade_all(todo, assignments, settings, jobs, mapper=mapper,
                                on_result=lambda r: save_result(grading, store, r))
    notes = [f"NOT GRADED {name}: {why}" for name, why in failed.items()]
    notes += [f"NOT PLACED {item}" for item in found.unplaced]
    notes += [f"REFUSED {item}" for item in found.refused]
    write_outputs(grading, notes)
    skipped = len(submissions) - len(todo)
    where = f"on Ray ({args.ray_address or 'local instance'})" if mapper else f"with {jobs} job(s)"
    print(f"Graded {len(results)} submission(s) in {time.monotonic() - start:.1f} s {where}"
          + (f"; {skipped} already graded and kept" if skipped else "") + f"; see {grading.out}/grades.csv")
    return 1 if failed else 0


def save_result(grading: GradingDir, store: ResultStore, result) -> None:
    """Store one result as soon as it is ready (the gradebook is written from the store afterwards)."""
    store.save(result)
    result.notebook = result.graded_notebook = None  # stored: nothing of it need stay in memory
