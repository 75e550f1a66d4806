"""TD(lambda) targets for a critic, computed backwards in time (Sutton & Barto, 2018, ch. 12).

The lambda-return mixes n-step returns with weights (1 - lambda) lambda^(n-1):

    G_t^lambda = r_t + gamma (1 - d_t) [ (1 - lambda) v_{t+1} + lambda G_{t+1}^lambda ],

with the recursion started at the end of the rollout by G_T^lambda = v_T (the bootstrap value).
``v_t`` is whatever the critic estimates at step t: Q(x_t, u_t) of the joint action actually taken
for COMA's critic (so the targets are on-policy, SARSA-like), V(x_t) for a state-value critic.
``d_t`` is 1 when the episode ended at step t; nothing is bootstrapped across an episode's end.

Where an episode was truncated at step t (cut short of a terminal state), the return goes on
past the cut, so the target bootstraps from the value v'_t of the state reached there instead:
the bracket above becomes v'_t (``final_values``; the recursion stops, as at any episode end).

lambda = 0 gives the one-step target r_t + gamma v_{t+1}; lambda = 1 the discounted return to
the end of the episode (bootstrapped from v_T only where the rollout cuts an episode short).
"""
from __future__ import annotations

import torch

from marlpg.core.gae import continuation_mask, truncation_bootstrap


def td_lambda_targets(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    truncated: torch.Tensor | None = None,
    final_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """lambda-returns for a rollout of T steps.

    rewards, values: ``[T, ...]`` (``values[t]`` is v_t, usually from a target critic);
    dones: ``[T, ...]`` broadcastable to them (bool or 0/1); last_value: ``[...]``, v_T for the
    step after the rollout; truncated and final_values as in :func:`marlpg.core.gae.gae`.
    Returns the targets, shaped like ``rewards``.
    """
    not_done = continuation_mask(rewards, values, dones, gamma, lam)
    cut_value = truncation_bootstrap(rewards, dones, truncated, final_values)
    targets = torch.empty_like(rewards)
    next_return, next_value = last_value, last_value
    for t in reversed(range(rewards.shape[0])):
        blend = (1 - lam) * next_value + lam * next_return
        next_return = rewards[t] + gamma * (not_done[t] * blend + cut_value[t])
        targets[t] = next_return
        next_value = values[t]
    return targets


def n_step_return(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float, t: int, n: int
) -> torch.Tensor:
    """The n-step return from step t of a rollout (the forward view's building block, for checks).

    G_t^(n) = r_t + gamma r_{t+1} + ... + gamma^(n-1) r_{t+n-1} + gamma^n v_{t+n}, cut at an episode's
    end, with v_T = ``last_value`` and returns running past the rollout truncated at T.
    """
    T = rewards.shape[0]
    total = torch.zeros_like(last_value, dtype=rewards.dtype)
    discount = torch.ones_like(total)
    for k in range(t, min(t + n, T)):
        total = total + discount * rewards[k]
        discount = discount * gamma * (1.0 - dones[k].to(rewards.dtype))
    end = min(t + n, T)
    bootstrap = last_value if end == T else values[end]
    return total + discount * bootstrap
