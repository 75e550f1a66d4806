"""MADDPG measured in one process: against MAPPO on continuous simple_spread, and against IDDPG on pricing.

1. VMAS simple_spread, continuous actions, 3 agents, same environment settings for both: MADDPG
   for ``--frames`` frames, MAPPO for the same frames, and MAPPO again for MADDPG's wall time.
   Prints frames/s, the deterministic evaluation return and the fraction of the random-to-scripted
   gap each closes, and the ratios (MAPPO's frames/s over MADDPG's; gap at equal frames; gap at
   equal wall time).
2. The one-shot pricing game over ``--seeds`` seeds, MADDPG and IDDPG, started at the mid price and
   at the joint-profit (collusive) price: each run's largest relative distance of a price from Nash,
   and the collusion index Delta = (profit - Nash profit) / (collusive profit - Nash profit)
   (0 at Nash, 1 at the cartel's prices).

Run it alone on the machine: the frames/s ratio is only meaningful without other load.

    python benchmarks/bench_maddpg.py                # about 5 minutes on 2 CPU cores
    python benchmarks/bench_maddpg.py --part pricing # only the pricing game (about 3 minutes)
    python benchmarks/bench_maddpg.py --quick        # seconds: a smoke test of the script
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from marlpg.envs.pricing import PricingEnv  # noqa: E402
from marlpg.algos.maddpg import MADDPGConfig, nash_distance  # noqa: E402
from marlpg.algos.maddpg import train as train_maddpg  # noqa: E402
from marlpg.algos.mappo import MAPPOConfig  # noqa: E402
from marlpg.algos.mappo import train as train_mappo  # noqa: E402


def collusion_index(prices: list[float], game: PricingEnv) -> float:
    nash, cartel = game.profit_at(game.nash_price()), game.profit_at(game.collusive_price())
    profit = game.profit(torch.tensor(prices, dtype=torch.float64)).mean().item()
    return (profit - nash) / (cartel - nash)


def spread(frames: int, quick: bool) -> None:
    eval_episodes = 16 if quick else 200
    maddpg_cfg = MADDPGConfig(total_frames=frames, eval_episodes=eval_episodes, seed=0)
    if quick:
        maddpg_cfg = dataclasses.replace(maddpg_cfg, warmup_frames=frames // 4, batch_size=128)
    maddpg = train_maddpg(maddpg_cfg, progress=False, with_reference=not quick)
    mappo_cfg = MAPPOConfig(continuous=True, total_frames=frames, eval_episodes=eval_episodes, seed=0, num_envs=64 if quick else 256)
    mappo_frames = train_mappo(mappo_cfg, progress=False, with_reference=False)
    fps_maddpg, fps_mappo = maddpg.frames / maddpg.seconds, mappo_frames.frames / mappo_frames.seconds
    equal_time_frames = max(mappo_cfg.frames_per_iteration, int(fps_mappo * maddpg.seconds))
    mappo_time = train_mappo(dataclasses.replace(mappo_cfg, total_frames=equal_time_frames), progress=False, with_reference=False)
    reference = maddpg.reference
    gap = (lambda r: (r - reference[0]) / (reference[1] - reference[0])) if reference else (lambda r: float("nan"))
    print("VMAS simple_spread, continuous actions, 3 agents, seed 0")
    if reference:
        print(f"  references: random {reference[0]:.1f}, scripted {reference[1]:.1f}")
    rows = [("MADDPG", maddpg), ("MAPPO, equal frames", mappo_frames), ("MAPPO, equal wall time", mappo_time)]
    for name, run in rows:
        print(f"  {name:24s} frames {run.frames:>9,d}  seconds {run.seconds:6.1f}  frames/s {run.frames / run.seconds:8.0f}  "
              f"eval return {run.eval_return:7.1f}  gap closed {gap(run.eval_return):5.2f}")
    print(f"  MAPPO collects and learns at {fps_mappo / fps_maddpg:.1f}x MADDPG's frames/s")
    print(f"  gap closed at equal frames: MADDPG {gap(maddpg.eval_return):.2f} vs MAPPO {gap(mappo_frames.eval_return):.2f}; "
          f"at equal wall time: MAPPO {gap(mappo_time.eval_return):.2f}")


def pricing(seeds: int, quick: bool) -> None:
    game = PricingEnv(1)
    collusive_start = float(game.actions(torch.tensor([game.collusive_price()]))[0, 0])
    extra = dict(total_frames=4_000, warmup_frames=1_000) if quick else {}
    print(f"Pricing game, 2 sellers, one shot: Nash price {game.nash_price():.4f}, joint-profit price {game.collusive_price():.4f}")
    distances = {}
    for start_name, start in (("mid price", None), ("collusive price", collusive_start)):
        for iddpg in (False, True):
            name = "IDDPG" if iddpg else "MADDPG"
            runs = [
                train_maddpg(MADDPGConfig.for_env("pricing", seed=s, iddpg=iddpg, initial_action=start, **extra), progress=False)
                for s in range(seeds)
            ]
            dist = [nash_distance(r.eval_prices, r.nash_prices) for r in runs]
            index = [collusion_index(r.eval_prices, game) for r in runs]
            distances[(start_name, name)] = statistics.mean(dist)
            print(f"  {name:6s} from the {start_name:15s} distance to Nash: mean {statistics.mean(dist):.4f}, "
                  f"max {max(dist):.4f}; collusion index mean {statistics.mean(index):+.3f}; "
                  f"seconds per run {statistics.mean(r.seconds for r in runs):.1f}")
    for start_name in ("mid price", "collusive price"):
        ratio = distances[(start_name, "IDDPG")] / max(distances[(start_name, "MADDPG")], 1e-12)
        print(f"  from the {start_name}: IDDPG's mean distance to Nash is {ratio:.2f}x MADDPG's")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check that the script runs")
    parser.add_argument("--frames", type=int, default=300_000, help="simple_spread frames for MADDPG (and MAPPO at equal frames)")
    parser.add_argument("--seeds", type=int, default=5, help="pricing seeds per algorithm and start")
    parser.add_argument("--part", choices=("all", "spread", "pricing"), default="all", help="run only one of the two parts")
    args = parser.parse_args(argv)
    frames, seeds = (3_200, 2) if args.quick else (args.frames, args.seeds)
    torch.set_num_threads(1)
    if args.part in ("all", "spread"):
        spread(frames, args.quick)
    if args.part in ("all", "pricing"):
        pricing(seeds, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
