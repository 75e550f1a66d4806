"""Parameter sharing: what it saves, what it costs, and how it scales (the helpers of notebook 06).

MAPPO's actors come in groups that share one network (:func:`marlpg.algos.mappo.actor_groups`). The
schemes compared here are flags of :class:`marlpg.algos.mappo.MAPPOConfig`:

=================  ==========================================  =====================================
scheme             flags                                       networks
=================  ==========================================  =====================================
``shared``         ``share=True``                              one, input + one-hot agent ID
``shared, no ID``  ``share=True, agent_id=False``              one, observation only
``per role``       ``share=True, roles=...``                   one per role, input + one-hot ID
``per agent``      ``share=False``                             one per agent, observation only
=================  ==========================================  =====================================

* :func:`parameter_table` counts the networks MAPPO actually builds for each scheme;
  :func:`mlp_parameters` is the closed form to check them against.
* :func:`train_schemes` trains every scheme on a few seeds; :func:`curve_band` summarises them.
* :func:`time_decentralized_step` times one step of execution (every agent's actor, then the
  simulator) for a shared actor; :func:`step_timings` repeats it over team sizes.
* :func:`time_training_iteration` times one MAPPO iteration (rollout + update) at a given team size.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np
import torch

from marlpg.core.networks import CategoricalActor, parameter_count
from marlpg.core.threads import cpu_threads
from marlpg.envs import EnvSpec, make_env
from marlpg.algos.mappo import MAPPO, EpisodeTracker, MAPPOConfig, TrainResult, collect, make_optimizers, train, update


# ---------------------------------------------------------------------------- schemes and sizes
def sharing_schemes(roles: Sequence[int] | None = None) -> dict[str, dict]:
    """The MAPPOConfig flags of each scheme; ``per role`` only when ``roles`` is given."""
    schemes = {
        "shared": dict(share=True),
        "shared, no ID": dict(share=True, agent_id=False),
        "per agent": dict(share=False),
    }
    if roles is not None:
        schemes["per role"] = dict(share=True, roles=tuple(roles))
    return schemes


def mlp_parameters(in_dim: int, hidden: Sequence[int], out_dim: int) -> int:
    """Weights plus biases of a fully connected network: sum over layers of (fan_in + 1) * fan_out."""
    sizes = [in_dim, *hidden, out_dim]
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def parameter_table(spec: EnvSpec, schemes: dict[str, dict], **config) -> dict[str, dict]:
    """For each scheme: the number of actor networks, one network's input size, the actors'
    parameters in total, and the centralized critic's parameters (the same for every scheme).

    ``config`` overrides further MAPPOConfig fields (for instance ``actor_hidden``).
    """
    table = {}
    for name, flags in schemes.items():
        model = MAPPO(spec, MAPPOConfig(n_agents=spec.n_agents, **config, **flags))
        first = model.actors[0].net[0]
        table[name] = {
            "networks": len(model.actors),
            "actor input": first.in_features,
            "actor parameters": parameter_count(model.actors),
            "critic input": model.critic[0].in_features,
            "critic parameters": parameter_count(model.critic),
        }
    return table


# ---------------------------------------------------------------------------- learning curves
def train_schemes(
    base: MAPPOConfig,
    schemes: dict[str, dict],
    seeds: Iterable[int],
    with_reference: bool = False,
) -> dict[str, list[TrainResult]]:
    """Train ``base`` with each scheme's flags on every seed; ``{scheme: [result per seed]}``."""
    seeds = list(seeds)
    return {
        name: [
            train(replace(base, seed=seed, **flags), progress=False, with_reference=with_reference) for seed in seeds
        ]
        for name, flags in schemes.items()
    }


def curve_band(results: Sequence[TrainResult], key: str = "return") -> tuple[np.ndarray, ...]:
    """Frames, and the mean, minimum and maximum over seeds of ``key`` at each iteration."""
    frames = np.array([row["frames"] for row in results[0].curve])
    values = np.array([[row[key] for row in result.curve] for result in results], dtype=float)
    return frames, values.mean(0), values.min(0), values.max(0)


def mean_training_return(result: TrainResult) -> float:
    """The training curve's mean over all iterations: the normalized area under the learning curve,
    one number that rewards learning early as well as ending high."""
    return float(np.nanmean([row["return"] for row in result.curve]))


