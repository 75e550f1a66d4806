"""MAPPO on VMAS simple_spread: marlpg's implementation against RLlib's PPO set up as MAPPO.

Both train on the same task for the same number of frames in this one process, one after the
other (RLlib first), and report frames/s and the training return per agent at matching frames.

    python benchmarks/bench_rllib_mappo.py                   # 200,000 frames each (about 10 min on 2 CPU cores)
    python benchmarks/bench_rllib_mappo.py --frames 500000
    python benchmarks/bench_rllib_mappo.py --quick           # a smoke run (under a minute, mostly Ray's start)

What is the same: the task (3 agents, discrete actions, 25-step episodes), a shared actor with a
one-hot agent ID (MLP 64-64), a centralized critic on the global state (MLP 128-128), PPO's
clipped surrogate with GAE(lambda), gamma 0.99, lambda 0.95, clip 0.2, 4 epochs.
What is not (see marlpg.rllib_mappo): RLlib steps one environment copy per env runner instead of
marlpg's batch of copies, has no value normalization, and uses its own learning rate and batch
here (RLlibMAPPOConfig's defaults); marlpg runs its library defaults. One seed each.
"""
from __future__ import annotations

import argparse

import ray

from marlpg.mappo import MAPPOConfig, train
from marlpg.rllib_mappo import RLlibMAPPOConfig
from marlpg.rllib_mappo import train as train_rllib


def return_at(curve: list[dict], frames: int) -> float:
    """Training return of the last iteration that ended at or before ``frames``."""
    rows = [row for row in curve if row["frames"] <= frames] or curve[:1]
    return rows[-1]["return"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames for each learner")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run of 1,000 frames each")
    args = parser.parse_args(argv)
    frames = 1_000 if args.quick else args.frames
    if frames < 1:
        raise SystemExit(f"error: --frames must be a positive integer; got {frames}")

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=True, logging_level="ERROR")
    try:
        rllib_cfg = RLlibMAPPOConfig(total_frames=frames, seed=args.seed, **(
            dict(frames_per_iteration=500, minibatch_size=250) if args.quick else {}))
        rllib_curve = train_rllib(rllib_cfg, progress=not args.quick)
    finally:
        ray.shutdown()
    marlpg_cfg = MAPPOConfig(total_frames=frames, seed=args.seed, **(dict(num_envs=20) if args.quick else {}))
    marlpg = train(marlpg_cfg, progress=False, with_reference=False)

    rllib_fps = rllib_curve[-1]["frames"] / rllib_curve[-1]["seconds"]
    marlpg_fps = marlpg.frames / marlpg.seconds
    print(f"{'learner':<10} {'frames':>9} {'seconds':>9} {'frames/s':>10}  training return per agent at 25/50/100% of the frames")
    for name, curve, fps in (("rllib", rllib_curve, rllib_fps), ("marlpg", marlpg.curve, marlpg_fps)):
        marks = " / ".join(f"{return_at(curve, int(frames * q)):.2f}" for q in (0.25, 0.5, 1.0))
        print(f"{name:<10} {curve[-1]['frames']:>9} {curve[-1]['seconds']:>9.1f} {fps:>10,.0f}  {marks}")
    print(f"marlpg evaluation return (deterministic, {marlpg_cfg.eval_episodes} episodes): {marlpg.eval_return:.2f}")
    print(f"marlpg trains {marlpg_fps / rllib_fps:.1f}x the frames/s of RLlib here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
