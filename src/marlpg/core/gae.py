"""Generalized advantage estimation (Schulman et al., 2016).

    delta_t = r_t + gamma * (1 - d_t) * V(x_{t+1}) - V(x_t)
    A_t     = delta_t + gamma * lambda * (1 - d_t) * A_{t+1}
    target_t = A_t + V(x_t)            (the lambda-return the critic regresses on)

``d_t`` is 1 when the episode ended at step t, so nothing flows across episode boundaries. Where
the episode was *truncated* at step t (cut short of a terminal state, see
:mod:`marlpg.envs.protocol`), the return would have gone on, so the one-step error bootstraps
from the value of the state the episode really reached, ``V(x'_t)`` (``final_values``), instead of 0:

    delta_t = r_t + gamma [(1 - d_t) V(x_{t+1}) + c_t V(x'_t)] - V(x_t),    c_t = 1 if truncated at t

while the recursion still stops there (the next step belongs to another episode).
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


def truncation_bootstrap(
    rewards: torch.Tensor, dones: torch.Tensor, truncated: torch.Tensor | None, final_values: torch.Tensor | None
) -> torch.Tensor:
    """c_t V(x'_t): the final state's value where an episode was truncated, else 0 (shaped like ``rewards``)."""
    if truncated is None:
        return torch.zeros_like(rewards)
    if final_values is None or final_values.shape != rewards.shape:
        shape = None if final_values is None else tuple(final_values.shape)
        raise ValueError(f"truncated needs final_values shaped like the rewards {tuple(rewards.shape)}; got {shape}")
    cut = truncated.to(torch.bool)
    while cut.dim() < rewards.dim():
        cut = cut.unsqueeze(-1)
    done = dones.to(torch.bool)
    while done.dim() < rewards.dim():
        done = done.unsqueeze(-1)
    if bool((cut & ~done).any()):
        raise ValueError("truncated marks a step whose episode did not end (truncated must imply done)")
    return torch.where(cut, final_values, torch.zeros_like(final_values))


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    truncated: torch.Tensor | None = None,
    final_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and critic targets for a rollout of T steps.

    rewards, values: ``[T, ...]``; dones: ``[T, ...]`` broadcastable to them (bool or 0/1), where
    an episode ended for any reason; last_value: ``[...]``, the value of the state after the last
    step; truncated (optional, broadcastable like dones, a subset of them) with final_values
    (``[T, ...]``, the value of the state each step reached): where to bootstrap an episode that
    was cut short. Returns (advantages, targets), both shaped like ``rewards``.
    """
    not_done = continuation_mask(rewards, values, dones, gamma, lam)
    cut_value = truncation_bootstrap(rewards, dones, truncated, final_values)
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * (not_done[t] * next_value + cut_value[t]) - values[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values
