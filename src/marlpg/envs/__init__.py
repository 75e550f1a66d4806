"""Environments behind one batched protocol (see :mod:`marlpg.envs.protocol`).

``make_env("vmas:simple_spread", num_envs=256)`` builds a VMAS scenario;
``make_env("mpe2:simple_spread_v3", num_envs=8)`` builds ``num_envs`` copies of a PettingZoo
ParallelEnv from the ``mpe2`` package. Any VMAS scenario name or PettingZoo module works.
``make_env("rware:rware-tiny-2ag-v2", num_envs=8)`` builds the multi-robot warehouse
(:mod:`marlpg.envs.rware_env`; any id the ``rware`` package registers; the id fixes the robots).
``horizon`` defaults to 25 steps and ``n_agents`` to 3, except for rware, whose ids fix the robots and bring
their own step limit (500).
``make_env("pricing", num_envs=64, n_agents=2, horizon=1)`` builds marlpg's price-setting game
(:mod:`marlpg.envs.pricing`; its prices are always continuous); ``horizon=1`` is the one-shot game.
``make_env("cue", num_envs=64, n_agents=2, horizon=3, n_cues=3)`` builds the cue task
(:mod:`marlpg.envs.cue`), where a policy without memory cannot beat chance.
``make_env("fleet", num_envs=16, n_agents=128)`` builds marlpg's fleet floor (:mod:`marlpg.envs.fleet`): robots
with goals of their own and a local view of their 3 nearest neighbours, for any fleet size; ``"fleet:shared"``
is the same floor with one team reward (every robot gets the fleet's mean).
``make_env("smax:3m", num_envs=64)`` builds a JaxMARL SMAX battle by map name (``"2s3z"``, ``"8m"``, ...;
the optional ``smax`` extra, :mod:`marlpg.envs.smax_env`); its horizon defaults to SMAX's 100 steps,
the others' to 25, and its number of agents is the map's.
"""
from __future__ import annotations

import torch

from .protocol import BatchedEnv, EnvSpec, Observation, Transition

BACKENDS = ("vmas", "mpe2", "pettingzoo", "smax", "rware")
DEFAULT_AGENTS, DEFAULT_HORIZON = 3, 25  # for the tasks whose size is a choice (not SMAX, not RWARE)


def parse_env_name(name: str) -> tuple[str, str]:
    """Split ``"backend:scenario"``; raise a ValueError that lists what is allowed."""
    backend, sep, scenario = name.partition(":")
    if not sep or backend not in BACKENDS or not scenario:
        raise ValueError(
            f"environment {name!r} is not of the form 'backend:scenario' with backend in {BACKENDS} "
            "(e.g. 'vmas:simple_spread', 'mpe2:simple_spread_v3', 'rware:rware-tiny-2ag-v2')"
        )
    return backend, scenario


def make_env(
    name: str,
    num_envs: int,
    *,
    n_agents: int | None = None,
    horizon: int | None = None,
    continuous: bool = False,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    **kwargs,
) -> BatchedEnv:
    if name.startswith("smax:"):
        return _make_smax(name, num_envs, n_agents=n_agents, horizon=horizon, continuous=continuous, device=device,
                          seed=seed, **kwargs)
    if name.startswith("rware:"):
        return _make_rware(name, num_envs, n_agents=n_agents, horizon=horizon, continuous=continuous,
                           device=device, seed=seed, **kwargs)
    requested_agents = n_agents  # a PettingZoo task with a fixed team (speaker and listener) is built as it is
    n_agents = DEFAULT_AGENTS if n_agents is None else n_agents
    horizon = DEFAULT_HORIZON if horizon is None else horizon
    if name == "pricing":
        from .pricing import PricingEnv

        return PricingEnv(num_envs, n_agents=n_agents, horizon=horizon, device=device, seed=seed, **kwargs)
    if name == "cue":  # remember a cue seen at the first step until the last (marlpg.envs.cue)
        from .cue import CueTask

        if continuous:
            raise ValueError("the 'cue' task has discrete actions only; got continuous=True")
        return CueTask(num_envs, n_agents=n_agents, horizon=horizon, device=device, seed=seed, **kwargs)
    if name in ("fleet", "fleet:shared"):  # robots crossing one floor to their own goals (marlpg.envs.fleet)
        from .fleet import FleetNavigation

        if continuous:
            raise ValueError(f"the {name!r} task has discrete actions only; got continuous=True")
        if name == "fleet:shared":
            kwargs = {**kwargs, "shared_reward": True}
        return FleetNavigation(num_envs, n_agents=n_agents, horizon=horizon, device=device, seed=seed, **kwargs)
    if name in ("credit", "climbing"):  # one-step matrix games with known optima (marlpg.envs.matrix_games)
        from .matrix_games import make_matrix_game

        players = n_agents if name == "credit" else 2
        return make_matrix_game(name, num_envs, n_agents=players, continuous=continuous, device=device, **kwargs)
    backend, scenario = parse_env_name(name)
    common = dict(n_agents=n_agents, horizon=horizon, continuous=continuous, device=device, seed=seed)
    if backend == "vmas":
        from .vmas_env import VmasEnv

        return VmasEnv(scenario, num_envs, **common, **kwargs)
    from .pettingzoo_env import PettingZooEnv

    module = f"mpe2.{scenario}" if backend == "mpe2" else scenario
    return PettingZooEnv.from_module(module, num_envs, **{**common, "n_agents": requested_agents}, **kwargs)


def _make_smax(name, num_envs, *, n_agents, horizon, continuous, device, seed, **kwargs):
    import warnings

    from .smax_env import DEFAULT_MAX_STEPS, SmaxEnv

    if continuous:
        raise ValueError(f"{name} is played with discrete actions here; continuous=True is not supported")
    _, map_name = parse_env_name(name)
    env = SmaxEnv(map_name, num_envs, horizon=DEFAULT_MAX_STEPS if horizon is None else horizon, device=device,
                  seed=seed, **kwargs)
    if n_agents not in (None, env.spec.n_agents):
        warnings.warn(f"{name} has {env.spec.n_agents} agents (fixed by the map); n_agents={n_agents} was ignored",
                      stacklevel=3)
    return env


def _make_rware(name, num_envs, *, n_agents, horizon, continuous, device, seed, **kwargs) -> BatchedEnv:
    from .rware_env import RwareEnv, warn_fixed_agents

    _, scenario = parse_env_name(name)
    if continuous:
        raise ValueError(f"{name}: rware's robots take discrete actions; it cannot run with continuous=True")
    env = RwareEnv(scenario, num_envs, horizon=horizon, device=device, seed=seed, **kwargs)
    warn_fixed_agents(env, n_agents)
    return env


__all__ = ["BatchedEnv", "EnvSpec", "Observation", "Transition", "make_env", "parse_env_name"]
