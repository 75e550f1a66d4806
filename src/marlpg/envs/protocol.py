"""The batched multi-agent environment protocol every marlpg algorithm trains on.

``E`` copies of one task run side by side, each with ``n`` agents:

    reset(seed)   -> Observation(obs [E, n, d_obs], state [E, d_state])
    step(actions) -> Transition(obs, state, reward [E, n], done [E], ...)

``actions`` is ``[E, n]`` integer indices for discrete tasks and ``[E, n, d_act]`` floats in
[-1, 1] for continuous ones. Rewards are always per agent (a cooperative task repeats its team
reward). Every tensor lives on ``env.device``.

Finished copies reset themselves inside ``step``: where ``done[e]`` is true, ``obs[e]`` and
``state[e]`` already belong to the next episode, and ``reward[e]`` is the last reward of the
finished one. ``final_obs[e]`` and ``final_state[e]`` keep the state the finished episode really
reached, for bootstrapping.

How an episode ended, apart (``done = terminated | truncated``):

* ``terminated[e]``: the return ends here, nothing follows: the backend reported a terminal
  state (VMAS's ``done()``, every PettingZoo agent terminated), or the task's horizon ``H`` was
  reached. The horizon counts as terminal because it is part of the task: the global state
  carries the fraction of the horizon already used as its last feature, so x_H is a terminal
  state of the time-augmented MDP and the value after it is 0 (Pardo et al., 2018, "Time limits
  in reinforcement learning"). The actors never see the time feature.
* ``truncated[e]``: the backend cut the episode short of a terminal state (a PettingZoo
  truncation, a backend time limit below ``H``). The return would have gone on, so targets
  bootstrap from V(final_state) there: see :func:`marlpg.core.gae.gae`. RWARE is the one
  exception to the horizon rule above: its warehouse never ends, so its step limit ``H`` is a
  truncation (:mod:`marlpg.envs.rware_env`).

Per agent: ``alive[e, a]`` is false for an agent that has left its episode (PettingZoo agents
that terminate before the others); such an agent's observation and reward are 0, its action is
ignored, and it counts as terminated from that step on. ``action_mask[e, a, u]`` (discrete tasks,
``None`` when every action is always legal) marks the actions allowed at the returned ``obs``.

Adapters with agents that leave or actions that are masked also expose ``env.acting`` (``[E, n]``
bool: the agents that act at the current observation, every one after a reset) and
``env.action_mask`` (as above, for the current observation); :func:`acting_agents` and
:func:`current_action_mask` read them with defaults for the adapters that have neither.

Existing code unpacks four values, ``obs, state, reward, done = env.step(actions)``: a
Transition iterates over exactly those four, and every other field is an attribute with a
default (``terminated = done``, nothing truncated, every agent alive, no action mask).
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
    # Heterogeneous teams (SMAX's 2s3z): each agent's kind, an index into role_names, so that
    # actors can be shared per kind (MAPPOConfig.roles takes the same tuple). None: one kind.
    roles: tuple[int, ...] | None = None
    role_names: tuple[str, ...] | None = None


class Observation(NamedTuple):
    obs: torch.Tensor  # [E, n, d_obs]
    state: torch.Tensor  # [E, d_state]


_OPTIONAL = ("terminated", "truncated", "alive", "final_obs", "final_state", "action_mask")


class Transition:
    """What one step of ``E`` copies returns; iterates as ``(obs, state, reward, done)``.

    obs [E, n, d_obs], state [E, d_state]: the next episode's first ones where ``done``.
    reward [E, n]; done [E] bool = terminated | truncated.
    terminated, truncated [E] bool; alive [E, n] bool (agents still in the episode after the step);
    final_obs [E, n, d_obs], final_state [E, d_state]: what the step reached, before any reset;
    action_mask [E, n, U] bool or None: the legal actions at ``obs``.
    """

    __slots__ = ("obs", "state", "reward", "done", *_OPTIONAL)

    def __init__(self, obs, state, reward, done, *, terminated=None, truncated=None, alive=None,
                 final_obs=None, final_state=None, action_mask=None):
        done = done.bool()
        self.obs, self.state, self.reward = obs, state, reward
        self.terminated = done if terminated is None else terminated.bool()
        self.truncated = torch.zeros_like(done) if truncated is None else truncated.bool() & ~self.terminated
        if not bool(torch.equal(self.terminated | self.truncated, done)):
            raise ValueError("done must equal terminated | truncated in every copy")
        self.done = done
        self.alive = torch.ones(reward.shape, dtype=torch.bool, device=reward.device) if alive is None else alive.bool()
        self.final_obs = obs if final_obs is None else final_obs
        self.final_state = state if final_state is None else final_state
        self.action_mask = action_mask

    def __iter__(self):
        return iter((self.obs, self.state, self.reward, self.done))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index):
        return (self.obs, self.state, self.reward, self.done)[index]

    def __repr__(self) -> str:
        return f"Transition(E={self.reward.shape[0]}, done={int(self.done.sum())}, truncated={int(self.truncated.sum())})"


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


def agent_dones(step: Transition) -> torch.Tensor:
    """``[E, n]`` bool: where each agent's own episode ended at this step (its copy ended, or it left)."""
    return step.done.unsqueeze(-1) | ~step.alive


def agent_truncations(step: Transition) -> torch.Tensor:
    """``[E, n]`` bool: where an agent's episode was cut short and its targets bootstrap from ``final_state``."""
    return step.truncated.unsqueeze(-1) & step.alive


def masked_logits(logits: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
    """Logits with illegal actions at -inf-like values, so a Categorical never samples them."""
    if action_mask is None:
        return logits
    if action_mask.shape != logits.shape:
        raise ValueError(f"action_mask {tuple(action_mask.shape)} must match the logits {tuple(logits.shape)}")
    return logits.masked_fill(~action_mask.bool(), torch.finfo(logits.dtype).min)


def acting_agents(env) -> torch.Tensor:
    """``[E, n]`` bool: the agents that act at ``env``'s current observation (all, unless agents can leave)."""
    acting = getattr(env, "acting", None)
    if acting is None:
        return torch.ones(env.num_envs, env.spec.n_agents, dtype=torch.bool, device=env.device)
    return acting


def current_action_mask(env) -> torch.Tensor | None:
    """``[E, n, U]`` bool legal actions at ``env``'s current observation, or None when all are legal."""
    return getattr(env, "action_mask", None)


class CopySeeds:
    """The seeds of a list of environment copies reset one by one.

    A reset with seed ``s`` gives copy ``i`` the seed ``s + i``; the first reset without a seed uses the
    constructor's (if any); a later reset without one lets every copy run on from its own stream.
    """

    def __init__(self, seed: int | None):
        self.seed, self.used = seed, False

    def for_reset(self, seed: int | None, num_envs: int) -> list[int | None]:
        if seed is None and not self.used:
            seed = self.seed
        if seed is not None:
            self.used = True
        return [None if seed is None else int(seed) + i for i in range(num_envs)]

    def reset_each(self, reset_copy, seed: int | None, num_envs: int) -> tuple[list, list]:
        """``reset_copy(i, seed_i)`` for every copy: the lists of their observations and states."""
        pairs = [reset_copy(i, copy_seed) for i, copy_seed in enumerate(self.for_reset(seed, num_envs))]
        return [obs for obs, _ in pairs], [state for _, state in pairs]

