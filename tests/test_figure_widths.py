"""Figures fit the book's content column (about 690 px), so their text is not shrunk below about 10 px.

At the notebooks' 100 dpi a figure wider than ``COLUMN_WIDTH`` inches is scaled down to the column, and its
10-point labels with it. Checked on the notebooks' source (every ``figsize=(width, ...)`` literal) and on
the library's own figure helpers.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

from marlpg.book.figures import COLUMN_WIDTH  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The chapters whose figures have been laid out for the column (the others are checked by their owners).
CHAPTERS = ["02_centralized_critic_variance", "03_maddpg", "04_coma", "06_parameter_sharing", "07_scaling",
            "08_partial_observability", "09_warehouse_fleet"]
FIGSIZE = re.compile(r"figsize\s*=\s*\(\s*([0-9.]+)\s*,")
NAMED_WIDTH = re.compile(r"figsize\s*=\s*\(\s*(?:figures\.)?COLUMN_WIDTH\s*,")


def test_the_column_width_keeps_ten_point_text_readable():
    # A 10-point label is 10 / 72 * 100 px at 100 dpi, scaled by 690 px / (100 dpi * width).
    assert 10 / 72 * 100 * 690 / (100 * COLUMN_WIDTH) >= 13


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_figure_of_the_chapter_fits_the_column(chapter):
    notebook = nbformat.read(REPO / "notebooks" / f"{chapter}.ipynb", as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    widths = [float(w) for w in FIGSIZE.findall(code)]
    assert widths or NAMED_WIDTH.search(code), f"{chapter}: no figure sizes found; has the pattern changed?"
    too_wide = [w for w in widths if w > COLUMN_WIDTH + 1e-9]
    assert not too_wide, f"{chapter}: figures {too_wide} in wide exceed the column's {COLUMN_WIDTH} in"


def test_the_explorer_figure_fits_the_column():
    from marlpg.book.widgets import explorer_figure

    figure = explorer_figure(2, 1.0, seeds=2, steps=20)
    assert figure.get_size_inches()[0] <= COLUMN_WIDTH
