"""PettingZoo ParallelEnvs (e.g. the ``mpe2`` particle tasks) behind the batched protocol.

PettingZoo environments are single copies written in NumPy, so this adapter keeps ``E``
independent copies in a Python list, steps them one after another, and stacks what they return
into ``[E, n, ...]`` tensors on ``device``. Agents are always ordered as in ``possible_agents``.

* Observations: each agent's observation, flattened, as float32.
* Global state: ``env.state()`` where the environment implements it (mpe2 does: every agent's
  observation concatenated), otherwise the agents' observations concatenated; then the time
  feature (fraction of the horizon used) of :func:`marlpg.envs.protocol.time_feature`.
* Rewards: per agent, ``[E, n]``.
* Episodes: an agent that terminates (or is truncated) leaves its episode while the others go
  on: from then on it is not ``alive``, its observation and reward are 0 and its actions are not
  sent. A copy's episode ends when every agent has left or at the adapter's ``horizon``, and is
  reset inside :meth:`step`. It ended by ``truncated`` when the last agents to leave were
  truncated (the backend's time limit), else by ``terminated``; the horizon is a termination
  (see :mod:`marlpg.envs.protocol`). An agent truncated alone while others go on counts as
  terminated (its own bootstrap would need a value for an agent outside the episode).
* Action masks: where the environment gives them (``info[agent]["action_mask"]``, or a Dict
  observation with ``"observation"`` and ``"action_mask"`` entries, as PettingZoo's classic
  games do), ``Transition.action_mask`` and ``env.action_mask`` carry them, ``[E, n, U]`` bool.
* Actions: discrete tasks take ``[E, n]`` integer indices; continuous tasks take
  ``[E, n, d]`` floats in [-1, 1] (clipped), mapped linearly onto the environment's Box
  ``low..high`` (mpe2's continuous movement Box is [0, 1]^5).
* Seeding: ``reset(seed)`` resets copy ``i`` with ``seed + i``; later resets (the automatic ones
  inside :meth:`step`, or ``reset()`` without a seed) are unseeded and so continue each copy's own
  generator, which keeps a whole run reproducible from one seed.

Teams of several kinds (mpe2's ``simple_speaker_listener_v4``: a speaker that sees a colour and
can only speak, a listener that sees the landmarks and can only move) have agents with different
observation and action sizes. The adapter pads them to one shape: each observation is written into
the first features of a ``max(d_obs)`` row (the rest 0), and a discrete agent with ``U_a`` actions
gets the first ``U_a`` of ``max(U_a)`` indices, the others always masked out (``action_mask``,
combined with any mask the environment gives). ``spec.roles`` says which agents are of one kind
(the same observation and action sizes), named in ``spec.role_names`` by the agents' names
without their number (``"speaker"``, ``"listener"``), so that MAPPO shares an actor within a kind
and never across. Continuous agents must share one action size.
"""
from __future__ import annotations

import importlib
import inspect
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .protocol import CopySeeds, EnvSpec, Observation, Transition, check_actions, time_feature


