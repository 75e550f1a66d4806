"""Does a centralized critic keep a growing fleet trainable? IPPO and three MAPPO critics from 4 to 128 robots.

Every run trains one shared actor on marlpg's fleet floor (``make_env("fleet", ...)``, ``marlpg.envs.fleet``):
robots crossing to goals of their own, paid for progress and charged for collisions, each seeing its 3
nearest neighbours. The per-robot task is the same at every ``n``; what grows is the crowd and the critic's
input. Methods (all with a shared actor, no agent id, since robots are interchangeable):

* ``IPPO``: each robot's critic on its own observation (``ippo=True``);
* ``MAPPO``: the concatenated critic, one MLP on every robot's observation (``critic="global"``), whose
  input grows as 21 n;
* ``MAPPO-pool``: a critic whose size does not depend on n, robot a's embedding beside the fleet's mean
  embedding (``critic="pooled"``, ``marlpg.core.critics``);
* ``MAPPO-attn``: the same with the mean replaced by one attention head (``critic="attention"``).

The budget is equal in robot-steps: every iteration collects ``ROBOT_STEPS`` robot-steps (``512 // n`` copies
of 25 steps), for the same number of iterations at every n, so each robot-size sees the same amount of
experience per robot-parameter update. After training, the deterministic policy plays one episode in each of
64 fixed floors (``fleet_metrics``): return per robot, collisions per robot per episode and the share of robots
on their goal at the end, beside the scripted robot (straight to its goal, blind to the others) and a random one.
Per size and method: the interquartile mean over seeds with its 95% stratified bootstrap interval.

    python benchmarks/bench_fleet.py                                   # 5 sizes x 4 methods x 3 seeds, ~30 min
    python benchmarks/bench_fleet.py --sizes 4,128 --methods IPPO,MAPPO-pool --seeds 2
    python benchmarks/bench_fleet.py --reward shared --sizes 4,32,128  # one team reward (make_env("fleet:shared"))
    python benchmarks/bench_fleet.py --speed                           # step time against VMAS's navigation
    python benchmarks/bench_fleet.py --maddpg --sizes 12,128           # MADDPG against MAPPO, equal frames and time
    python benchmarks/bench_fleet.py --quick                           # a smoke run: checks the script only

``--maddpg`` compares the example's "MADDPG-style" training with MAPPO, both with the pooled critic
(``marlpg.algos.maddpg``, ``critic="pooled"``; its fleet settings are ``maddpg.fleet_preset``). Per size and
seed it trains MAPPO-pool and MADDPG-pool for the same robot-steps (equal frames), then MAPPO-pool again for as
many iterations as fit in the CPU seconds MADDPG used (equal time: equal CPU seconds of the process, counted
with ``time.process_time``, so that the match does not depend on the machine's load).

With ``--reward shared`` every robot is paid the fleet's mean reward, the credit-assignment problem of a team
reward: a robot's own progress is 1/n of its signal.

``--csv`` writes one row per run (and ``--speed`` one per size) under a header naming the command, commit,
machine and date; chapter 09 reads ``benchmarks/results/fleet_scaling.csv``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from marlpg.algos import maddpg
from marlpg.algos.mappo import MAPPOConfig, fleet_preset, train
from marlpg.book import stored_results
from marlpg.book.sharing import navigation_kwargs
from marlpg.book.stats import iqm_interval
from marlpg.envs import make_env
from marlpg.envs.fleet import fleet_metrics, straight_to_goal
from marlpg.envs.reference import random_policy, step_seconds

ROBOT_STEPS = 512 * 25  # robot-steps collected per iteration, at every fleet size
METHODS = {
    "IPPO": dict(ippo=True),
    "MAPPO": dict(critic="global"),
    "MAPPO-pool": dict(critic="pooled"),
    "MAPPO-attn": dict(critic="attention"),
}
METRICS = ("return", "collisions", "success")
FIELDS = ["n", "method", "seed", "iterations", "frames", "robot_steps", "seconds", "cpu_seconds", *METRICS]
EVAL_FLOORS, EVAL_SEED = 64, 12_345


def config(n: int, method: str, seed: int, iterations: int, env: str = "fleet") -> MAPPOConfig:
    return MAPPOConfig(env=env, seed=seed, **fleet_preset(n, iterations), **METHODS[method])


def references(n: int, env: str = "fleet") -> list[dict]:
    """The scripted and the random robot on the evaluation floors, as rows of the same table."""
    rows = []
    for name in ("scripted", "random"):
        floors = make_env(env, EVAL_FLOORS, n_agents=n, seed=EVAL_SEED)
        act = straight_to_goal if name == "scripted" else random_policy(floors.spec, seed=0)
        rows.append({"n": n, "method": name, "seed": "", **fleet_metrics(floors, act, EVAL_SEED)})
    return rows


def run(n: int, method: str, seed: int, iterations: int, env: str = "fleet") -> dict:
    cfg = config(n, method, seed, iterations, env)
    cpu = time.process_time()
    result = train(cfg, progress=False, with_reference=False)
    return measured(n, method, seed, env, result, time.process_time() - cpu)


def maddpg_run(n: int, seed: int, iterations: int, env: str = "fleet") -> dict:
    """MADDPG with the pooled critic for ``iterations`` of the fleet preset (the same robot-steps as ``config``)."""
    cfg = maddpg.MADDPGConfig(env=env, seed=seed, **maddpg.fleet_preset(n, iterations))
    cpu = time.process_time()
    result = maddpg.train(cfg, progress=False, with_reference=False)
    return measured(n, "MADDPG-pool", seed, env, result, time.process_time() - cpu)


def maddpg_comparison(n: int, seed: int, iterations: int, env: str = "fleet") -> list[dict]:
    """MAPPO-pool and MADDPG-pool at equal robot-steps, and MAPPO-pool again at MADDPG's CPU seconds."""
    mappo_row, maddpg_row = run(n, "MAPPO-pool", seed, iterations, env), maddpg_run(n, seed, iterations, env)
    matched = max(1, round(iterations * maddpg_row["cpu_seconds"] / max(mappo_row["cpu_seconds"], 1e-3)))
    equal_time = dict(run(n, "MAPPO-pool", seed, matched, env), method="MAPPO-pool, equal time")
    return [mappo_row, maddpg_row, equal_time]


