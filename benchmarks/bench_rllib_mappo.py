"""MAPPO on VMAS simple_spread: marlpg's implementation against RLlib's PPO set up as MAPPO.

Both train on the same task for the same number of frames in this one process, one after the
other (RLlib first), for every seed, and report frames/s and the training return per agent at
matching frames, as a mean over the seeds. ``--csv`` writes every iteration of every run
(notebook 07 plots the file that ships in ``benchmarks/results/``).

    python benchmarks/bench_rllib_mappo.py                    # 200,000 frames, seed 0 (about 12 min on 2 CPU cores)
    python benchmarks/bench_rllib_mappo.py --frames 300000 --seeds 0,1,2 --csv benchmarks/results/rllib_vs_marlpg.csv
    python benchmarks/bench_rllib_mappo.py --quick            # a smoke run (under a minute, mostly Ray's start)

What is the same: the task (3 agents, discrete actions, 25-step episodes), a shared actor with a
one-hot agent ID (MLP 64-64), a centralized critic on the global state (MLP 128-128), PPO's
clipped surrogate with GAE(lambda) and standardized advantages, gamma 0.99, lambda 0.95, clip 0.2,
6,400 frames per update, 4 epochs of 8 minibatches, learning rate 2e-3, entropy bonus 0.003,
gradient clip 10 (RLlibMAPPOConfig's defaults copy MAPPOConfig's).
What is not (see marlpg.scale.rllib_mappo): RLlib steps one environment copy per env runner instead of
marlpg's batch of copies, and has no value normalization (it learns the raw returns).
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import ray

from marlpg.book import stored_results
from marlpg.commands import parse_seeds
from marlpg.algos.mappo import MAPPOConfig, train
from marlpg.scale.rllib_mappo import RLlibMAPPOConfig
from marlpg.scale.rllib_mappo import train as train_rllib

FIELDS = ("method", "seed", "iteration", "frames", "seconds", "return")


def return_at(curve: list[dict], frames: int) -> float:
    """Training return of the last iteration that ended at or before ``frames``."""
    rows = [row for row in curve if row["frames"] <= frames] or curve[:1]
    return rows[-1]["return"]


def run_seed(frames: int, seed: int, quick: bool) -> dict[str, list[dict]]:
    """RLlib's curve then marlpg's for one seed, each row in marlpg's units."""
    rllib_cfg = RLlibMAPPOConfig(total_frames=frames, seed=seed, **(
        dict(frames_per_iteration=500, minibatch_size=100) if quick else {}))
    rllib_curve = train_rllib(rllib_cfg, progress=not quick)
    marlpg_cfg = MAPPOConfig(total_frames=frames, seed=seed, **(dict(num_envs=20) if quick else {}))
    marlpg_curve = train(marlpg_cfg, progress=False, with_reference=False).curve
    return {"rllib": rllib_curve, "marlpg": marlpg_curve}


def write_csv(path: Path, runs: dict[int, dict[str, list[dict]]], about: dict[str, str]) -> None:
    rows = [{**row, "method": learner, "seed": seed}
            for seed, curves in runs.items() for learner, curve in curves.items() for row in curve]
    stored_results.write(path, rows, list(FIELDS), about)


def summarize(runs: dict[int, dict[str, list[dict]]], frames: int) -> None:
    print(f"{len(runs)} seed(s); training return per agent at 25/50/100% of {frames:,} frames (mean over seeds)")
    print(f"{'learner':<8} {'frames/s':>10}  {'25%':>8} {'50%':>8} {'100%':>8}")
    fps = {}
    for learner in ("rllib", "marlpg"):
        curves = [curves[learner] for curves in runs.values()]
        fps[learner] = statistics.mean(c[-1]["frames"] / c[-1]["seconds"] for c in curves)
        marks = [statistics.mean(return_at(c, int(frames * q)) for c in curves) for q in (0.25, 0.5, 1.0)]
        print(f"{learner:<8} {fps[learner]:>10,.0f}  " + " ".join(f"{m:>8.2f}" for m in marks))
    print(f"marlpg trains {fps['marlpg'] / fps['rllib']:.1f}x the frames/s of RLlib here")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames for each learner and seed")
    parser.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-2")
    parser.add_argument("--csv", type=Path, default=None, help="write every iteration of every run here")
    parser.add_argument("--quick", action="store_true", help="a smoke run of 1,000 frames each")
    args = parser.parse_args(argv)
    frames = 1_000 if args.quick else args.frames
    if frames < 1:
        raise SystemExit(f"error: --frames must be a positive integer; got {frames}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        raise SystemExit(f"error: --seeds: {error}") from None

    about = stored_results.provenance(ray=ray.__version__)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=True, logging_level="ERROR")
    try:
        runs = {seed: run_seed(frames, seed, args.quick) for seed in seeds}
    finally:
        ray.shutdown()
    if args.csv is not None:
        write_csv(args.csv, runs, about)
        print(f"csv={args.csv}")
    summarize(runs, frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
