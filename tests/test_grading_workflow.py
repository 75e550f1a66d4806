"""The instructor's commands after grading, checked on stored results with hand-computed numbers:
deadlines and penalties, attempts, hand marks (template, import, refusals), overrides, exports for Canvas and
Moodle, regrades of one student and resuming an interrupted run (these two with real sandboxed kernels)."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURE = REPO / "tests" / "fixtures" / "grader" / "source"

from autograder import deadlines as dl  # noqa: E402
from autograder.cli import main  # noqa: E402
from autograder.outputs import GradingDir  # noqa: E402
from autograder.results import ManualCell, Mark, Result, ResultStore, TestResult, safe_key  # noqa: E402
from autograder.sandbox import check_bwrap  # noqa: E402

needs_bwrap = pytest.mark.skipif(check_bwrap() is not None, reason="bubblewrap does not work here")


def utc(text: str) -> datetime:
    return dl.parse_time(text)


# ---- deadlines ------------------------------------------------------------------------------------------

def test_times_parse_with_and_without_offsets():
    assert utc("2026-12-10T23:59") == datetime(2026, 12, 10, 23, 59, tzinfo=timezone.utc)
    assert utc("2026-12-10T23:59+01:00") == datetime(2026, 12, 10, 22, 59, tzinfo=timezone.utc)
    assert utc("2026-12-10 23:59:00.5 UTC").microsecond == 500000
    with pytest.raises(ValueError, match="'tomorrow' is not a date"):
        dl.parse_time("tomorrow", "--due")


@pytest.mark.parametrize("rule, late_hours, percent", [
    ("10%/day", 0.0, 0.0), ("10%/day", 0.5, 10.0), ("10%/day", 24.0, 10.0), ("10%/day", 24.01, 20.0),
    ("5%/hour", 2.5, 15.0), ("20%", 100.0, 20.0), ("30%/day", 24 * 5, 100.0)])
def test_penalty_rules(rule, late_hours, percent):
    assert dl.PenaltyRule.parse(rule).percent_for(late_hours * 3600) == pytest.approx(percent)


def test_penalty_cap_and_bad_rules():
    assert dl.PenaltyRule.parse("30%/day", cap=50).percent_for(86400 * 5) == 50
    for bad in ("10", "ten%/day", "10%/week"):
        with pytest.raises(ValueError, match="is not a rule"):
            dl.PenaltyRule.parse(bad)


def test_extension_grace_and_due_per_assignment(tmp_path):
    ext = tmp_path / "ext.csv"
    ext.write_text("student,assignment,due\nbob,fx1,2026-12-12T12:00\ncarol,,2026-12-20T00:00\n", encoding="utf-8")
    d = dl.Deadlines(due=dl.parse_due_arguments(["2026-12-10T00:00", "fx2=2026-12-11T00:00"], ["fx1", "fx2"]),
                     grace_seconds=600, extensions=dl.read_extensions(ext))
    assert d.due_for("alice", "fx1") == utc("2026-12-10T00:00") and d.due_for("alice", "fx2") == utc("2026-12-11T00:00")
    assert d.due_for("bob", "fx1") == utc("2026-12-12T12:00") and d.due_for("bob", "fx2") == utc("2026-12-11T00:00")
    assert d.due_for("carol", "fx2") == utc("2026-12-20T00:00")
    assert d.late_seconds("alice", "fx1", utc("2026-12-10T00:09")) == 0  # within the 10-minute grace
    assert d.late_seconds("alice", "fx1", utc("2026-12-10T00:20")) == 600
    with pytest.raises(ValueError, match="names assignment 'fx9'"):
        dl.parse_due_arguments(["fx9=2026-12-10T00:00"], ["fx1"])


class Attempt:
    def __init__(self, student, when):
        self.student, self.assignment, self.notes = student, "fx1", []
        self.timestamp = utc(when) if when else None


def test_the_last_attempt_before_the_deadline_counts():
    d = dl.Deadlines(due={"*": utc("2026-12-10T00:00")})
    early, on_time, late = (Attempt("a", "2026-12-08T00:00"), Attempt("a", "2026-12-09T23:00"),
                            Attempt("a", "2026-12-11T00:00"))
    assert dl.pick_attempts([late, early, on_time], d) == [on_time]
    assert "the last one before the deadline" in on_time.notes[0]
    only_late = [Attempt("b", "2026-12-11T00:00"), Attempt("b", "2026-12-12T00:00")]
    assert dl.pick_attempts(only_late, d) == [only_late[1]]


def make_result(student="s1", assignment="fx1", earned=(2.0, 0.0), timestamp="", name="", lms_id="", marker=False):
    return Result(student=student, assignment=assignment, name=name or student, lms_id=lms_id,
                  tests=[TestResult("test_square", 2, earned[0], "passed" if earned[0] else "failed"),
                         TestResult("test_mean", 3, earned[1], "passed" if earned[1] else "failed")],
                  manual=[ManualCell("explain", 2, "Linearity.")], auto_max=5, manual_max=2,
                  timestamp=timestamp, late_marker=marker, layout="course")


def grading_dir(tmp_path, results, **deadlines) -> GradingDir:
    grading = GradingDir(tmp_path / "out", FIXTURE, None, dl.Deadlines(**deadlines))
    grading.out.mkdir()
    grading.save()
    for r in results:
        ResultStore(grading.out).save(r)
    return grading


def test_late_penalty_is_taken_from_the_total(tmp_path):
    due = {"*": utc("2026-12-10T00:00")}
    rule = dl.PenaltyRule.parse("10%/day")
    grading = grading_dir(tmp_path, [make_result("ontime", timestamp="2026-12-09T10:00:00+00:00", earned=(2, 3)),
                                     make_result("late", timestamp="2026-12-11T10:00:00+00:00", earned=(2, 3)),
                                     make_result("marked", earned=(2, 3), marker=True)], due=due, rule=rule)
    rows = {r.student: r for r in grading.results()}
    assert rows["ontime"].late_penalty == 0 and "late" not in rows["ontime"].statuses
    # 34 h late: two started days, 20% of the 7-point maximum
    assert rows["late"].late_penalty == pytest.approx(1.4) and "late" in rows["late"].statuses
    assert rows["late"].late_seconds == 34 * 3600
    assert rows["marked"].late_penalty == pytest.approx(0.7)  # Canvas's marker without a time: one period
    grading.marks().set_many([("late", "fx1", "explain", dl_mark(2))])
    assert {r.student: r for r in grading.results()}["late"].total == pytest.approx(5 + 2 - 1.4)


def dl_mark(points, comment=""):
    from autograder.results import Mark
    return Mark(points, comment, "test")


# ---- marks, overrides, exports ---------------------------------------------------------------------------

def class_of_three(tmp_path) -> GradingDir:
    return grading_dir(tmp_path, [
        make_result("2005", earned=(2, 3), name="José Muñoz", lms_id="2005"),
        make_result("2006", earned=(2, 0), name="José Muñoz", lms_id="2006"),
        make_result("=cmd|'/c calc'!A0", earned=(0, 0), name="=HYPERLINK(\"x\")", lms_id="2007")])


def cli(*args) -> int:
    return main([str(a) for a in args])


def test_marks_template_import_and_totals(tmp_path, capsys):
    grading = class_of_three(tmp_path)
    template = tmp_path / "marks.csv"
    assert cli("marks", "template", "--grades", grading.out, "--out", template) == 0
    rows = list(csv.DictReader(template.open(encoding="utf-8")))
    assert [(r["student"], r["cell_id"], r["max_points"], r["rubric"]) for r in rows][:1] == \
        [("2005", "explain", "2", "Linearity.")]
    marks = {"2005": ("2", "Clear — très bien"), "2006": ("1.5", ""), "=cmd|'/c calc'!A0": ("0", "blank")}
    for r in rows:
        r["points"], r["comment"] = marks[r["student"]]
    write_csv(template, rows)
    assert cli("marks", "import", template, "--grades", grading.out) == 0
    graded = {r["student"]: r for r in csv.DictReader((grading.out / "grades.csv").open(encoding="utf-8"))}
    assert (graded["2005"]["total"], graded["2006"]["total"]) == ("7", "3.5")
    assert graded["2005"]["name"] == graded["2006"]["name"] == "José Muñoz"  # two students, one name
    assert graded["2005"]["final"] == "yes" and graded["2005"]["ungraded_cells"] == ""
    formula = next(r for k, r in graded.items() if "calc" in k)
    assert formula["student"].startswith("'=") and formula["name"].startswith("'=")


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_bad_marks_are_refused_naming_every_row_and_nothing_changes(tmp_path, capsys):
    grading = class_of_three(tmp_path)
    bad = tmp_path / "bad.csv"
    write_csv(bad, [{"student": "2005", "assignment": "fx1", "cell_id": "explain", "points": "3"},
                    {"student": "nobody", "assignment": "fx1", "cell_id": "explain", "points": "1"},
                    {"student": "2006", "assignment": "fx1", "cell_id": "explain", "points": "two"},
                    {"student": "2006", "assignment": "fx1", "cell_id": "test_mean", "points": "1"}])
    assert cli("marks", "import", bad, "--grades", grading.out) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "outside 0..2" in err
    assert "line 3" in err and "no graded submission of 'fx1' by student 'nobody'" in err
    assert "line 4" in err and "'two' is not a number" in err
    assert "line 5" in err and "not a hand-graded cell" in err
    assert not (grading.out / "marks.json").exists()


def test_export_refuses_pending_totals_then_writes_canvas_and_moodle(tmp_path, capsys):
    grading = class_of_three(tmp_path)
    out = tmp_path / "canvas.csv"
    assert cli("export", "--grades", grading.out, "--format", "canvas", "--out", out) == 2
    assert "not final" in capsys.readouterr().err and not out.exists()
    grading.marks().set_many([(s, "fx1", "explain", dl_mark(p)) for s, p in
                              (("2005", 2), ("2006", 1), ("=cmd|'/c calc'!A0", 0))])
    assert cli("export", "--grades", grading.out, "--format", "canvas", "--out", out,
               "--column", "fx1=Exercise fx1 (4711)") == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Exercise fx1 (4711)"]
    assert rows[1][-1] == "7"  # Points Possible
    by_id = {r[1]: r for r in rows[2:]}
    assert by_id["2005"][-1] == "7" and by_id["2006"][-1] == "3" and by_id["2007"][-1] == "0"
    worksheet = tmp_path / "moodle.csv"
    assert cli("export", "--grades", grading.out, "--format", "moodle", "--out", worksheet) == 0
    moodle = {r["Identifier"]: r for r in csv.DictReader(worksheet.open(encoding="utf-8"))}
    assert moodle["Participant 2005"]["Grade"] == "7" and moodle["Participant 2006"]["Grade"] == "3"
    assert moodle["Participant 2005"]["Full name"] == "José Muñoz" and moodle["Participant 2005"]["Maximum Grade"] == "7"
    assert moodle["Participant 2007"]["Full name"].startswith("'=")
    assert cli("export", "--grades", grading.out, "--format", "excel", "--out", out) == 2
    assert "choose one of canvas" in capsys.readouterr().err


def test_moodle_export_needs_participant_ids(tmp_path, capsys):
    grading = grading_dir(tmp_path, [make_result("alice", earned=(2, 3))])
    grading.marks().set_many([("alice", "fx1", "explain", dl_mark(2))])
    assert cli("export", "--grades", grading.out, "--format", "moodle", "--out", tmp_path / "m.csv") == 2
    assert "participant id" in capsys.readouterr().err


def test_override_with_reason_changes_the_total_and_is_checked(tmp_path, capsys):
    grading = class_of_three(tmp_path)
    args = ["override", "--grades", grading.out, "--student", "2006", "--assignment", "fx1"]
    assert cli(*args, "--cell", "test_mean", "--points", "3", "--reason", "the tolerance was too tight") == 0
    result = next(r for r in grading.results() if r.student == "2006")
    assert result.score == 5 and result.overrides["test_mean"].comment == "the tolerance was too tight"
    assert cli(*args, "--cell", "test_mean", "--points", "4", "--reason", "x") == 2
    assert "outside 0..3" in capsys.readouterr().err
    assert cli(*args, "--cell", "explain", "--points", "1", "--reason", "x") == 2
    assert cli(*args, "--cell", "test_mean", "--points", "1") == 2  # no reason
    assert cli(*args, "--cell", "test_mean", "--clear") == 0
    assert next(r for r in grading.results() if r.student == "2006").score == 2


def test_student_folders_never_collide():
    keys = {safe_key(s) for s in ("honest victim", "honest_victim", "../x", "Ελένη", "名前", "a/b", "a_b")}
    assert len(keys) == 7 and all("/" not in k and not k.startswith(".") for k in keys)
    assert safe_key("s123") == "s123"


def test_init_refuses_a_folder_inside_the_repository(capsys):
    assert cli("init", REPO / "my-course", "--course-id", "x") == 2
    assert "inside the course repository" in capsys.readouterr().err
    assert not (REPO / "my-course").exists()


# ---- regrades and resuming, with real kernels -----------------------------------------------------------

def fixture_class(tmp_path, names=("alice", "bob", "carol", "dave")):
    sys.path.insert(0, str(REPO / "tests"))
    from test_grader import CORRECT_MEAN, WRONG_MEAN, student_nb
    from autograder.rebuild import load_assignment
    a = load_assignment(FIXTURE / "fx1")
    root = tmp_path / "course" / "submitted"
    for i, name in enumerate(names):
        (root / name / "fx1").mkdir(parents=True)
        nbformat.write(student_nb(a, mean=CORRECT_MEAN if i % 2 == 0 else WRONG_MEAN), root / name / "fx1" / "fx1.ipynb")
    return root, a


def grade(tmp_path, *extra):
    cmd = [sys.executable, "-m", "autograder", "grade", "--submissions", str(tmp_path / "course"), "--out",
           str(tmp_path / "out"), "--source", str(FIXTURE), "--timeout", "20", "--total-timeout", "60",
           "--memory", "1024", "--jobs", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)


def grades(tmp_path) -> dict:
    return {r["student"]: r for r in csv.DictReader((tmp_path / "out" / "grades.csv").open(encoding="utf-8"))}


@needs_bwrap
def test_regrade_one_student_keeps_the_class_and_the_marks(tmp_path):
    root, a = fixture_class(tmp_path)
    assert grade(tmp_path).returncode == 0
    before = grades(tmp_path)
    assert before["bob"]["autograded_score"] == "2"
    assert cli("override", "--grades", tmp_path / "out", "--student", "carol", "--assignment", "fx1",
               "--cell", "test_mean", "--points", "1", "--reason", "partial credit") == 0
    sys.path.insert(0, str(REPO / "tests"))
    from test_grader import student_nb
    nbformat.write(student_nb(a), root / "bob" / "fx1" / "fx1.ipynb")  # bob fixes his answer
    result = grade(tmp_path, "--students", "bob")
    assert result.returncode == 0, result.stderr
    assert "Graded 1 submission" in result.stdout
    after = grades(tmp_path)
    assert set(after) == set(before) and after["bob"]["autograded_score"] == "5"
    assert after["carol"]["autograded_score"] == "3"  # carol's override (2 + 1) survived
    assert grade(tmp_path, "--students", "zed").returncode == 2
    again = grade(tmp_path)  # nothing changed: every submission is kept
    assert "Graded 0 submission" in again.stdout and "4 already graded" in again.stdout


@needs_bwrap
def test_a_killed_run_resumes_and_loses_nothing(tmp_path):
    fixture_class(tmp_path, names=[f"s{i}" for i in range(6)])
    cmd = [sys.executable, "-m", "autograder", "grade", "--submissions", str(tmp_path / "course"), "--out",
           str(tmp_path / "out"), "--source", str(FIXTURE), "--timeout", "20", "--total-timeout", "60",
           "--memory", "1024", "--jobs", "1"]
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    store = tmp_path / "out" / "results"
    deadline = time.monotonic() + 300
    while len(list(store.glob("*/*.json"))) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = {p.parent.name for p in store.glob("*/*.json")}
    assert 2 <= len(done) < 6, done
    result = grade(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(done)} already graded" in result.stdout
    rows = grades(tmp_path)
    assert sorted(rows) == [f"s{i}" for i in range(6)]
    assert [rows[f"s{i}"]["autograded_score"] for i in range(6)] == ["5", "2"] * 3


# ---- the student's check ---------------------------------------------------------------------------------

def released_folder(tmp_path) -> tuple[Path, object]:
    from autograder.rebuild import load_assignment
    a = load_assignment(FIXTURE / "fx1")
    released = tmp_path / "released" / "fx1"
    released.mkdir(parents=True)
    nbformat.write(a.released, released / "fx1.ipynb")
    return released.parent, a


def test_check_says_what_will_be_graded(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from test_grader import student_nb
    from autograder.check import check
    released, a = released_folder(tmp_path)
    nbformat.write(student_nb(a), tmp_path / "fx1.ipynb")
    code, report = check(tmp_path / "fx1.ipynb", released, timeout=60)
    assert code == 0, report
    assert "ok test_square (2 points)" in report and "hidden checks will also run" in report
    assert "explain (2 points): graded by hand" in report and report.endswith("Ready to submit.")

    wrong = student_nb(a, mean="def mean_reward(rewards):\n    return 0.0", explain=None)
    wrong.cells[[i for i, c in enumerate(wrong.cells) if "assert abs(mean_reward" in c.source][0]].source = "assert True"
    nbformat.write(wrong, tmp_path / "homework.ipynb")
    code, report = check(tmp_path / "homework.ipynb", released, timeout=60)
    assert code == 1
    assert "Submit it as fx1.ipynb" in report and "test cell 'test_mean' was edited" in report
    assert "x test_mean (3 points): visible check failed: AssertionError at: assert abs(mean_reward([1, 2, 3]) - 2)" in report
    assert "You have not answered explain yet" in report and "Not ready" in report
    assert "BEGIN HIDDEN" not in report


def test_check_names_a_notebook_of_no_exercise(tmp_path):
    from autograder.check import check
    released, _ = released_folder(tmp_path)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), tmp_path / "x.ipynb")
    code, report = check(tmp_path / "x.ipynb", released)
    assert code == 2 and "has none of the cells of fx1" in report


# ---- an exercise without automatic points (Exercise 30.7.1: every point is given by hand) --------------

HAND_ONLY = "ex30_7_1"
HAND_CELLS = {"ex30_7_1-a-argument": 3, "ex30_7_1-b-argument": 2, "ex30_7_1-c-answer": 3}


def hand_only_answers(direction: str) -> nbformat.NotebookNode:
    """The released 30.7.1 with (a) answered ``direction``, (b) "grows", and a sentence in each written cell."""
    nb = nbformat.read(REPO / "notebooks" / "exercises" / HAND_ONLY / f"{HAND_ONLY}.ipynb", as_version=4)
    answers = {"ex30_7_1-a-answer": f'GAP_AS_N_GROWS = "{direction}"', "ex30_7_1-b-answer": 'GAP_AS_COUPLING_GROWS = "grows"',
               **{gid: "The running average lags the team's mean reward." for gid in HAND_CELLS}}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nb


def hand_only_submissions(root: Path) -> None:
    """submitted/<student>/ex30_7_1/: 'shrinks' (against the course's measurement), 'blank' (as released) and
    'empty' (a 0-byte file)."""
    released = nbformat.read(REPO / "notebooks" / "exercises" / HAND_ONLY / f"{HAND_ONLY}.ipynb", as_version=4)
    for student, content in (("shrinks", nbformat.writes(hand_only_answers("shrinks"))),
                             ("blank", nbformat.writes(released)), ("empty", "")):
        folder = root / "submitted" / student / HAND_ONLY
        folder.mkdir(parents=True)
        (folder / f"{HAND_ONLY}.ipynb").write_text(content, encoding="utf-8")
        (folder / "timestamp.txt").write_text("2026-12-01 21:00:00.000000 UTC", encoding="utf-8")


def grades_by_student(path: Path) -> dict:
    return {r["student"]: r for r in csv.DictReader(path.open(encoding="utf-8"))}


@needs_bwrap
def test_an_exercise_without_automatic_points_grades_marks_exports_and_feeds_back(tmp_path, capsys):
    hand_only_submissions(tmp_path / "class")
    out = tmp_path / "out"
    assert cli("grade", "--submissions", tmp_path / "class", "--out", out, "--assignments", HAND_ONLY,
               "--jobs", "1", "--timeout", "60", "--memory", "2048") == 0
    rows = grades_by_student(out / "grades.csv")
    # "shrinks" for (a) costs nothing: there is no automatic point, and the maximum is all hand-graded.
    assert {s: (r["autograded_score"], r["autograded_max"], r["manual_max"], r["max_score"]) for s, r in rows.items()} \
        == {s: ("0", "0", "8", "8") for s in ("shrinks", "blank", "empty")}
    assert rows["shrinks"]["status"] == "ok" and rows["shrinks"]["ungraded_cells"] == " ".join(HAND_CELLS)
    assert "unanswered" in rows["blank"]["status"] and rows["empty"]["status"] == "empty"
    shrinks = ResultStore(out).load("shrinks", HAND_ONLY)
    printed = [o.get("text", "") for c in shrinks.notebook.cells for o in c.get("outputs", [])]
    assert "recorded prediction for (a): shrinks\n" in printed  # recorded for 30.7.2's reconciliation

    # Hand marks for every cell of every student (the empty submission too), then the totals and exports.
    template = tmp_path / "marks.csv"
    assert cli("marks", "template", "--grades", out, "--out", template) == 0
    marked = list(csv.DictReader(template.open(encoding="utf-8")))
    assert sorted((r["student"], r["cell_id"], r["max_points"]) for r in marked) == sorted(
        (s, gid, str(p)) for s in ("shrinks", "blank", "empty") for gid, p in HAND_CELLS.items())
    for r in marked:
        r["points"] = {"shrinks": {"ex30_7_1-a-argument": "2.5"}.get(r["cell_id"], r["max_points"])}.get(r["student"], "0")
    write_csv(template, marked)
    assert cli("marks", "import", template, "--grades", out) == 0
    rows = grades_by_student(out / "grades.csv")
    assert (rows["shrinks"]["total"], rows["blank"]["total"], rows["empty"]["total"]) == ("7.5", "0", "0")
    canvas = tmp_path / "canvas.csv"
    assert cli("export", "--grades", out, "--format", "canvas", "--out", canvas) == 0
    table = list(csv.reader(canvas.open(encoding="utf-8")))
    assert table[1][-1] == "8" and {r[3]: r[-1] for r in table[2:]} == {"blank": "0", "empty": "0", "shrinks": "7.5"}
    assert cli("export", "--grades", out, "--format", "csv", "--out", tmp_path / "plain.csv") == 0
    plain = grades_by_student(tmp_path / "plain.csv")
    assert plain["shrinks"]["total"] == "7.5" and plain["shrinks"]["max_score"] == "8" and plain["shrinks"]["final"] == "yes"

    # No test to override; the feedback page and the summary say that nothing is automatic, never "0 / 0".
    capsys.readouterr()
    assert cli("override", "--grades", out, "--student", "shrinks", "--assignment", HAND_ONLY, "--cell",
               "ex30_7_1-a-format", "--points", "1", "--reason", "x") == 2
    assert "has no autograded tests" in capsys.readouterr().err
    assert cli("feedback", "--grades", out) == 0
    page = (out / "feedback" / "shrinks" / HAND_ONLY / f"{HAND_ONLY}.html").read_text(encoding="utf-8")
    assert "none in this exercise (every point is given by hand)" in page and "0 / 0" not in page
    assert "7.5 / 8" in page and "✘" not in page
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert "every point is given by hand" in summary and "Test cells" not in summary
    assert "median 0 of 8" in summary
    report = (out / "report.txt").read_text(encoding="utf-8")
    assert "shrinks (shrinks) / ex30_7_1: 7.5 of 8 (automatic 0/0, by hand 7.5/8" in report


@needs_bwrap
def test_a_course_with_an_exercise_without_automatic_points(tmp_path):
    """Through nbgrader's own commands (generate_assignment, the gradebook formgrader reads): every submission of
    an exercise without autograded tests, an empty one too, is in the gradebook with its hand-graded cells."""
    from autograder import course as course_folder
    course = tmp_path / "course"
    course_folder.init_course(course, "zero-auto", tmp_path / "exchange", assignments=[HAND_ONLY])
    hand_only_submissions(course)
    assert cli("grade", "--course", course, "--assignments", HAND_ONLY, "--jobs", "1", "--timeout", "60",
               "--memory", "2048") == 0
    with course_folder.gradebook(course) as gb:
        notebooks = {s: gb.find_submission_notebook(HAND_ONLY, HAND_ONLY, s) for s in ("shrinks", "blank", "empty")}
        for notebook in notebooks.values():
            assert {g.name for g in notebook.grades} == set(HAND_CELLS)
            assert all(g.needs_manual_grade for g in notebook.grades)
        assert gb.find_assignment(HAND_ONLY).max_score == 8
    marks = course_folder.GradebookMarks(course)
    marks.set_many([(s, HAND_ONLY, gid, Mark(p if s == "shrinks" else 0, "", "test"))
                    for s in ("shrinks", "blank", "empty") for gid, p in HAND_CELLS.items()])
    assert cli("export", "--course", course, "--format", "csv", "--out", tmp_path / "final.csv") == 0
    final = grades_by_student(tmp_path / "final.csv")
    assert {s: (r["total"], r["max_score"], r["final"]) for s, r in final.items()} == \
        {"shrinks": ("8", "8", "yes"), "blank": ("0", "8", "yes"), "empty": ("0", "8", "yes")}
    assert cli("feedback", "--course", course) == 0
    page = (course / "feedback" / "shrinks" / HAND_ONLY / f"{HAND_ONLY}.html").read_text(encoding="utf-8")
    assert "none in this exercise" in page and "8 / 8" in page


def test_check_on_an_exercise_without_automatic_points(tmp_path):
    """The student's check says nothing is graded automatically, and a prediction outside the allowed words
    (its self-check fails, earning no point either way) is not ready to submit."""
    from autograder.check import check
    nbformat.write(hand_only_answers("shrinks"), tmp_path / f"{HAND_ONLY}.ipynb")
    code, report = check(tmp_path / f"{HAND_ONLY}.ipynb", timeout=60)
    assert code == 0, report
    assert "No cell of this exercise is graded automatically" in report and report.endswith("Ready to submit.")
    assert "ex30_7_1-a-argument (3 points): graded by hand" in report
    nbformat.write(hand_only_answers("bigger"), tmp_path / f"{HAND_ONLY}.ipynb")
    code, report = check(tmp_path / f"{HAND_ONLY}.ipynb", timeout=60)
    assert code == 1 and "raised AssertionError" in report and report.endswith("Not ready: see the lines marked above."), report
