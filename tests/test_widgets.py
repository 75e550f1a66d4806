"""The rendezvous explorer: every control redraws, and a diverging step shows the message instead of a plot."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from marlpg.rendezvous import DivergenceError
from marlpg.book.widgets import divergence_message, explorer_figure, rendezvous_explorer

SMALL = dict(seeds=3, steps=40, batch=8)


def test_explorer_figure_draws_all_three_critics():
    fig = explorer_figure(4, 1.0, **SMALL)
    left, right = fig.axes[:2]
    assert len(left.get_lines()) == 3
    assert "independent / state-value" in right.get_title()
    assert "step = " in fig._suptitle.get_text()


def test_explorer_figure_raises_when_the_step_diverges():
    with pytest.raises(DivergenceError, match="diverged"):
        explorer_figure(16, 4.0, step=0.5, **SMALL)


def test_divergence_message_is_escaped_html():
    html = divergence_message(DivergenceError("n=4 <b>bad</b>"))
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "diverge" in html


def test_every_control_redraws(monkeypatch):
    calls = []
    import marlpg.book.widgets as widgets

    real = widgets.explorer_figure
    monkeypatch.setattr(widgets, "explorer_figure", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    box = rendezvous_explorer(**SMALL)
    assert len(calls) == 1
    controls = box.controls
    controls["agents"].value = 6
    controls["coupling"].value = 2.0
    controls["sigma"].value = 0.3
    controls["rule"].value = "fixed"
    controls["fixed"].value = 0.001
    assert len(calls) == 6
    n, c, step, sigma = calls[-1][0]
    assert (n, c, step, sigma) == (6, 2.0, pytest.approx(0.001), 0.3)
    assert not controls["fixed"].disabled
    controls["rule"].value = "auto"
    assert controls["fixed"].disabled and calls[-1][0][2] == "auto"
