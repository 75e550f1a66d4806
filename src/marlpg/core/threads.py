"""CPU thread counts for the two phases of on-policy training.

Measured on 2 CPU cores (VMAS simple_spread, 256 copies, MAPPO's default networks): stepping the
simulator is many tiny tensor operations, for which a second intra-op thread only adds
synchronization (collection ran several times slower with 2 threads than with 1); the update is a
few large matrix products, which 2 threads speed up by about 1.6x. So rollouts run on one thread
and updates on all of them. On a GPU the setting does not matter.

When other jobs share the cores (several trainings at once, a loaded CI runner), two things go wrong.
A second intra-op thread waits on a descheduled partner, which makes updates slower: set
``MARLPG_THREADS=1`` (or pass ``update_threads=1``) there. Worse, the idle threads of torch's OpenMP
pool wait by spinning, and the spinning takes CPU from the thread doing the work, even with one thread
per update. ``import marlpg`` therefore sets ``GOMP_SPINCOUNT=10000`` (unless it is set already, and
only if torch is not loaded yet; the scripts and the notebooks' set-up cell set it before torch loads).
Measured with ``benchmarks/bench_threads.py`` (MAPPO, 256 copies, 12 iterations, medians of 3 runs; this
2-core machine, then the same beside a busy process per core): on the busy machine the run took 30.7 s with
libgomp's default spinning and 14.7 s with the shorter one (2.1x faster); on the quiet machine 4.15 s and
4.22 s (equal within noise). ``OMP_WAIT_POLICY=PASSIVE`` (no spinning) was faster still when busy (10.8 s)
but 1.4x slower when quiet (5.74 s), so it is not the default.
"""
from __future__ import annotations

import os
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


def update_thread_count(requested: int | None = None) -> int:
    """Threads for the update: ``requested``, else ``MARLPG_THREADS``, else torch's current setting."""
    if requested is None:
        value = os.environ.get("MARLPG_THREADS", "").strip()
        if not value:
            return torch.get_num_threads()
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MARLPG_THREADS={value!r} must be a positive integer")
        requested = int(value)
    if requested < 1:
        raise ValueError(f"update_threads must be a positive integer; got {requested!r}")
    return requested
