"""The course's grader: ``marlpg-autograder COMMAND`` (or ``python -m autograder COMMAND``), from any folder.

A term, in order: ``init`` a course folder, ``release`` each exercise through nbgrader's exchange,
(students ``check`` their notebooks, then fetch and submit with nbgrader), ``nbgrader collect``, ``grade``
(sandboxed; scores into the gradebook), hand-grade in formgrader or with ``marks template`` / ``marks import``,
``override`` an automatic score with a reason, ``export`` final grades to Canvas or Moodle, and ``feedback``
(then ``nbgrader release_feedback``). Grading refuses to run without a working sandbox unless
``--unsafe-no-sandbox`` is given explicitly.
"""
from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def add_grades_location(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--grades", type=Path, help="a grading output folder (the --out of 'grade')")
    where.add_argument("--course", type=Path, help="a course folder made by 'init' (its grades/ folder)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlpg-autograder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    i = sub.add_parser("init", help="make an nbgrader course folder (config, gradebook, assignments, exchange)")
    i.add_argument("course_dir", type=Path, help="the new course folder (outside this repository)")
    i.add_argument("--course-id", required=True, help="the course id students use with nbgrader (e.g. marl-2027)")
    i.add_argument("--exchange", type=Path, help="nbgrader's exchange root (default: COURSE_DIR/../exchange)")
    i.add_argument("--source", type=Path, default=REPO / "solutions", help="instructor notebooks (default: solutions/)")

    r = sub.add_parser("release", help="release assignments through nbgrader's exchange, recording each version")
    r.add_argument("assignments", nargs="+", help="e.g. ex30_7_1")
    r.add_argument("--course", type=Path, required=True, help="the course folder")

    g = sub.add_parser("grade", help="autograde a class in the sandbox (course folder, exchange inbound or LMS zip)")
    where = g.add_mutually_exclusive_group(required=True)
    where.add_argument("--course", type=Path, help="a course folder: grades its submitted/ into grades/ and the gradebook")
    where.add_argument("--submissions", type=Path, help="submitted/ folder, exchange inbound folder, or an LMS zip")
    g.add_argument("--out", type=Path, help="output folder (required with --submissions; default COURSE/grades)")
    g.add_argument("--source", type=Path, default=REPO / "solutions",
                   help="instructor notebooks, <source>/<assignment>/<assignment>.ipynb (default: solutions/)")
    g.add_argument("--assignments", nargs="+", help="grade only these assignments (default: all in the source)")
    g.add_argument("--students", nargs="+", help="regrade only these students (ids); the others' results are kept")
    g.add_argument("--regrade", action="store_true", help="grade every submission again, even those already graded")
    g.add_argument("--due", action="append", help="deadline, ISO 8601 (e.g. 2026-12-10T23:59+01:00), for all "
                                                  "assignments or as ASSIGNMENT=TIME; repeatable")
    g.add_argument("--grace", type=float, help="grace period after the deadline, in minutes (default 0)")
    g.add_argument("--late-penalty", help="late-penalty rule: '10%%/day', '5%%/hour' or '20%%' (default none)")
    g.add_argument("--late-cap", type=float, default=100.0, help="largest late penalty, in %% of the maximum (default 100)")
    g.add_argument("--extensions", type=Path, help="CSV student,assignment,due of per-student deadlines")
    g.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: all cores)")
    g.add_argument("--ray", action="store_true", help="grade each submission as a Ray task (local instance or --ray-address)")
    g.add_argument("--ray-address", default=None, help="address of a running Ray cluster (implies --ray)")
    g.add_argument("--timeout", type=float, default=60, help="seconds per cell (default 60)")
    g.add_argument("--total-timeout", type=float, default=600, help="seconds per notebook (default 600)")
    g.add_argument("--memory", type=int, default=4096,
                   help="memory limit of each sandbox in MB, all its processes together (default 4096)")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code WITHOUT bubblewrap (it can then read the solutions and write anywhere)")

    m = sub.add_parser("marks", help="hand marks from a file: 'marks template' then 'marks import'")
    msub = m.add_subparsers(dest="marks_command", required=True)
    t = msub.add_parser("template", help="write one row per student and hand-graded cell")
    add_grades_location(t)
    t.add_argument("--out", type=Path, required=True, help="the CSV to write")
    im = msub.add_parser("import", help="merge a filled-in marks file (all rows checked first)")
    im.add_argument("file", type=Path)
    add_grades_location(im)

    o = sub.add_parser("override", help="set (or --clear) the points of one autograded test, with a reason")
    add_grades_location(o)
    o.add_argument("--student", required=True)
    o.add_argument("--assignment", required=True)
    o.add_argument("--cell", required=True, help="the test cell's id")
    o.add_argument("--points", type=float)
    o.add_argument("--reason", help="why (shown to the student)")
    o.add_argument("--clear", action="store_true", help="remove the override")

    e = sub.add_parser("export", help="final grades for Canvas or Moodle (or a plain CSV)")
    add_grades_location(e)
    e.add_argument("--format", required=True, help="canvas, moodle, moodle-feedback or csv")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--assignment", help="only this assignment (Moodle's worksheet holds one)")
    e.add_argument("--allow-pending", action="store_true", help="export even while hand-graded cells are ungraded")
    e.add_argument("--column", action="append", default=[], help="Canvas column name: ASSIGNMENT='Name (id)'")

    f = sub.add_parser("feedback", help="write grades.csv, feedback pages, report and summary again")
    add_grades_location(f)

    c = sub.add_parser("check", help="for students: run the visible checks and say what will be graded")
    c.add_argument("notebook", type=Path)
    c.add_argument("--released", type=Path, default=REPO / "notebooks" / "exercises",
                   help="the released notebooks (default: notebooks/exercises/)")
    sub.add_parser("generate", help="release the student notebooks into the repository (autograder/generate.py)")
    return p


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def grades_dir(args) -> Path:
    return args.grades if args.grades is not None else args.course / "grades"


def main(argv=None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if args.command == "generate":
        return generate(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    from .course import CourseError
    from .export import ExportError
    from .marks import MarksError
    try:
        return COMMANDS[args.command](args)
    except (CourseError, ExportError, MarksError, FileNotFoundError, ValueError) as exc:
        return fail(str(exc))


def cmd_init(args) -> int:
    from .course import init_course
    names = init_course(args.course_dir, args.course_id, args.exchange, args.source)
    print(f"Course {args.course_id!r} ready in {args.course_dir} with {', '.join(names)}.\n"
          f"Next: marlpg-autograder release --course {args.course_dir} {names[0]}")
    return 0


def cmd_release(args) -> int:
    from .course import is_course, release
    if not is_course(args.course):
        return fail(f"{args.course} is not a course folder made by 'marlpg-autograder init'")
    for name in args.assignments:
        drift = release(args.course, name)
        print(f"Released {name} to the exchange.")
        for line in drift:
            print(f"  drift: {line} (students who fetched earlier are checked against their own version)")
    return 0


def cmd_grade(args) -> int:
    from .grading_run import grade_class
    return grade_class(args)


def cmd_marks(args) -> int:
    from .marks import read_marks, write_template
    from .outputs import GradingDir, write_outputs
    grading = GradingDir.load(grades_dir(args))
    results = grading.results()
    if args.marks_command == "template":
        rows = write_template(results, lambda r: r.marks, args.out)
        print(f"Wrote {rows} row(s) to {args.out}: fill in points and comment, then 'marks import'.")
        return 0
    marks = read_marks(args.file, results)
    grading.marks().set_many(marks)
    write_outputs(grading)
    print(f"Imported {len(marks)} mark(s); grades.csv and feedback written again in {grading.out}.")
    return 0


def cmd_override(args) -> int:
    from .marks import Overrides
    from .outputs import GradingDir, write_outputs
    from .results import Mark
    grading = GradingDir.load(grades_dir(args))
    result = grading.store.load(args.student, args.assignment)
    if result is None:
        return fail(f"no graded submission of {args.assignment!r} by {args.student!r} in {grading.out}")
    tests = {t.grade_id: t.points for t in result.tests}
    if not tests:
        return fail(f"{args.assignment} has no autograded tests (every point is given by hand): "
                    "enter hand marks with formgrader or 'marks import' instead")
    if args.cell not in tests:
        return fail(f"--cell {args.cell!r} is not an autograded test of {args.assignment} (they are: {', '.join(tests)})")
    overrides = Overrides(grading.out)
    if args.clear:
        overrides.clear(args.student, args.assignment, args.cell)
    else:
        if args.points is None or not args.reason:
            return fail("an override needs --points and --reason (or --clear)")
        if not 0 <= args.points <= tests[args.cell]:
            return fail(f"--points {args.points:g} is outside 0..{tests[args.cell]:g} for {args.cell}")
        overrides.set_many([(args.student, args.assignment, args.cell, Mark(args.points, args.reason, "override"))])
    write_outputs(grading)
    print(f"{'Cleared' if args.clear else 'Set'} the override of {args.cell} for {args.student}; outputs written again.")
    return 0


def cmd_export(args) -> int:
    from .export import export
    from .outputs import GradingDir
    columns = {}
    for item in args.column:
        name, sep, title = item.partition("=")
        if not sep:
            return fail(f"--column {item!r}: use ASSIGNMENT=NAME")
        columns[name] = title
    count = export(GradingDir.load(grades_dir(args)), args.format, args.out, args.assignment, args.allow_pending, columns)
    print(f"Wrote {count} result(s) to {args.out} ({args.format}).")
    return 0


def cmd_feedback(args) -> int:
    from .outputs import GradingDir, write_outputs
    grading = GradingDir.load(grades_dir(args))
    results = write_outputs(grading)
    print(f"Wrote grades.csv, {len(results)} feedback page(s), report.txt and summary.html in {grading.out}."
          + (f"\nRelease the feedback with: cd {grading.course} && nbgrader release_feedback ASSIGNMENT"
             if grading.course else ""))
    return 0


def cmd_check(args) -> int:
    from .check import check
    code, report = check(args.notebook, args.released)
    print(report)
    return code


def generate(rest: list[str]) -> int:
    script = REPO / "autograder" / "generate.py"
    sys.argv = [str(script), *[a for a in rest if a != "--"]]
    runpy.run_path(str(script), run_name="__main__")
    return 0


COMMANDS = {"init": cmd_init, "release": cmd_release, "grade": cmd_grade, "marks": cmd_marks,
            "override": cmd_override, "export": cmd_export, "feedback": cmd_feedback, "check": cmd_check}
