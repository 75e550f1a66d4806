"""Find each student's notebook for each assignment in a class's layout, keyed by the layout's own id.

Accepted layouts (``collect`` recognises which one PATH is, or refuses it with ``LayoutError``):

* ``course``: nbgrader's course folder after ``nbgrader collect``,
  ``COURSE/submitted/<student id>/<assignment>/<notebook>.ipynb`` (PATH is COURSE or COURSE/submitted).
  The key is the folder's name exactly as written (``honest victim`` and ``honest_victim`` are two
  students). The submission time is nbgrader's ``timestamp.txt`` in the assignment folder.
* ``inbound``: the JupyterHub exchange's inbound folder before ``nbgrader collect``,
  ``exchange/<course>/inbound/<student id>+<assignment>+<timestamp>[+<random>]/``. Every folder is one
  attempt with its own timestamp (the caller picks which attempt counts). As in nbgrader's collect, a
  folder must be owned by the student it names: one owned by another (non-root) user is refused and
  never stands in for that student's own attempts.
* ``canvas``: a Canvas zip, files ``<name slug>_[late_]<user id>_<submission id>_<original name>`` at any
  depth; key = user id, ``-1``, ``-2``... before ``.ipynb`` is Canvas's resubmission counter.
* ``moodle``: a Moodle zip, ``<Full Name>_<participant id>_assignsubmission_file_/<any>.ipynb`` (or the
  flat ``..._assignsubmission_file_<any>.ipynb``); key = participant id, name = full name.

Identity is never guessed from a display name: two students with the same name are two students, and
names keep their Unicode (they are only displayed; ``results.safe_key`` makes folder names from keys).

Protects against: a student's folder or file standing in for another student (ownership of inbound
folders; ids, not names); a layout graded as a class of zeros (the wrong folder, an exchange root, one
student's folder, a mix of layouts, an empty folder: all refused with what was found); symbolic links and
special files (a link to ``solutions/`` would otherwise be read by the trusted grader); zip-slip (nothing
is extracted: members are read into memory); zip bombs and huge files (every notebook is read with a size
cap, zips with too many members are refused); ``__MACOSX/``, dotfiles and ``.ipynb_checkpoints``.
"""
from __future__ import annotations

import os
import pwd
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_ZIP_MEMBERS = 20000
MAX_TIMESTAMP_BYTES = 1024

ACCEPTED = ("accepted: an nbgrader course folder (COURSE or COURSE/submitted, holding "
            "<student>/<assignment>/<notebook>.ipynb), an exchange inbound folder (exchange/<course>/inbound, "
            "holding <student>+<assignment>+<timestamp>[+<random>]/), or a Canvas or Moodle submissions zip")
EXCHANGE_FOLDERS = {"inbound", "outbound", "feedback"}
COURSE_FOLDERS = {"source", "release", "autograded", "submitted", "feedback"}


class LayoutError(ValueError):
    """PATH is not a layout the grader can make sense of; the message names what was found and what is accepted."""


@dataclass
class Submission:
    """One attempt of one student at one assignment: its bytes, or the problem that prevents grading it."""

    student: str  # the layout's own id: nbgrader student id, Canvas user id, Moodle participant id
    assignment: str
    name: str = ""  # display name, Unicode kept ('' when the layout has none: use the id)
    lms_id: str = ""  # Canvas user id / Moodle participant id ('' for nbgrader ids)
    layout: str = ""  # 'course', 'inbound', 'canvas', 'moodle'
    timestamp: datetime | None = None  # aware UTC
    late_marker: bool = False  # the LMS marked it late
    origin: str = ""  # where it came from, for the instructor's report (folder or zip member path)
    filename: str = ""
    content: bytes | None = None
    problem: str = ""  # status code: 'missing', 'invalid file' ('' when content is there)
    notes: list[str] = field(default_factory=list)
    instructor_notes: list[str] = field(default_factory=list)  # for the report only (times, ownership)
    misnamed: bool = False


@dataclass
class Collected:
    submissions: list[Submission]  # may hold several attempts of one (student, assignment); 'missing' only without any
    unplaced: list[str]  # zip members / folders that could not be placed, with why, in plain words
    refused: list[str]  # attempts refused (e.g. wrong owner), with why
    layout: str  # which layout was recognised


