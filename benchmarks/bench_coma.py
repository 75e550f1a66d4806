"""COMA against the same actors with a state-value and an independent baseline, and against MAPPO.

Three measurements, each printed as ratios against COMA run in the same process:

1. credit game, advantage variance at fixed (initial) policies: each critic is fitted on the same
   kind of experience, then every agent's advantage variance is measured on a fresh batch
   (relevant agents; k = n/2 of n matter);
2. credit game, learning: episodes until the policies' expected payoff reaches 90% of the optimum,
   mean over seeds, as n grows;
3. VMAS simple_spread: COMA and MAPPO at equal frames (deterministic evaluation, gap closed between
   the random and the scripted policy) and their training speed in frames per second.

    python benchmarks/bench_coma.py            # n in 2..16, 8 seeds, 300,000 frames on simple_spread
    python benchmarks/bench_coma.py --quick    # a few seconds, for the test suite
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from marlpg.algos.coma import COMAConfig, advantage_snapshot, episodes_to_optimum, fit_critic, train  # noqa: E402
from marlpg.envs import make_env  # noqa: E402
from marlpg.algos.mappo import MAPPOConfig, gap_closed  # noqa: E402
from marlpg.algos.mappo import train as train_mappo  # noqa: E402

BASELINES = {"COMA": "counterfactual", "state value": "state_value", "independent": "independent"}


def variance_ratios(n_grid, fit_iterations: int, episodes: int) -> None:
    print("== advantage variance of the relevant agents at the initial policies (fitted critics) ==")
    for n in n_grid:
        variance = {}
        for label, baseline in BASELINES.items():
            cfg = COMAConfig(env="credit", baseline=baseline, n_agents=n, num_envs=64, seed=0)
            model, _ = fit_critic(cfg, fit_iterations)
            torch.manual_seed(1_000)
            snap = advantage_snapshot(model, make_env("credit", episodes, n_agents=n))
            variance[label] = snap["advantages"].var(0)[: n // 2 if n > 1 else 1].mean().item()
        coma = variance["COMA"]
        print(
            f"n={n:2d}: COMA {coma:.5f}; state value {variance['state value']:.5f} ({variance['state value'] / coma:.1f}x); "
            f"independent {variance['independent']:.5f} ({variance['independent'] / coma:.1f}x)"
        )


def learning_ratios(n_grid, seeds, max_frames: int) -> None:
    print(f"== credit game: episodes to 90% of the optimum, mean over {len(seeds)} seed(s) (never: counted as the budget) ==")
    for n in n_grid:
        episodes = {label: [] for label in BASELINES}
        for seed in seeds:
            for label, baseline in BASELINES.items():
                cfg = COMAConfig(env="credit", baseline=baseline, n_agents=n, seed=seed, total_frames=max_frames, stop_at=0.9)
                reached = episodes_to_optimum(train(cfg, progress=False))
                episodes[label].append(max_frames if reached is None else reached)
        mean = {label: float(np.mean(v)) for label, v in episodes.items()}
        print(
            f"n={n:2d}: COMA {mean['COMA']:.0f}; state value {mean['state value']:.0f} ({mean['state value'] / mean['COMA']:.2f}x COMA's); "
            f"independent {mean['independent']:.0f} ({mean['independent'] / mean['COMA']:.2f}x COMA's)"
        )


def spread_comparison(frames: int, seeds, quick: bool) -> None:
    print(f"== vmas:simple_spread at {frames:,} frames, {len(seeds)} seed(s): COMA vs MAPPO ==")
    results = {"COMA": [], "MAPPO": []}
    for seed in seeds:
        results["COMA"].append(train(COMAConfig(env="vmas:simple_spread", seed=seed, total_frames=frames), progress=False))
        mappo_cfg = MAPPOConfig(seed=seed, total_frames=frames, num_envs=16 if quick else 256, eval_episodes=16 if quick else 200)
        results["MAPPO"].append(train_mappo(mappo_cfg, progress=False, with_reference=not quick))
    reference = results["MAPPO"][0].reference
    summary = {}
    for label, runs in results.items():
        value = float(np.mean([r.eval_return for r in runs]))
        fps = sum(r.frames for r in runs) / sum(r.seconds for r in runs)
        gap = gap_closed(value, reference)
        summary[label] = (value, gap, fps)
        gap_text = f", gap closed {gap:.0%}" if gap is not None else ""
        print(f"{label}: eval return {value:.2f}{gap_text}, {fps:,.0f} frames/s")
    (coma_value, coma_gap, coma_fps), (mappo_value, mappo_gap, mappo_fps) = summary["COMA"], summary["MAPPO"]
    if coma_gap is not None and coma_gap > 0 and not math.isclose(coma_gap, 0.0):
        print(f"MAPPO closes {mappo_gap / coma_gap:.2f}x the gap COMA closes at equal frames")
    else:
        print(f"MAPPO eval return minus COMA's: {mappo_value - coma_value:+.2f} (gap ratio undefined: COMA closed no gap)")
    print(f"COMA trains at {coma_fps / mappo_fps:.2f}x MAPPO's frames per second")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (seconds), for the test suite")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--spread-frames", type=int, default=300_000)
    parser.add_argument("--spread-seeds", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    began = time.perf_counter()
    if args.quick:
        variance_ratios((2, 4), fit_iterations=5, episodes=256)
        learning_ratios((2, 4), seeds=(0,), max_frames=80)
        spread_comparison(frames=400, seeds=(0,), quick=True)
    else:
        variance_ratios((2, 4, 8, 16), fit_iterations=150, episodes=20_000)
        learning_ratios((2, 4, 8, 16), seeds=tuple(range(args.seeds)), max_frames=8_000)
        spread_comparison(frames=args.spread_frames, seeds=tuple(range(args.spread_seeds)), quick=False)
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
