"""Tests of autograder/submissions.py: every layout keyed by its own ids, every unusable layout refused.

Pure Python (no kernels): layouts are built in tmp_path, zips in memory. The ownership test creates two
system users (``useradd --system``, kept for later runs) and is skipped when not run as root.
"""
from __future__ import annotations

import io
import os
import pwd
import shutil
import stat
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder import submissions  # noqa: E402
from autograder.results import safe_key  # noqa: E402
from autograder.submissions import LayoutError, collect  # noqa: E402

NB = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
ONE = {"ex30_7_1": "ex30_7_1.ipynb"}
ALL = {"ex30_7_1": "ex30_7_1.ipynb", "ex30_7_2": "ex30_7_2.ipynb", "ex30_7_3": "ex30_7_3.ipynb"}
STAMP = "2026-12-01 21:00:00.123456 UTC"
WHEN = datetime(2026, 12, 1, 21, 0, 0, 123456, tzinfo=timezone.utc)


def write(path: Path, data: bytes | str = NB) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def course_submission(root: Path, student: str, assignment: str, stamp: str | None = STAMP,
                      notebook: str | None = None, data: bytes = NB) -> Path:
    folder = root / "submitted" / student / assignment
    write(folder / (notebook or f"{assignment}.ipynb"), data)
    if stamp is not None:
        write(folder / "timestamp.txt", stamp)
    return folder


def make_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


def rows(collected):
    return sorted((s.student, s.assignment, s.problem) for s in collected.submissions)


def only(collected, student, assignment="ex30_7_1"):
    found = [s for s in collected.submissions if s.student == student and s.assignment == assignment]
    assert len(found) == 1, found
    return found[0]


# -- shared helpers stay importable (tests/test_grader.py and the grader use them)


def test_shared_helpers_are_importable():
    assert submissions.MAX_NOTEBOOK_BYTES == 20 * 2**20
    assert submissions.choose_notebook(["a.ipynb"], "b.ipynb")[:2] == ("a.ipynb", True)
    assert submissions.choose_notebook(["a.ipynb", "c.ipynb"], "b.ipynb")[0] is None
    assert submissions.is_notebook_name("x/ex.ipynb")
    assert not submissions.is_notebook_name("x/.ipynb_checkpoints/ex-checkpoint.ipynb")
    assert not submissions.is_notebook_name("__MACOSX/._ex.ipynb")
    assert callable(submissions.read_regular_file) and issubclass(LayoutError, ValueError)


def test_timestamps_are_parsed_to_aware_utc():
    parse = submissions.parse_timestamp
    assert parse(STAMP) == (WHEN, "")
    assert parse("2026-12-01T21:00:00.123456Z")[0] == WHEN
    assert parse("2026-12-01 22:00:00.123456+01:00")[0] == WHEN
    assert parse("2026-12-01 22:00:00.123456 CET")[0] == WHEN
    assert parse("2026-12-01 22:00:00.123456 Europe/Berlin")[0] == WHEN
    assert parse("  2026-12-01 21:00:00.123456789 UTC\n")[0] == WHEN  # nanoseconds truncated
    naive, note = parse("2026-12-01 21:00:00")
    assert naive == WHEN.replace(microsecond=0) and "read as UTC" in note
    for bad in ("yesterday", "", "2026-13-01 21:00:00 UTC", "2026-12-01 21:00:00 CST"):
        when, note = parse(bad)
        assert when is None and note


# -- nbgrader course folder


def test_course_keys_are_folder_names_exactly(tmp_path):
    for student in ("honest victim", "honest_victim", "José Müller", "Иван", "王小明"):
        course_submission(tmp_path, student, "ex30_7_1")
    found = collect(tmp_path, ONE)
    assert found.layout == "course"
    keys = [s.student for s in found.submissions]
    assert sorted(keys) == sorted(["honest victim", "honest_victim", "José Müller", "Иван", "王小明"])
    assert len({safe_key(k) for k in keys}) == 5  # distinct output folders
    assert all(s.problem == "" and s.content == NB and s.layout == "course" and s.lms_id == ""
               for s in found.submissions)
    assert collect(tmp_path / "submitted", ONE).submissions == found.submissions  # PATH may be submitted/


