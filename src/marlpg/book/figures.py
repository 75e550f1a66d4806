"""Figures for the course notebooks, drawn with matplotlib.

* ``ctde_diagram``          decentralized actors, one centralized critic, training-only arrows
* ``plot_variance_traces``  gradient-noise scale per update, one line per critic
* ``plot_ratio_grid``       a heatmap of variance ratios over (n, coupling), diverged cells marked
* ``plot_ratio_lines``      the same ratios as lines against n, one line per coupling
* ``plot_convergence``      error of an averaged estimator against the number of batches

Every function takes an optional ``ax`` and returns the axes it drew on, so a notebook
can place several of them in one figure.

``COLUMN_WIDTH`` is the width, in inches, of a figure that fills the book's content column
(about 690 px) at the notebooks' 100 dpi without being scaled down: its 10-point axis labels then
read at about 14 px and its 8.5-point legends at about 12 px. A wider figure is shrunk to the
column and its text with it, so the notebooks stack panels rather than set them side by side.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

CRITIC_COLORS = {"independent": "#b03a2e", "state-value": "#2471a3", "joint-action": "#1e8449"}
CRITIC_LABELS = {
    "independent": "independent (running average)",
    "state-value": "state-value (batch mean)",
    "joint-action": "joint-action (counterfactual)",
}

ACTOR_FILL, ACTOR_EDGE = "#d5f0d0", "#2e7d32"
CRITIC_FILL, CRITIC_EDGE = "#fde3c4", "#d35400"
ENV_FILL, ENV_EDGE = "#ececec", "#555555"
TRAINING_ONLY = "#d35400"
COLUMN_WIDTH = 6.8


def _box(ax, center, width, height, fill, edge, *, dashed=False, zorder=2):
    x, y = center
    patch = FancyBboxPatch(
        (x - width / 2, y - height / 2),
        width,
        height,
        boxstyle="round,pad=0.4,rounding_size=1.6",
        facecolor=fill,
        edgecolor=edge,
        linewidth=1.6,
        linestyle=(0, (5, 3)) if dashed else "-",
        zorder=zorder,
    )
    ax.add_patch(patch)
    return patch


def _arrow(ax, start, end, *, color="black", dashed=False, rad=0.0, width=1.4):
    arrow = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=13,
        color=color,
        linewidth=width,
        linestyle=(0, (4, 2.5)) if dashed else "-",
        connectionstyle=f"arc3,rad={rad}",
        shrinkA=0,
        shrinkB=0,
        zorder=3,
    )
    ax.add_patch(arrow)
    return arrow


def ctde_diagram(ax=None, *, shown_agents: int = 3):
    """Centralized training with decentralized execution for the policy-gradient family.

    Green: the actors, each reading only its own observation o_i; they are all that runs
    after deployment. Orange: the centralized critic, which during training receives the
    joint state x, the team reward and every action, and sends each actor its advantage
    A_i. Orange dashed arrows exist only during training. The dashed green frame marks
    optional parameter sharing (one actor network for homogeneous agents).

    ``shown_agents`` (2 to 5) actors are drawn; the last is labelled n, the gap before it
    with an ellipsis.
    """
    if isinstance(shown_agents, bool) or not isinstance(shown_agents, int) or not 2 <= shown_agents <= 5:
        raise ValueError(f"shown_agents must be an integer from 2 to 5, got {shown_agents!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6.4))
    ax.set_xlim(-1, 101)
    ax.set_ylim(1, 62)
    ax.set_aspect("auto")
    ax.axis("off")

    # Actor positions: the first shown_agents-1 agents, a gap with an ellipsis, then agent n.
    left, right = 17.0, 83.0
    slots = shown_agents + 1
    xs = [left + (right - left) * k / (slots - 1) for k in range(slots)]
    actor_xs = xs[:-2] + [xs[-1]]
    ellipsis_x = xs[-2]
    names = [str(k + 1) for k in range(shown_agents - 1)] + ["n"]

    actor_y, critic_y, env_y = 30.0, 53.0, 6.0
    actor_w, actor_h = 15.0, 8.0

    # Optional parameter sharing: a dashed frame around all actors.
    _box(ax, (50, actor_y - 2.2), 88, 17.0, "none", ACTOR_EDGE, dashed=True, zorder=1)
    ax.text(
        50, actor_y - 8.6, r"optional parameter sharing: one network $\theta$ serves all homogeneous agents",
        ha="center", va="center", fontsize=9, color=ACTOR_EDGE, style="italic",
        bbox=dict(facecolor="white", edgecolor="none", pad=0.5), zorder=4,
    )

    # Critic, actors and environment.
    _box(ax, (50, critic_y), 46, 9.5, CRITIC_FILL, CRITIC_EDGE)
    ax.text(50, critic_y + 2.2, "Centralized critic", ha="center", va="center", fontsize=12, weight="bold")
    ax.text(50, critic_y - 1.2, r"$Q(x, a_1, \ldots, a_n)$: joint state and every action", ha="center",
            va="center", fontsize=10)
    ax.text(50, critic_y - 3.6, "used in training only", ha="center", va="center", fontsize=8.5,
            color=CRITIC_EDGE, style="italic")

    for x, name in zip(actor_xs, names):
        _box(ax, (x, actor_y), actor_w, actor_h, ACTOR_FILL, ACTOR_EDGE)
        ax.text(x, actor_y + 1.6, f"Actor {name}", ha="center", va="center", fontsize=10.5, weight="bold")
        ax.text(x, actor_y - 1.8, rf"$\pi_{{\theta_{name}}}(a_{name} \mid o_{name})$", ha="center", va="center",
                fontsize=10)
    ax.text(ellipsis_x, actor_y, r"$\cdots$", ha="center", va="center", fontsize=18)

    _box(ax, (50, env_y), 84, 6.5, ENV_FILL, ENV_EDGE)
    ax.text(50, env_y, r"Environment: joint state $x$, team reward $r$", ha="center", va="center", fontsize=10.5)

    env_top, actor_bottom = env_y + 3.7, actor_y - actor_h / 2 - 0.5
    actor_top, critic_bottom = actor_y + actor_h / 2 + 0.5, critic_y - 4.9
    critic_span = (31.0, 69.0)
    for k, (x, name) in enumerate(zip(actor_xs, names)):
        # Execution loop (solid): the actor sees o_i, the environment receives a_i.
        _arrow(ax, (x - 3.2, env_top), (x - 3.2, actor_bottom))
        ax.text(x - 4.2, env_top + 4.5, rf"$o_{name}$", ha="right", va="center", fontsize=10.5)
        _arrow(ax, (x + 3.2, actor_bottom), (x + 3.2, env_top))
        ax.text(x + 4.2, env_top + 4.5, rf"$a_{name}$", ha="left", va="center", fontsize=10.5)

        # Training only (dashed orange): the action goes up, the advantage comes down.
        frac = k / (len(actor_xs) - 1)
        target_x = critic_span[0] + (critic_span[1] - critic_span[0]) * frac
        _arrow(ax, (x - 2.2, actor_top), (target_x - 1.8, critic_bottom), color=TRAINING_ONLY, dashed=True)
        _arrow(ax, (target_x + 1.8, critic_bottom), (x + 2.2, actor_top), color=TRAINING_ONLY, dashed=True)
        mid_x = (x + target_x) / 2
        ax.text(mid_x - 3.0, (actor_top + critic_bottom) / 2 + 0.6, rf"$a_{name}$", ha="right", va="center",
                fontsize=10, color=TRAINING_ONLY)
        ax.text(mid_x + 3.0, (actor_top + critic_bottom) / 2 - 0.6, rf"$A_{name}$", ha="left", va="center",
                fontsize=10, color=TRAINING_ONLY)

    # The critic also reads the joint state (left) and the team reward (right), in training only.
    for side, label in ((3.5, r"$x$"), (96.5, r"$r$")):
        inner = 50 - 23.6 if side < 50 else 50 + 23.6
        ax.plot([side, side], [env_y, critic_y], color=TRAINING_ONLY, linestyle=(0, (4, 2.5)), linewidth=1.4,
                zorder=3)
        ax.plot([50 - 42.4 if side < 50 else 50 + 42.4, side], [env_y, env_y], color=TRAINING_ONLY,
                linestyle=(0, (4, 2.5)), linewidth=1.4, zorder=3)
        _arrow(ax, (side, critic_y), (inner, critic_y), color=TRAINING_ONLY, dashed=True)
        ax.text(side + (-1.2 if side < 50 else 1.2), (env_y + critic_y) / 2 + 14, label, ha="right" if side < 50
                else "left", va="center", fontsize=11, color=TRAINING_ONLY)

    legend = [
        Line2D([0], [0], color="black", linewidth=1.6, label="execution and training"),
        Line2D([0], [0], color=TRAINING_ONLY, linewidth=1.6, linestyle=(0, (4, 2.5)),
               label="training only (removed at deployment)"),
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 1.02), ncol=2, frameon=False, fontsize=9.5)
    return ax


def plot_variance_traces(simulation, coupling=None, ax=None, *, critics=None, title=None):
    """Gradient-noise scale per update (mean over seeds), one line per critic, log scale.

    ``simulation`` must come from ``simulate(..., trace=True)``; ``coupling`` picks one of
    its couplings (default: the first).
    """
    if simulation.variance_trace is None:
        raise ValueError("this Simulation has no variance_trace; run simulate(..., trace=True)")
    c = 0 if coupling is None else int(np.flatnonzero(np.isclose(simulation.couplings, coupling))[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for name in critics or simulation.critics:
        k = simulation.critics.index(name)
        trace = simulation.variance_trace[k, c]
        ax.plot(np.arange(1, trace.size + 1), trace, color=CRITIC_COLORS.get(name), label=CRITIC_LABELS.get(name, name),
                linewidth=1.4)
    ax.set_yscale("log")
    ax.set_xlabel("update")
    ax.set_ylabel("gradient variance (mean over seeds)")
    ax.set_title(title or f"n = {simulation.n_agents}, coupling = {simulation.couplings[c]:g}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8.5)
    return ax


def plot_ratio_grid(agents, couplings, ratios, ax=None, *, title=None, cmap="viridis", label="variance ratio"):
    """Heatmap of ``ratios[n, coupling]`` with each value written in its cell; NaN cells read 'diverged'.

    ``label`` names the colour bar (``None``: no label, where the title already says it).
    """
    ratios = np.asarray(ratios, dtype=float)
    if ratios.shape != (len(agents), len(couplings)):
        raise ValueError(f"ratios must have shape {(len(agents), len(couplings))}, got {ratios.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.2))
    finite = ratios[np.isfinite(ratios)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(ratios), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
    ax.set_facecolor("#f2f2f2")
    ax.set_xticks(range(len(couplings)), [f"{c:g}" for c in couplings])
    ax.set_yticks(range(len(agents)), [str(n) for n in agents])
    ax.set_xlabel("coupling c")
    ax.set_ylabel("number of agents n")
    middle = (vmin + vmax) / 2
    for i in range(len(agents)):
        for j in range(len(couplings)):
            value = ratios[i, j]
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=10,
                        color="white" if value < middle else "black")
            else:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#b03a2e",
                                           linewidth=0))
                ax.text(j, i, "diverged", ha="center", va="center", fontsize=9, color="#b03a2e", weight="bold")
    plt.colorbar(image, ax=ax, label=label)
    if title:
        ax.set_title(title)
    return ax


def plot_ratio_lines(agents, couplings, ratios, ax=None, *, title=None, label="variance ratio"):
    """``ratios[n, coupling]`` against n (log-2 axis), one line per coupling."""
    ratios = np.asarray(ratios, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.2))
    colors = plt.cm.plasma(np.linspace(0.1, 0.8, len(couplings)))
    for j, (c, color) in enumerate(zip(couplings, colors)):
        ax.plot(agents, ratios[:, j], marker="o", color=color, label=f"coupling {c:g}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(agents), [str(n) for n in agents])
    ax.set_xlabel("number of agents n")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return ax


def plot_convergence(batches, errors: dict, ax=None, *, colors=None, reference=True, title=None):
    """Relative error of an averaged estimator against the number of batches averaged (log-log).

    ``errors`` maps a label to an array aligned with ``batches``; ``colors`` optionally maps
    labels to colors (critic names get the course's critic colors by default). With
    ``reference`` a dotted line of slope -1/2 (the Monte Carlo rate) is drawn through the
    first curve's start.
    """
    colors = {**CRITIC_COLORS, **(colors or {})}
    batches = np.asarray(batches)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for name, values in errors.items():
        ax.plot(batches, values, label=CRITIC_LABELS.get(name, name), color=colors.get(name), linewidth=1.5)
    if reference and errors:
        first = np.asarray(next(iter(errors.values())))
        ax.plot(batches, first[0] * np.sqrt(batches[0] / batches), color="gray", linestyle=":",
                label=r"$\propto 1/\sqrt{\mathrm{batches}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batches averaged")
    ax.set_ylabel("relative error of the averaged gradient")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8.5)
    if title:
        ax.set_title(title)
    return ax

