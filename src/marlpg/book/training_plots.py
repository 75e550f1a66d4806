"""Plots of training runs and of what the trained agents do, for the MAPPO notebook.

Learning curves
    ``curve_band``            centre and spread across seeds of one quantity of the curve rows that
                              :func:`marlpg.algos.mappo.train` returns, against frames or seconds: by
                              default the interquartile mean with a 95% stratified bootstrap interval
                              (:mod:`marlpg.book.stats`), or the mean with the range or one std
    ``first_reaching``        where a curve first reaches a level (e.g. the 85% target)
    ``plot_learning_curves``  one line per method with its band, plus reference lines
    ``iteration_seconds``     every iteration's duration; ``median_frames_per_second`` from them,
                              a speed that a load spike during part of a run hardly moves
    ``at_median_speed``       the curves with a ``steady_seconds`` column: iterations times the
                              method's median iteration time (a time axis that does not record load)
    ``plot_diagnostics``      PPO's diagnostics (approx. KL, clip fraction, explained variance,
                              gradient norms, entropy) against frames, one panel each

Behaviour
    ``record_episode``        run a policy for one episode in a VMAS environment and record where
                              every agent and landmark is at every step (from ``env.world``)
    ``plot_trajectories``     draw one recorded episode: landmarks, agents' paths, start and end
    ``draw_episode_step``     one step of a recorded episode, the frame of an animation
    ``episodes_animation``    recorded episodes side by side, played in the static book
                              (:mod:`marlpg.book.animation`)

Plot functions take an optional ``ax`` and return the matplotlib figure they drew on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
import torch

from marlpg.book.stats import iqm_curve
from marlpg.core.threads import cpu_threads

AXES = ("frames", "seconds", "steady_seconds", "cpu_seconds")
AXIS_LABELS = {
    "frames": "environment frames",
    "seconds": "wall-clock seconds of training",
    "steady_seconds": "seconds of training at the median iteration time",
    "cpu_seconds": "CPU seconds of training (the process, all threads)",
}
Y_LABELS = {"return": "episode return per agent", "eval_return": "deterministic evaluation return per agent"}
BANDS = ("iqm", "minmax", "std")
BAND_LEGENDS = {"iqm": "IQM of {n}, 95% CI", "minmax": "mean of {n}, range", "std": "mean of {n}, ±1 std"}
METHOD_COLORS = ("#2471a3", "#b03a2e", "#1e8449", "#7d3c98", "#ca6f1e")
AGENT_COLORS = ("#2471a3", "#b03a2e", "#1e8449", "#7d3c98", "#ca6f1e", "#17a589", "#884ea0", "#566573")


# --------------------------------------------------------------------------- learning curves
def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    try:
        return np.array([float("nan") if row[key] is None else float(row[key]) for row in rows])
    except KeyError:
        raise ValueError(f"curve rows have no column {key!r}; they have {sorted(rows[0])}") from None


def curve_band(
    curves: Sequence[Sequence[Mapping]], x: str = "frames", y: str = "return", band: str = "iqm", points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre and spread across seeds of column ``y`` against ``x``: ``(grid, centre, low, high)``.

    ``curves`` holds one list of rows per seed (``TrainResult.curve``). Against ``"frames"`` every
    seed must log the same frame counts, and the grid is those counts. Against a time column each
    seed's curve is interpolated onto ``points`` evenly spaced times up to the end of the *shortest*
    run, so every point of the band summarizes all seeds. ``band`` is ``"iqm"`` (the interquartile
    mean over seeds with its pointwise 95% stratified bootstrap interval, seeded, so reproducible),
    ``"minmax"`` (the mean and the range over seeds) or ``"std"`` (the mean plus and minus one
    standard deviation).
    """
    if x not in AXES:
        raise ValueError(f"x must be one of {AXES}; got {x!r}")
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}; got {band!r}")
    if len(curves) == 0 or any(len(rows) == 0 for rows in curves):
        raise ValueError("need at least one curve, and every curve needs at least one row")
    xs = [_column(rows, x) for rows in curves]
    ys = [_column(rows, y) for rows in curves]
    if x == "frames":
        grid = xs[0]
        if any(len(other) != len(grid) or not np.array_equal(other, grid) for other in xs[1:]):
            raise ValueError("the curves log different frame counts; train every seed with the same configuration")
        values = np.stack(ys)
    else:
        if points < 2:
            raise ValueError(f"points must be at least 2; got {points!r}")
        end = min(float(xi[-1]) for xi in xs)
        grid = np.linspace(0.0, end, points)
        # Each curve starts at time 0 with its first logged value (nothing is logged before the first update).
        values = np.stack([np.interp(grid, np.r_[0.0, xi], np.r_[yi[0], yi]) for xi, yi in zip(xs, ys)])
    if band == "iqm":
        return (grid, *_iqm_band(values))
    mean = values.mean(axis=0)
    if band == "minmax":
        low, high = values.min(axis=0), values.max(axis=0)
    else:
        spread = values.std(axis=0)
        low, high = mean - spread, mean + spread
    return grid, mean, low, high


