"""SMAX (JaxMARL's StarCraft-like micromanagement battles) behind the batched protocol.

``make_env("smax:3m", num_envs)`` plays JaxMARL's ``HeuristicEnemySMAX`` on the map ``3m``: our
team's units are the agents, the enemy team follows JaxMARL's scripted policy. ``E`` copies run as
one ``jax.vmap`` of a single jit-compiled step (auto-reset included) on JAX's CPU backend.

* Observations ``[E, n, d_obs]``: each ally's own partial view (units within its sight range).
* Global state ``[E, d_state]``: JaxMARL's ``world_state`` (every unit's health, position,
  cooldown, type, team) plus the time feature of :func:`marlpg.envs.protocol.time_feature`.
* Reward ``[E, n]``: the team reward (enemy health removed, +1 for a won battle) for every ally
  that was alive when the step began; 0 for one already dead (the protocol's rule for agents that
  left; JaxMARL itself keeps paying dead units).
* ``alive [E, n]``: the unit is alive after the step. A unit that dies ends its own episode there
  and stays not alive (and not ``acting``) until its copy resets; its observation is 0.
* ``action_mask [E, n, U]``: JaxMARL's available actions (moves, stop, attacks on enemies in
  range). A dead unit may only stop.
* Episodes end when one team is wiped out (a termination) or at the time limit. The time limit
  ``max_steps`` defaults to ``horizon`` and then counts as a termination (the state carries the
  time feature, see :mod:`marlpg.envs.protocol`); a ``max_steps`` below ``horizon`` cuts episodes
  short of the task's horizon and those ends are ``truncated``. (JaxMARL's own SMAX checks its limit
  before counting the step and so plays ``max_steps + 1`` steps; here an episode lasts at most ``max_steps``.)
* ``won [E]`` (an extra field of the returned :class:`SmaxTransition`): the episode ended this
  step with every enemy dead and at least one ally alive. JaxMARL's own log wrapper infers a win
  from a step reward of at least 1 (the win bonus); reading the units' state says the same without
  depending on the reward's scale. :func:`marlpg.core.evaluation.win_rate` averages it.
* ``spec.roles`` / ``spec.role_names``: each ally's unit type (2s3z: stalkers and zealots), so
  that actors can be shared per kind.
* ``unit_types``: every SMAX unit type as a :class:`UnitType` (name, health, damage, sight and attack
  ranges, speed), indexed as ``battle_view()["types"]``; ``map_size``: the map's width and height.

Hand-over to torch: the jit-compiled step packs its outputs into two JAX CPU arrays (float32 and
bool), handed to torch through DLPack (``torch.from_dlpack``, no copy: the tensors share JAX's
buffers, which the adapter never donates or reuses); every field is a view of one of the two.
Copies remain in three places: the actions, cast to int32 in torch (``[E, n]``, what JAX's 32-bit
mode takes) before ``jax.dlpack.from_dlpack``; ``Transition`` itself, which derives ``truncated``
(``truncated & ~terminated``) as a new tensor; and ``.to(device)`` when ``device`` is not the CPU
(JAX runs on the CPU here). ``benchmarks/bench_smax.py`` measures the hand-over.

Random state: ``reset(seed)`` starts every copy's JAX key from ``seed`` (copy ``i`` gets
``fold_in(PRNGKey(seed), i)``); the automatic resets draw from the same per-copy keys, so a run is
reproducible from one seed and never touches torch's or NumPy's generators.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from functools import partial

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions

DEFAULT_MAX_STEPS = 100  # JaxMARL's own SMAX time limit
_FLOATS = ("obs", "state", "reward", "final_obs", "final_state")  # what one step hands over, packed in this order
_FLAGS = ("done", "terminated", "truncated", "won", "alive", "acting", "action_mask")


@dataclass(frozen=True)
class UnitType:
    """One of JaxMARL's SMAX unit types, in its own units (the map is ``SmaxEnv.map_size`` across)."""

    name: str
    full_health: float
    damage: float  # health removed by one attack
    sight_range: float  # how far its observation reaches
    attack_range: float  # how far away a unit it may attack stands
    speed: float  # distance moved per second of game time


