"""Code 30.7.1's protocol, loop for loop: the reference every faster path is checked against.

Each seed gets its own ``numpy.random.default_rng(1000 + seed)``. From that stream the
policy means are drawn first (``standard_normal(n) * 0.5``), then, at every update,
one ``[batch, n]`` block of action noise. Rewards are computed one rollout at a time,
the per-sample policy-gradient terms are formed, their batch variance (averaged over
agents) is accumulated as the gradient-noise scale, and the means take one ascent step.
Keeping this order is what makes the printed numbers match Output 30.7.1 digit for digit.

It is deliberately slow (about 7 s for the two seed branches). Use
``marlpg.rendezvous.vectorized`` for anything else.
"""
from __future__ import annotations

import numpy as np

from .task import Rendezvous, check_count, check_finite, check_positive

FAITHFUL_CRITICS = ("state-value", "independent", "joint-action")


def pairwise_team_reward(actions: np.ndarray, task: Rendezvous) -> float:
    """R(a) with the agreement term summed over every ordered pair, as the task defines it."""
    miss = np.sum((actions - task.target) ** 2)
    gaps = actions[:, None] - actions[None, :]
    return -(miss + task.coupling * np.sum(gaps**2) / 2)


def advantages_for(critic, rewards, actions, mu, task, sigma, running_baseline):
    """Per-agent advantages [batch, n] for one batch of rollouts, looping where the math loops."""
    batch, n = actions.shape
    if critic == "state-value":
        # Sees the policies (the joint state of this one-step task) but no action:
        # its value estimate is the batch's mean team reward.
        return np.repeat((rewards - rewards.mean())[:, None], n, axis=1)
    if critic == "independent":
        # One running average per agent; it cannot tell whose noise moved the reward.
        return rewards[:, None] - running_baseline[None, :]
    # joint-action: agent i's baseline averages the team reward over i's own action only,
    # E_{a_i ~ pi_i} R(a_i, a_-i) = R(a with a_i := mu_i) - sigma^2 k, exact for a quadratic R.
    advantages = np.empty((batch, n))
    for b in range(batch):
        for i in range(n):
            counterfactual = actions[b].copy()
            counterfactual[i] = mu[i]
            baseline = pairwise_team_reward(counterfactual, task) - sigma**2 * task.own_curvature
            advantages[b, i] = rewards[b] - baseline
    return advantages


def run_faithful(
    critic: str = "state-value",
    task: Rendezvous | None = None,
    sigma: float = 0.25,
    step: float = 0.02,
    batch: int = 32,
    steps: int = 400,
    seeds: int = 30,
    seed_offset: int = 1000,
    baseline_rate: float = 0.02,
    return_means: bool = False,
):
    """Train one critic's Gaussian actors on every seed; return (final team reward, gradient variance) per seed.

    With ``return_means`` the final policy means [seeds, n] come third.
    """
    if critic not in FAITHFUL_CRITICS:
        raise ValueError(f"critic must be one of {FAITHFUL_CRITICS}, got {critic!r}")
    for name, value in (("sigma", sigma), ("step", step)):
        check_positive(name, value)
    for name, value in (("batch", batch), ("steps", steps), ("seeds", seeds)):
        check_count(name, value)
    check_count("seed_offset", seed_offset, minimum=0)
    check_finite("baseline_rate", baseline_rate)
    task = task or Rendezvous()
    final_reward, grad_variance = np.zeros(seeds), np.zeros(seeds)
    final_means = np.zeros((seeds, task.n_agents))
    for seed in range(seeds):
        rng = np.random.default_rng(seed_offset + seed)
        mu = rng.standard_normal(task.n_agents) * 0.5
        running_baseline = np.zeros(task.n_agents)
        variance_sum = 0.0
        for _ in range(steps):
            actions = mu[None, :] + sigma * rng.standard_normal((batch, task.n_agents))
            rewards = np.array([pairwise_team_reward(a, task) for a in actions])
            advantages = advantages_for(critic, rewards, actions, mu, task, sigma, running_baseline)
            if critic == "independent":
                running_baseline += baseline_rate * (rewards.mean() - running_baseline)
            per_sample_grad = advantages * (actions - mu[None, :]) / sigma**2
            variance_sum += per_sample_grad.var(axis=0).mean()
            mu += step * per_sample_grad.mean(axis=0)
        final_reward[seed] = pairwise_team_reward(mu, task)
        final_means[seed] = mu
        grad_variance[seed] = variance_sum / steps
    return (final_reward, grad_variance, final_means) if return_means else (final_reward, grad_variance)