def test_course_timestamp_txt(tmp_path):
    course_submission(tmp_path, "alice", "ex30_7_1")
    course_submission(tmp_path, "bob", "ex30_7_1", stamp=None)
    course_submission(tmp_path, "carol", "ex30_7_1", stamp="not a time")
    folder = course_submission(tmp_path, "dave", "ex30_7_1", stamp=None)
    os.symlink("/etc/hostname", folder / "timestamp.txt")
    found = collect(tmp_path, ONE)
    alice = only(found, "alice")
    assert alice.timestamp == WHEN and alice.timestamp.tzinfo is not None and not alice.notes
    for student in ("bob", "carol", "dave"):
        sub = only(found, student)
        assert sub.timestamp is None and sub.problem == ""
        assert any("submission time is unknown" in n for n in sub.instructor_notes), sub.instructor_notes


def test_course_rows_only_for_assignments_present(tmp_path):
    course_submission(tmp_path, "alice", "ex30_7_1")
    course_submission(tmp_path, "alice", "ex30_7_2")
    course_submission(tmp_path, "bob", "ex30_7_1")
    found = collect(tmp_path, ALL)
    assert rows(found) == [("alice", "ex30_7_1", ""), ("alice", "ex30_7_2", ""),
                           ("bob", "ex30_7_1", ""), ("bob", "ex30_7_2", "missing")]  # nobody did ex30_7_3


def test_course_notebook_rules_and_protections(tmp_path, monkeypatch):
    course_submission(tmp_path, "misnamed", "ex30_7_1", notebook="homework.ipynb")
    several = course_submission(tmp_path, "several", "ex30_7_1", notebook="a.ipynb")
    write(several / "b.ipynb")
    linked = course_submission(tmp_path, "linked", "ex30_7_1")
    (linked / "ex30_7_1.ipynb").unlink()
    os.symlink(REPO / "autograder" / "submissions.py", linked / "ex30_7_1.ipynb")
    (tmp_path / "submitted" / "folderlink").mkdir()
    os.symlink(linked, tmp_path / "submitted" / "folderlink" / "ex30_7_1")
    fifo = tmp_path / "submitted" / "fifo" / "ex30_7_1"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "ex30_7_1.ipynb")
    course_submission(tmp_path, "huge", "ex30_7_1", data=b"x" * 2000)
    hidden = course_submission(tmp_path, "hidden", "ex30_7_1")
    write(hidden / ".ipynb_checkpoints" / "ex30_7_1-checkpoint.ipynb", b"old")
    write(hidden / ".secret.ipynb", b"old")
    os.symlink(linked.parent, tmp_path / "submitted" / "studentlink")
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 1000)
    found = collect(tmp_path, ONE)
    assert only(found, "misnamed").misnamed and only(found, "misnamed").content == NB
    assert only(found, "several").problem == "missing" and "several other notebooks" in only(found, "several").notes[-1]
    for student in ("linked", "folderlink", "fifo", "huge"):
        sub = only(found, student)
        assert sub.problem == "invalid file" and sub.content is None, (student, sub)
    assert "symbolic link" in only(found, "linked").notes[-1] and "larger than" in only(found, "huge").notes[-1]
    assert only(found, "hidden").content == NB and not only(found, "hidden").misnamed
    assert "studentlink" not in {s.student for s in found.submissions}
    assert any("studentlink" in u and "symbolic link" in u for u in found.unplaced)


# -- exchange inbound folder


def inbound_entry(inbound: Path, name: str, data: bytes = NB, stamp: str | None = None) -> Path:
    folder = inbound / name
    write(folder / "ex30_7_1.ipynb", data)
    if stamp is not None:
        write(folder / "timestamp.txt", stamp)
    return folder