class SmaxTransition(Transition):
    """A :class:`Transition` with ``won [E]`` bool: the copies whose episode ended in a won battle."""

    __slots__ = ("won",)

    def __init__(self, *args, won: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.won = won.bool()


@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1 while JaxMARL is imported (it prints a notice about optional environments), and
    put ``sys.stdout`` and ``sys.stderr`` back afterwards: one of its imports rebinds them to the process's original
    streams, which in a Jupyter kernel would send every later print to the kernel's terminal instead of the notebook."""
    streams = sys.stdout, sys.stderr
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout, sys.stderr = streams


def _smax_module():
    try:
        with _quiet_stdout():
            from jaxmarl.environments.smax import smax_env
            from jaxmarl.environments.smax.heuristic_enemy_smax_env import HeuristicEnemySMAX
    except ImportError as exc:
        raise ImportError(
            f"SMAX needs the optional 'smax' extra (jaxmarl and jax): pip install 'marlpg[smax]' ({exc})"
        ) from None
    _use_compilation_cache()
    return smax_env, HeuristicEnemySMAX


def _use_compilation_cache() -> None:
    """Keep compiled steps on disk unless the user chose otherwise: one SMAX step takes ~30 s to compile on a
    busy 2-core machine, and a notebook or test run that builds the same map again then loads it instead."""
    import jax

    if jax.config.jax_compilation_cache_dir is None and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "marlpg", "jax"))


def smax_maps() -> list[str]:
    """The map names JaxMARL's SMAX offers (``"3m"``, ``"2s3z"``, ...)."""
    smax_env, _ = _smax_module()
    return sorted(smax_env.MAP_NAME_TO_SCENARIO)


