"""Pictures of the fleet floor (chapter 09): one copy's robots, their goals and their collisions, step by step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from marlpg.envs.fleet import RADIUS, FleetNavigation

ROBOT_COLOR, COLLIDING_COLOR, GOAL_COLOR = "#2471a3", "#c0392b", "#7f8c8d"


@dataclass
class FleetEpisode:
    """One recorded episode of one copy: ``positions [H + 1, n, 2]`` from the start to the end, ``goals [n, 2]``,
    ``colliding [H + 1, n]`` (robots that overlap another at that picture), ``arrived [n]`` at the end."""

    positions: torch.Tensor
    goals: torch.Tensor
    colliding: torch.Tensor
    arrived: torch.Tensor
    half_side: float

    @property
    def steps(self) -> int:
        return self.positions.shape[0]


@torch.no_grad()
def record_fleet(env: FleetNavigation, act: Callable[[torch.Tensor], torch.Tensor], seed: int,
                 copy: int = 0) -> FleetEpisode:
    """Play ``act`` (observations -> actions) for one episode from ``env.reset(seed)`` and keep copy ``copy``.

    Positions are read from the observations (position / half-side, goal offset), so the picture shows what
    the robots were told; the last picture comes from the step's ``final_obs``, before the floor resets.
    """
    if not isinstance(env, FleetNavigation):
        raise ValueError(f"record_fleet needs a FleetNavigation environment; got {type(env).__name__}")
    if not 0 <= copy < env.num_envs:
        raise ValueError(f"copy must be in 0..{env.num_envs - 1}; got {copy!r}")
    obs = env.reset(seed=seed).obs
    goals = obs[copy, :, 4:6] * env.half_side + obs[copy, :, 2:4]
    positions, colliding = [obs[copy, :, 4:6] * env.half_side], [env.collisions()[copy] > 0]
    for _ in range(env.spec.horizon):
        step = env.step(act(obs))
        seen = step.final_obs if bool(step.done[copy]) else step.obs
        positions.append(seen[copy, :, 4:6] * env.half_side)
        colliding.append(step.collisions[copy] > 0)
        obs = step.obs
    return FleetEpisode(torch.stack(positions), goals, torch.stack(colliding), step.arrived[copy].clone(), env.half_side)


def draw_fleet(ax, episode: FleetEpisode, t: int, title: str = "", trail: int = 6) -> None:
    """Picture ``t`` of ``episode`` on ``ax`` (cleared first): the floor, every goal (x), every robot (a disc,
    red while it overlaps another, at least 3 points wide so that a large floor stays visible) and its last
    ``trail`` steps."""
    if not 0 <= t < episode.steps:
        raise ValueError(f"t must be in 0..{episode.steps - 1}; got {t!r}")
    ax.clear()
    side = episode.half_side
    ax.set_xlim(-side, side)
    ax.set_ylim(-side, side)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    goals = episode.goals.numpy()
    ax.scatter(goals[:, 0], goals[:, 1], marker="x", s=12, color=GOAL_COLOR, linewidths=0.8)
    start = max(0, t - trail)
    for robot in range(episode.positions.shape[1]):
        path = episode.positions[start:t + 1, robot].numpy()
        ax.plot(path[:, 0], path[:, 1], color=ROBOT_COLOR, alpha=0.35, linewidth=0.8)
    width_points = ax.get_window_extent().width * 72 / ax.figure.dpi  # the axes' width in points
    diameter = max(3.0, 2 * RADIUS / (2 * side) * width_points)
    now = episode.positions[t].numpy()
    colors = [COLLIDING_COLOR if hit else ROBOT_COLOR for hit in episode.colliding[t].tolist()]
    ax.scatter(now[:, 0], now[:, 1], s=diameter ** 2, c=colors, zorder=3)
    ax.set_title(f"{title}{', ' if title else ''}step {t}", fontsize=10)
