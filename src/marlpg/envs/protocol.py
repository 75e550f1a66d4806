"""The batched multi-agent environment protocol every marlpg algorithm trains on.

``E`` copies of one task run side by side, each with ``n`` agents:

    reset(seed)   -> Observation(obs [E, n, d_obs], state [E, d_state])
    step(actions) -> Transition(obs, state, reward [E, n], done [E])

``actions`` is ``[E, n]`` integer indices for discrete tasks and ``[E, n, d_act]`` floats in
[-1, 1] for continuous ones. Rewards are always per agent (a cooperative task repeats its team
reward). Every tensor lives on ``env.device``.

Finished copies reset themselves inside ``step``: where ``done[e]`` is true, ``obs[e]`` and
``state[e]`` already belong to the next episode, and ``reward[e]`` is the last reward of the
finished one. Episodes here end at a fixed horizon; the global state carries the fraction of the
horizon already used as its last feature, so a critic can treat the horizon as terminal without
aliasing (the actors never see it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class EnvSpec:
    """Sizes an algorithm needs to build its networks."""

    n_agents: int
    obs_dim: int
    state_dim: int
    discrete: bool
    n_actions: int  # number of choices when discrete, action dimension when continuous
    horizon: int


class Observation(NamedTuple):
    obs: torch.Tensor  # [E, n, d_obs]
    state: torch.Tensor  # [E, d_state]


class Transition(NamedTuple):
    obs: torch.Tensor  # [E, n, d_obs], next episode's first observation where done
    state: torch.Tensor  # [E, d_state]
    reward: torch.Tensor  # [E, n]
    done: torch.Tensor  # [E] bool


@runtime_checkable
class BatchedEnv(Protocol):
    spec: EnvSpec
    num_envs: int
    device: torch.device

    def reset(self, seed: int | None = None) -> Observation: ...

    def step(self, actions: torch.Tensor) -> Transition: ...


def check_actions(actions: torch.Tensor, spec: EnvSpec, num_envs: int) -> None:
    """Raise a ValueError naming the shape or value that the environment cannot take."""
    if spec.discrete:
        expected = (num_envs, spec.n_agents)
        if tuple(actions.shape) != expected:
            raise ValueError(f"discrete actions must have shape {expected} (envs, agents); got {tuple(actions.shape)}")
        if actions.dtype.is_floating_point:
            raise ValueError(f"discrete actions must be integer indices; got dtype {actions.dtype}")
        low, high = int(actions.min()), int(actions.max())
        if low < 0 or high >= spec.n_actions:
            raise ValueError(f"discrete actions must lie in 0..{spec.n_actions - 1}; got values in {low}..{high}")
    else:
        expected = (num_envs, spec.n_agents, spec.n_actions)
        if tuple(actions.shape) != expected:
            raise ValueError(f"continuous actions must have shape {expected} (envs, agents, dims); got {tuple(actions.shape)}")


def time_feature(step_count: torch.Tensor, horizon: int) -> torch.Tensor:
    """Fraction of the episode already played, ``[E, 1]``: part of the global state."""
    return (step_count.float() / horizon).unsqueeze(-1)
