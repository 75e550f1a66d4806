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


def record_battles(env, act: Callable, seed: int, max_steps: int | None = None) -> list[Battle]:
    """Play ``act(obs, action_mask) -> actions`` on an SMAX environment from ``reset(seed)``: one battle per copy.

    The views are read with ``env.battle_view()`` before every step; the step that ends a copy's battle resets
    that copy, so its last picture is the state one step before the end (``won`` says how it ended).
    """
    obs, _ = env.reset(seed=seed)
    views = [env.battle_view()]
    copies = obs.shape[0]
    ended_at, won = [None] * copies, [None] * copies
    for t in range(max_steps or env.spec.horizon):
        step = env.step(act(obs, env.action_mask))
        obs = step.obs
        for copy in step.done.nonzero().flatten().tolist():
            if ended_at[copy] is None:
                ended_at[copy], won[copy] = t + 1, bool(step.won[copy])
        if all(end is not None for end in ended_at):
            break
        views.append(env.battle_view())
    names = [unit_type.name for unit_type in env.unit_types]
    stacked = {key: torch.stack([view[key] for view in views], dim=1) for key in ("positions", "health", "alive", "targets")}
    battles = []
    for copy in range(copies):
        finished = ended_at[copy] is not None
        length = ended_at[copy] if finished else len(views) - 1  # steps played
        pictures = length if finished else len(views)  # a finished battle has no picture of its last step
        kept = {key: value[copy, :pictures] for key, value in stacked.items()}
        unit_names = tuple(names[int(t)] for t in views[0]["types"][copy])
        battles.append(Battle(**kept, n_allies=env.spec.n_agents, unit_names=unit_names, won=won[copy], length=length))
    return battles


def record_battle(env, act: Callable, seed: int, copy: int = 0, max_steps: int | None = None) -> Battle:
    """Copy ``copy``'s battle of :func:`record_battles`."""
    return record_battles(env, act, seed, max_steps)[copy]


def focus_fire_share(battle: Battle) -> float | None:
    """Of the steps on which two or more allies attacked, the share on which they all attacked the same unit
    (None if there were none)."""
    targets = battle.targets[:, : battle.n_allies]
    shared = [len(set(row[row >= 0].tolist())) == 1 for row in targets if int((row >= 0).sum()) >= 2]
    return sum(shared) / len(shared) if shared else None


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


def battles_animation(battles: dict[str, Battle], *, caption: str = "", width: float = 6.8):
    """Recorded battles (name -> :class:`Battle`, e.g. a trained and a random team from the same start) side by
    side as one animation that plays in the static book; a battle that ended sooner holds its last picture."""
    from marlpg.book.animation import side_by_side

    if not battles:
        raise ValueError("battles must name at least one recorded Battle")

    def draw(ax, name: str, battle: Battle, t: int) -> None:
        ax.clear()
        shown = min(t, battle.steps - 1)
        plot_battle(battle, [shown], [ax])
        ending = "" if shown < battle.steps - 1 or battle.won is None else (", won" if battle.won else ", lost")
        ax.set_title(f"{name}, step {shown}{ending}", fontsize=10)

    return side_by_side(battles, draw, max(battle.steps for battle in battles.values()), width=width, caption=caption)


def random_team(seed: int = 0) -> Callable:
    """``act(obs, action_mask)``: every unit picks uniformly among its available actions."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        weights = action_mask.float().cpu().reshape(-1, action_mask.shape[-1])
        weights[weights.sum(-1) == 0, 0] = 1.0  # a unit with nothing available (none in SMAX) takes action 0
        picks = torch.multinomial(weights, 1, generator=generator).reshape(action_mask.shape[:-1])
        return picks.to(action_mask.device)

    return act
