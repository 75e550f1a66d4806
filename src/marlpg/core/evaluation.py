"""Scoring a trained policy: deterministic evaluation episodes and the share of the reference gap closed."""
from __future__ import annotations

from typing import Callable

import torch

from marlpg.envs.protocol import current_action_mask


@torch.no_grad()
def return_and_win_rate(act: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], env,
                        episodes_seed: int) -> tuple[float, float | None]:
    """One episode in every copy of ``env`` with ``act`` (observations, legal-action mask -> actions): the mean
    episode return per agent, and the fraction of episodes won (None where the task reports no wins).

    Wins are counted where ``env.reports_wins`` is true, from ``step.won`` (``[E]`` bool, set where an episode
    ends in a won battle: :class:`marlpg.envs.smax_env.SmaxTransition`). ``act`` gets ``env.action_mask``
    (None where every action is legal) so that a deterministic policy can keep to the legal actions.

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
        won = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        reports_wins = getattr(env, "reports_wins", False)
        while not bool(finished.all()):
            step = env.step(act(obs, current_action_mask(env)))
            total += step.reward * (~finished).unsqueeze(-1)
            if reports_wins:
                won |= step.won & ~finished
            finished |= step.done
            obs = step.obs
    return total.mean().item(), won.float().mean().item() if reports_wins else None


def deterministic_return(act: Callable[[torch.Tensor], torch.Tensor], env, episodes_seed: int) -> float:
    """Mean episode return per agent of ``act`` (observations -> actions): one episode in every copy of ``env``
    (seeded as in :func:`return_and_win_rate`)."""
    return return_and_win_rate(lambda obs, _mask: act(obs), env, episodes_seed)[0]


def gap_closed(value: float, reference: tuple[float, float] | None) -> float | None:
    """Fraction of the gap from the random to the scripted return that ``value`` closes (None without a reference)."""
    if reference is None or value != value:
        return None
    random_return, scripted_return = reference
    return (value - random_return) / (scripted_return - random_return)


def win_rate(act: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], env, episodes_seed: int) -> float:
    """Fraction of episodes won by ``act`` (observations, legal-action mask -> actions): one episode per copy,
    as in :func:`return_and_win_rate`; an environment that reports no wins is an error."""
    if not getattr(env, "reports_wins", False):
        raise ValueError(f"{type(env).__name__} reports no wins (it has no reports_wins = True, its transitions no 'won')")
    return return_and_win_rate(act, env, episodes_seed)[1]