def collect(path: Path, expected: dict[str, str]) -> Collected:
    """Every attempt in PATH (a folder or a zip); ``expected`` maps assignment name to its notebook file name."""
    path = Path(path)
    if not expected:
        raise ValueError("collect() needs at least one assignment to look for")
    if path.is_file() and zipfile.is_zipfile(path):
        return collect_zip(path, expected)
    if path.is_dir():
        return collect_folder(path, expected)
    what = "does not exist" if not path.exists() else "is neither a folder nor a zip file"
    raise LayoutError(f"{path} {what}; {ACCEPTED}")


# ---------------------------------------------------------------------------------------------------------------
# Rules shared by every layout


def read_regular_file(path: Path, limit: int | None = None) -> tuple[bytes | None, str]:
    """The file's bytes, refusing links, special files and files over the size cap."""
    limit = MAX_NOTEBOOK_BYTES if limit is None else limit
    try:
        info = os.lstat(path)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return None, f"{path.name} is a symbolic link (not read)"
    if not stat.S_ISREG(info.st_mode):
        return None, f"{path.name} is not a regular file"
    if info.st_size > limit:
        return None, f"{path.name} is larger than {size_words(limit)}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped for a special file after lstat
            return None, f"{path.name} is not a regular file"
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew after lstat
        return None, f"{path.name} is larger than {size_words(limit)}"
    return data, ""


def size_words(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit} bytes"


def choose_notebook(names: list[str], expected: str) -> tuple[str | None, bool, str]:
    """(chosen name, misnamed?, note): the expected name, else the only notebook, else none."""
    if expected in names:
        return expected, False, ""
    if len(names) == 1:
        return names[0], True, f"notebook named {names[0]} instead of {expected} (graded anyway)"
    if not names:
        return None, False, f"no notebook found (expected {expected})"
    return None, False, f"no {expected}, and several other notebooks ({', '.join(sorted(names))}): none graded"


def is_skipped_name(path: str) -> bool:
    """``__MACOSX/``, dotfiles, dot-folders and ``.ipynb_checkpoints``: never a submission."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".", "..")]  # '..': never extracted
    return any(p.startswith(".") for p in parts) or (bool(parts) and parts[0] == "__MACOSX")


def is_notebook_name(name: str) -> bool:
    return name.rsplit("/", 1)[-1].endswith(".ipynb") and not is_skipped_name(name)


def parse_timestamp(text: str) -> tuple[datetime | None, str]:
    """(aware UTC datetime, note) from nbgrader's timestamp (``2026-12-01 21:00:00.123456 UTC``), ISO 8601
    (``T``, ``Z``, ``+01:00``), a zone name or common abbreviation; (None, why) when it cannot be read."""
    text = text.strip()
    match = TIMESTAMP.match(text)
    if not match:
        return None, f"unreadable timestamp {text[:60]!r}"
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        form = "%Y-%m-%d %H:%M:%S" if match["time"].count(":") == 2 else "%Y-%m-%d %H:%M"
        local = datetime.strptime(f"{match['date']} {match['time']}", form).replace(microsecond=int(fraction))
    except ValueError:
        return None, f"unreadable timestamp {text[:60]!r}"
    zone, note = time_zone(match["zone"].strip())
    if zone is None:
        return None, note
    if zone == "naive":
        return local.replace(tzinfo=timezone.utc), f"timestamp {text!r} names no time zone: read as UTC"
    return local.replace(tzinfo=zone).astimezone(timezone.utc), note


TIMESTAMP = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
                       r"(?P<zone>.*)$")
ZONE_OFFSETS = {"UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2, "EET": 2,
                "EEST": 3, "MSK": 3, "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
                "EST": -5, "EDT": -4, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}  # not CST, IST: ambiguous


def time_zone(text: str):
    """(tzinfo, note), ('naive', '') without a zone, (None, why) for a zone that cannot be read."""
    if not text:
        return "naive", ""
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if offset:
        sign = 1 if offset[1] == "+" else -1
        return timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3]))), ""
    if text.upper() in ZONE_OFFSETS:
        return timezone(timedelta(hours=ZONE_OFFSETS[text.upper()])), ""
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(text), ""
    except Exception:  # unknown or ambiguous zone name (e.g. CST)
        return None, f"timestamp time zone {text[:30]!r} is unknown or ambiguous"


def read_timestamp_file(path: Path) -> tuple[datetime | None, str]:
    """nbgrader's ``timestamp.txt`` (a regular file, a few bytes): the time, or None with why not."""
    if not os.path.lexists(path):
        return None, f"no timestamp.txt in {path.parent.name}: the submission time is unknown"
    data, problem = read_regular_file(path, MAX_TIMESTAMP_BYTES)
    if problem:
        return None, f"timestamp.txt not read ({problem}): the submission time is unknown"
    when, note = parse_timestamp(data.decode("utf-8", errors="replace"))
    if when is None:
        return None, f"timestamp.txt not read ({note}): the submission time is unknown"
    return when, note


