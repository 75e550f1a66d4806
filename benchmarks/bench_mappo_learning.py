"""Does MAPPO learn VMAS simple_spread within five minutes on this CPU? MAPPO against IPPO, over seeds.

For each seed, MAPPO (critic on the global state) and IPPO (critic on the agent's own observation)
train with the library's defaults (3 agents, discrete actions, 25-step episodes, 256 copies,
``marlpg.algos.mappo.DEFAULT_FRAMES`` frames). The deterministic policy is evaluated every few
iterations on 200 fixed episodes, and each evaluation is placed on the gap between the random
and the scripted reference policies (``marlpg.envs.reference``): 0 = random, 1 = scripted.

Printed per run: wall seconds, frames per second, the gap closed at the end, and the wall time at
which the evaluation first reached 95% of the gap (also in frames and in this process's CPU seconds,
which a busy machine inflates far less than wall time); then, per method, the interquartile mean of the
final gap closed over seeds with its 95% stratified bootstrap confidence interval
(``marlpg.book.stats``, rliable), the means over seeds, and the ratio of IPPO's time to MAPPO's,
both measured here in one process.

    python benchmarks/bench_mappo_learning.py              # 3 seeds x 2 methods, about 25 minutes
    python benchmarks/bench_mappo_learning.py --quick      # a smoke run: checks the script, measures nothing
    python benchmarks/bench_mappo_learning.py --methods MAPPO --csv benchmarks/results/mappo_simple_spread.csv

``--csv`` writes every iteration of every run (frames, wall and CPU seconds, training return, and the
deterministic evaluation where there is one) under a header naming the command, commit, machine and
date; chapter 05 plots the files that ship in ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics

import torch

from marlpg.algos.mappo import DEFAULT_FRAMES, MAPPOConfig, gap_closed, reference_for, train
from marlpg.book import stored_results
from marlpg.book.stats import iqm_interval

TARGET = 0.95  # the bar: 95% of the random-to-scripted gap


class _TargetReached(Exception):
    """Ends a run (with --stop-at-target) at the first evaluation that reaches the target."""

    def __init__(self, row: dict):
        self.row = row


def run(method: str, seed: int, frames: int, eval_every: int, num_envs: int, stop_at_target: bool = False) -> dict:
    cfg = MAPPOConfig(seed=seed, total_frames=frames, ippo=method == "IPPO", eval_every=eval_every, num_envs=num_envs)
    reference = reference_for(cfg)
    record = stored_results.CurveRecorder(method, seed, reference, reached=lambda kept: "eval_return" in kept and
                                          gap_closed(kept["eval_return"], reference) >= TARGET)

    def watch(row: dict) -> None:  # keep every row; the recorder notes the first evaluation at or above the target
        if record(row) is record.first and stop_at_target:
            raise _TargetReached(row)

    try:
        result = train(cfg, progress=False, on_iteration=watch)
        seconds, frames_done, eval_return = result.seconds, result.frames, result.eval_return
    except _TargetReached as stop:
        seconds, frames_done, eval_return = stop.row["seconds"], stop.row["frames"], stop.row["eval_return"]
    record.finish(eval_return)
    first = record.first or {}
    return {
        "method": method,
        "seed": seed,
        "seconds": seconds,
        "fps": frames_done / seconds,
        "eval_return": eval_return,
        "gap": gap_closed(eval_return, reference),
        "time_to_target": first.get("seconds"),
        "frames_to_target": first.get("frames"),
        "cpu_to_target": first.get("cpu_seconds"),
        "reference": reference,
        "curve": record.rows,
    }


def summarize(rows: list[dict], method: str) -> dict:
    mine = [r for r in rows if r["method"] == method]
    reached = [r["time_to_target"] for r in mine if r["time_to_target"] is not None]
    return {
        "gap_iqm": iqm_interval([r["gap"] for r in mine]),
        "gap_mean": statistics.mean(r["gap"] for r in mine),
        "gap_min": min(r["gap"] for r in mine),
        "seconds_mean": statistics.mean(r["seconds"] for r in mine),
        "fps_mean": statistics.mean(r["fps"] for r in mine),
        "reached": len(reached),
        "runs": len(mine),
        "time_to_target_mean": statistics.mean(reached) if reached else None,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the script runs, measures nothing")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--methods", default="MAPPO,IPPO", help="comma-separated subset of MAPPO,IPPO")
    parser.add_argument("--csv", help="write every iteration of every run to this file (see the module docstring)")
    parser.add_argument(
        "--stop-at-target", action="store_true",
        help="end each run at its first evaluation that reaches the target (seconds then include the evaluations so far)",
    )
    args = parser.parse_args(argv)
    frames, seeds, eval_every, num_envs = args.frames, args.seeds, 20, 256
    if args.quick:
        frames, seeds, eval_every, num_envs = 3_200, 1, 1, 64
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"VMAS simple_spread, 3 agents, {frames:,} frames per run, {seeds} seed(s); target {TARGET:.0%} of the random->scripted gap")
    about = stored_results.provenance(target=f"{TARGET:.0%} of the random->scripted gap", frames=frames)
    rows = []
    for seed in range(seeds):
        for method in args.methods.split(","):
            row = run(method, seed, frames, eval_every, num_envs, args.stop_at_target)
            rows.append(row)
            if args.csv:  # rewritten after every run, so that an interrupted benchmark keeps what it measured
                about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"
                stored_results.write(args.csv, [r for done in rows for r in done["curve"]], stored_results.CURVE_FIELDS, about)
            reached = "not reached" if row["time_to_target"] is None else (
                f"{row['time_to_target']:.0f} s ({row['frames_to_target']:,} frames, {row['cpu_to_target']:.0f} CPU s)"
            )
            print(
                f"{method:5s} seed {seed}: {row['seconds']:6.1f} s, {row['fps']:8.0f} frames/s, "
                f"eval {row['eval_return']:8.2f}, gap {row['gap']:.3f}, {TARGET:.0%} at {reached}",
                flush=True,
            )
    if args.csv:
        print(f"wrote {args.csv}")
    random_return, scripted_return = rows[0]["reference"]
    print(f"references: random {random_return:.2f}, scripted {scripted_return:.2f} (mean episode return per agent)")
    summaries = {m: summarize(rows, m) for m in dict.fromkeys(r["method"] for r in rows)}
    for method, s in summaries.items():
        print(f"{method}: final gap closed over seeds, {s['gap_iqm'].format('.1f', scale=100, unit='%')}")
    for method, s in summaries.items():
        ttt = "n/a" if s["time_to_target_mean"] is None else f"{s['time_to_target_mean']:.0f} s"
        print(
            f"{method}: gap {s['gap_mean']:.3f} mean (min {s['gap_min']:.3f}) in {s['seconds_mean']:.0f} s at "
            f"{s['fps_mean']:.0f} frames/s; {TARGET:.0%} reached in {s['reached']}/{s['runs']} runs, mean time {ttt}"
        )
    if {"MAPPO", "IPPO"} <= summaries.keys():
        m, i = summaries["MAPPO"], summaries["IPPO"]
        print(f"MAPPO/IPPO final gap: {m['gap_mean'] / i['gap_mean']:.2f}x")
        if m["time_to_target_mean"] and i["time_to_target_mean"]:
            print(f"IPPO/MAPPO time to {TARGET:.0%}: {i['time_to_target_mean'] / m['time_to_target_mean']:.2f}x")


if __name__ == "__main__":
    main()
