"""The actor-learner system (marlpg.scale.actor_learner) against marlpg.algos.mappo in one process.

For each simulator, trains MAPPO for the same frames three ways: one process (the baseline),
Ray rollout workers with a synchronous learner, and with an asynchronous one; prints frames/s
as a ratio to the baseline and the asynchronous learner's mean lag. Worker start-up is not timed.

    python benchmarks/bench_actor_learner.py                     # 2 workers; VMAS and mpe2
    python benchmarks/bench_actor_learner.py --workers 4 --cpus 8
    python benchmarks/bench_actor_learner.py --quick             # a smoke run
"""
from __future__ import annotations

import argparse

import numpy as np
import ray

from marlpg.scale import actor_learner
from marlpg.algos.mappo import MAPPOConfig, train

SIMULATORS = {  # environment: (copies in all, frames)
    "vmas:simple_spread": (256, 256 * 25 * 24),
    "mpe2:simple_spread_v3": (32, 32 * 25 * 24),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="Ray rollout workers")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--quick", action="store_true", help="two updates per run")
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise SystemExit(f"error: --workers must be at least 1; got {args.workers}")

    ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=True, logging_level="ERROR")
    try:
        print(f"{'environment':<24}{'set-up':<22}{'frames/s':>10}{'x baseline':>12}{'mean lag':>10}")
        for env_name, (copies, frames) in SIMULATORS.items():
            copies = copies // args.workers * args.workers
            frames = copies * 25 * 2 if args.quick else frames
            cfg = MAPPOConfig(env=env_name, num_envs=copies, total_frames=frames, eval_episodes=16)
            baseline = train(cfg, progress=False, with_reference=False)
            base_rate = baseline.frames / baseline.seconds
            print(f"{env_name:<24}{'one process':<22}{base_rate:>10,.0f}{1.0:>12.2f}{'':>10}")
            for mode in actor_learner.MODES:
                run = actor_learner.train(cfg, workers=args.workers, mode=mode)
                rate = run.frames / run.seconds
                lag = np.mean([row["lag"] for row in run.curve])
                setup = f"{args.workers} workers, {mode}"
                print(f"{env_name:<24}{setup:<22}{rate:>10,.0f}{rate / base_rate:>12.2f}{lag:>10.2f}")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