def _iqm_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM and interval at every column of ``values`` [seeds, points]; NaN where any seed has no value
    (an iteration that finished no episode), as the mean would be."""
    centre, low, high = (np.full(values.shape[1], np.nan) for _ in range(3))
    finite = np.isfinite(values).all(axis=0)
    if finite.any():
        centre[finite], low[finite], high[finite] = iqm_curve(values[:, finite])
    return centre, low, high


def first_reaching(grid: Sequence[float], values: Sequence[float], level: float) -> float | None:
    """The first ``grid`` value at which ``values`` is at least ``level``, or None if it never is."""
    grid, values = np.asarray(grid, dtype=float), np.asarray(values, dtype=float)
    if grid.shape != values.shape:
        raise ValueError(f"grid {grid.shape} and values {values.shape} must have the same shape")
    hits = np.flatnonzero(values >= level)
    return float(grid[hits[0]]) if hits.size else None


def target_return(reference: tuple[float, float], fraction: float) -> float:
    """The return that closes ``fraction`` of the gap from the random to the scripted return."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction!r}")
    random_return, scripted_return = reference
    return random_return + fraction * (scripted_return - random_return)


def add_reference_lines(ax, reference: tuple[float, float] | None, target: float | None = 0.85) -> None:
    """Horizontal lines at the random and scripted returns and at the ``target`` fraction of the gap."""
    if reference is None:
        return
    random_return, scripted_return = reference
    ax.axhline(random_return, color="#7f7f7f", linestyle=":", linewidth=1.2, label="random policy")
    ax.axhline(scripted_return, color="black", linestyle="--", linewidth=1.2, label="scripted policy")
    if target is not None:
        ax.axhline(target_return(reference, target), color="#ca6f1e", linestyle="-.", linewidth=1.2,
                   label=f"{target:.0%} of the gap")


