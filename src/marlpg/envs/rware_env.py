"""RWARE, the multi-robot warehouse (the ``rware`` package, a gymnasium environment), behind the batched protocol.

Robots on a grid fetch the requested shelves, carry them to the goal cells at the bottom and
bring them back. ``make_env("rware:rware-tiny-2ag-v2", E)`` builds ``E`` copies of any id that
rware registers with gymnasium; the id fixes the layout and the number of robots.

* Copies: rware is a pure-Python simulator, one warehouse per object, so the adapter keeps ``E``
  of them in a list and steps them one after another (gymnasium's SyncVectorEnv does the same
  loop with more bookkeeping; benchmarks/bench_rware.py measures both).
* Observations: each robot's local view, as rware flattens it: its own position, direction,
  load and whether it stands on a corridor, then, for every cell within its sensor range, whether
  a robot stands there (and which way it faces) and whether a shelf stands there and is
  requested. 71 numbers per robot at the default sensor range 1.
* Global state: every robot's observation concatenated, then two maps of the whole floor, flattened
  row by row: where shelves stand and which of them are requested (no robot sees the requests
  outside its 3x3 view, and the critic needs them); then the time feature of
  :func:`marlpg.envs.protocol.time_feature`.
* Rewards: per robot, ``[E, n]``, as rware gives them. The registered ids use rware's individual
  reward: 1 to the robot that brings a requested shelf onto a goal cell, else 0, so the team's
  deliveries are the sum over robots and the protocol's mean over agents is deliveries per robot.
  ``reward="team"`` gives every robot that sum instead (a fully cooperative task).
* Episodes: the warehouse has no terminal state (new requests come forever), so the step limit
  ``horizon`` (rware's ``max_steps``, 500 for the registered ids) cuts the return short and is
  reported as ``truncated``: targets bootstrap from V(final_state). This departs from the
  protocol's default of counting the horizon as terminal, on purpose: the limit is a convenience
  of training, not part of the warehouse. Only an inactivity limit (``max_inactivity_steps``, off
  in the registered ids) ends an episode as ``terminated``. Every robot acts at every step; no
  action is ever illegal (rware cancels an impossible move itself), so there is no action mask.
* Actions: ``[E, n]`` integer indices in 0..4 (no-op, forward, turn left, turn right, load/unload).
* Seeding: ``reset(seed)`` resets copy ``i`` with ``seed + i``; later resets (the automatic ones
  inside :meth:`step`, or ``reset()`` without a seed) continue each copy's own generator.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import torch

from .protocol import CopySeeds, EnvSpec, Observation, Transition, check_actions, time_feature

REWARDS = ("own", "team")


def registered_ids() -> list[str]:
    """Every gymnasium id whose environment is rware's Warehouse (importing rware registers them)."""
    import gymnasium
    import rware  # noqa: F401  (registers the ids)

    return sorted(
        name for name, spec in gymnasium.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("rware.")
    )


def summarize_ids(ids: list[str]) -> str:
    """The ids in compact form: ``rware-tiny-{1..19}ag-v2`` stands for the 19 ids that differ in their robot count."""
    groups: dict[str, list[int]] = {}
    for name in ids:
        match = re.search(r"-(\d+)ag", name)
        key = name if match is None else name[: match.start(1)] + "{n}" + name[match.end(1):]
        groups.setdefault(key, []).append(0 if match is None else int(match.group(1)))
    parts = []
    for key, counts in sorted(groups.items()):
        counts = sorted(counts)
        contiguous = counts == list(range(counts[0], counts[-1] + 1))
        label = f"{{{counts[0]}..{counts[-1]}}}" if contiguous and len(counts) > 2 else "{" + ",".join(map(str, counts)) + "}"
        parts.append(key.replace("{n}", label) if "{n}" in key else key)
    return ", ".join(parts)


def build_warehouse(env_id: str, **kwargs) -> Any:
    """One rware Warehouse for ``env_id``; a ValueError names a bad id (listing rware's) or a bad option."""
    import gymnasium

    ids = registered_ids()
    if env_id not in ids:
        raise ValueError(f"{env_id!r} is not an environment id that rware registers; rware registers {summarize_ids(ids)}")
    try:
        env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
    except TypeError as error:
        import inspect

        from rware.warehouse import Warehouse

        allowed = sorted(p for p in inspect.signature(Warehouse).parameters if p not in ("n_agents", "render_mode"))
        raise ValueError(f"bad option for {env_id}: {error}; rware's options are {allowed}") from None
    return env.unwrapped  # the wrappers gymnasium.make adds only check the calling order; the adapter keeps it


