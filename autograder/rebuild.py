"""Rebuild the notebook that runs: tests from the instructor's source, answers from the student.

Protects against a submission that deletes, edits, duplicates or re-types (changes the cell type or the
nbgrader flags of) a locked or test cell: every locked/test cell is taken from the source notebook by its
nbgrader ``grade_id`` and the difference is reported as tampering. Only the student's solution cells
(matched by ``grade_id``) and the cells the student added come from the submission; added cells lose any
nbgrader metadata, so a forged test cell can never carry points.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

FLAGS = ("grade", "solution", "locked", "task")


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def role(cell) -> str | None:
    """'test' (autograded tests with points), 'manual' (manually graded answer or task), 'solution'
    (autograded answer), 'locked' (read-only instructions or set-up), or None (no nbgrader metadata)."""
    meta = nbgrader_meta(cell)
    if not meta.get("grade_id"):
        return None
    if meta.get("task") or (meta.get("grade") and meta.get("solution")):
        return "manual"
    if meta.get("grade") and cell.get("cell_type") == "code":
        return "test"
    if meta.get("solution"):
        return "solution"
    if meta.get("locked") or meta.get("grade"):
        return "locked"
    return None


def normalized(text: str) -> str:
    """Cell text compared without trailing spaces and surrounding blank lines (editors add them)."""
    return "\n".join(line.rstrip() for line in str(text).strip("\n").splitlines()).strip()


@dataclass
class Assignment:
    """One assignment's source notebook (with solutions and hidden tests) and its released version."""

    name: str
    notebook_name: str
    source: nbformat.NotebookNode
    released: nbformat.NotebookNode
    digest: str
    # Earlier released versions of the notebook (a course folder records each release), so that a student who
    # fetched an earlier version is checked against the text they were given, not against a later edit.
    earlier_releases: list = field(default_factory=list)

    @property
    def source_cells(self) -> dict:
        return {nbgrader_meta(c)["grade_id"]: c for c in self.source.cells if role(c)}

    def points(self, kind: str) -> float:
        return sum(float(nbgrader_meta(c).get("points", 0) or 0) for c in self.source.cells if role(c) == kind)

    @property
    def releases(self) -> list:
        """Every released version, newest first."""
        return [self.released, *reversed(self.earlier_releases)]

    def released_cells(self, version=None) -> dict:
        nb = self.released if version is None else version
        return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if role(c)}

    def stub(self, grade_id: str) -> str:
        """The released template of an answer cell (what an untouched answer looks like)."""
        cell = self.released_cells().get(grade_id)
        return normalized(cell.source) if cell is not None else ""


