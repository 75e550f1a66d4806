"""Agent identities and what each agent's actor may see.

With parameter sharing, one network acts for every agent, so each input carries a one-hot agent
ID; otherwise agents could not behave differently from identical observations. Without sharing,
each agent has its own network and needs no ID.
"""
from __future__ import annotations

import torch


def one_hot_ids(n_agents: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[n, n]`` identity: row i is agent i's ID."""
    return torch.eye(n_agents, device=device)


def with_agent_ids(obs: torch.Tensor) -> torch.Tensor:
    """Append each agent's one-hot ID to its observation: ``[..., n, d] -> [..., n, d + n]``."""
    n = obs.shape[-2]
    ids = one_hot_ids(n, obs.device).expand(*obs.shape[:-2], n, n)
    return torch.cat([obs, ids], dim=-1)
