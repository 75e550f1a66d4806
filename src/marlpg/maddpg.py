"""``python -m marlpg.maddpg``: train MADDPG or IDDPG (the algorithm: :mod:`marlpg.algos.maddpg`).

The flags' defaults are :meth:`marlpg.algos.maddpg.MADDPGConfig.for_env`'s, chosen by the task.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from marlpg.commands import print_reference_gap, run_command

NAME = "maddpg"
DESCRIPTION = "MADDPG: deterministic policy gradients with a centralized critic per agent (Lowe et al., 2017)."
ENVS = ("pricing", "vmas:simple_spread", "fleet", "fleet:shared")  # marlpg.algos.maddpg.ENVS (a test keeps them equal)
CRITICS = ("concat", "pooled")  # marlpg.algos.maddpg.CRITICS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="pricing", choices=ENVS, help="the task (default pricing)")
    parser.add_argument("--total-frames", type=int, help="environment steps (all agents) to train for (default by task)")
    parser.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--iddpg", action="store_true", help="critics on each agent's own observation and action (the IDDPG ablation)")
    parser.add_argument("--no-share", action="store_true", help="one actor and one critic per agent instead of shared ones")
    parser.add_argument("--discrete", action="store_true", help="discrete actions through the Gumbel-softmax (not for pricing; "
                        "the fleet has only these)")
    parser.add_argument("--critic", choices=CRITICS, help="concat: Q_i on the global state and joint action; pooled: on the "
                        "set of observation-action pairs, for large teams (default by task: pooled on the fleet)")
    parser.add_argument("--n-agents", type=int, help="agents (sellers) in the team (default by task)")
    parser.add_argument("--num-envs", type=int, help="environment copies stepped together (default by task)")
    parser.add_argument("--horizon", type=int, help="pricing: periods per episode (1: the one-shot game; default by task)")
    parser.add_argument("--gumbel", choices=("hard", "soft"), help="with --discrete: the critic sees one-hot samples "
                        "(hard, the default) or openai/maddpg's relaxed ones (soft)")


def config_from_args(args: argparse.Namespace):
    from marlpg.algos.maddpg import MADDPGConfig

    given = {"total_frames": args.total_frames, "n_agents": args.n_agents, "num_envs": args.num_envs,
             "horizon": args.horizon, "device": args.device, "critic": args.critic,
             "continuous": False if args.discrete else None, "gumbel": args.gumbel}
    cfg = MADDPGConfig.for_env(args.env, seed=args.seed, iddpg=args.iddpg, share=not args.no_share,
                               **{k: v for k, v in given.items() if v is not None})
    if cfg.warmup_frames >= cfg.total_frames:  # a tiny budget still learns a little
        cfg = replace(cfg, warmup_frames=cfg.total_frames // 2)
    return cfg


def report_run(result, out: Path) -> None:
    """``key=value`` lines, ``eval_return`` last; the curve saved under ``out``."""
    from marlpg.core.runlog import write_curve

    curve = write_curve(out / "curve.csv", result.curve)
    print(f"curve={curve}")
    print(f"frames={result.frames} seconds={result.seconds:.1f} fps={result.frames / result.seconds:.0f}")
    print_reference_gap(result, result.eval_return)
    if result.eval_prices is not None:
        print(f"collusive={[round(p, 4) for p in result.collusive_prices]}")
        print(f"prices={[round(p, 4) for p in result.eval_prices]}")
        print(f"nash={[round(p, 4) for p in result.nash_prices]}")
    print(f"eval_return={result.eval_return:.4f}")


def report_seeds(seeds: list[int], results: list, out: Path) -> None:
    """A folder per seed under ``out``, one line per seed, the mean last."""
    from marlpg.algos.maddpg import nash_distance
    from marlpg.core.evaluation import gap_closed
    from marlpg.core.runlog import write_curve

    for seed, result in zip(seeds, results):
        write_curve(out / f"seed{seed}" / "curve.csv", result.curve)
        line = f"seed={seed} frames={result.frames} seconds={result.seconds:.1f}"
        if result.eval_prices is not None:
            line += f" prices={[round(p, 4) for p in result.eval_prices]}"
            line += f" nash_distance={nash_distance(result.eval_prices, result.nash_prices):.4f}"
        print(f"{line} eval_return={result.eval_return:.4f}")
    mean = sum(result.eval_return for result in results) / len(results)
    if results[0].reference is not None:
        print(f"gap_closed={gap_closed(mean, results[0].reference):.4f}")
    if results[0].nash_prices is not None:
        print(f"nash={[round(p, 4) for p in results[0].nash_prices]}")
        print(f"worst_nash_distance={max(nash_distance(r.eval_prices, r.nash_prices) for r in results):.4f}")
    print(f"eval_return={mean:.4f}")


def main(argv=None) -> int:
    import sys

    return run_command(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