def missing_rows(students: dict[str, Submission], attempts: list[Submission], layout: str) -> list[Submission]:
    """A 'missing' row for each student and each assignment present in the layout that they did not submit.

    ``students`` maps key -> a template Submission holding the student's name and lms id. Assignments no
    student submitted get no rows (they were not collected, or not downloaded, yet)."""
    present = sorted({a.assignment for a in attempts})
    have = {(a.student, a.assignment) for a in attempts}
    rows = []
    for key, who in sorted(students.items()):
        for assignment in present:
            if (key, assignment) not in have:
                rows.append(Submission(student=key, assignment=assignment, name=who.name, lms_id=who.lms_id,
                                       layout=layout, problem="missing", notes=[f"no {assignment} was submitted"]))
    return rows


def ordered(submissions: list[Submission]) -> list[Submission]:
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(submissions, key=lambda s: (s.student, s.assignment, s.timestamp or oldest, s.origin))


def examples(names, limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------------------------------------------
# Folders: the nbgrader course folder and the exchange inbound folder


def submitted_root(path: Path) -> Path:
    return path / "submitted" if (path / "submitted").is_dir() and not (path / "submitted").is_symlink() else path


def collect_folder(path: Path, expected: dict[str, str]) -> Collected:
    root = submitted_root(path)
    folders, unplaced = list_folders(root)
    refuse_unusable_folder(root, folders, expected)
    inbound = [f for f in folders if looks_like_inbound(f.name)]
    if inbound and len(inbound) < len(folders):
        plain = [f.name for f in folders if f not in inbound]
        raise LayoutError(f"{root} mixes exchange inbound entries (<student>+<assignment>+<timestamp>: "
                          f"{examples(f.name for f in inbound)}) with plain student folders ({examples(plain)}); "
                          f"one layout per folder is accepted, so nothing was graded")
    if inbound:
        return collect_inbound(folders, expected, unplaced)
    return collect_course(folders, expected, unplaced)


def list_folders(root: Path) -> tuple[list[Path], list[str]]:
    """The real, visible subfolders of ``root``, and why each other visible entry was not used."""
    folders, unplaced = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            unplaced.append(f"{entry}: a symbolic link (not followed)")
        elif entry.is_dir():
            folders.append(entry)
        elif entry.is_file():
            unplaced.append(f"{entry}: a file where folders are expected (not used)")
        else:
            unplaced.append(f"{entry}: not a regular file or folder (not used)")
    return folders, unplaced


def refuse_unusable_folder(root: Path, folders: list[Path], expected: dict[str, str]) -> None:
    """LayoutError for a folder that is not a class: empty, an exchange or course root, one student's folder."""
    names = {f.name for f in folders}
    if not folders:
        found = examples(p.name for p in root.iterdir() if not p.name.startswith("."))
        raise LayoutError(f"{root} holds no folders" + (f" (found only {found})" if found else " (it is empty)")
                          + f"; {ACCEPTED}")
    if names & (COURSE_FOLDERS - EXCHANGE_FOLDERS):
        raise LayoutError(f"{root} holds nbgrader folders ({examples(n + '/' for n in names & COURSE_FOLDERS)}) "
                          f"where student folders are expected; pass COURSE (with submitted/) after nbgrader "
                          f"collect, or exchange/<course>/inbound; {ACCEPTED}")
    exchange = names & EXCHANGE_FOLDERS
    if exchange and names <= EXCHANGE_FOLDERS:
        raise LayoutError(f"{root} looks like an nbgrader exchange course folder (it holds "
                          f"{examples(n + '/' for n in exchange)}), not a class of students; "
                          f"pass {root / 'inbound'} instead; {ACCEPTED}")
    if exchange:
        raise LayoutError(f"{root} holds {examples(n + '/' for n in exchange)} beside its student folders "
                          f"({examples(names - exchange)}): inbound, outbound and feedback are nbgrader exchange "
                          f"folders, never student ids, so this is not one layout; nothing was graded; {ACCEPTED}")
    courses = [f.name for f in folders if (f / "inbound").is_dir()]
    if courses:
        raise LayoutError(f"{root} looks like the nbgrader exchange root (it holds "
                          f"{examples(c + '/inbound' for c in courses)}); pass {root / courses[0] / 'inbound'} "
                          f"instead; {ACCEPTED}")
    if any(looks_like_inbound(n) for n in names):
        return  # inbound entries (or a mix, refused by the caller with both kinds named)
    assignments = sorted(names & set(expected))
    direct = [f.name for f in folders if holds_notebooks_only(f)]
    if assignments or len(direct) == len(folders):
        found = examples(assignments or direct)
        raise LayoutError(f"{root} looks like one student's folder (it holds the assignment folder(s) {found}), "
                          f"not a class; pass the folder that holds the student folders (COURSE or COURSE/submitted)"
                          f"; {ACCEPTED}")


def visible_entries(folder: Path) -> list[Path]:
    """The folder's entries without dotfiles (none when it cannot be listed)."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return []


def holds_notebooks_only(folder: Path) -> bool:
    """True for an assignment folder (notebooks, no subfolders), as opposed to a student's folder."""
    entries = visible_entries(folder)
    return any(is_notebook_name(p.name) for p in entries) and not any(p.is_dir() for p in entries)


def looks_like_inbound(name: str) -> bool:
    return name.count("+") >= 2


# -- course folder: submitted/<student id>/<assignment>/


def collect_course(folders: list[Path], expected: dict[str, str], unplaced: list[str]) -> Collected:
    attempts, students = [], {}
    for student_dir in folders:
        students[student_dir.name] = Submission(student=student_dir.name, assignment="")
        unplaced += stray_notebooks(student_dir)
        for assignment, notebook in expected.items():
            folder = student_dir / assignment
            if os.path.lexists(folder):
                attempts.append(course_attempt(folder, student_dir.name, assignment, notebook))
    rows = attempts + missing_rows(students, attempts, "course")
    return Collected(ordered(rows), unplaced, [], "course")


def stray_notebooks(student_dir: Path) -> list[str]:
    return [f"{p}: a notebook directly in a student folder (expected <student>/<assignment>/<notebook>.ipynb)"
            for p in visible_entries(student_dir) if is_notebook_name(p.name)]


def course_attempt(folder: Path, student: str, assignment: str, notebook: str) -> Submission:
    sub = Submission(student=student, assignment=assignment, layout="course", origin=str(folder))
    if folder.is_symlink() or not folder.is_dir():
        sub.problem = "invalid file"
        sub.notes.append(f"the {assignment} folder is a symbolic link or not a folder (not read)")
        return sub
    sub.timestamp, note = read_timestamp_file(folder / "timestamp.txt")
    if note:
        sub.instructor_notes.append(note)
    read_notebook_into(sub, folder, notebook)
    return sub


def read_notebook_into(sub: Submission, folder: Path, notebook: str) -> None:
    """The notebook of one submission folder: the expected name, else the only notebook there."""
    try:
        names = sorted(p.name for p in folder.iterdir() if is_notebook_name(p.name))
    except OSError as exc:
        sub.problem = "invalid file"
        sub.notes.append(f"the {sub.assignment} folder could not be read: {exc.strerror}")
        return
    chosen, sub.misnamed, note = choose_notebook(names, notebook)
    if note:
        sub.notes.append(note)
    if chosen is None:
        sub.problem = "missing"
        return
    sub.filename = chosen
    sub.content, problem = read_regular_file(folder / chosen)
    if problem:
        sub.problem = "invalid file"
        sub.notes.append(problem)


# -- exchange inbound: <student>+<assignment>+<timestamp>[+<random>]/


def collect_inbound(folders: list[Path], expected: dict[str, str], unplaced: list[str]) -> Collected:
    attempts, students, refused = [], {}, []
    for folder in folders:
        student, assignment, stamp = split_inbound_name(folder.name)
        if not student or not assignment:
            unplaced.append(f"{folder}: names no student or no assignment (not used)")
            continue
        refusal, owner_note = ownership_problem(folder, student)
        if refusal:
            refused.append(refusal)
            continue
        students[student] = Submission(student=student, assignment="")
        if assignment not in expected:
            continue  # another assignment of the course: not graded now
        sub = inbound_attempt(folder, student, assignment, stamp, expected[assignment])
        if owner_note:
            sub.instructor_notes.append(owner_note)
        attempts.append(sub)
    rows = attempts + missing_rows(students, attempts, "inbound")
    return Collected(ordered(rows), unplaced, refused, "inbound")


def split_inbound_name(name: str) -> tuple[str, str, str]:
    """(student, assignment, timestamp text), split as nbgrader's collect does (``rsplit('+', 3)``)."""
    parts = name.rsplit("+", 3)
    return parts[0], parts[1], parts[2]


def ownership_problem(folder: Path, student: str) -> tuple[str, str]:
    """(refusal, note). Like nbgrader's collect, an inbound folder must be owned by the student it names.

    Checked when a system user of that name exists. A folder owned by root or by the user running the grader
    is accepted with a note: a student cannot create a folder owned by anyone but themselves (that needs
    CAP_CHOWN), so such a folder was put there by an administrator (a copy, a restore), not by another
    student. Any other owner is refused: it is another student submitting in this student's name."""
    try:
        expected_uid = pwd.getpwnam(student).pw_uid
    except KeyError:
        return "", f"owner not checked: no system user named {student} on this machine"
    uid = os.lstat(folder).st_uid
    if uid == expected_uid:
        return "", ""
    owner = user_name(uid)
    if uid in (0, os.geteuid()):
        return "", f"{folder.name} is owned by {owner}, not by {student}: accepted (an administrator's copy)"
    return (f"{folder}: names student {student} but is owned by {owner}; not used as {student}'s attempt "
            f"(nbgrader's collect flags this as a cheating attempt)"), ""


def user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def inbound_attempt(folder: Path, student: str, assignment: str, stamp: str, notebook: str) -> Submission:
    sub = Submission(student=student, assignment=assignment, layout="inbound", origin=str(folder))
    sub.timestamp, note = inbound_time(folder, stamp)
    if note:
        sub.instructor_notes.append(note)
    read_notebook_into(sub, folder, notebook)
    return sub


def inbound_time(folder: Path, stamp: str) -> tuple[datetime | None, str]:
    """The time in the folder's name (what nbgrader's collect uses), else its timestamp.txt."""
    named, named_note = parse_timestamp(stamp)
    inside, inside_note = read_timestamp_file(folder / "timestamp.txt")
    if named is None:
        if inside is None:
            return None, f"{named_note} in the folder name, and {inside_note}"
        return inside, f"{named_note} in the folder name; the time in timestamp.txt is used"
    if inside is not None and abs((inside - named).total_seconds()) > 1:
        return named, (f"timestamp.txt says {inside.isoformat()} but the folder name says {named.isoformat()}; "
                       f"the folder name's time is used")
    return named, named_note


# ---------------------------------------------------------------------------------------------------------------
# LMS zips: Canvas and Moodle


@dataclass
class ZipNotebook:
    """A notebook member of an LMS zip and who it belongs to."""

    info: zipfile.ZipInfo
    path: str  # the member's name, decoded
    layout: str  # 'canvas' or 'moodle'
    key: str
    name: str
    original: str  # the file name the student uploaded
    order: tuple = ()  # later uploads sort last (Canvas: the submission id)
    late: bool = False
    assignment: str = ""

    def comparable(self, notebook: str) -> str:
        """The name to compare with the expected one: Canvas's resubmission counter (``-1``) is no misnaming."""
        if self.layout == "canvas" and re.sub(r"-\d+(?=\.ipynb$)", "", self.original) == notebook:
            return notebook
        return self.original


CANVAS_TAIL = re.compile(r"(?P<late>(?i:late)_)?(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>[^/]+)")
MOODLE_PART = re.compile(r"(?P<name>.*?)_(?P<pid>\d+)_assignsubmission_file_(?P<rest>.*)")
MOODLE_ID = re.compile(r"_\d+_assignsubmission_file_")


def collect_zip(path: Path, expected: dict[str, str]) -> Collected:
    unplaced: list[str] = []
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LayoutError(f"{path} is not a readable zip file ({exc}); {ACCEPTED}") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise LayoutError(f"{path} holds {len(infos)} entries, more than the {MAX_ZIP_MEMBERS} accepted; "
                              f"nothing was graded")
        notebooks = zip_notebooks(path, infos, unplaced)
        layout = zip_layout(path, notebooks)
        place_assignments(path, notebooks, expected, unplaced)
        groups: dict[tuple[str, str], list[ZipNotebook]] = {}
        for nb in notebooks:
            if nb.assignment:
                groups.setdefault((nb.key, nb.assignment), []).append(nb)
        attempts = [zip_attempt(zf, members, expected[assignment]) for (_, assignment), members in groups.items()]
    students = {a.student: a for a in attempts}
    rows = attempts + missing_rows(students, attempts, layout)
    return Collected(ordered(rows), unplaced, [], layout)


def member_path(info: zipfile.ZipInfo) -> str:
    """The member's name; a name stored without the UTF-8 flag is read as UTF-8 when it is valid UTF-8
    (macOS and some LMS zips), so that accents and non-Latin names survive."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name.replace("\\", "/")


def zip_notebooks(path: Path, infos: list[zipfile.ZipInfo], unplaced: list[str]) -> list[ZipNotebook]:
    """The notebook members placed with a student; every other visible file goes to ``unplaced`` with why."""
    notebooks, unnamed, others = [], [], []
    for info in infos:
        name = member_path(info)
        if info.is_dir() or is_skipped_name(name):
            continue
        if not is_notebook_name(name):
            others.append(name)
            unplaced.append(f"{name}: not a notebook (.ipynb)")
            continue
        owner, why = zip_owner(info, name)
        if owner is None:
            unnamed.append(name)
            unplaced.append(f"{name}: {why}")
        else:
            notebooks.append(owner)
    if not notebooks and not unnamed:
        found = f"found {examples(others)}" if others else "it is empty"
        raise LayoutError(f"{path} holds no notebooks ({found}); {ACCEPTED}")
    if not notebooks:
        raise LayoutError(f"{path}: no notebook is named like a Canvas submission "
                          f"(<name>_[late_]<user id>_<submission id>_<file>) or a Moodle one (<Full Name>_"
                          f"<participant id>_assignsubmission_file_/<file>): found {examples(unnamed)}; "
                          f"nothing was graded")
    return notebooks


def zip_owner(info: zipfile.ZipInfo, name: str) -> tuple[ZipNotebook | None, str]:
    """Who submitted this member (Moodle folder or file, else Canvas file name), or None and why not."""
    parts = [p for p in name.split("/") if p not in ("", ".", "..")]
    for i, part in enumerate(parts):
        if len(MOODLE_ID.findall(part)) > 1:
            return None, "ambiguous Moodle name (it names several participants); not placed (grade it by hand)"
        match = MOODLE_PART.fullmatch(part)
        if match and (match["rest"] == "") == (i < len(parts) - 1):
            original = parts[-1] if match["rest"] == "" else match["rest"]
            return ZipNotebook(info, name, "moodle", match["pid"], display(match["name"]), original,
                               order=(name,)), ""
    readings = canvas_readings(parts[-1])
    uids = sorted({r["uid"] for r in readings})
    if len(uids) > 1:
        return None, f"ambiguous Canvas name: it reads as user {' or user '.join(uids)}; not placed (grade it by hand)"
    if not readings:
        return None, ("not named like a Canvas submission (<name>_[late_]<user id>_<submission id>_<file>) "
                      "or a Moodle one (<Full Name>_<participant id>_assignsubmission_file_/<file>)")
    first = readings[0]
    return ZipNotebook(info, name, "canvas", first["uid"], display(first["slug"]), first["file"],
                       order=(int(first["sid"]), name), late=bool(first["late"])), ""


def canvas_readings(base: str) -> list[dict]:
    """Every way ``<slug>_[late_]<user id>_<submission id>_<file>`` splits this file name (slugs may hold '_')."""
    readings = []
    for i, char in enumerate(base):
        if char != "_":
            continue
        match = CANVAS_TAIL.fullmatch(base[i + 1:])
        if match and not match["file"].startswith("."):
            readings.append(dict(match.groupdict(), slug=base[:i]))
    return readings


def display(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip()


def zip_layout(path: Path, notebooks: list[ZipNotebook]) -> str:
    kinds = {nb.layout for nb in notebooks}
    if len(kinds) > 1:
        by_kind = {k: examples(nb.path for nb in notebooks if nb.layout == k) for k in sorted(kinds)}
        raise LayoutError(f"{path} mixes Canvas files ({by_kind['canvas']}) with Moodle folders "
                          f"({by_kind['moodle']}); their ids cannot be told apart, so nothing was graded")
    return kinds.pop()


def place_assignments(path: Path, notebooks: list[ZipNotebook], expected: dict[str, str], unplaced: list[str]) -> None:
    """Each member's assignment: the only one graded, else the longest assignment name in its path."""
    names = list(expected)
    for nb in notebooks:
        hits = [n for n in names if n.lower() in nb.path.lower()]
        nb.assignment = names[0] if len(names) == 1 else (max(hits, key=len) if hits else "")
    if not any(nb.assignment for nb in notebooks):
        raise LayoutError(f"{path}: its notebooks ({examples(nb.path for nb in notebooks)}) name no assignment, "
                          f"and several are being graded ({', '.join(names)}); name the one this zip holds "
                          f"(--assignments)")
    for nb in notebooks:
        if not nb.assignment:
            unplaced.append(f"{nb.path}: names no assignment (graded: {', '.join(names)})")


def zip_attempt(zf: zipfile.ZipFile, members: list[ZipNotebook], notebook: str) -> Submission:
    """One student's submission of one assignment from their members of the zip."""
    first = members[0]
    sub = Submission(student=first.key, assignment=first.assignment, name=first.name, lms_id=first.key,
                     layout=first.layout, late_marker=any(m.late for m in members))
    by_name: dict[str, list[ZipNotebook]] = {}
    for m in members:
        by_name.setdefault(m.comparable(notebook), []).append(m)
    chosen_name, sub.misnamed, note = choose_notebook(sorted(by_name), notebook)
    if note:
        sub.notes.append(note)
    if chosen_name is None:
        sub.problem, sub.origin = "missing", ", ".join(sorted(m.path for m in members))
        return sub
    same = sorted(by_name[chosen_name], key=lambda m: m.order)
    chosen = same[-1]
    if len(same) > 1:
        sub.notes.append(f"{len(same)} files named {chosen_name}; graded the last uploaded, {chosen.path}")
    sub.origin, sub.filename = chosen.path, chosen.original
    sub.late_marker = chosen.late
    sub.content, problem = read_member(zf, chosen.info, chosen.path)
    if problem:
        sub.problem = "invalid file"
        sub.notes.append(problem)
    return sub


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str = "") -> tuple[bytes | None, str]:
    """A member's bytes, read with a cap whatever its header claims (zip bombs); links and special files refused."""
    name = name or info.filename
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return None, f"{name} is a symbolic link in the zip (not read)"
    if kind not in (0, stat.S_IFREG):
        return None, f"{name} is not a regular file in the zip"
    if info.file_size > MAX_NOTEBOOK_BYTES:
        return None, f"{name} is larger than {size_words(MAX_NOTEBOOK_BYTES)}"
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_NOTEBOOK_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError, ValueError) as exc:
        return None, f"{name} could not be read from the zip: {exc}"
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"{name} is larger than {size_words(MAX_NOTEBOOK_BYTES)}"
    return data, ""