def measured(n: int, method: str, seed: int, env: str, result, cpu_seconds: float) -> dict:
    """The trained deterministic policy's fleet metrics on the evaluation floors, beside the run's cost."""
    floors = make_env(env, EVAL_FLOORS, n_agents=n, seed=EVAL_SEED)
    metrics = fleet_metrics(floors, result.model.act_deterministic, EVAL_SEED)
    return {"n": n, "method": method, "seed": seed, "iterations": len(result.curve), "frames": result.frames,
            "robot_steps": result.frames * n, "seconds": round(result.seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}}


def speed(sizes: list[int], copies: int, quick: bool) -> list[dict]:
    """The fleet's step time against VMAS's ``navigation`` with its lidar, same robots and copies."""
    rows = []
    for n in sizes:
        fleet = step_seconds(make_env("fleet", copies, n_agents=n, seed=0), 3 if quick else 50)
        try:
            # at its 4-robot default's density (its default floor cannot place dozens of robots) and with lidar
            vmas_env = make_env("vmas:navigation", copies, n_agents=n, seed=0, **navigation_kwargs(n, lidar=True))
        except ImportError:
            vmas = float("nan")
        else:
            vmas = step_seconds(vmas_env, 1 if quick or n > 32 else 5)
        rows.append({"n": n, "copies": copies, "fleet_ms": round(1e3 * fleet, 3), "vmas_ms": round(1e3 * vmas, 2),
                     "ratio": round(vmas / fleet, 1)})
        print(f"n={n:4d}, {copies} copies: fleet {1e3 * fleet:7.2f} ms per step, VMAS navigation {1e3 * vmas:8.1f} ms "
              f"({vmas / fleet:.0f} times the fleet's)", flush=True)
    return rows


def report(rows: list[dict]) -> None:
    for key in dict.fromkeys((r["n"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["n"], r["method"]) == key]
        if mine[0]["seed"] == "":
            parts = [f"{m} {mine[0][m]:.3f}" for m in METRICS]
        else:
            parts = [f"{m} {iqm_interval([r[m] for r in mine]).format('.3f')}" for m in METRICS]
        print(f"n={key[0]:4d} {key[1]:22s}: " + "; ".join(parts))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the script runs, measures nothing")
    parser.add_argument("--sizes", default="4,12,32,64,128", help="comma-separated fleet sizes (default 4,12,32,64,128)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=80, help="training iterations per run (default 80)")
    parser.add_argument("--reward", choices=("own", "shared"), default="own",
                        help="own: each robot's progress and collisions (default); shared: the fleet's mean for all")
    parser.add_argument("--speed", action="store_true", help="measure step times against VMAS instead of training")
    parser.add_argument("--maddpg", action="store_true",
                        help="MADDPG-pool against MAPPO-pool at equal robot-steps and equal CPU time (ignores --methods)")
    parser.add_argument("--copies", type=int, default=16, help="parallel floors for --speed (default 16)")
    parser.add_argument("--csv", help="write one row per run (or per size, with --speed) to this file")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    try:
        sizes = [int(n) for n in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers; got {args.sizes!r}")
    seeds, iterations = range(args.seeds), args.iterations
    if args.quick:
        sizes, seeds, iterations = [4, 8], range(1), 2
        print("MADDPG-pool against MAPPO-pool:", [r["method"] for r in maddpg_comparison(4, 0, 2)])
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    if args.speed or args.quick:
        load_at_start = f"{os.getloadavg()[0]:.2f}"
        rows = speed(sizes, args.copies, args.quick)
        if args.csv and not args.quick:
            about = stored_results.provenance(kind="timings", load_at_end=f"{os.getloadavg()[0]:.2f}")
            about["load_at_start"] = load_at_start  # the timings ran after it, not after provenance()
            stored_results.write(args.csv, rows, list(rows[0]), about)
        if not args.quick:
            return
    print(f"fleet sizes {sizes}; {'MADDPG-pool against MAPPO-pool' if args.maddpg else ', '.join(methods)}; "
          f"seeds {list(seeds)}; {iterations} iterations of "
          f"{ROBOT_STEPS:,} robot-steps")
    env = "fleet" if args.reward == "own" else "fleet:shared"
    about = stored_results.provenance(env=env, iterations=iterations, robot_steps_per_iteration=ROBOT_STEPS,
                                      eval_floors=EVAL_FLOORS)
    rows = []
    for n in sizes:
        rows += references(n, env)
        for seed in seeds:
            for row in (maddpg_comparison(n, seed, iterations, env) if args.maddpg else
                        (run(n, method, seed, iterations, env) for method in methods)):
                rows.append(row)
                print(f"n={n:4d} {row['method']:22s} seed {seed}: {row['seconds']:6.1f} s ({row['cpu_seconds']:.0f} CPU s), "
                      f"return {row['return']:.3f}, collisions {row['collisions']:.3f}, success {row['success']:.1%}",
                      flush=True)
                if args.csv:  # rewritten after every run, so that an interrupted benchmark keeps what it measured
                    about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"
                    stored_results.write(args.csv, rows, FIELDS, about)
    report(rows)


if __name__ == "__main__":
    main()