def test_inbound_returns_every_attempt_with_its_time(tmp_path):
    inbound = tmp_path / "exchange" / "course" / "inbound"
    inbound_entry(inbound, "zzpq_alice+ex30_7_1+2026-11-20 10:00:00.000000 UTC+AbC-_12345678", b"first")
    inbound_entry(inbound, "zzpq_alice+ex30_7_1+2026-11-21 10:00:00.000000 UTC", b"second",
                  stamp="2026-11-25 10:00:00.000000 UTC")  # edited afterwards: the name counts, as in nbgrader
    inbound_entry(inbound, "zzpq_alice+ex30_7_1+garbled+xyz", b"third", stamp="2026-11-22 10:00:00.000000 UTC")
    inbound_entry(inbound, "zzpq_bob+ex30_7_2+2026-11-21 10:00:00.000000 UTC+x")
    inbound_entry(inbound, "zzpq_carol+other+2026-11-21 10:00:00.000000 UTC+x")
    found = collect(inbound, {"ex30_7_1": "ex30_7_1.ipynb", "ex30_7_2": "ex30_7_2.ipynb"})
    assert found.layout == "inbound" and not found.refused
    alice = [s for s in found.submissions if s.student == "zzpq_alice" and s.assignment == "ex30_7_1"]
    assert [s.content for s in alice] == [b"first", b"second", b"third"]
    assert [s.timestamp.day for s in alice] == [20, 21, 22] and all(s.timestamp.tzinfo for s in alice)
    # times and ownership are notes for the instructor's report, not the student's page
    assert "the folder name's time is used" in " ".join(alice[1].instructor_notes)
    assert "timestamp.txt is used" in " ".join(alice[2].instructor_notes)
    assert all(s.layout == "inbound" and s.assignment == "ex30_7_1" for s in alice)
    assert ("zzpq_bob", "ex30_7_1", "missing") in rows(found)
    assert ("zzpq_alice", "ex30_7_2", "missing") in rows(found)
    assert ("zzpq_bob", "ex30_7_2", "") in rows(found)  # single notebook under another name: misnamed
    assert not any(s.student == "zzpq_carol" and s.problem == "" for s in found.submissions)
    # no system user of these names here: the owner could not be checked, and the notes say so
    assert any("owner not checked" in n for n in alice[0].instructor_notes)


