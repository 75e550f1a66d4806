"""Find each student's notebook for each assignment, in an nbgrader folder or an LMS zip.

Accepted layouts:

* a folder ``submitted/<student>/<assignment>/*.ipynb`` (nbgrader's course folder after ``nbgrader
  collect``; PATH may be the course folder or its ``submitted/`` folder);
* a zip from an LMS with one file per student: ``<student>_<anything>_<assignment>.ipynb`` (Canvas) or
  ``<student>_<anything>_assignsubmission_file_/<file>.ipynb`` (Moodle), at any depth; the student is the
  text before the first ``_`` of the Moodle folder, else of the file name, else of the innermost folder;
  the assignment is the longest assignment name found in the path (or the only one being graded).

Protects against: symbolic links (a link to the solutions would otherwise be read by the trusted grader),
zip-slip (nothing is ever extracted: members are read into memory), zip bombs and huge files (every
notebook is read with a size cap), and names that would escape the output folder (students' names are
reduced to safe characters).
"""
from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_ZIP_MEMBERS = 20000


@dataclass
class Submission:
    """One student's notebook for one assignment: its bytes, or the problem that prevents grading it."""

    student: str
    assignment: str
    filename: str = ""
    content: bytes | None = None
    problem: str = ""  # status code: 'missing', 'invalid file' ('' when content is there)
    notes: list[str] = field(default_factory=list)
    misnamed: bool = False


def safe_name(name: str) -> str:
    """A student name usable as a folder name (no path separators, no leading dots) and in a spreadsheet
    (no leading = + - @, which would start a formula)."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "_", name.strip()).strip("._").lstrip("=+-@") or "unnamed"
    return cleaned[:100]


def read_regular_file(path: Path) -> tuple[bytes | None, str]:
    """The file's bytes, refusing links, special files and files over the size cap."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return None, f"cannot read {path.name}: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return None, f"{path.name} is a symbolic link (not read)"
    if not stat.S_ISREG(info.st_mode):
        return None, f"{path.name} is not a regular file"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return None, f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_NOTEBOOK_BYTES + 1)[:MAX_NOTEBOOK_BYTES], ""


def choose_notebook(names: list[str], expected: str) -> tuple[str | None, bool, str]:
    """(chosen name, misnamed?, note): the expected name, else the only notebook, else none."""
    if expected in names:
        return expected, False, ""
    if len(names) == 1:
        return names[0], True, f"notebook named {names[0]} instead of {expected} (graded anyway)"
    if not names:
        return None, False, f"no notebook found (expected {expected})"
    return None, False, f"no {expected}, and several other notebooks ({', '.join(sorted(names))}): none graded"


def is_notebook_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".ipynb") and not base.startswith(".") and ".ipynb_checkpoints" not in name \
        and not name.startswith("__MACOSX")


def submitted_root(path: Path) -> Path:
    return path / "submitted" if (path / "submitted").is_dir() else path


def inbound_folders(root: Path, expected: dict[str, str]) -> dict[tuple[str, str], Path]:
    """JupyterHub exchange ``inbound/<student>+<assignment>+<timestamp>[+<random>]``: latest per pair."""
    latest: dict[tuple[str, str], tuple[str, Path]] = {}
    for folder in root.iterdir():
        parts = folder.name.split("+")
        if len(parts) < 3 or not folder.is_dir() or folder.is_symlink() or parts[1] not in expected:
            continue
        key = (parts[0], parts[1])
        if key not in latest or parts[2] > latest[key][0]:
            latest[key] = (parts[2], folder)
    return {key: folder for key, (_, folder) in latest.items()}


def collect_inbound(root: Path, expected: dict[str, str]) -> list[Submission]:
    folders = inbound_folders(root, expected)
    found = []
    for student in sorted({s for s, _ in folders}):
        for assignment, notebook in expected.items():
            folder = folders.get((student, assignment))
            if folder is None:
                found.append(Submission(student=safe_name(student), assignment=assignment, problem="missing",
                                        notes=[f"no {assignment} was submitted"]))
            else:
                found.append(collect_notebook(folder, safe_name(student), assignment, notebook))
    return found


def collect_folder(path: Path, expected: dict[str, str]) -> list[Submission]:
    """Submissions from ``submitted/<student>/<assignment>/``; one per student and expected assignment."""
    root = submitted_root(path)
    if inbound_folders(root, expected):
        return collect_inbound(root, expected)
    students = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    found = []
    for student_dir in students:
        for assignment, notebook in expected.items():
            found.append(collect_one_folder(student_dir, assignment, notebook))
    return found