class SmaxEnv:
    """``num_envs`` copies of one SMAX map against JaxMARL's heuristic enemy, as one batched environment."""

    reports_wins = True  # its transitions carry ``won``: marlpg.core.evaluation counts wins on it

    def __init__(
        self,
        map_name: str,
        num_envs: int,
        *,
        horizon: int = DEFAULT_MAX_STEPS,
        max_steps: int | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        **smax_kwargs,
    ):
        smax_env, HeuristicEnemySMAX = _smax_module()
        maps = sorted(smax_env.MAP_NAME_TO_SCENARIO)
        if map_name not in maps:
            raise ValueError(f"unknown SMAX map {map_name!r}; the maps are {maps}")
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
        max_steps = horizon if max_steps is None else max_steps
        if not isinstance(max_steps, int) or not 1 <= max_steps <= horizon:
            raise ValueError(f"max_steps must be an integer in 1..horizon={horizon}; got {max_steps!r}")
        if "scenario" in smax_kwargs or "max_steps" in smax_kwargs:
            raise ValueError("pass the map by name and the time limit as max_steps, not 'scenario'")
        self.map_name, self.num_envs, self.max_steps = map_name, num_envs, max_steps
        self.device = torch.device(device)
        self._seed = 0 if seed is None else int(seed)
        self._env = HeuristicEnemySMAX(
            scenario=smax_env.map_name_to_scenario(map_name), max_steps=max_steps, **smax_kwargs
        )
        self.agents = list(self._env.agents)
        self._build_functions(horizon)
        self.spec = self._make_spec(horizon)
        smax = self._env._env
        self.unit_types = tuple(
            UnitType(str(name), float(health), float(damage), float(sight), float(reach), float(speed))
            for name, health, damage, sight, reach, speed in zip(
                smax.unit_type_names, smax.unit_type_health, smax.unit_type_attacks, smax.unit_type_sight_ranges,
                smax.unit_type_attack_ranges, smax.unit_type_velocities)
        )
        self.map_size = (float(smax.map_width), float(smax.map_height))
        self._carry = None  # (SMAX states, keys) of the E copies, batched; None before reset()
        self.acting: torch.Tensor | None = None
        self.action_mask: torch.Tensor | None = None

    # ------------------------------------------------------------------ spec
    def _make_spec(self, horizon: int) -> EnvSpec:
        env = self._env
        n = env.num_allies
        type_ids = [int(t) for t in env._env.scenario[:n]]
        kinds = sorted(set(type_ids))
        return EnvSpec(
            n_agents=n,
            obs_dim=int(env.obs_size),
            state_dim=int(env.state_size) + 1,
            discrete=True,
            n_actions=int(env.action_spaces[self.agents[0]].n),
            horizon=horizon,
            roles=tuple(kinds.index(t) for t in type_ids),
            role_names=tuple(env.unit_type_names[t] for t in kinds),
        )

    # ------------------------------------------------------------------ JAX side
    def _build_functions(self, horizon: int) -> None:
        import jax
        import jax.numpy as jnp

        env, agents, n_allies = self._env, self.agents, self._env.num_allies
        truncating = self.max_steps < horizon

        def stack(per_agent: dict):
            return jnp.stack([per_agent[a] for a in agents])

        def view(obs: dict, state, alive):
            """Observations zeroed for dead units, the global state with the time feature, the legal actions."""
            own = jnp.where(alive[:, None], stack(obs), 0.0)
            global_state = jnp.concatenate([obs["world_state"], (state.state.step / horizon)[None]])
            legal = stack(env.get_avail_actions(state)).astype(bool)
            return own, global_state.astype(jnp.float32), legal

        def reset_one(key):
            key, reset_key = jax.random.split(key)
            obs, state = env.reset(reset_key)
            alive = state.state.unit_alive[:n_allies]
            return (state, key), view(obs, state, alive)

        def step_one(carry, actions):
            state, key = carry
            key, step_key, reset_key = jax.random.split(key, 3)
            was_alive = state.state.unit_alive[:n_allies]
            obs, reached, rewards, _, _ = env.step_env(step_key, state, {a: actions[i] for i, a in enumerate(agents)})
            units = reached.state.unit_alive
            alive, enemies_left = units[:n_allies], units[n_allies:].any()
            battle_over = ~alive.any() | ~enemies_left
            # JaxMARL tests its time limit before counting the step, so its episodes last max_steps + 1 steps;
            # here they end after exactly max_steps (SMAX's own test then never fires first).
            done = battle_over | (reached.state.step >= self.max_steps)
            truncated = done & ~battle_over & truncating
            final = view(obs, reached, alive)
            reset_obs, fresh = env.reset(reset_key)
            next_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, reached)
            next_obs = jax.tree.map(lambda new, old: jnp.where(done, new, old), reset_obs, obs)
            acting = jnp.where(done, fresh.state.unit_alive[:n_allies], alive)
            own, global_state, legal = view(next_obs, next_state, acting)
            reward = jnp.where(was_alive, stack(rewards), 0.0).astype(jnp.float32)
            out = dict(obs=own, state=global_state, reward=reward, done=done, terminated=done & ~truncated,
                       truncated=truncated, alive=alive, final_obs=final[0], final_state=final[1],
                       action_mask=legal, won=done & ~enemies_left & alive.any(), acting=acting)
            return (next_state, key), out

        def strong(tree):  # the same dtypes, never weak ones, so that reset's carry and step's compile once
            return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)

        def reset_all(keys):
            carry, (own, global_state, legal) = jax.vmap(reset_one)(keys)
            return strong((carry, *_pack(dict(obs=own, state=global_state, action_mask=legal))))

        def step_all(carry, actions):
            carry, out = jax.vmap(step_one)(carry, actions)
            return strong((carry, *_pack(out)))

        self._reset_fn = jax.jit(reset_all)
        self._step_fn = jax.jit(step_all)
        self._keys_for = jax.jit(partial(_copy_keys, num_envs=self.num_envs))

    # ------------------------------------------------------------------ protocol
    def _layout(self) -> dict[str, tuple[int, ...]]:
        """Each output's shape per copy, in the packed order of :func:`_pack` (floats, then flags)."""
        n, d, ds, u = self.spec.n_agents, self.spec.obs_dim, self.spec.state_dim, self.spec.n_actions
        return dict(obs=(n, d), state=(ds,), reward=(n,), final_obs=(n, d), final_state=(ds,), done=(), terminated=(),
                    truncated=(), won=(), alive=(n,), acting=(n,), action_mask=(n, u))

    def _unpack(self, floats, flags, names=_FLOATS + _FLAGS) -> dict[str, torch.Tensor]:
        """Torch views of the two packed JAX arrays (``names`` packed by :func:`_pack`): one DLPack hand-over
        each, no copy on the CPU."""
        packed = {True: self._torch(floats), False: self._torch(flags)}
        offsets, out = {True: 0, False: 0}, {}
        for name, shape in self._layout().items():
            if name in names:
                kind, width = name in _FLOATS, math.prod(shape)
                out[name] = packed[kind][:, offsets[kind]:offsets[kind] + width].reshape(self.num_envs, *shape)
                offsets[kind] += width
        return out

    def _torch(self, array) -> torch.Tensor:
        return torch.from_dlpack(array).to(self.device)

    def reset(self, seed: int | None = None) -> Observation:
        import jax

        seed = self._seed if seed is None else int(seed)
        carry, floats, flags = self._reset_fn(self._keys_for(seed))
        # Committed to the CPU like step()'s outputs (whose actions come committed through DLPack), else
        # the step would compile twice: once for reset's uncommitted carry, once for its own.
        self._carry = jax.device_put(carry, jax.devices("cpu")[0])
        t = self._unpack(floats, flags, names=("obs", "state", "action_mask"))
        self.acting = torch.ones(self.num_envs, self.spec.n_agents, dtype=torch.bool, device=self.device)
        self.action_mask = t["action_mask"]
        return Observation(t["obs"], t["state"])

    def step(self, actions: torch.Tensor) -> SmaxTransition:
        if self._carry is None:
            raise RuntimeError("call reset() before step()")
        check_actions(actions, self.spec, self.num_envs)
        import jax

        jax_actions = jax.dlpack.from_dlpack(actions.detach().to("cpu", torch.int32).contiguous())
        self._carry, floats, flags = self._step_fn(self._carry, jax_actions)
        t = self._unpack(floats, flags)
        self.acting, self.action_mask = t["acting"], t["action_mask"]
        return SmaxTransition(
            t["obs"], t["state"], t["reward"], t["done"], terminated=t["terminated"], truncated=t["truncated"],
            alive=t["alive"], final_obs=t["final_obs"], final_state=t["final_state"], action_mask=t["action_mask"],
            won=t["won"],
        )

    def unit_health(self) -> torch.Tensor:
        """``[E, n_allies + n_enemies]`` current health of every unit (allies first): for tests and plots."""
        return self._torch(self._carry[0].state.unit_health)

    def battle_view(self) -> dict[str, torch.Tensor]:
        """Every unit of every copy now (allies first, then enemies), for pictures of a battle.

        ``positions [E, U, 2]``; ``health [E, U]`` as a fraction of the unit type's full health;
        ``alive [E, U]``; ``targets [E, U]``: the unit each one attacked with its last action, -1 where
        it moved, stopped or is dead (JaxMARL numbers an enemy's targets from the last ally down, an ally's from
        the first enemy up); ``types [E, U]``: indices into ``unit_types``.
        """
        if self._carry is None:
            raise RuntimeError("call reset() before battle_view()")
        import numpy as np

        battle, n_allies = self._carry[0].state, self._env.num_allies
        smax, moves = self._env._env, self._env._env.num_movement_actions
        types = np.asarray(battle.unit_types)
        attack = np.asarray(battle.prev_attack_actions) - moves
        units = np.arange(types.shape[1])
        target = np.where(units < n_allies, n_allies + attack, n_allies - 1 - attack)
        full = np.asarray(smax.unit_type_health)[types]
        alive = np.asarray(battle.unit_alive)
        as_torch = lambda array, dtype: torch.tensor(np.array(array), dtype=dtype)  # a copy: JAX's arrays are read-only
        return dict(
            positions=as_torch(battle.unit_positions, torch.float32),
            health=as_torch(np.asarray(battle.unit_health) / full, torch.float32),
            alive=as_torch(alive, torch.bool),
            targets=as_torch(np.where((attack >= 0) & alive, target, -1), torch.long),
            types=as_torch(types, torch.long),
        )


def _pack(out: dict):
    """The step's outputs as two arrays ``[E, *]`` (float32, bool), in the order of ``SmaxEnv._layout``: two
    DLPack hand-overs per step instead of twelve, each of which costs more than copying a small array."""
    import jax.numpy as jnp

    def join(names, dtype):
        parts = [out[k].reshape(out[k].shape[0], -1).astype(dtype) for k in names if k in out]
        return jnp.concatenate(parts, axis=1)

    return join(_FLOATS, jnp.float32), join(_FLAGS, bool)


def _copy_keys(seed, *, num_envs: int):
    import jax
    import jax.numpy as jnp

    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_envs))