class PettingZooEnv:
    """``num_envs`` copies of a PettingZoo ParallelEnv as one batched environment.

    ``envs`` is either a sequence of ParallelEnv instances (one per copy) or a callable that
    builds one, called ``num_envs`` times. ``horizon`` caps every episode (the environment may end
    episodes earlier by itself).
    """

    def __init__(
        self,
        envs: Sequence[Any] | Callable[[], Any],
        num_envs: int | None = None,
        *,
        horizon: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ):
        if callable(envs) and not isinstance(envs, Sequence):
            if num_envs is None or int(num_envs) < 1:
                raise ValueError(f"num_envs must be a positive integer when envs is a factory; got {num_envs!r}")
            envs = [envs() for _ in range(int(num_envs))]
        envs = list(envs)
        if not envs:
            raise ValueError("PettingZooEnv needs at least one environment copy")
        if num_envs is not None and int(num_envs) != len(envs):
            raise ValueError(f"num_envs={num_envs} but {len(envs)} environment copies were given")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
        self._envs = envs
        self.num_envs = len(envs)
        self.device = torch.device(device)
        self._seeds = CopySeeds(seed)
        first = envs[0]
        self.agents: list[str] = list(first.possible_agents)
        for env in envs[1:]:
            if list(env.possible_agents) != self.agents:
                raise ValueError("every copy must have the same possible_agents")
        n = len(self.agents)

        from gymnasium import spaces

        obs_spaces = [first.observation_space(a) for a in self.agents]
        self._dict_obs = all(isinstance(sp, spaces.Dict) and "observation" in sp.spaces for sp in obs_spaces)
        if self._dict_obs:
            obs_spaces = [sp["observation"] for sp in obs_spaces]
        self._obs_sizes = [int(np.prod(sp.shape)) for sp in obs_spaces]
        obs_dim = max(self._obs_sizes)

        action_spaces = [first.action_space(a) for a in self.agents]
        space = action_spaces[0]
        self._action_counts: list[int] | None = None  # discrete: each agent's own number of actions
        if isinstance(space, spaces.Discrete):
            if any(not isinstance(s, spaces.Discrete) for s in action_spaces):
                raise ValueError("all agents must have Discrete action spaces if one has; got "
                                 f"{[type(s).__name__ for s in action_spaces]}")
            self._action_counts = [int(s.n) for s in action_spaces]
            discrete, n_actions = True, max(self._action_counts)
            self._action_start = np.array([int(s.start) for s in action_spaces], dtype=np.int64)
        elif isinstance(space, spaces.Box):
            if len(space.shape) != 1:
                raise ValueError(f"continuous action spaces must be 1-D Boxes; got shape {space.shape}")
            if any(not isinstance(s, spaces.Box) or s.shape != space.shape for s in action_spaces):
                raise ValueError("agents with continuous actions must share one Box action shape; got "
                                 f"{[getattr(s, 'shape', s) for s in action_spaces]}")
            low = np.stack([np.asarray(s.low, dtype=np.float64) for s in action_spaces])
            high = np.stack([np.asarray(s.high, dtype=np.float64) for s in action_spaces])
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise ValueError("continuous actions are given in [-1, 1]; the environment's Box must be bounded")
            self._low = torch.as_tensor(low, dtype=torch.float32)  # [n, d]
            self._high = torch.as_tensor(high, dtype=torch.float32)
            self._action_dtype = space.dtype
            discrete, n_actions = False, int(space.shape[0])
        else:
            raise ValueError(f"unsupported action space {space!r}: only Discrete and 1-D Box are supported")

        self._steps = torch.zeros(self.num_envs, dtype=torch.long)
        self._alive = np.ones((self.num_envs, n), dtype=bool)
        self._masks: np.ndarray | None = None  # [E, n, U] legal actions, where the environment gives them
        self.action_mask: torch.Tensor | None = None
        self._has_state = self._probe_state(first)
        self._ready = False  # no copy may step before reset()
        if self._has_state:
            state_dim = int(np.asarray(first.state()).size)
        else:
            state_dim = n * obs_dim
        sizes = [(d, self._action_counts[i] if discrete else n_actions) for i, d in enumerate(self._obs_sizes)]
        self._size_mask = None  # [n, U]: the indices each discrete agent has, where the agents' counts differ
        if discrete and len(set(self._action_counts)) > 1:
            self._size_mask = np.arange(n_actions)[None, :] < np.array(self._action_counts)[:, None]
        roles, role_names = _kinds(self.agents, sizes)
        self.spec = EnvSpec(
            n_agents=n,
            obs_dim=obs_dim,
            state_dim=state_dim + 1,
            discrete=discrete,
            n_actions=n_actions,
            horizon=horizon,
            roles=roles,
            role_names=role_names,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_module(
        cls,
        module: str,
        num_envs: int,
        *,
        n_agents: int | None = None,
        horizon: int = 25,
        continuous: bool = False,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        **kwargs,
    ) -> "PettingZooEnv":
        """Build ``num_envs`` copies of ``module.parallel_env(...)``, e.g. ``module="mpe2.simple_spread_v3"``.

        ``n_agents`` is passed as ``N`` and ``horizon`` as ``max_cycles`` where the environment
        takes them; ``continuous`` as ``continuous_actions``. Other keyword arguments go to the
        environment unchanged and must be among its parameters.
        """
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            hint = ""
            if module.startswith("mpe2."):
                try:
                    from mpe2.all_modules import mpe_environments

                    names = sorted(name.split("/", 1)[1] for name in mpe_environments)
                    hint = f"; mpe2 provides {names}"
                except ImportError:
                    hint = "; is the mpe2 package installed?"
            raise ValueError(f"cannot import PettingZoo environment module {module!r} ({exc}){hint}") from None
        factory = getattr(mod, "parallel_env", None)
        if not callable(factory):
            raise ValueError(f"module {module!r} has no parallel_env(); it is not a PettingZoo environment module")

        params, open_ended = _parameters(getattr(mod, "raw_env", factory))
        call: dict[str, Any] = {}
        takes = (lambda name: open_ended or name in params)
        if n_agents is not None and "N" in params:
            call["N"] = int(n_agents)
        if takes("max_cycles"):
            call["max_cycles"] = int(horizon)
        if takes("continuous_actions"):
            call["continuous_actions"] = bool(continuous)
        elif continuous:
            raise ValueError(f"{module} has no continuous_actions option; it cannot run with continuous=True")
        unknown = sorted(k for k in kwargs if not takes(k) or k in ("N", "max_cycles", "continuous_actions"))
        if unknown:
            allowed = sorted(p for p in params if p not in ("N", "max_cycles", "continuous_actions", "render_mode"))
            raise ValueError(
                f"unknown keyword argument(s) {unknown} for {module}.parallel_env "
                f"(n_agents, horizon and continuous set N, max_cycles and continuous_actions; other options: {allowed})"
            )
        call.update(kwargs)
        env = cls(lambda: factory(**call), num_envs, horizon=horizon, device=device, seed=seed)
        if n_agents is not None and env.spec.n_agents != n_agents:
            if "N" in params:
                raise ValueError(f"{module} built {env.spec.n_agents} agents, not the {n_agents} asked for")
            warnings.warn(
                f"{module} has a fixed number of agents ({env.spec.n_agents}); n_agents={n_agents} was ignored",
                stacklevel=2,
            )
        return env

    @staticmethod
    def _probe_state(env) -> bool:
        state = getattr(env, "state", None)
        if not callable(state):
            return False
        try:
            env.reset()
            state()
        except (NotImplementedError, AttributeError):
            return False
        return True

    # ------------------------------------------------------------------ protocol
    def _obs_array(self, env, obs: dict, alive=None) -> np.ndarray:
        out = np.zeros((self.spec.n_agents, self.spec.obs_dim), dtype=np.float32)
        for i, agent in enumerate(self.agents):
            if agent in obs and (alive is None or alive[i]):
                value = obs[agent]["observation"] if self._dict_obs else obs[agent]
                out[i, : self._obs_sizes[i]] = np.asarray(value, dtype=np.float32).reshape(-1)
        return out

    def _mask_array(self, obs: dict, infos: dict) -> np.ndarray | None:
        """``[n, U]`` legal actions from Dict observations or infos; None where the environment gives none."""
        if not self.spec.discrete:
            return None
        found = self._size_mask is not None
        out = np.ones((self.spec.n_agents, self.spec.n_actions), dtype=bool) if not found else self._size_mask.copy()
        for i, agent in enumerate(self.agents):
            mask = None
            if self._dict_obs and isinstance(obs.get(agent), dict):
                mask = obs[agent].get("action_mask")
            if mask is None and isinstance(infos.get(agent), dict):
                mask = infos[agent].get("action_mask")
            if mask is not None:
                found, out[i, : self._action_counts[i]] = True, np.asarray(mask, dtype=bool).reshape(-1)
        return out if found else None

    def _set_mask(self, index: int, mask: np.ndarray | None) -> None:
        if mask is None and self._masks is None:
            return
        if self._masks is None:
            self._masks = np.ones((self.num_envs, self.spec.n_agents, self.spec.n_actions), dtype=bool)
        self._masks[index] = True if mask is None else mask

    def _state_array(self, env, obs: np.ndarray) -> np.ndarray:
        if self._has_state:
            return np.asarray(env.state(), dtype=np.float32).reshape(-1)
        return obs.reshape(-1)

    def _reset_copy(self, index: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        env = self._envs[index]
        obs, infos = env.reset(seed=seed)
        self._set_mask(index, self._mask_array(obs, infos))
        array = self._obs_array(env, obs)
        return array, self._state_array(env, array)

    def _observe(self, obs: list[np.ndarray], states: list[np.ndarray], steps: torch.Tensor | None = None) -> Observation:
        obs_t = torch.from_numpy(np.stack(obs)).to(self.device)
        state_t = torch.from_numpy(np.stack(states))
        steps = self._steps if steps is None else steps
        state_t = torch.cat([state_t, time_feature(steps, self.spec.horizon)], dim=-1).to(self.device)
        return Observation(obs_t, state_t)

    def reset(self, seed: int | None = None) -> Observation:
        obs, states = self._seeds.reset_each(self._reset_copy, seed, self.num_envs)
        self._steps.zero_()
        self._alive = np.ones((self.num_envs, self.spec.n_agents), dtype=bool)
        self._ready = True
        self._publish_mask()
        return self._observe(obs, states)

    @property
    def acting(self) -> torch.Tensor:
        """``[E, n]`` bool: the agents that act at the current observation."""
        return torch.from_numpy(self._alive.copy()).to(self.device)

    def _publish_mask(self) -> None:
        self.action_mask = None if self._masks is None else torch.from_numpy(self._masks.copy()).to(self.device)

    def _env_actions(self, actions: torch.Tensor) -> np.ndarray:
        if self.spec.discrete:
            indices = actions.detach().to("cpu", torch.long).numpy()
            if self._size_mask is not None:
                beyond = indices >= np.array(self._action_counts)[None, :]
                if beyond.any():
                    agent = int(beyond.any(0).argmax())
                    raise ValueError(f"agent {self.agents[agent]!r} has actions 0..{self._action_counts[agent] - 1}; "
                                     f"got {int(indices[:, agent].max())}")
            return indices + self._action_start[None, :]
        a = actions.detach().to("cpu", torch.float32).clamp(-1.0, 1.0)
        a = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        a = torch.minimum(torch.maximum(a, self._low), self._high)  # guard against rounding
        return a.numpy().astype(self._action_dtype, copy=False)

    def step(self, actions: torch.Tensor) -> Transition:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        check_actions(actions, self.spec, self.num_envs)
        acts = self._env_actions(actions)
        n = self.spec.n_agents
        rewards = np.zeros((self.num_envs, n), dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        self._steps += 1
        reached = self._steps.clone()
        horizon_hit = (self._steps >= self.spec.horizon).tolist()
        obs_out, states_out, final_obs, final_states = [], [], [], []
        for e, env in enumerate(self._envs):
            acting = [self._alive[e, i] and agent in env.agents for i, agent in enumerate(self.agents)]
            step_actions = {
                agent: (int(acts[e, i]) if self.spec.discrete else acts[e, i])
                for i, agent in enumerate(self.agents)
                if acting[i]
            }
            obs, rew, term, trunc, infos = env.step(step_actions)
            remaining = set(env.agents)
            still_in, cut = [False] * n, [False] * n
            for i, agent in enumerate(self.agents):
                if acting[i]:
                    rewards[e, i] = float(rew.get(agent, 0.0))
                    ended_by_term, ended_by_trunc = bool(term.get(agent, False)), bool(trunc.get(agent, False))
                    still_in[i] = agent in remaining and not (ended_by_term or ended_by_trunc)
                    cut[i] = ended_by_trunc and not ended_by_term
            o = self._obs_array(env, obs, alive=acting)
            final_obs.append(o)
            final_states.append(self._state_array(env, o))
            if horizon_hit[e] or not any(still_in):
                truncated[e] = not horizon_hit[e] and any(cut)
                terminated[e] = not truncated[e]
                self._alive[e] = [a or c for a, c in zip(still_in, cut)]
                o, s = self._reset_copy(e, None)
            else:
                self._alive[e] = still_in
                self._set_mask(e, self._mask_array(obs, infos))
                o = self._obs_array(env, obs, alive=still_in)
                s = self._state_array(env, o)
            obs_out.append(o)
            states_out.append(s)
        done = terminated | truncated
        alive = torch.from_numpy(self._alive.copy())
        self._alive[done] = True  # a reset copy starts with every agent in
        self._steps[torch.from_numpy(done)] = 0
        self._publish_mask()
        final = self._observe(final_obs, final_states, steps=reached)
        return Transition(
            *self._observe(obs_out, states_out),
            torch.from_numpy(rewards).to(self.device),
            torch.from_numpy(done).to(self.device),
            terminated=torch.from_numpy(terminated).to(self.device),
            truncated=torch.from_numpy(truncated).to(self.device),
            alive=alive.to(self.device),
            final_obs=final.obs,
            final_state=final.state,
            action_mask=self.action_mask,
        )

    def close(self) -> None:
        for env in self._envs:
            try:
                env.close()
            except Exception:  # closing is best effort (mpe2's close quits pygame globally)
                pass

    @property
    def envs(self) -> list:
        """The underlying PettingZoo copies (read-only use: plots, rendering)."""
        return self._envs


def _kinds(agents: list[str], sizes: list[tuple[int, int]]) -> tuple[tuple[int, ...] | None, tuple[str, ...] | None]:
    """Agents grouped by their (observation size, action size): (each agent's kind, the kinds' names), or
    (None, None) for a team of one kind. A kind is named by its first agent's name without a trailing number."""
    distinct = list(dict.fromkeys(sizes))
    if len(distinct) == 1:
        return None, None
    roles = tuple(distinct.index(size) for size in sizes)
    names = [agents[roles.index(kind)].rstrip("0123456789").rstrip("_") or f"kind {kind}" for kind in range(len(distinct))]
    if len(set(names)) < len(names):
        names = [f"kind {kind}" for kind in range(len(distinct))]
    return roles, tuple(names)


def _parameters(fn) -> tuple[set[str], bool]:
    """Names of ``fn``'s keyword parameters, and whether it also takes arbitrary ``**kwargs``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, open_ended
