"""Each of MAPPO's options from marlbenchmark/on-policy, switched on alone, against marlpg's defaults on simple_spread.

book/deviations.md lists where marlpg differs from the reference implementation; the options that close a
difference (``MAPPOConfig``'s ``value_loss``, ``value_clip``, ``value_norm_stats``, ``feature_norm`` and
``advantage_norm``) are measured here one at a time, and all of them together, on VMAS simple_spread
(discrete, 3 agents, everything else at MAPPOConfig's defaults) at equal frames over the same seeds. Every
run's curve (deterministic evaluation on 200 episodes every 20 iterations of 6,400 frames) is written to
``benchmarks/results/deviations_simple_spread.csv`` with its provenance; the summary prints, per variant,
the interquartile mean of the final share of the random-to-scripted gap with a 95% stratified bootstrap
interval, and its difference from the defaults on each seed.

MADDPG's one option, ``gumbel="soft"`` (openai/maddpg's relaxed discrete actions, against marlpg's straight-through
one-hots), is the ``maddpg`` study: discrete simple_spread at MADDPGConfig's defaults (300,000 frames),
evaluated every 25 iterations, into ``deviations_maddpg_simple_spread.csv``.

    python benchmarks/bench_deviations.py                               # 7 variants x 3 seeds x 1.5M frames
    python benchmarks/bench_deviations.py --jobs 2                      # two runs at a time (one thread each)
    python benchmarks/bench_deviations.py --study maddpg --jobs 2       # hard and soft Gumbel, 3 seeds
    python benchmarks/bench_deviations.py --quick                       # both studies, tiny budget, temporary folder
"""
from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FILE = "deviations_simple_spread.csv"
FRAMES = 1_500_000
EVAL_EVERY = 20
MADDPG_FILE = "deviations_maddpg_simple_spread.csv"
MADDPG_EVAL_EVERY = 25
MADDPG_VARIANTS = {"hard Gumbel (defaults)": {}, "soft Gumbel": {"gumbel": "soft"}}
VARIANTS = {  # label -> the MAPPOConfig settings that differ from the defaults
    "defaults": {},
    "huber loss": {"value_loss": "huber"},
    "value clipping": {"value_clip": 0.2},
    "ValueNorm statistics": {"value_norm_stats": "ema"},
    "input LayerNorm": {"feature_norm": True},
    "per-agent advantages": {"advantage_norm": "per_agent"},
    "all of on-policy's": {"value_loss": "huber", "value_clip": 0.2, "value_norm_stats": "ema", "feature_norm": True},
}


def study_config(study: str, label: str, seed: int, frames: int | None, quick: bool):
    """(algorithm module, config) of one variant and seed; ``frames`` None: the study's default."""
    from marlpg.algos import maddpg, mappo

    if study == "maddpg":
        small = dict(eval_episodes=8, warmup_frames=800, batch_size=128) if quick else {}
        cfg = maddpg.MADDPGConfig(continuous=False, seed=seed, eval_every=2 if quick else MADDPG_EVAL_EVERY,
                                  **({"total_frames": frames} if frames else {}), **small, **MADDPG_VARIANTS[label])
        return maddpg, cfg
    small = dict(eval_episodes=8, num_envs=16, minibatches=2) if quick else {}
    cfg = mappo.MAPPOConfig(seed=seed, total_frames=frames or FRAMES, eval_every=3 if quick else EVAL_EVERY,
                            **small, **VARIANTS[label])
    return mappo, cfg


def train_run(label: str, seed: int, frames: int | None, quick: bool, study: str = "mappo") -> list[dict]:
    """One variant and seed: its curve rows, each with CPU seconds and the evaluation's share of the gap."""
    from marlpg.book import stored_results

    algorithm, cfg = study_config(study, label, seed, frames, quick)
    record = stored_results.CurveRecorder(label, seed, algorithm.reference_for(cfg))
    result = algorithm.train(cfg, progress=False, on_iteration=record, with_reference=False)
    last = record.finish(result.eval_return)
    print(f"{label}, seed {seed}: {last['frames']:,} frames in {last['seconds']:.0f} s ({last['cpu_seconds']:.0f} CPU s), "
          f"gap {last['gap']:.3f}", flush=True)
    return record.rows


