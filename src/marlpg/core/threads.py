"""CPU thread counts for the two phases of on-policy training.

Measured on 2 CPU cores (VMAS simple_spread, 256 copies, MAPPO's default networks): stepping the
simulator is many tiny tensor operations, for which a second intra-op thread only adds
synchronization (collection ran several times slower with 2 threads than with 1); the update is a
few large matrix products, which 2 threads speed up by about 1.6x. So rollouts run on one thread
and updates on all of them. On a GPU the setting does not matter.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(count: int):
    """Run the block with ``count`` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