def plot_learning_curves(
    runs: Mapping[str, Sequence[Sequence[Mapping]]],
    x: str = "frames",
    y: str = "return",
    *,
    reference: tuple[float, float] | None = None,
    target: float | None = 0.85,
    band: str = "iqm",
    ax=None,
    title: str | None = None,
):
    """One line per method (IQM over its seeds, by default) with a shaded band; returns the figure.

    ``runs`` maps a method's label to its seeds' curves, e.g. ``{"MAPPO": [r.curve for r in results]}``.
    ``reference`` = (random, scripted) draws their returns and the ``target`` fraction of the gap.
    The legend names the statistic and the band (see :func:`curve_band`).
    """
    if not runs:
        raise ValueError("runs is empty: give at least one method's curves")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2))
    for (label, curves), color in zip(runs.items(), METHOD_COLORS * (1 + len(runs) // len(METHOD_COLORS))):
        grid, centre, low, high = curve_band(curves, x=x, y=y, band=band)
        ax.plot(grid, centre, color=color, linewidth=1.8, label=f"{label} ({_band_legend(band, len(curves))})")
        ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    add_reference_lines(ax, reference, target)
    ax.set_xlabel(AXIS_LABELS[x])
    _thousands(ax.xaxis)
    ax.set_ylabel(Y_LABELS.get(y, y))
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    # Below the axes: inside, it would cover the curves' late, rising part.
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    return ax.figure


def _band_legend(band: str, runs: int) -> str:
    return "1 run" if runs == 1 else BAND_LEGENDS[band].format(n=runs)


def _thousands(axis, ticks: int | None = None) -> None:
    """Tick labels with thousands separators (and at most ``ticks`` of them)."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    if ticks is not None:
        axis.set_major_locator(ticker.MaxNLocator(ticks))


def iteration_seconds(curves: Sequence[Sequence[Mapping]]) -> np.ndarray:
    """The duration of every iteration of every curve, from the cumulative ``seconds`` column."""
    if len(curves) == 0 or any(len(rows) == 0 for rows in curves):
        raise ValueError("need at least one curve, and every curve needs at least one row")
    return np.concatenate([np.diff(np.r_[0.0, _column(rows, "seconds")]) for rows in curves])


def median_frames_per_second(curves: Sequence[Sequence[Mapping]]) -> float:
    """Frames per iteration over the median iteration time of all the curves' iterations.

    A load spike that slows some iterations moves a median far less than a total: the measure
    behind a comparison of speeds on a shared machine. Every curve must log the same frames per
    iteration.
    """
    durations = iteration_seconds(curves)
    steps = {float(d) for rows in curves for d in np.diff(np.r_[0.0, _column(rows, "frames")])}
    if len(steps) != 1:
        raise ValueError(f"the curves log different frames per iteration ({sorted(steps)}); need one")
    return steps.pop() / float(np.median(durations))


def at_median_speed(curves: Sequence[Sequence[Mapping]]) -> list[list[dict]]:
    """Copies of the curves with ``steady_seconds``: frames divided by the curves' median frames per second."""
    speed = median_frames_per_second(curves)
    return [[{**row, "steady_seconds": float(row["frames"]) / speed} for row in rows] for rows in curves]


DIAGNOSTICS = {
    "approx_kl": "approx. KL(old || new)",
    "clip_fraction": "clip fraction",
    "entropy": "policy entropy (nats)",
    "explained_variance": "critic's explained variance",
    "actor_grad_norm": "actor gradient norm",
    "critic_grad_norm": "critic gradient norm",
}


def plot_diagnostics(
    runs: Mapping[str, Sequence[Sequence[Mapping]]],
    keys: Sequence[str] = tuple(DIAGNOSTICS),
    *,
    columns: int = 2,
    band: str = "iqm",
    width: float = 7.0,
    panel_height: float = 2.3,
    log_scale: Sequence[str] = (),
):
    """PPO's per-iteration diagnostics against frames, one panel per key and one line per method.

    ``runs`` is as for :func:`plot_learning_curves`. Each panel draws the IQM over seeds with its
    95% bootstrap band (``band`` as in :func:`curve_band`); the keys in ``log_scale`` use a log axis
    (for runs where they span orders of magnitude). One legend for the figure, above the panels.
    Returns the figure.
    """
    if not runs:
        raise ValueError("runs is empty: give at least one method's curves")
    unknown = [key for key in keys if key not in DIAGNOSTICS]
    if unknown or not keys:
        raise ValueError(f"keys must be a non-empty subset of {tuple(DIAGNOSTICS)}; got {list(keys)!r}")
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive integer; got {columns!r}")
    rows_of_panels = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(width, panel_height * rows_of_panels + 0.6),
                             sharex=True, squeeze=False)
    colors = METHOD_COLORS * (1 + len(runs) // len(METHOD_COLORS))
    for ax, key in zip(axes.flat, keys):
        for (label, curves), color in zip(runs.items(), colors):
            grid, centre, low, high = curve_band(curves, x="frames", y=key, band=band)
            ax.plot(grid, centre, color=color, linewidth=1.6, label=f"{label} ({_band_legend(band, len(curves))})")
            ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        if key in log_scale:
            ax.set_yscale("log")
        ax.set_title(DIAGNOSTICS[key], fontsize=10.5)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(AXIS_LABELS["frames"])
        ax.xaxis.set_tick_params(labelbottom=True)
        _thousands(ax.xaxis, ticks=4)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(runs), fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


# --------------------------------------------------------------------------- behaviour
@dataclass
class Episode:
    """Positions over one episode of the recorded environment copies.

    ``agents[t, c, i]`` is agent i's position in copy ``c`` before the episode's step t (so t runs
    over the ``T`` steps; the environment resets itself after the last one, which hides the final
    position). ``landmarks`` has the same layout. ``returns[c]`` is the episode return per agent.
    """

    agents: torch.Tensor  # [T, C, n, 2]
    landmarks: torch.Tensor  # [T, C, m, 2]
    returns: torch.Tensor  # [C]
    copies: tuple[int, ...]
    agent_radius: float | None = None
    landmark_radius: float | None = None


def _positions(entities, copies: torch.Tensor) -> torch.Tensor:
    return torch.stack([entity.state.pos[copies] for entity in entities], dim=1).detach().cpu().clone()


def _radius(entities) -> float | None:
    shape = getattr(entities[0], "shape", None) if entities else None
    radius = getattr(shape, "radius", None)
    return float(radius) if radius is not None else None


@torch.no_grad()
def record_episode(
    env, policy: Callable[[torch.Tensor], torch.Tensor], seed: int | None = 0, copies: Sequence[int] | int = 1
) -> Episode:
    """Run ``policy`` (``obs [E, n, d] -> actions``) for one episode of every copy of a VMAS ``env``.

    ``env`` is a :class:`marlpg.envs.vmas_env.VmasEnv` (anything with ``world.agents`` and
    ``world.landmarks`` whose entities carry ``state.pos [E, 2]``). ``env.reset(seed)`` starts the
    episode, so two policies recorded with the same seed start from the same layouts. ``copies``
    is a number of copies (the first ones) or a list of copy indices to record.
    """
    world = getattr(env, "world", None)
    if world is None or not hasattr(world, "agents") or not hasattr(world, "landmarks"):
        raise ValueError(
            f"record_episode needs a VMAS environment with a .world (agents, landmarks); got {type(env).__name__}"
        )
    if isinstance(copies, int):
        if not 1 <= copies <= env.num_envs:
            raise ValueError(f"copies must lie in 1..{env.num_envs} (the environment's copies); got {copies!r}")
        copies = list(range(copies))
    copies = [int(c) for c in copies]
    if not copies or any(not 0 <= c < env.num_envs for c in copies):
        raise ValueError(f"copy indices must lie in 0..{env.num_envs - 1}; got {copies!r}")
    index = torch.tensor(copies, device=env.device)
    agents, landmarks = [], []
    total = torch.zeros(len(copies), device=env.device)
    with cpu_threads(1):  # many tiny tensor operations: a second CPU thread only adds synchronization
        obs = env.reset(seed).obs
        for _ in range(env.spec.horizon):
            agents.append(_positions(world.agents, index))
            landmarks.append(_positions(world.landmarks, index))
            obs, _, reward, _ = env.step(policy(obs))
            total += reward[index].mean(-1)
    return Episode(
        agents=torch.stack(agents),
        landmarks=torch.stack(landmarks),
        returns=total.cpu(),
        copies=tuple(copies),
        agent_radius=_radius(world.agents),
        landmark_radius=_radius(world.landmarks),
    )


def plot_trajectories(
    episode: Episode, copy: int = 0, ax=None, *, title: str | None = None, limit: float | None = None
):
    """Draw copy ``copy`` (a position in ``episode.copies``) of a recorded episode; returns the figure.

    Landmarks are grey discs, each agent's path a coloured line from a hollow circle (start) to a
    filled disc of the agent's size (last recorded position). The title shows the episode return.
    """
    if not 0 <= copy < len(episode.copies):
        raise ValueError(f"copy must lie in 0..{len(episode.copies) - 1} (the recorded copies); got {copy!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    paths = episode.agents[:, copy].numpy()  # [T, n, 2]
    marks = episode.landmarks[-1, copy].numpy()  # [m, 2]
    for j, (lx, ly) in enumerate(marks):
        ax.add_patch(plt.Circle((lx, ly), episode.landmark_radius or 0.05, color="#555555", alpha=0.6, zorder=1,
                                label="landmark" if j == 0 else None))
    for i in range(paths.shape[1]):
        color = AGENT_COLORS[i % len(AGENT_COLORS)]
        ax.plot(paths[:, i, 0], paths[:, i, 1], color=color, linewidth=1.5, zorder=2)
        ax.plot(*paths[0, i], marker="o", markersize=7, markerfacecolor="white", markeredgecolor=color, zorder=3)
        ax.add_patch(plt.Circle(tuple(paths[-1, i]), episode.agent_radius or 0.05, color=color, alpha=0.35, zorder=2))
    if limit is None:
        points = np.concatenate([paths.reshape(-1, 2), marks])
        limit = float(np.abs(points).max()) + 0.25
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.25)
    heading = f"return per agent {float(episode.returns[copy]):.1f}"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=10)
    return ax.figure


def draw_episode_step(episode: Episode, t: int, ax, copy: int = 0, *, title: str | None = None,
                      limit: float | None = None, trail: int = 5) -> None:
    """Picture ``t`` of copy ``copy`` of a recorded episode on ``ax`` (cleared first), for an animation: the
    landmarks as grey discs, each agent as a disc of its size at step ``t`` with its last ``trail`` steps."""
    if not 0 <= copy < len(episode.copies):
        raise ValueError(f"copy must lie in 0..{len(episode.copies) - 1} (the recorded copies); got {copy!r}")
    if not 0 <= t < episode.agents.shape[0]:
        raise ValueError(f"t must lie in 0..{episode.agents.shape[0] - 1} (the recorded steps); got {t!r}")
    ax.clear()
    paths = episode.agents[:, copy].numpy()  # [T, n, 2]
    for lx, ly in episode.landmarks[t, copy].numpy():
        ax.add_patch(plt.Circle((lx, ly), episode.landmark_radius or 0.05, color="#555555", alpha=0.6, zorder=1))
    for i in range(paths.shape[1]):
        color = AGENT_COLORS[i % len(AGENT_COLORS)]
        recent = paths[max(0, t - trail):t + 1, i]
        ax.plot(recent[:, 0], recent[:, 1], color=color, linewidth=1.2, alpha=0.6, zorder=2)
        ax.add_patch(plt.Circle(tuple(paths[t, i]), episode.agent_radius or 0.05, color=color, alpha=0.8, zorder=3))
    if limit is None:
        limit = float(np.abs(np.concatenate([paths.reshape(-1, 2), episode.landmarks[:, copy].reshape(-1, 2).numpy()])).max()) + 0.25
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title + ', ' if title else ''}step {t + 1} of {episode.agents.shape[0]}", fontsize=10)


def episodes_animation(episodes: dict[str, Episode], copy: int = 0, *, caption: str = "", width: float = 6.8):
    """The recorded ``episodes`` (name -> :class:`Episode`, e.g. a trained and a random policy from the same
    start) side by side as one animation that plays in the static book (:func:`marlpg.book.animation.animate`)."""
    from marlpg.book.animation import side_by_side

    if not episodes:
        raise ValueError("episodes must name at least one recorded Episode")
    steps = {episode.agents.shape[0] for episode in episodes.values()}
    if len(steps) != 1:
        raise ValueError(f"the episodes must have the same number of steps to play together; got {sorted(steps)}")
    limit = max(float(e.agents[:, copy].abs().max()) for e in episodes.values()) + 0.25
    draw = lambda ax, name, episode, t: draw_episode_step(episode, t, ax, copy, title=name, limit=limit)  # noqa: E731
    return side_by_side(episodes, draw, steps.pop(), width=width, caption=caption)
