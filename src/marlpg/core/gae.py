"""Generalized advantage estimation (Schulman et al., 2016).

    delta_t = r_t + gamma * (1 - d_t) * V(x_{t+1}) - V(x_t)
    A_t     = delta_t + gamma * lambda * (1 - d_t) * A_{t+1}
    target_t = A_t + V(x_t)            (the lambda-return the critic regresses on)

``d_t`` is 1 when the episode ended at step t, so nothing flows across episode boundaries.
"""
from __future__ import annotations

import torch


def continuation_mask(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """1 - d_t, broadcast to the rewards' shape, after checking the arguments every backward recursion shares."""
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gamma and lambda must lie in [0, 1]; got gamma={gamma!r}, lambda={lam!r}")
    if values.shape != rewards.shape:
        raise ValueError(f"values {tuple(values.shape)} must match rewards {tuple(rewards.shape)}")
    not_done = 1.0 - dones.to(rewards.dtype)
    while not_done.dim() < rewards.dim():
        not_done = not_done.unsqueeze(-1)
    return not_done


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and critic targets for a rollout of T steps.

    rewards, values: ``[T, ...]``; dones: ``[T, ...]`` broadcastable to them (bool or 0/1);
    last_value: ``[...]``, the value of the state after the last step. Returns (advantages,
    targets), both shaped like ``rewards``.
    """
    not_done = continuation_mask(rewards, values, dones, gamma, lam)
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * not_done[t] * next_value - values[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values
