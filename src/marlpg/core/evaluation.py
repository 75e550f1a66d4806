"""Scoring a trained policy: deterministic evaluation episodes and the share of the reference gap closed."""
from __future__ import annotations

from typing import Callable

import torch


@torch.no_grad()
def deterministic_return(act: Callable[[torch.Tensor], torch.Tensor], env, episodes_seed: int) -> float:
    """Mean episode return per agent of ``act`` (observations -> actions): one episode in every copy of ``env``.

    The episodes depend on ``episodes_seed`` alone: the global torch generator is seeded inside a fork, and
    ``env.reset(seed=...)`` reseeds only ``env``'s own stream, so an evaluation neither depends on nor disturbs
    the training run's random stream. That second half is the adapter's duty: VMAS keeps one random state for
    every VMAS environment in the process, which :class:`marlpg.envs.vmas_env.VmasEnv` swaps per adapter
    (tests/test_protocol.py checks that a run with evaluations equals the run without).
    """
    with torch.random.fork_rng(devices=[env.device] if env.device.type == "cuda" else []):
        torch.manual_seed(episodes_seed)
        obs, _ = env.reset(seed=episodes_seed)
        total = torch.zeros(env.num_envs, env.spec.n_agents, device=env.device)
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        while not bool(finished.all()):
            obs, _, reward, done = env.step(act(obs))
            total += reward * (~finished).unsqueeze(-1)
            finished |= done
    return total.mean().item()


def gap_closed(value: float, reference: tuple[float, float] | None) -> float | None:
    """Fraction of the gap from the random to the scripted return that ``value`` closes (None without a reference)."""
    if reference is None or value != value:
        return None
    random_return, scripted_return = reference
    return (value - random_return) / (scripted_return - random_return)
