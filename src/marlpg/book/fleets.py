"""Chapter 09's helpers: pictures of the fleet floor (one copy's robots, their goals and their collisions, step by
step) and the verdict on the practical example's claims, written from the stored runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from marlpg.book.stats import Interval
from marlpg.book.verdicts import interval_verdict, listing
from marlpg.envs.fleet import RADIUS, FleetNavigation

CENTRALIZED = ("MAPPO", "MAPPO-pool", "MAPPO-attn")

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


def share_of_best(interval: Interval, best: float) -> Interval:
    """An interval of return per robot as shares of the best return ``best`` (the mean start distance)."""
    return Interval(interval.point / best, interval.low / best, interval.high / best, interval.runs, interval.confidence)


def claim_verdict(summary: Mapping, script: Mapping, best_return: Mapping[int, float]) -> dict:
    """The example's two claims, read from one reward's runs; every sentence follows the numbers.

    ``summary[(method, n)]["return"]`` is an :class:`Interval` of return per robot over seeds (methods ``IPPO``
    and any of ``CENTRALIZED``), ``script[n]["return"]`` the scripted robot's, ``best_return[n]`` the best return
    per robot at ``n``. Returns the sentences ``diverged`` (did independent learning fall below the script),
    ``versus`` (the best centralized critic against IPPO at the largest fleet, with Markdown emphasis) and
    ``scaled`` (did the best critic keep its share of the best return as the fleet grew), and ``best`` and
    ``largest``.
    """
    largest = max(n for (_, n) in summary)
    sizes = sorted(n for (m, n) in summary if m == "IPPO")
    critics = [m for m in CENTRALIZED if (m, largest) in summary]
    if not sizes or not critics:
        raise ValueError(f"the summary needs IPPO and one of {CENTRALIZED} at {largest} robots; it has {sorted(summary)}")
    best = max(critics, key=lambda m: summary[m, largest]["return"].point)
    share = lambda m, n: share_of_best(summary[m, n]["return"], best_return[n])  # noqa: E731
    ippo = {n: summary["IPPO", n]["return"] for n in sizes}
    below = [n for n in sizes if ippo[n].high < script[n]["return"]]
    above = [n for n in sizes if ippo[n].low > script[n]["return"]]
    shares = [share("IPPO", n).point for n in sizes]
    spread = f"its return per robot stayed between {min(shares):.0%} and {max(shares):.0%} of the best"
    if below:
        diverged = (f"independent learning (IPPO) ended below the scripted robot at {listing(below)} "
                    f"robots ({spread})")
    elif len(above) == len(sizes):
        diverged = f"independent learning (IPPO) did not diverge at any size: {spread}, above the scripted robot everywhere"
    else:
        diverged = f"independent learning (IPPO) did not fall below the scripted robot at any size ({spread})"
    versus = interval_verdict({m: share(m, largest) for m in (best, "IPPO")}, best, "IPPO",
                              what="IQM share of the best return")
    smallest = min(n for (m, n) in summary if m == best)
    kept_share = {n: share(best, n).point for n in (smallest, largest)}
    kept = "kept" if kept_share[largest] - kept_share[smallest] > -0.05 else "lost part of"
    scaled = (f"the shared actor with the {best} critic {kept} its share of the best return from {smallest} robots "
              f"({kept_share[smallest]:.0%}) to {largest} ({kept_share[largest]:.0%})")
    return {"diverged": diverged, "versus": versus, "scaled": scaled, "best": best, "largest": largest}
