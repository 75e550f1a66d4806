"""The long, multi-seed runs behind the chapters' converged results, stored in ``benchmarks/results/``.

A book build trains short live runs; the runs that show a method converged take longer than a
chapter may, so they are made here and stored with their provenance (``marlpg.book.stored_results``).
Every run evaluates its deterministic policy on the same 200 episodes every few iterations and
records, per iteration, frames, wall seconds and this process's CPU seconds (what a busy machine
inflates least, used for the comparisons at equal time). Each study writes one file:

- ``maddpg``: MADDPG (480,000 frames) and MAPPO (3,000,000) on continuous VMAS simple_spread (chapter 03),
  each method's defaults; MAPPO trains far more frames, so that the comparison at equal time can be read
  off its curve.
- ``coma``: COMA (1,000,000 frames) on discrete simple_spread (chapter 04); its MAPPO is chapter 05's
  stored run (``mappo_simple_spread.csv`` from ``bench_mappo_learning.py``, the same configuration).
- ``sharing``: MAPPO with one actor per agent (3,000,000 frames) on simple_spread (chapter 06); the shared
  actor is again chapter 05's stored run.

With ``MARLPG_THREADS=1`` a study takes about an hour of one core (2 cores, 2026); two run side by side.

    python benchmarks/bench_converged.py --study coma      # writes benchmarks/results/coma_simple_spread.csv
    python benchmarks/bench_converged.py --study maddpg --seeds 0,1,2
    python benchmarks/bench_converged.py --quick     # every study at a smoke budget, into a temporary folder
"""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from marlpg.algos import coma, maddpg, mappo
from marlpg.book import stored_results
from marlpg.commands import parse_seeds

MAPPO_EVAL_EVERY = 20  # iterations of 6,400 frames, as bench_mappo_learning.py


def studies(quick: bool) -> dict[str, tuple[str, list[tuple[str, object, object]]]]:
    """study -> (file name, [(method label, algorithm module, config)])."""
    def size(full: int, smoke: int) -> int:
        return smoke if quick else full

    small = dict(eval_episodes=8) if quick else {}
    return {
        "maddpg": ("maddpg_vs_mappo_simple_spread.csv", [
            ("MADDPG", maddpg, maddpg.MADDPGConfig(total_frames=size(480_000, 3_200), eval_every=size(25, 1),
                                                   **(dict(warmup_frames=800, batch_size=128) if quick else {}), **small)),
            ("MAPPO", mappo, mappo.MAPPOConfig(continuous=True, total_frames=size(3_000_000, 3_200),
                                               eval_every=size(MAPPO_EVAL_EVERY, 1), **small)),
        ]),
        "coma": ("coma_simple_spread.csv", [
            ("COMA", coma, coma.COMAConfig(env="vmas:simple_spread", total_frames=size(1_000_000, 3_200),
                                           eval_every=size(25, 1), **small)),
        ]),
        "sharing": ("per_agent_actors_simple_spread.csv", [
            ("per agent", mappo, mappo.MAPPOConfig(share=False, total_frames=size(3_000_000, 3_200),
                                                   eval_every=size(MAPPO_EVAL_EVERY, 1), **small)),
        ]),
    }


def reference_of(algorithm, cfg):
    if algorithm is coma:  # COMA's result carries no reference; the task's is the same for every method
        return mappo.reference_for(mappo.MAPPOConfig(env=cfg.env, n_agents=cfg.n_agents))
    return algorithm.reference_for(cfg)


def train_run(label: str, algorithm, cfg) -> list[dict]:
    """One run's curve, every row with this process's CPU seconds and the evaluation's share of the gap."""
    record = stored_results.CurveRecorder(label, cfg.seed, reference_of(algorithm, cfg))
    kwargs = {"with_reference": False} if algorithm is not coma else {}
    result = algorithm.train(cfg, progress=False, on_iteration=record, **kwargs)
    last = record.finish(result.eval_return)
    print(f"{label} seed {cfg.seed}: {last['frames']:,} frames in {last['seconds']:.0f} s ({last['cpu_seconds']:.0f} CPU s), "
          f"eval {last['eval_return']:.2f}, gap {last['gap']:.3f}", flush=True)
    return record.rows


def summarize(rows: list[dict]) -> None:
    """Per method: the final gap over seeds, and CPU seconds per 100,000 frames as a ratio to the first method's."""
    finals: dict[str, list[dict]] = {}
    for row in rows:
        seeds = finals.setdefault(row["method"], [])
        if seeds and seeds[-1]["seed"] == row["seed"]:
            seeds[-1] = row
        else:
            seeds.append(row)
    cost = {label: sum(r["cpu_seconds"] for r in last) / sum(r["frames"] for r in last) * 1e5 for label, last in finals.items()}
    first = next(iter(cost))
    for label, last in finals.items():
        gap = sum(r["gap"] for r in last) / len(last)
        print(f"{label}: final gap {gap:.3f} (mean of {len(last)} seeds), {cost[label]:.1f} CPU s per 100,000 frames "
              f"({cost[label] / cost[first]:.2f}x {first}'s)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=sorted(studies(False)), help="required, except with --quick (every study)")
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="comma-separated seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--out", default=None, help=f"folder for the file (default {stored_results.RESULTS_FOLDER}; "
                                                     "--quick: a new temporary folder, never the stored results)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.study is None and not args.quick:
        parser.error("--study is required (one of: " + ", ".join(sorted(studies(False))) + ")")
    seeds = args.seeds or ((0,) if args.quick else (0, 1, 2))
    out = Path(args.out or (tempfile.mkdtemp(prefix="bench_converged_") if args.quick else stored_results.RESULTS_FOLDER))
    chosen = [args.study] if args.study else sorted(studies(True))
    for study in chosen:
        name, runs = studies(args.quick)[study]
        about = stored_results.provenance(study=study, seeds=",".join(map(str, seeds)))
        rows = []
        for seed in seeds:  # every method on one seed before the next seed: load drifts hit all alike
            for label, algorithm, cfg in runs:
                rows += train_run(label, algorithm, replace(cfg, seed=seed))
                about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"  # rewritten after every run: an interrupted
                path = stored_results.write(out / name, rows, stored_results.CURVE_FIELDS, about)  # study keeps what it measured
        print(f"wrote {path}")
        summarize(rows)


if __name__ == "__main__":
    main()