# ---------------------------------------------------------------------------- scaling
def navigation_kwargs(n_agents: int, lidar: bool) -> dict:
    """VMAS ``navigation`` at the density of its 4-agent default: agents and goals spawn in a square
    whose side grows like sqrt(n). With ``lidar`` (VMAS's ``collisions=True``) each agent also senses
    the others with 12 lidar rays: observation 18 = position, velocity, goal offset, 12 ranges;
    without it 6, and agents pass through each other."""
    half_side = math.sqrt(n_agents / 4)  # VMAS's default is 1 for its default 4 agents
    return dict(collisions=lidar, world_spawning_x=half_side, world_spawning_y=half_side)


@torch.no_grad()
def time_decentralized_step(
    n_agents: int,
    *,
    lidar: bool = True,
    num_envs: int = 4,
    steps: int = 3,
    hidden: Sequence[int] = (64, 64),
    repeats: int = 5,
    seed: int = 0,
) -> dict:
    """Time one step of decentralized execution on VMAS ``navigation`` with one shared actor (no ID).

    A step is: every agent's actor maps its own observation to an action (one batched forward pass
    over ``num_envs * n_agents`` rows), then the simulator advances. Returns the median over
    ``steps`` timed steps (after one untimed step) of each part, in milliseconds, on one thread.
    The actor's pass takes about a millisecond, short enough for one preemption by another process
    to spoil it, so each step times it ``repeats`` times on the same observations and keeps the fastest.
    """
    env = make_env("vmas:navigation", num_envs, n_agents=n_agents, seed=seed, **navigation_kwargs(n_agents, lidar))
    spec = env.spec
    torch.manual_seed(seed)
    actor = CategoricalActor(spec.obs_dim, spec.n_actions, hidden)
    obs = env.reset(seed=seed).obs
    actor_ms, env_ms = [], []
    with cpu_threads(1):
        for step in range(steps + 1):
            passes = []
            for _ in range(repeats):
                start = time.perf_counter()
                actions = actor.distribution(obs).sample()
                passes.append(time.perf_counter() - start)
            start = time.perf_counter()
            obs = env.step(actions).obs
            end = time.perf_counter()
            if step > 0:  # the first step pays one-off costs
                actor_ms.append(1e3 * min(passes))
                env_ms.append(1e3 * (end - start))
    actor_time, env_time = float(np.median(actor_ms)), float(np.median(env_ms))
    return {
        "n_agents": n_agents,
        "obs_dim": spec.obs_dim,
        "actor parameters": parameter_count(actor),
        "actor ms": actor_time,
        "simulator ms": env_time,
        "step ms": actor_time + env_time,
        "actor us per agent": 1e3 * actor_time / (num_envs * n_agents),
    }


def step_timings(team_sizes: Iterable[int], **kwargs) -> list[dict]:
    """:func:`time_decentralized_step` for every team size, as rows for a table or a plot."""
    return [time_decentralized_step(n, **kwargs) for n in team_sizes]


def time_training_iteration(n_agents: int, *, lidar: bool = False, num_envs: int = 16, seed: int = 0) -> dict:
    """Time one MAPPO iteration on ``navigation`` with ``n_agents``: a rollout of the default
    ``rollout_steps`` in ``num_envs`` copies, then the default PPO epochs. One shared actor without
    agent IDs; everything else MAPPOConfig's defaults. Threads as in :func:`marlpg.algos.mappo.train`."""
    cfg = MAPPOConfig(env="vmas:navigation", n_agents=n_agents, num_envs=num_envs, agent_id=False, seed=seed)
    scenario = navigation_kwargs(n_agents, lidar)
    env = make_env(cfg.env, num_envs, n_agents=n_agents, horizon=cfg.horizon, seed=seed, **scenario)
    torch.manual_seed(seed)
    model = MAPPO(env.spec, cfg)
    optimizers = make_optimizers(model, cfg)
    tracker = EpisodeTracker(num_envs, n_agents, env.device)
    update_threads = torch.get_num_threads()
    start = time.perf_counter()
    with cpu_threads(1):
        rollout, _ = collect(model, env, env.reset(seed=seed), cfg.rollout_steps, tracker)
    collected = time.perf_counter()
    with cpu_threads(update_threads):
        update(model, rollout, optimizers, cfg, torch.Generator().manual_seed(seed))
    done = time.perf_counter()
    return {
        "n_agents": n_agents,
        "frames": cfg.frames_per_iteration,
        "agent steps": cfg.frames_per_iteration * n_agents,
        "rollout s": collected - start,
        "update s": done - collected,
        "actor parameters": parameter_count(model.actors),
        "critic input": env.spec.state_dim,
        "critic parameters": parameter_count(model.critic),
    }
