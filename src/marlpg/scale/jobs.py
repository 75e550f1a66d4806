"""Independent jobs (seeds, sweep cells) run serially or as Ray tasks, with the same results.

A multi-seed experiment is a list of jobs that share nothing: job i is ``fn(args_i)``. This
module runs such a list either in a plain loop or as one Ray task per job, on a local Ray
instance (``ray.init()`` on this machine, the default) or on a cluster (``address="ray://..."``
or ``"auto"``), and returns the results in the order of the jobs.

Why the two give the same numbers: every job seeds its own generators from its arguments and
touches no global state of the caller, so where it runs cannot change what it computes. The one
thing that can is the number of CPU threads a job's matrix products use (a different split of a
sum rounds differently). Ray gives a task ``num_cpus`` threads; ``threads_per_job`` below pins the
serial run to the same number, so both paths do the same arithmetic.

Ray is an optional extra (``pip install -e .[ray]``) and is imported only when asked for.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Sequence


INSTALL_HINT = "pip install -e .[ray]"


class RayNotInstalled(ImportError):
    """Raised when the Ray path is asked for but ``ray`` cannot be imported."""


def require_ray():
    """The ``ray`` module, or a ``RayNotInstalled`` error that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise RayNotInstalled(f"Ray is not installed; the Ray path needs the optional extra: {INSTALL_HINT}") from error
    return ray


RAY_OPTIONS = dict(include_dashboard=False, configure_logging=True, logging_level="ERROR", log_to_driver=True)
# Ray gives its raylet a fixed 30 s to register; on a loaded machine it sometimes needs longer.
RAY_START_TIMEOUT = "timed out during startup"


def start_ray(ray, *, attempts: int = 3, pause: float = 5.0, sleep=time.sleep, **options):
    """``ray.init(**options)`` (with the course's quiet defaults), tried up to ``attempts`` times.

    Ray waits a fixed 30 s for its raylet to register and then gives up; on a busy machine a second
    try usually succeeds. Only that time-out is retried (after ``ray.shutdown()`` and ``pause``
    seconds); any other error is raised at once. Each try gives the raylet another 30 s, so the
    start may take up to ``attempts`` times as long before a ``RuntimeError`` says what happened.
    """
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ValueError(f"attempts must be a positive integer; got {attempts!r}")
    options = {**RAY_OPTIONS, **options}
    for attempt in range(1, attempts + 1):
        try:
            return ray.init(**options)
        except Exception as error:  # Ray raises a bare Exception for this time-out
            if RAY_START_TIMEOUT not in str(error):
                raise
            ray.shutdown()
            if attempt == attempts:
                raise RuntimeError(
                    f"Ray did not start: its raylet failed to register within 30 s on each of {attempts} tries. "
                    "The machine is probably overloaded; wait for other work to finish and run the cell again."
                ) from error
            print(f"Ray's start timed out (try {attempt} of {attempts}, the machine is busy); "
                  f"trying again in {pause:g} s", file=sys.stderr)
            sleep(pause)


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """A connected Ray runtime for the block.

    Reuses one that is already running (and leaves it running); otherwise starts a local
    instance (``address=None``, with ``num_cpus`` CPUs, default all) or connects to the cluster
    at ``address``, and shuts it down afterwards.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus is for a local Ray instance; a cluster at an address brings its own CPUs")
    if address is None:
        start_ray(ray, num_cpus=num_cpus)
    else:
        start_ray(ray, address=address)
    try:
        yield ray
    finally:
        ray.shutdown()


def _pinned(fn: Callable, threads: int) -> Callable:
    def run(args):
        from marlpg.core.threads import cpu_threads  # torch is imported only when a job runs

        with cpu_threads(threads):
            return fn(args)

    run.__name__ = getattr(fn, "__name__", "job")
    return run


def run_jobs(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    *,
    ray: bool = False,
    address: str | None = None,
    threads_per_job: int = 1,
    gpus_per_job: float = 0,
    num_cpus: int | None = None,
) -> list:
    """``[fn(job) for job in jobs]``, serially or as one Ray task per job, in the order of ``jobs``.

    ``fn`` must be importable (a module-level function) so Ray's workers can load it.
    ``threads_per_job`` is both the CPUs Ray reserves for a task and the torch threads the
    job runs with on either path; ``gpus_per_job`` reserves GPUs (Ray path only). ``address``
    and ``num_cpus`` choose the Ray runtime (see ``ray_session``).
    """
    if not isinstance(threads_per_job, int) or isinstance(threads_per_job, bool) or threads_per_job < 1:
        raise ValueError(f"threads_per_job must be a positive integer; got {threads_per_job!r}")
    if not gpus_per_job >= 0:
        raise ValueError(f"gpus_per_job must be >= 0; got {gpus_per_job!r}")
    if (address is not None or num_cpus is not None) and not ray:
        raise ValueError("address and num_cpus choose a Ray runtime; pass ray=True to use one")
    jobs = list(jobs)
    pinned = _pinned(fn, threads_per_job)
    if not ray:
        return [pinned(job) for job in jobs]
    with ray_session(address, num_cpus) as ray_module:
        task = ray_module.remote(num_cpus=threads_per_job, num_gpus=gpus_per_job, max_retries=0)(pinned)
        return ray_module.get([task.remote(job) for job in jobs])


def train_seeds(
    algorithm,
    cfg,
    seeds: Sequence[int],
    *,
    ray: bool = False,
    address: str | None = None,
    threads_per_seed: int = 1,
) -> list:
    """``[algorithm.train_quietly(cfg with seed=s) for s in seeds]``, in a loop or as one Ray task per seed.

    ``algorithm`` is a module of :mod:`marlpg.algos` (``mappo``, ``coma``, ``maddpg``) and ``cfg``
    its config dataclass (it has ``seed``, ``device`` and ``update_threads``). Every run gets
    ``threads_per_seed`` CPU threads on both paths, so the Ray results equal the serial ones
    exactly. Runs on CUDA split the GPUs Ray sees between them. Where the algorithm knows the
    random and scripted returns of the task (``algorithm.reference_for``), every result carries them.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    configs = [dataclasses.replace(cfg, seed=seed, update_threads=threads_per_seed) for seed in seeds]
    from marlpg.core.seeding import resolve_device
    from marlpg.core.threads import cpu_threads

    gpus = round(1 / len(seeds), 4) if resolve_device(cfg.device).type == "cuda" else 0
    results = run_jobs(
        algorithm.train_quietly, configs, ray=ray, address=address, threads_per_job=threads_per_seed, gpus_per_job=gpus
    )
    if hasattr(algorithm, "reference_for"):
        with cpu_threads(1):
            reference = algorithm.reference_for(cfg)
        for result in results:
            result.reference = reference
    return results


__all__ = ["run_jobs", "train_seeds", "ray_session", "require_ray", "RayNotInstalled", "INSTALL_HINT"]