class RwareEnv:
    """``num_envs`` copies of one RWARE task as a batched environment (see the module docstring)."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        horizon: int | None = None,
        reward: str = "own",
        device: str | torch.device = "cpu",
        seed: int | None = None,
        **rware_kwargs,
    ):
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        if horizon is not None and (not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1):
            raise ValueError(f"horizon must be a positive integer or None (rware's own step limit); got {horizon!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS} (each robot's own deliveries, or the team's sum); got {reward!r}")
        if "max_steps" in rware_kwargs:
            raise ValueError("pass the episode limit as horizon=..., not max_steps (the adapter sets rware's max_steps)")
        if horizon is not None:
            rware_kwargs["max_steps"] = horizon
        self.env_id = env_id
        self._envs = [build_warehouse(env_id, **rware_kwargs) for _ in range(num_envs)]
        first = self._envs[0]
        if not first.max_steps:
            raise ValueError(f"{env_id} has no step limit; give horizon=... so that every episode ends")
        self._check_spaces(first)
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.reward = reward
        self._seeds = CopySeeds(seed)
        self._ready = False
        self._steps = torch.zeros(num_envs, dtype=torch.long)
        n = first.n_agents
        rows, cols = first.grid_size
        obs_dim = int(np.prod(first.observation_space[0].shape))
        self.spec = EnvSpec(
            n_agents=n,
            obs_dim=obs_dim,
            state_dim=n * obs_dim + 2 * rows * cols + 1,
            discrete=True,
            n_actions=int(first.action_space[0].n),
            horizon=int(first.max_steps),
        )

    @staticmethod
    def _check_spaces(env) -> None:
        from gymnasium import spaces

        if not all(isinstance(space, spaces.Discrete) for space in env.action_space):
            raise ValueError("only rware tasks without message bits are supported (each robot's action one Discrete)")
        if not all(isinstance(space, spaces.Box) for space in env.observation_space):
            raise ValueError("only flat or image rware observations are supported (not the image-dict ids)")

    # ------------------------------------------------------------------ what the copies show
    def _obs_array(self, obs) -> np.ndarray:
        return np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in obs])

    @staticmethod
    def _floor_maps(env) -> np.ndarray:
        """Where shelves stand and which are requested, both ``[rows * cols]`` in {0, 1}."""
        shelves = (env.grid[1] > 0).astype(np.float32).reshape(-1)  # grid layer 1: shelf ids (0: none)
        requested = np.zeros(env.grid_size, dtype=np.float32)
        for shelf in env.request_queue:
            requested[shelf.y, shelf.x] = 1.0
        return np.concatenate([shelves, requested.reshape(-1)])

    def _state_array(self, env, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs.reshape(-1), self._floor_maps(env)])

    def _observe(self, obs: list[np.ndarray], states: list[np.ndarray], steps: torch.Tensor) -> Observation:
        obs_t = torch.from_numpy(np.stack(obs))
        state_t = torch.cat([torch.from_numpy(np.stack(states)), time_feature(steps, self.spec.horizon)], dim=-1)
        return Observation(obs_t.to(self.device), state_t.to(self.device))

    def _reset_copy(self, index: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        env = self._envs[index]
        obs, _ = env.reset(seed=seed)
        array = self._obs_array(obs)
        return array, self._state_array(env, array)

    # ------------------------------------------------------------------ protocol
    def reset(self, seed: int | None = None) -> Observation:
        obs, states = self._seeds.reset_each(self._reset_copy, seed, self.num_envs)
        self._steps.zero_()
        self._ready = True
        return self._observe(obs, states, self._steps)

    def step(self, actions: torch.Tensor) -> Transition:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        check_actions(actions, self.spec, self.num_envs)
        acts = actions.detach().to("cpu", torch.long).tolist()
        rewards = np.zeros((self.num_envs, self.spec.n_agents), dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        self._steps += 1
        reached = self._steps.clone()
        obs_out, states_out, final_obs, final_states = [], [], [], []
        for e, env in enumerate(self._envs):
            obs, reward, done, _, _ = env.step(acts[e])
            rewards[e] = reward
            o = self._obs_array(obs)
            s = self._state_array(env, o)
            final_obs.append(o)
            final_states.append(s)
            if done:
                truncated[e] = env._cur_steps >= env.max_steps  # rware's own counter: it ended at the step limit
                terminated[e] = not truncated[e]
                o, s = self._reset_copy(e, None)
            obs_out.append(o)
            states_out.append(s)
        done = terminated | truncated
        self._steps[torch.from_numpy(done)] = 0
        if self.reward == "team":
            rewards[:] = rewards.sum(axis=1, keepdims=True)
        following = self._observe(obs_out, states_out, self._steps)
        final = self._observe(final_obs, final_states, reached) if done.any() else following  # equal unless a copy reset
        return Transition(
            *following,
            torch.from_numpy(rewards).to(self.device),
            torch.from_numpy(done).to(self.device),
            terminated=torch.from_numpy(terminated).to(self.device),
            truncated=torch.from_numpy(truncated).to(self.device),
            final_obs=final.obs,
            final_state=final.state,
        )

    def close(self) -> None:
        for env in self._envs:
            env.close()

    @property
    def envs(self) -> list:
        """The underlying Warehouse copies (read-only use: rendering, scripted tests)."""
        return self._envs


def warn_fixed_agents(env: RwareEnv, n_agents: int | None) -> None:
    if n_agents is not None and n_agents != env.spec.n_agents:
        warnings.warn(
            f"{env.env_id} has {env.spec.n_agents} robots (the id fixes them); n_agents={n_agents} was ignored",
            stacklevel=4,
        )
