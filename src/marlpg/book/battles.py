"""Pictures of SMAX battles (chapter 08): one copy's units, their health and who attacks whom, step by step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

ALLY_COLOR, ENEMY_COLOR = "#2471a3", "#c0392b"


@dataclass
class Battle:
    """One recorded battle: ``[T, U]`` rows per step (allies first), from the start to the last step before the end."""

    positions: torch.Tensor  # [T, U, 2]
    health: torch.Tensor  # [T, U], fraction of full health
    alive: torch.Tensor  # [T, U]
    targets: torch.Tensor  # [T, U], the unit attacked by the action that led to this step (-1: none)
    n_allies: int
    unit_names: tuple[str, ...]  # each unit's type
    won: bool | None  # None: the recording stopped before the battle ended
    length: int  # steps played

    @property
    def steps(self) -> int:
        return self.positions.shape[0]


def record_battle(env, act: Callable, seed: int, copy: int = 0, max_steps: int | None = None) -> Battle:
    """Play ``act(obs, action_mask) -> actions`` on an SMAX environment from ``reset(seed)`` and keep copy ``copy``.

    The views are read with ``env.battle_view()`` before every step; the step that ends the battle resets
    the copy, so the last picture is the state one step before the end (``won`` says how it ended).
    """
    obs, _ = env.reset(seed=seed)
    views, won, length = [env.battle_view()], None, 0
    for _ in range(max_steps or env.spec.horizon):
        step = env.step(act(obs, env.action_mask))
        obs, length = step.obs, length + 1
        if bool(step.done[copy]):
            won = bool(step.won[copy])
            break
        views.append(env.battle_view())
    names = env._env._env.unit_type_names  # JaxMARL's names of its unit types
    kept = {key: torch.stack([view[key][copy] for view in views]) for key in ("positions", "health", "alive", "targets")}
    unit_names = tuple(names[int(t)] for t in views[0]["types"][copy])
    return Battle(**kept, n_allies=env.spec.n_agents, unit_names=unit_names, won=won, length=length)


def plot_battle(battle: Battle, at: Sequence[int], axes, margin: float = 1.5) -> None:
    """One panel per step in ``at``: allies blue, enemies red, a disc's fill its health, an x a dead unit,
    an arrow each attack. The same window, fitted to every position of the battle, in every panel."""
    low = (battle.positions.reshape(-1, 2).min(0).values - margin).tolist()
    high = (battle.positions.reshape(-1, 2).max(0).values + margin).tolist()
    for ax, t in zip(axes, at):
        _draw_step(battle, t, ax)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"step {t}", fontsize=10)


def _draw_step(battle: Battle, t: int, ax) -> None:
    positions, health, alive, targets = battle.positions[t], battle.health[t], battle.alive[t], battle.targets[t]
    for unit in range(positions.shape[0]):
        color = ALLY_COLOR if unit < battle.n_allies else ENEMY_COLOR
        x, y = positions[unit].tolist()
        if not alive[unit]:
            ax.plot(x, y, marker="x", color=color, markersize=7, alpha=0.6)
            continue
        marker = "s" if battle.unit_names[unit] == "zealot" else "o"
        ax.plot(x, y, marker=marker, markersize=10, markerfacecolor="white", markeredgecolor=color)
        ax.plot(x, y, marker=marker, markersize=10, color=color, alpha=float(health[unit].clamp(0.05, 1)), linestyle="")
        target = int(targets[unit])
        if target >= 0:
            tx, ty = positions[target].tolist()
            ax.annotate("", xy=(tx, ty), xytext=(x, y), arrowprops=dict(arrowstyle="->", color=color, lw=0.8, alpha=0.8))