def release(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version, as nbgrader's generate_assignment writes it (solutions and hidden tests cleared)."""
    nb = copy.deepcopy(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    resources: dict = {}
    nb, resources = ClearSolutions().preprocess(nb, resources)
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def load_assignment(folder: Path) -> Assignment:
    """Read ``folder/<name>.ipynb`` (or the only notebook in ``folder``) as the assignment's source."""
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    preferred = [p for p in notebooks if p.stem == folder.name]
    if not (preferred or len(notebooks) == 1):
        raise ValueError(f"{folder}: expected {folder.name}.ipynb (or a single notebook)")
    path = (preferred or notebooks)[0]
    raw = path.read_bytes()
    source = nbformat.reads(raw.decode("utf-8"), as_version=4)
    return Assignment(name=folder.name, notebook_name=path.name, source=source, released=release(source),
                      digest=hashlib.sha256(raw).hexdigest())


def load_assignments(source_dir: Path, names: list[str] | None = None) -> dict[str, Assignment]:
    folders = sorted(p for p in source_dir.iterdir() if p.is_dir() and list(p.glob("*.ipynb")))
    if names:
        unknown = sorted(set(names) - {p.name for p in folders})
        if unknown:
            raise ValueError(f"no source notebook for {', '.join(unknown)} under {source_dir}")
        folders = [p for p in folders if p.name in names]
    return {p.name: load_assignment(p) for p in folders}


@dataclass
class Rebuilt:
    notebook: nbformat.NotebookNode
    tampering: list[str] = field(default_factory=list)  # plain-words notes about test/locked cells
    notes: list[str] = field(default_factory=list)  # other notes (answer cells deleted or re-typed)
    unanswered: list[str] = field(default_factory=list)  # answer cells left as the released template


def mark(cell, origin: str, student_index: int | None = None):
    """A copy of ``cell`` labelled with where it came from and, for the student's cells, its position in the
    student's own notebook (1-based), so that feedback names cells as the student sees them."""
    cell = copy.deepcopy(cell)
    cell.metadata.pop("autograder_student_index", None)
    label = {"origin": origin}
    gid = nbgrader_meta(cell).get("grade_id")
    if gid and origin != "added":
        label["grade_id"] = gid
    if student_index is not None:
        label["student_index"] = student_index
    cell.metadata["autograder"] = label
    return cell


def student_index(cell) -> int | None:
    return cell.get("metadata", {}).get("autograder_student_index")


def group_student_cells(assignment: Assignment, student: nbformat.NotebookNode, rebuilt: Rebuilt):
    """Student cells by grade_id, and added cells anchored after the preceding known cell ('' = start)."""
    known = assignment.source_cells
    released_texts = {normalized(c.source): gid for version in reversed(assignment.releases)
                      for gid, c in assignment.released_cells(version).items()
                      if gid in known and role(known[gid]) in ("test", "locked")}
    plain_texts = {normalized(c.source) for c in assignment.source.cells if not role(c)}
    by_id: dict[str, list] = {}
    added: dict[str, list] = {"": []}
    anchor = ""
    for position, cell in enumerate(student.cells, start=1):
        cell = copy.deepcopy(cell)
        cell.setdefault("metadata", {})["autograder_student_index"] = position
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in known:
            by_id.setdefault(gid, []).append(cell)
            anchor = gid
            continue
        text = normalized(cell.get("source", ""))
        if text and text in released_texts:  # a test or locked cell copied without its metadata
            by_id.setdefault(released_texts[text], []).append(cell)
            continue
        if not gid and text in plain_texts:  # the instructor's own text without nbgrader metadata
            continue
        if gid:
            claims = "a test cell" if nbgrader_meta(cell).get("grade") else "a graded cell"
            rebuilt.tampering.append(f"a cell claims to be {claims} '{gid}' that the assignment does not have; "
                                     "it ran as your own code and earned nothing")
        added.setdefault(anchor, []).append(cell)
    return by_id, added


def fetched_version(assignment: Assignment, by_id: dict):
    """The released version this student most likely fetched: the one whose locked and test cells the
    submission matches most often (the newest on a tie)."""
    def matches(version) -> int:
        cells = assignment.released_cells(version)
        return sum(1 for gid, copies in by_id.items() if gid in cells and copies
                   and normalized(copies[0].get("source", "")) == normalized(cells[gid].source))
    return max(assignment.releases, key=matches)  # max keeps the first (newest) of equals


def check_fixed_cell(gid: str, source_cell, released_cell, copies: list, rebuilt: Rebuilt) -> None:
    """Tampering notes for one locked or test cell (the source version runs in every case); ``released_cell``
    is the cell as the student was given it (the version they fetched)."""
    kind = "test cell" if role(source_cell) == "test" else "locked cell"
    if not copies:
        rebuilt.tampering.append(f"{kind} '{gid}' was deleted (the original was put back)")
        return
    if len(copies) > 1:
        rebuilt.tampering.append(f"{kind} '{gid}' appears {len(copies)} times (only the original ran)")
    cell = copies[0]
    flags_changed = any(bool(nbgrader_meta(cell).get(f)) != bool(nbgrader_meta(source_cell).get(f)) for f in FLAGS)
    if cell.get("cell_type") != source_cell.cell_type or flags_changed or not nbgrader_meta(cell):
        rebuilt.tampering.append(f"{kind} '{gid}' was re-typed (its cell type or nbgrader metadata changed; "
                                 "the original ran)")
    elif normalized(cell.get("source", "")) not in (normalized(released_cell.source), normalized(source_cell.source)):
        rebuilt.tampering.append(f"{kind} '{gid}' was edited (the original ran)")


def answer_cell(gid: str, source_cell, released_cell, copies: list, rebuilt: Rebuilt):
    """The student's answer for one solution cell, in the source's cell type and metadata."""
    if not copies:
        rebuilt.notes.append(f"answer cell '{gid}' was deleted (the empty template was used)")
        rebuilt.unanswered.append(gid)
        return mark(released_cell, "student")
    if len(copies) > 1:
        rebuilt.notes.append(f"answer cell '{gid}' appears {len(copies)} times (the first one was used)")
    if copies[0].get("cell_type") != source_cell.cell_type:
        rebuilt.notes.append(f"answer cell '{gid}' was changed from {source_cell.cell_type} to "
                             f"{copies[0].get('cell_type')} (it was used as {source_cell.cell_type})")
    cell = copy.deepcopy(released_cell)
    cell.source = str(copies[0].get("source", ""))
    if normalized(cell.source) == normalized(released_cell.source):
        rebuilt.unanswered.append(gid)
    return mark(cell, "student", student_index(copies[0]))


def added_cell(cell):
    """A cell the student added, as plain student code or text (nbgrader metadata removed)."""
    kind = cell.get("cell_type") if cell.get("cell_type") in ("code", "markdown", "raw") else "raw"
    text = str(cell.get("source", ""))
    new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
           "raw": nbformat.v4.new_raw_cell}[kind](text)
    return mark(new, "added", student_index(cell))


def rebuild(assignment: Assignment, student: nbformat.NotebookNode) -> Rebuilt:
    """The notebook to run: source cells in source order, the student's answers and added cells in place."""
    rebuilt = Rebuilt(notebook=nbformat.v4.new_notebook(metadata=copy.deepcopy(assignment.source.metadata)))
    by_id, added = group_student_cells(assignment, student, rebuilt)
    cells = [added_cell(c) for c in added.get("", [])]
    released = {**assignment.released_cells(), **assignment.released_cells(fetched_version(assignment, by_id))}
    for source_cell in assignment.source.cells:
        gid = nbgrader_meta(source_cell).get("grade_id")
        kind = role(source_cell)
        if kind in ("solution", "manual") and not nbgrader_meta(source_cell).get("task"):
            cells.append(answer_cell(gid, source_cell, released[gid], by_id.get(gid, []), rebuilt))
        elif kind:
            copies = by_id.get(gid, [])
            check_fixed_cell(gid, source_cell, released[gid], copies, rebuilt)
            cells.append(mark(source_cell, "source", student_index(copies[0]) if copies else None))
        else:
            cells.append(mark(source_cell, "source"))  # instructions without nbgrader metadata
        cells += [added_cell(c) for c in added.get(gid, [])] if gid else []
    for number, cell in enumerate(cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell["id"] = f"cell-{number}"  # unique ids, as nbformat 4.5 requires
    rebuilt.notebook.cells = cells
    rebuilt.notebook.nbformat, rebuilt.notebook.nbformat_minor = 4, 5
    return rebuilt