def summary_lines(rows: list[dict]) -> list[str]:
    """Per variant: the IQM of the final gap with its interval, the per-seed difference from the first variant
    (the defaults), and the CPU seconds of its runs as a ratio to the first variant's (both from this process)."""
    from statistics import median

    from marlpg.book.deviations import final_gaps
    from marlpg.book.stats import iqm_interval

    gaps = final_gaps(rows)
    cpu: dict[str, dict[int, float]] = {}
    for row in rows:  # a run's last row carries its CPU seconds in all
        cpu.setdefault(row["method"], {})[int(row["seed"])] = float(row["cpu_seconds"])
    first = next(iter(gaps), None)
    base = gaps.get(first, {})
    lines = []
    for label, by_seed in gaps.items():
        interval = iqm_interval(list(by_seed.values()))
        line = (f"{label}: gap IQM {interval.point:.3f} [{interval.low:.3f}, {interval.high:.3f}] over seeds "
                f"{','.join(map(str, sorted(by_seed)))}")
        if label != first and base:
            diffs = [by_seed[s] - base[s] for s in sorted(by_seed) if s in base]
            line += "; minus defaults per seed " + ", ".join(f"{d:+.3f}" for d in diffs)
        cost = median(cpu[label].values()) / median(cpu[first].values())
        line += f"; CPU seconds per run {cost:.2f}x {first}'s"
        lines.append(line)
    return lines


def main(argv=None) -> None:
    os.environ.setdefault("MARLPG_THREADS", "1")  # one thread per run: the runs share the cores evenly
    from marlpg.book import stored_results
    from marlpg.commands import parse_seeds

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", choices=("mappo", "maddpg"), default="mappo", help="MAPPO's options (default) or MADDPG's")
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="comma-separated seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--frames", type=int, default=None, help=f"frames per run (default: MAPPO {FRAMES:,}, MADDPG "
                                                                  "its config's 300,000; --quick: 3,200)")
    parser.add_argument("--variants", default=None, help="comma-separated labels (default: all of the study's: "
                                                          + "; ".join([*VARIANTS, *MADDPG_VARIANTS]) + ")")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process (default 1)")
    parser.add_argument("--out", default=None, help=f"folder for {FILE} (default {stored_results.RESULTS_FOLDER}; "
                                                     "--quick: a new temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")
    out = Path(args.out or (tempfile.mkdtemp(prefix="bench_deviations_") if args.quick else stored_results.RESULTS_FOLDER))
    for study in ("mappo", "maddpg") if args.quick else (args.study,):
        variants = MADDPG_VARIANTS if study == "maddpg" else VARIANTS
        labels = list(variants) if args.variants is None else [v.strip() for v in args.variants.split(",")]
        unknown = [label for label in labels if label not in variants]
        if unknown:
            parser.error(f"unknown variant(s) {unknown} for --study {study}; choose from {list(variants)}")
        run_study(study, labels, args, out, stored_results)


def run_study(study: str, labels: list[str], args, out: Path, stored_results) -> None:
    import multiprocessing

    seeds = args.seeds or ((0,) if args.quick else (0, 1, 2))
    frames = args.frames or (3_200 if args.quick else None)
    name = MADDPG_FILE if study == "maddpg" else FILE
    about = stored_results.provenance(study=study, seeds=",".join(map(str, seeds)),
                                      frames=str(frames or (FRAMES if study == "mappo" else "300000")), jobs=str(args.jobs))
    runs = [(label, seed) for seed in seeds for label in labels]  # each seed's variants together: drifts hit all alike
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = len(runs)
        for run_rows in pool.map(train_run, *zip(*runs), [frames] * jobs, [args.quick] * jobs, [study] * jobs):
            rows += run_rows
            about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"
            path = stored_results.write(out / name, rows, stored_results.CURVE_FIELDS, about)
    print(f"wrote {path}")
    for line in summary_lines(rows):
        print(line)


if __name__ == "__main__":
    main()
