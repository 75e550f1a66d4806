"""Running mean and variance of the critic's targets, for value normalization.

The critic predicts targets in normalized units, ``(G - mean) / std``. Its outputs are turned
back into returns with ``denormalize`` before they enter GAE, and the targets are normalized
with the statistics updated on the current batch before they enter the loss. Without the
de-normalization, advantages would mix units as the statistics drift.
"""
from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """What both kinds of statistics share: ``normalize`` and ``denormalize`` by their ``mean`` and ``std``."""

    mean: torch.Tensor
    std: torch.Tensor

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


class RunningNormalizer(Normalizer):
    """Exact running moments over every sample seen (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = (), eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.zeros(()))

    def update(self, batch: torch.Tensor) -> None:
        """Fold in ``batch`` (leading dimensions are samples)."""
        with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
            flat = batch.reshape(-1, *self.mean.shape)
            n = flat.shape[0]
            batch_mean = flat.mean(0)
            batch_var = flat.var(0, unbiased=False)
            total = self.count + n
            delta = batch_mean - self.mean
            self.mean += delta * n / total
            self.var = (self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total
            self.count = total

    @property
    def std(self) -> torch.Tensor:
        return (self.var + self.eps).sqrt()


class DecayingNormalizer(Normalizer):
    """The statistics of marlbenchmark/on-policy's ``ValueNorm``: exponentially decayed averages of the
    batch mean and of the batch mean square, each divided by the decayed weight so far (bias correction),

        m <- beta m + (1 - beta) mean(G),   s <- beta s + (1 - beta) mean(G^2),   w <- beta w + (1 - beta),
        mean = m / w,   var = max(s / w - mean^2, min_var).

    Every batch counts alike whatever its size (the exact moments above weigh samples alike), and with
    beta close to 1 old batches are forgotten slowly. Before the first update w = 0 and the variance is
    ``min_var``, as in on-policy."""

    def __init__(self, shape: tuple[int, ...] = (), beta: float = 0.99999, eps: float = 1e-5, min_var: float = 1e-2):
        super().__init__()
        self.beta, self.eps, self.min_var = beta, eps, min_var
        self.register_buffer("decayed_mean", torch.zeros(shape))
        self.register_buffer("decayed_square", torch.zeros(shape))
        self.register_buffer("weight", torch.zeros(()))

    def update(self, batch: torch.Tensor) -> None:
        """Fold in ``batch`` (leading dimensions are samples) as one batch."""
        with torch.no_grad():
            flat = batch.reshape(-1, *self.decayed_mean.shape)
            self.decayed_mean.mul_(self.beta).add_((1 - self.beta) * flat.mean(0))
            self.decayed_square.mul_(self.beta).add_((1 - self.beta) * flat.pow(2).mean(0))
            self.weight.mul_(self.beta).add_(1 - self.beta)

    @property
    def mean(self) -> torch.Tensor:
        return self.decayed_mean / self.weight.clamp(min=self.eps)

    @property
    def var(self) -> torch.Tensor:
        return (self.decayed_square / self.weight.clamp(min=self.eps) - self.mean.pow(2)).clamp(min=self.min_var)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()
