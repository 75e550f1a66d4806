"""Does recurrent MAPPO win SMAX battles within 15 minutes on this CPU? Methods compared over seeds.

Each run trains on one SMAX map against JaxMARL's heuristic enemy with the library's SMAX defaults
(``marlpg.algos.mappo.TASK_DEFAULTS["smax"]``: 128 copies x 128 steps, learning rate 4e-3 decayed to 0,
entropy 0.01, 2M frames). The deterministic policy plays 200 fixed battles every few iterations; the
win rate is the share it wins. Methods:

* ``rMAPPO``: GRU actors and a GRU critic on the global state (``--recurrent``);
* ``MAPPO``: feed-forward actors and critic on the global state;
* ``rIPPO``: GRU actors, each agent's critic on its own observation history (``--recurrent --ippo``);
* ``MAPPO-AS``: feed-forward, with the agent-specific global state [x, o_a, id_a] as the critic's input;
* ``rMAPPO-AS``: GRU actors and a GRU critic run on each agent's agent-specific state
  (``--recurrent --critic agent_specific``).

Printed per run: wall and CPU seconds, frames per second, the final win rate and the wall time at which an
evaluation first reached the target win rate; per map and method, the interquartile mean of the final win
rate over seeds with its 95% stratified bootstrap confidence interval (``marlpg.book.stats``, rliable).

    python benchmarks/bench_smax_learning.py                        # rMAPPO on 3m, 3 seeds, about 25 minutes
    python benchmarks/bench_smax_learning.py --maps 3m,2s3z --methods rMAPPO,MAPPO,rIPPO --frames 1000000
    python benchmarks/bench_smax_learning.py --quick                # a smoke run: checks the script, measures nothing
    python benchmarks/bench_smax_learning.py --save-actors runs/    # also keep every trained team

``--csv`` writes every iteration of every run (``stored_results.CURVE_FIELDS`` plus ``map`` and
``eval_win_rate``) under a header naming the command, commit, machine and date; chapter 08 plots the files
in ``benchmarks/results/``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics

import torch

from marlpg.algos.mappo import MAPPOConfig, save_actors, train
from marlpg.book import stored_results
from marlpg.book.stats import iqm_interval

TARGET = 0.80  # the bar: 80% of evaluation battles won
METHODS = {
    "rMAPPO": dict(recurrent=True),
    "MAPPO": dict(),
    "rIPPO": dict(recurrent=True, ippo=True),
    "MAPPO-AS": dict(critic="agent_specific"),
    "rMAPPO-AS": dict(recurrent=True, critic="agent_specific"),
}
FIELDS = ["map", *stored_results.CURVE_FIELDS, "eval_win_rate"]


def run(map_name: str, method: str, seed: int, frames: int | None, eval_every: int, quick: bool,
        save_to: str | None = None) -> dict:
    sizes = dict(num_envs=8, rollout_steps=20, minibatches=2, eval_episodes=8) if quick else {}
    cfg = MAPPOConfig(env=f"smax:{map_name}", seed=seed, total_frames=frames, eval_every=eval_every,
                      **sizes, **METHODS[method])
    record = stored_results.CurveRecorder(method, seed, None, extra={"map": map_name}, reached=lambda kept:
                                          kept.get("eval_win_rate") is not None and kept["eval_win_rate"] >= TARGET)
    result = train(cfg, progress=False, on_iteration=record)  # keeps every row and the first at the target
    if save_to is not None:
        save_actors(result.model, os.path.join(save_to, f"smax_{map_name}_{method.lower()}_seed{seed}_actors.pt"))
    last = record.finish(result.eval_return, final_counts=True, eval_win_rate=result.eval_win_rate)
    first = record.first or {}
    return {
        "map": map_name,
        "method": method,
        "seed": seed,
        "seconds": result.seconds,
        "cpu_seconds": last["cpu_seconds"],
        "fps": result.frames / result.seconds,
        "win_rate": result.eval_win_rate,
        "time_to_target": first.get("seconds"),
        "frames_to_target": first.get("frames"),
        "curve": record.rows,
    }


def report(rows: list[dict]) -> None:
    for key in dict.fromkeys((r["map"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["map"], r["method"]) == key]
        wins = iqm_interval([r["win_rate"] for r in mine])
        reached = [r["time_to_target"] for r in mine if r["time_to_target"] is not None]
        when = f", mean time {statistics.mean(reached):.0f} s" if reached else ""
        print(f"{key[0]} {key[1]}: final win rate over {len(mine)} seed(s), {wins.format('.1f', scale=100, unit='%')}; "
              f"{TARGET:.0%} reached in {len(reached)}/{len(mine)} runs{when}; "
              f"{statistics.mean(r['seconds'] for r in mine):.0f} s per run")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the script runs, measures nothing")
    parser.add_argument("--maps", default="3m", help="comma-separated SMAX maps (default 3m)")
    parser.add_argument("--methods", default="rMAPPO", help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--frames", type=int, help="frames per run (default: MAPPO's SMAX default, 2,000,000)")
    parser.add_argument("--eval-every", type=int, default=8, help="iterations between evaluations (default 8)")
    parser.add_argument("--csv", help="write every iteration of every run to this file (see the module docstring)")
    parser.add_argument("--save-actors", metavar="DIR", help="save each run's trained actors to "
                        "DIR/smax_<map>_<method>_seed<S>_actors.pt (marlpg.algos.mappo.load_actors reads them)")
    args = parser.parse_args(argv)
    methods, maps = args.methods.split(","), args.maps.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    frames, seeds, eval_every = args.frames, range(args.first_seed, args.first_seed + args.seeds), args.eval_every
    if args.quick:
        frames, seeds, eval_every = 320, range(1), 1
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"SMAX {', '.join(maps)}; {', '.join(methods)}; seeds {list(seeds)}; target {TARGET:.0%} of battles won")
    about = stored_results.provenance(target=f"{TARGET:.0%} of evaluation battles won", frames=frames or "default")
    rows = []
    for map_name in maps:
        for seed in seeds:
            for method in methods:
                row = run(map_name, method, seed, frames, eval_every, args.quick, args.save_actors)
                rows.append(row)
                if args.csv:  # rewritten after every run, so that an interrupted benchmark keeps what it measured
                    about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"
                    stored_results.write(args.csv, [r for done in rows for r in done["curve"]], FIELDS, about)
                reached = "not reached" if row["time_to_target"] is None else (
                    f"{row['time_to_target']:.0f} s ({row['frames_to_target']:,} frames)")
                print(f"{map_name} {method:8s} seed {seed}: {row['seconds']:6.1f} s ({row['cpu_seconds']:.0f} CPU s), "
                      f"{row['fps']:6.0f} frames/s, win rate {row['win_rate']:.3f}, {TARGET:.0%} at {reached}", flush=True)
    if args.csv:
        print(f"wrote {args.csv}")
    report(rows)


if __name__ == "__main__":
    main()
