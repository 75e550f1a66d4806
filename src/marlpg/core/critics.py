"""Critics whose size does not grow with the team: one encoder and one head shared by every agent.

A centralized critic on the concatenated global state has an input layer that grows with the number
of agents n, and it fixes n when it is built. These critics read a set of agents instead. Each agent's
observation is embedded, e_a = phi(o_a), a summary c_a of the team's embeddings is formed, and

    V_a = psi([e_a, c_a, tau]),

with phi and psi small MLPs shared by every agent and tau the time fraction of the episode. The
summary runs over the agents that act (w_b = 1; 0 for those that have left):

* pooled (:class:`PooledCritic`): the mean, c_a = m = sum_b w_b e_b / max(1, sum_b w_b), the same for all a;
* attention (:class:`AttentionCritic`): one head of scaled dot-product attention from agent a,
      c_a = sum_b alpha_ab W_v e_b,   alpha_ab = w_b exp(s_ab) / sum_c w_c exp(s_ac),
      s_ab = (W_q e_a) . (W_k e_b) / sqrt(k),
  and c_a = 0 where no agent acts.

The parameters do not depend on n, the same network evaluates teams of any size, and both are
permutation-equivariant: permuting the agents (with their masks) permutes the values. They see no
agent IDs; an agent's value tells itself from the others only through its own embedding e_a.
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
    layers ``hidden[1:]`` and one output. A subclass changes the summary (:meth:`team_summary`).
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
        tau = time_fraction.unsqueeze(-2).expand(*own.shape[:-1], 1)
        return self.head(torch.cat([own, self.team_summary(own, active), tau], dim=-1)).squeeze(-1)

    def team_summary(self, own: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """c_a for every agent from the embeddings ``own [..., n, k]``: here the masked mean m, ``[..., n, k]``."""
        return masked_agent_mean(own, active).unsqueeze(-2).expand_as(own)


class AttentionCritic(PooledCritic):
    """The pooled critic with c_a from one attention head over the active agents' embeddings."""

    def __init__(self, obs_dim: int, hidden: Sequence[int]):
        super().__init__(obs_dim, hidden)
        width = hidden[0]
        self.query, self.key, self.value = (orthogonal(nn.Linear(width, width), 1.0) for _ in range(3))

    def team_summary(self, own: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        scores = self.query(own) @ self.key(own).transpose(-1, -2) / math.sqrt(own.shape[-1])  # s_ab, [..., n, n]
        return attention_weights(scores, active) @ self.value(own)


def attention_weights(scores: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """alpha_ab = w_b exp(s_ab) / sum_c w_c exp(s_ac) from ``scores [..., n, n]``; rows of 0 where no agent acts."""
    if active is None:
        return scores.softmax(-1)
    attend = active.unsqueeze(-2)  # [..., 1, n]: every agent a attends to the active b
    # finfo.min, not -inf: a row with no active agent softmaxes to uniform (no NaN) and the mask then zeroes it
    return scores.masked_fill(~attend, torch.finfo(scores.dtype).min).softmax(-1) * attend