"""Every notebook in notebooks/ runs top to bottom on a fresh kernel, and is stored without outputs.

Training lengths come from ``marlpg.book.budget`` and are tiny here (``MARLPG_BUDGET=smoke``).
The notebooks are found by glob, so chapters added later are covered without editing this file.
Each one is executed with nbclient in a new kernel (the venv's "python3" kernel) with the
working tree's ``src`` on PYTHONPATH; any cell that raises fails the test.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing (the book executes them)"
    assert "widgets" not in notebook.metadata, f"{path.name}: stored widget state; clear it before committing"


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]*)`")


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((REPO / "book").glob("*.md")), ids=lambda p: p.name)
def test_glue_references_are_well_formed(path):
    """Every {glue:...}`key` names a key, with an optional format after a colon: a missing backtick swallows
    the text up to the next role, which only the Sphinx build (minutes into it) would report."""
    if path.suffix == ".ipynb":
        texts = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]
    else:
        texts = [path.read_text(encoding="utf-8")]
    for text in texts:
        for match in GLUE_ROLE.finditer(text):
            key = match.group(1)
            assert re.fullmatch(r"[\w./:-]+(:[^`{}\s]*)?", key), f"{path.name}: malformed glue reference `{key}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbered_sections_run_without_gaps(path):
    # A reader follows "Section 3" references; a lost heading (chapter 07 once went 1, 2, 4) breaks them.
    notebook = nbformat.read(path, as_version=4)
    numbers = [int(match.group(1)) for cell in notebook.cells if cell.cell_type == "markdown"
               for match in re.finditer(r"^## (\d+)\.", cell.source, flags=re.MULTILINE)]
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: sections numbered {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    src = str(REPO / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # Training notebooks run every cell at a tiny budget here; the book build runs the full ones.
    monkeypatch.setenv("MARLPG_BUDGET", "smoke")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:  # the message holds the cell's source and traceback
        pytest.fail(f"{path.name} raised in a cell:\n{error}")
    elapsed = time.perf_counter() - start
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: error outputs {[(e['ename'], e['evalue']) for e in errors]}"
    # Speed is measured by the book build (scripts/build_book.sh reports each notebook's time), not asserted here:
    # on a shared machine the same notebook can take ten times as long.
    print(f"{path.name}: {elapsed:.1f} s")
