"""Episodes a reader can watch: matplotlib animations that play in the static HTML book, no kernel needed.

``animate(fig, draw, steps)`` calls ``draw(t)`` for every step ``t`` to redraw the figure, and returns the
frames as one self-contained HTML player (matplotlib's JavaScript player, every frame embedded as a PNG), so
that the built book plays it from its own file with no server and no network (the player's link to a
Font Awesome CDN is removed; the theme's own copy draws the buttons). The player sits in a
``div.course-animation`` (``book/_static/course.css`` keeps it inside the column), which the browser tests look
for to check that every animation loads and plays.

Frames are drawn at ``dpi=72`` by default: a 25-step episode at the column's width is then a few hundred
kilobytes of page.
"""
from __future__ import annotations

import html as html_lib
import re
from typing import Callable, Mapping, TypeVar

import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation

Panel = TypeVar("Panel")
ANIMATION_CLASS = "course-animation"
# matplotlib's player links Font Awesome 4 from a CDN for its button icons; the book's theme ships Font Awesome
# locally (with the old icon names), and a page must not reach the network, so the link is dropped.
_CDN_STYLESHEET = re.compile(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">')


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def animation_html(fig, draw: Callable[[int], object], steps: int, *, interval_ms: int = 250, dpi: int = 72,
                   caption: str = "") -> str:
    """The HTML of a looping player of ``steps`` frames; frame ``t`` is ``fig`` after ``draw(t)``. Closes ``fig``."""
    _positive_int("steps", steps)
    _positive_int("interval_ms", interval_ms)
    _positive_int("dpi", dpi)
    previous_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        player = FuncAnimation(fig, draw, frames=steps, interval=interval_ms, repeat=True, cache_frame_data=False)
        body = _CDN_STYLESHEET.sub("", player.to_jshtml(fps=max(1, round(1000 / interval_ms)), default_mode="loop"))
    finally:
        fig.set_dpi(previous_dpi)
        plt.close(fig)
    label = f'<p class="course-animation-caption">{html_lib.escape(caption)}</p>' if caption else ""
    return f'<div class="{ANIMATION_CLASS}" data-frames="{steps}">{body}{label}</div>'


def animate(fig, draw: Callable[[int], object], steps: int, **options):
    """:func:`animation_html` as an object a notebook displays (``IPython.display.HTML``)."""
    from IPython.display import HTML

    return HTML(animation_html(fig, draw, steps, **options))


def side_by_side(panels: Mapping[str, Panel], draw_panel: Callable[[object, str, Panel, int], object], steps: int, *,
                 width: float = 6.8, title_room: float = 0.5, **options):
    """Recorded episodes (name -> recording, e.g. a trained and a random team from the same start) side by side
    as one animation: ``draw_panel(ax, name, recording, t)`` draws one panel at step ``t``. ``options`` go to
    :func:`animation_html` (``caption``, ``interval_ms``, ``dpi``)."""
    if not panels:
        raise ValueError("side_by_side needs at least one recorded episode to show")
    fig, axes = plt.subplots(1, len(panels), figsize=(width, width / len(panels) + title_room), squeeze=False)

    def draw(t: int) -> None:
        for ax, (name, recording) in zip(axes[0], panels.items()):
            draw_panel(ax, name, recording, t)

    draw(0)
    fig.tight_layout()
    return animate(fig, draw, steps, **options)
