"""Critics whose size does not grow with the team: one encoder and one head shared by every agent.

A centralized critic on the concatenated global state has an input layer that grows with the number
of agents n, and it fixes n when it is built. The pooled critic reads a set of agents instead:

    e_a = phi(o_a),    m = sum_b w_b e_b / max(1, sum_b w_b),    V_a = psi([e_a, m, tau]),

with phi and psi small MLPs shared by every agent, w_b = 1 for the agents that act (0 for those that
have left), and tau the time fraction of the episode. Its parameters do not depend on n, the same
network evaluates teams of any size, and it is permutation-equivariant: permuting the agents (with
their masks) permutes the values. It sees no agent IDs; an agent's value tells itself from the others
only through its own embedding e_a.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from marlpg.core.networks import mlp, orthogonal


def masked_agent_mean(embeddings: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """sum_b w_b e_b / max(1, sum_b w_b) over the agent axis of ``embeddings [..., n, k]`` -> ``[..., k]``.

    ``active [..., n]`` bool gives w (None: every agent counts). A row with no active agent pools to 0.
    """
    if active is None:
        return embeddings.mean(-2)
    if active.shape != embeddings.shape[:-1]:
        raise ValueError(f"active {tuple(active.shape)} must match the agents of the embeddings {tuple(embeddings.shape[:-1])}")
    weights = active.to(embeddings.dtype).unsqueeze(-1)
    return (embeddings * weights).sum(-2) / weights.sum(-2).clamp(min=1)


class PooledCritic(nn.Module):
    """V_a = psi([phi(o_a), mean over active b of phi(o_b), tau]) for every agent a: ``[..., n]``.

    ``hidden[0]`` is the width k of the embedding phi (one tanh layer); psi has the remaining hidden
    layers ``hidden[1:]`` and one output.
    """

    def __init__(self, obs_dim: int, hidden: Sequence[int]):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError(f"the pooled critic needs at least one hidden width (the embedding's); got {tuple(hidden)!r}")
        width = hidden[0]
        self.encoder = nn.Sequential(orthogonal(nn.Linear(obs_dim, width), math.sqrt(2)), nn.Tanh())
        self.head = mlp(2 * width + 1, hidden[1:], 1)

    def forward(self, obs: torch.Tensor, time_fraction: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """``obs [..., n, d]``, ``time_fraction [..., 1]``, ``active [..., n]`` bool or None -> values ``[..., n]``."""
        own = self.encoder(obs)
        pooled = masked_agent_mean(own, active).unsqueeze(-2).expand_as(own)
        tau = time_fraction.unsqueeze(-2).expand(*own.shape[:-1], 1)
        return self.head(torch.cat([own, pooled, tau], dim=-1)).squeeze(-1)
