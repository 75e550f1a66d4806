"""Small MLP networks: the actors and critics every algorithm builds from."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Normal


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, activation=nn.Tanh, out_gain: float = 1.0) -> nn.Sequential:
    """Linear layers with orthogonal initialization (gain sqrt(2) inside, ``out_gain`` at the output)."""
    sizes = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [orthogonal(nn.Linear(fan_in, fan_out), math.sqrt(2)), activation()]
    layers.append(orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class CategoricalActor(nn.Module):
    """pi(u | o) over ``n_actions`` choices; small output gain so the first policy is near uniform."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(in_dim, hidden, n_actions, out_gain=0.01)

    def distribution(self, inputs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.net(inputs))

    def deterministic(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs).argmax(-1)


class GaussianActor(nn.Module):
    """pi(u | o) = N(mu(o), diag(sigma^2)) with a learned, state-independent log sigma.

    The environment clips samples to [-1, 1]; the log-probability is of the unclipped sample,
    which keeps the likelihood ratio exact.
    """

    def __init__(self, in_dim: int, action_dim: int, hidden: Sequence[int], init_log_std: float = -0.5):
        super().__init__()
        self.net = mlp(in_dim, hidden, action_dim, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), init_log_std))

    def distribution(self, inputs: torch.Tensor) -> Normal:
        mean = self.net(inputs)
        return Normal(mean, self.log_std.exp().expand_as(mean))

    def deterministic(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs).clamp(-1, 1)


def log_prob(dist, actions: torch.Tensor) -> torch.Tensor:
    """Log-probability of a joint action with one value per agent (sums a Gaussian's dimensions)."""
    out = dist.log_prob(actions)
    return out.sum(-1) if isinstance(dist, Normal) else out


def entropy(dist) -> torch.Tensor:
    out = dist.entropy()
    return out.sum(-1) if isinstance(dist, Normal) else out


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
