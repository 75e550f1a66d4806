"""Running mean and variance of the critic's targets, for value normalization.

The critic predicts targets in normalized units, ``(G - mean) / std``. Its outputs are turned
back into returns with ``denormalize`` before they enter GAE, and the targets are normalized
with the statistics updated on the current batch before they enter the loss. Without the
de-normalization, advantages would mix units as the statistics drift.
"""
from __future__ import annotations

import torch
from torch import nn


class RunningNormalizer(nn.Module):
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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