def system_user(name: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        pass
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a system user needs root and useradd")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   capture_output=True)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        pytest.skip(f"could not create the system user {name}")


def test_inbound_folder_owned_by_another_user_is_refused(tmp_path):
    victim, mallory = system_user("mlpgtest_victim"), system_user("mlpgtest_mallory")
    inbound = tmp_path / "inbound"
    real = inbound_entry(inbound, "mlpgtest_victim+ex30_7_1+2026-11-20 10:00:00.000000 UTC+a", b"real work")
    forged = inbound_entry(inbound, "mlpgtest_victim+ex30_7_1+2026-11-21 10:00:00.000000 UTC+b", b"sabotage")
    own = inbound_entry(inbound, "mlpgtest_mallory+ex30_7_1+2026-11-20 10:00:00.000000 UTC+c", b"mallory")
    copied = inbound_entry(inbound, "mlpgtest_mallory+ex30_7_1+2026-11-19 10:00:00.000000 UTC+d", b"copy")
    for folder, uid in ((real, victim), (forged, mallory), (own, mallory)):
        for path in (folder, *folder.iterdir()):
            os.chown(path, uid, -1)
    assert os.stat(copied).st_uid == os.geteuid() == 0
    found = collect(inbound, ONE)
    victim_attempts = [s for s in found.submissions if s.student == "mlpgtest_victim"]
    assert [s.content for s in victim_attempts] == [b"real work"] and not victim_attempts[0].notes
    assert len(found.refused) == 1
    assert "mlpgtest_victim" in found.refused[0] and "mlpgtest_mallory" in found.refused[0]
    assert forged.name in found.refused[0]
    mallory_attempts = [s for s in found.submissions if s.student == "mlpgtest_mallory"]
    assert [s.content for s in mallory_attempts] == [b"copy", b"mallory"]
    assert "owned by root" in mallory_attempts[0].instructor_notes[0]  # an administrator's copy: kept, noted


def test_refused_attempt_alone_gives_the_student_no_row(tmp_path):
    system_user("mlpgtest_victim")
    mallory = system_user("mlpgtest_mallory")
    inbound = tmp_path / "inbound"
    forged = inbound_entry(inbound, "mlpgtest_victim+ex30_7_1+2026-11-21 10:00:00.000000 UTC+b")
    inbound_entry(inbound, "zzpq_other+ex30_7_1+2026-11-21 10:00:00.000000 UTC+b")
    os.chown(forged, mallory, -1)
    found = collect(inbound, ONE)
    assert rows(found) == [("zzpq_other", "ex30_7_1", "")] and len(found.refused) == 1


# -- layouts that are refused, with what was found


@pytest.mark.parametrize("case, words", [
    ("one student", ["one student's folder", "ex30_7_1"]),
    ("one student, other assignment", ["one student's folder", "ex30_7_9"]),
    ("exchange root", ["exchange root", "course/inbound"]),
    ("exchange course", ["exchange course folder", "inbound/", "outbound/"]),
    ("inbound as a student", ["inbound/", "beside its student folders", "alice", "never student ids"]),
    ("course without submitted", ["nbgrader folders", "source/", "release/", "feedback/"]),
    ("mixed", ["mixes", "alice+ex30_7_1+2026", "bob", "carol"]),
    ("empty", ["it is empty"]),
    ("only files", ["holds no folders", "ex30_7_1.ipynb"]),
    ("nothing", ["does not exist"]),
])
def test_unusable_folders_are_refused_with_what_was_found(tmp_path, case, words):
    root = tmp_path / "given"
    if case == "one student":
        course_submission(tmp_path, "alice", "ex30_7_1")
        course_submission(tmp_path, "alice", "ex30_7_2")
        root = tmp_path / "submitted" / "alice"
    elif case == "one student, other assignment":
        course_submission(tmp_path, "alice", "ex30_7_9")
        root = tmp_path / "submitted" / "alice"
    elif case == "exchange root":
        inbound_entry(root / "course" / "inbound", f"alice+ex30_7_1+{STAMP}+x")
        (root / "course" / "outbound").mkdir()
    elif case == "exchange course":
        inbound_entry(root / "inbound", f"alice+ex30_7_1+{STAMP}+x")
        (root / "outbound" / "ex30_7_1").mkdir(parents=True)
    elif case == "inbound as a student":
        course_submission(root, "alice", "ex30_7_1")
        course_submission(root, "inbound", "ex30_7_1")
        root = root / "submitted"
    elif case == "course without submitted":
        write(root / "source" / "ex30_7_1" / "ex30_7_1.ipynb")
        write(root / "release" / "ex30_7_1" / "ex30_7_1.ipynb")
        (root / "feedback").mkdir()
    elif case == "mixed":  # once, one such folder switched the whole class to the inbound layout
        for student in ("bob", "carol"):
            course_submission(root, student, "ex30_7_1")
        inbound_entry(root / "submitted", f"alice+ex30_7_1+{STAMP}+x")
    elif case == "empty":
        root.mkdir()
    elif case == "only files":
        write(root / "ex30_7_1.ipynb")
    with pytest.raises(LayoutError) as err:
        collect(root, ALL)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


# -- Moodle zips


def test_moodle_students_are_participants_not_names(tmp_path):
    members = {
        "Jane Doe_2005_assignsubmission_file_/ex30_7_1.ipynb": b"jane 2005",
        "Jane Doe_2006_assignsubmission_file_/mine.ipynb": b"jane 2006",
        "José Núñez_2007_assignsubmission_file_/ex30_7_1.ipynb": NB,
        "Иван Петров_2008_assignsubmission_file_/ex30_7_1.ipynb": NB,
        "王小明_2009_assignsubmission_file_/ex30_7_1.ipynb": NB,
        "Élodie Ångström_2010_assignsubmission_file_ex30_7_1.ipynb": NB,  # flat download
        "Jane Doe_2005_assignsubmission_file_/notes.pdf": b"%PDF",
        "__MACOSX/Jane Doe_2005_assignsubmission_file_/._ex30_7_1.ipynb": b"junk",
        "Jane Doe_2005_assignsubmission_file_/.ipynb_checkpoints/ex30_7_1-checkpoint.ipynb": b"old",
    }
    found = collect(make_zip(tmp_path / "moodle.zip", members), ONE)
    assert found.layout == "moodle"
    assert [(s.student, s.name, s.lms_id) for s in found.submissions] == [
        ("2005", "Jane Doe", "2005"), ("2006", "Jane Doe", "2006"), ("2007", "José Núñez", "2007"),
        ("2008", "Иван Петров", "2008"), ("2009", "王小明", "2009"),
        ("2010", "Élodie Ångström", "2010")]
    assert only(found, "2005").content == b"jane 2005" and only(found, "2006").content == b"jane 2006"
    assert only(found, "2006").misnamed and not only(found, "2005").misnamed
    assert only(found, "2005").origin == "Jane Doe_2005_assignsubmission_file_/ex30_7_1.ipynb"
    assert found.unplaced == ["Jane Doe_2005_assignsubmission_file_/notes.pdf: not a notebook (.ipynb)"]


def test_zip_names_without_the_utf8_flag_keep_their_accents(tmp_path):
    path = make_zip(tmp_path / "m.zip", {"RenXX Roy_2011_assignsubmission_file_/ex30_7_1.ipynb": NB})
    path.write_bytes(path.read_bytes().replace(b"RenXX", "René".encode("utf-8")))  # same length, flag not set
    found = collect(path, ONE)
    assert [(s.student, s.name) for s in found.submissions] == [("2011", "René Roy")]


# -- Canvas zips


def test_canvas_students_are_user_ids(tmp_path):
    members = {
        "janedoe_late_12345_67890_ex30_7_1.ipynb": b"jane late",
        "janedoe_22222_67891_ex30_7_1-1.ipynb": b"other jane, resubmitted",
        "_33333_67892_ex30_7_1.ipynb": b"a name with no Latin letters",
        "sub/mary_ann_44444_67893_homework.ipynb": b"misnamed",
        "bobby_LATE_55555_67894_ex30_7_1-2.ipynb": b"bobby",
        "evil_66666_1_a_77777_2_b.ipynb": b"ambiguous",
        "../../escape_88888_67895_ex30_7_1.ipynb": b"zip-slip name",
        "canvas_without_ids_ex30_7_1.ipynb": b"?",
    }
    found = collect(make_zip(tmp_path / "canvas.zip", members), ONE)
    assert found.layout == "canvas"
    got = {s.student: s for s in found.submissions}
    assert sorted(got) == ["12345", "22222", "33333", "44444", "55555", "88888"]
    assert got["12345"].name == got["22222"].name == "janedoe" and got["12345"].lms_id == "12345"
    assert got["12345"].late_marker and got["55555"].late_marker and not got["22222"].late_marker
    assert got["22222"].content == b"other jane, resubmitted" and not got["22222"].misnamed  # -1: Canvas's counter
    assert got["22222"].filename == "ex30_7_1-1.ipynb" and not got["55555"].misnamed
    assert got["33333"].name == "" and got["33333"].content.startswith(b"a name")
    assert got["44444"].name == "mary_ann" and got["44444"].misnamed
    assert not (tmp_path.parent / "escape_88888_67895_ex30_7_1.ipynb").exists()  # nothing is extracted
    unplaced = " | ".join(found.unplaced)
    assert "evil_66666_1_a_77777_2_b.ipynb: ambiguous" in unplaced and "66666" in unplaced and "77777" in unplaced
    assert "canvas_without_ids_ex30_7_1.ipynb: not named like a Canvas" in unplaced


def test_canvas_several_files_of_one_user(tmp_path):
    members = {"jd_1001_500_ex30_7_1.ipynb": b"older", "jd_1001_501_ex30_7_1-1.ipynb": b"newer",
               "kk_1002_502_a.ipynb": NB, "kk_1002_503_b.ipynb": NB}
    found = collect(make_zip(tmp_path / "c.zip", members), ONE)
    assert only(found, "1001").content == b"newer" and "graded the last uploaded" in only(found, "1001").notes[0]
    assert only(found, "1002").problem == "missing" and "several other notebooks" in only(found, "1002").notes[0]


# -- which assignments a zip holds


def test_one_assignment_zip_gives_rows_for_that_assignment_only(tmp_path):
    members = {"a_1_10_ex30_7_1.ipynb": NB, "b_2_11_ex30_7_1.ipynb": NB}
    found = collect(make_zip(tmp_path / "one.zip", members), ALL)
    assert rows(found) == [("1", "ex30_7_1", ""), ("2", "ex30_7_1", "")]


def test_zip_student_missing_an_assignment_others_submitted(tmp_path):
    members = {"a_1_10_ex30_7_1.ipynb": NB, "a_1_11_ex30_7_2.ipynb": NB, "b_2_12_ex30_7_1.ipynb": NB,
               "c_3_13_homework.ipynb": NB}
    found = collect(make_zip(tmp_path / "two.zip", members), ALL)
    assert rows(found) == [("1", "ex30_7_1", ""), ("1", "ex30_7_2", ""), ("2", "ex30_7_1", ""),
                           ("2", "ex30_7_2", "missing")]
    assert found.unplaced == ["c_3_13_homework.ipynb: names no assignment (graded: ex30_7_1, ex30_7_2, ex30_7_3)"]


def test_only_assignment_graded_takes_any_notebook_name(tmp_path):
    found = collect(make_zip(tmp_path / "z.zip", {"c_3_13_homework.ipynb": NB}), ONE)
    assert rows(found) == [("3", "ex30_7_1", "")] and found.submissions[0].misnamed


@pytest.mark.parametrize("members, words", [
    ({"a_1_10_homework.ipynb": NB, "b_2_11_mine.ipynb": NB}, ["name no assignment", "--assignments"]),
    ({"a_1_10_ex30_7_1.ipynb": NB, "Jo_2_assignsubmission_file_/ex30_7_1.ipynb": NB}, ["mixes Canvas", "Moodle"]),
    ({"notes.pdf": b"%PDF"}, ["holds no notebooks", "notes.pdf"]),
    ({}, ["holds no notebooks", "empty"]),
    ({"submitted/alice/ex30_7_1/ex30_7_1.ipynb": NB}, ["no notebook is named like", "submitted/alice"]),
])
def test_unusable_zips_are_refused(tmp_path, members, words):
    with pytest.raises(LayoutError) as err:
        collect(make_zip(tmp_path / "bad.zip", members), ALL)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_zip_protections(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        link = zipfile.ZipInfo("ln_1_10_ex30_7_1.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../solutions/ex30_7_1/ex30_7_1.ipynb")
        zf.writestr("bomb_2_11_ex30_7_1.ipynb", b"0" * 10_000_000)
        zf.writestr("ok_3_12_ex30_7_1.ipynb", NB)
    path = tmp_path / "z.zip"
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 1000)
    found = collect(path, ONE)
    assert [(s.student, s.problem) for s in found.submissions] == [("1", "invalid file"), ("2", "invalid file"),
                                                                    ("3", "")]
    assert "symbolic link" in only(found, "1").notes[0] and "larger than" in only(found, "2").notes[0]
    monkeypatch.setattr(submissions, "MAX_ZIP_MEMBERS", 2)
    with pytest.raises(LayoutError, match="more than the 2"):
        collect(path, ONE)


def test_not_a_zip_is_refused(tmp_path):
    with pytest.raises(LayoutError, match="neither a folder nor a zip"):
        collect(write(tmp_path / "class.tar.gz", b"not a zip"), ONE)