def collect_one_folder(student_dir: Path, assignment: str, notebook: str) -> Submission:
    folder = student_dir / assignment
    if not folder.is_dir() or folder.is_symlink():
        return Submission(student=safe_name(student_dir.name), assignment=assignment, problem="missing",
                          notes=[f"no {assignment} folder was submitted"])
    return collect_notebook(folder, safe_name(student_dir.name), assignment, notebook)


def collect_notebook(folder: Path, student: str, assignment: str, notebook: str) -> Submission:
    """The notebook of one submission folder: the expected name, else the only notebook there."""
    sub = Submission(student=student, assignment=assignment)
    names = sorted(p.name for p in folder.iterdir() if is_notebook_name(p.name))
    chosen, sub.misnamed, note = choose_notebook(names, notebook)
    if note:
        sub.notes.append(note)
    if chosen is None:
        sub.problem = "missing"
        return sub
    sub.filename = chosen
    sub.content, problem = read_regular_file(folder / chosen)
    if problem:
        sub.problem = "invalid file"
        sub.notes.append(problem)
    return sub


def student_of(member: str) -> str:
    """Student id of a zip member: the text before the first '_' of a Moodle ``*_assignsubmission_*`` folder,
    else of the file name (Canvas ``<student>_<id>_..._<file>``), else of the innermost folder."""
    parts = [p for p in member.split("/") if p and p != "."]
    folders, filename = parts[:-1], parts[-1] if parts else member
    moodle = [f for f in folders if "_assignsubmission_" in f]
    if moodle:
        return safe_name(moodle[-1].split("_", 1)[0])
    stem = filename[: -len(".ipynb")] if filename.endswith(".ipynb") else filename
    if "_" in stem or not folders:
        return safe_name(stem.split("_", 1)[0])
    return safe_name(folders[-1].split("_", 1)[0])


def assignment_of(member: str, names: list[str]) -> str | None:
    """The longest assignment name found in the member's path, or the only assignment there is."""
    hits = [n for n in names if n.lower() in member.lower()]
    if hits:
        return max(hits, key=len)
    return names[0] if len(names) == 1 else None


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[bytes | None, str]:
    """A member's bytes, read with a cap whatever its header claims (zip bombs)."""
    if info.file_size > MAX_NOTEBOOK_BYTES:
        return None, f"{info.filename} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_NOTEBOOK_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError) as exc:
        return None, f"{info.filename} could not be read from the zip: {exc}"
    if len(data) > MAX_NOTEBOOK_BYTES:
        return None, f"{info.filename} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    return data, ""


def collect_zip(path: Path, expected: dict[str, str]) -> tuple[list[Submission], list[str]]:
    """Submissions from an LMS zip (one file per student); also the members that could not be placed."""
    names = list(expected)
    unplaced: list[str] = []
    by_key: dict[tuple[str, str], list[zipfile.ZipInfo]] = {}
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()[:MAX_ZIP_MEMBERS]
        for info in members:
            if info.is_dir() or not is_notebook_name(info.filename):
                continue
            assignment = assignment_of(info.filename, names)
            if assignment is None:
                unplaced.append(info.filename)
                continue
            by_key.setdefault((student_of(info.filename), assignment), []).append(info)
        students = sorted({s for s, _ in by_key})
        found = [zip_submission(zf, s, a, expected[a], by_key.get((s, a), [])) for s in students for a in names]
    return found, unplaced


def zip_submission(zf, student: str, assignment: str, notebook: str, infos: list) -> Submission:
    sub = Submission(student=student, assignment=assignment)
    if not infos:
        sub.problem = "missing"
        sub.notes.append(f"no notebook for {assignment} in the zip")
        return sub
    infos = sorted(infos, key=lambda i: i.filename)
    exact = [i for i in infos if i.filename.rsplit("/", 1)[-1] == notebook]
    prefixed = [i for i in infos if i.filename.rsplit("/", 1)[-1].endswith("_" + notebook)]
    chosen = (exact or prefixed or infos)[-1]
    if len(infos) > 1:
        sub.notes.append(f"{len(infos)} notebooks for {assignment}; graded {chosen.filename}")
    base = chosen.filename.rsplit("/", 1)[-1]
    if not (exact or prefixed):
        sub.misnamed = True
        sub.notes.append(f"notebook named {base} instead of {notebook} (graded anyway)")
    sub.filename = base
    sub.content, problem = read_member(zf, chosen)
    if problem:
        sub.problem = "invalid file"
        sub.notes.append(problem)
    return sub


def collect(path: Path, expected: dict[str, str]) -> tuple[list[Submission], list[str]]:
    """Submissions from a folder or a zip; ``expected`` maps assignment name to its notebook file name."""
    if path.is_file() and zipfile.is_zipfile(path):
        return collect_zip(path, expected)
    if path.is_dir():
        return collect_folder(path, expected), []
    raise ValueError(f"{path} is neither a folder nor a zip file")
