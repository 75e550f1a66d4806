"""``python -m marlpg.mappo``: train MAPPO or IPPO (the algorithm: :mod:`marlpg.algos.mappo`).

The flags' defaults are :class:`marlpg.algos.mappo.MAPPOConfig`'s: a flag left out leaves the config's value.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from marlpg.commands import print_reference_gap, run_command

NAME = "mappo"
DESCRIPTION = "MAPPO: PPO for every agent, trained against a centralized value function (Yu et al., 2022)."
CRITICS = ("global", "agent_specific", "pooled", "attention")  # marlpg.algos.mappo.CRITICS, named here so --help needs no torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", help="backend:scenario, e.g. vmas:simple_spread (default) or mpe2:simple_spread_v3")
    parser.add_argument("--total-frames", type=int, help="environment steps (all agents) to train for (default 6,000,000; 2,000,000 on SMAX)")
    parser.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--ippo", action="store_true", help="critic on each agent's own observation (the IPPO ablation)")
    parser.add_argument("--critic", choices=CRITICS, help="the centralized critic's input: global (default; V(x) with one "
                        "output per agent), agent_specific (V(x, o_a, id_a), one network per agent row), pooled "
                        "(mean-pooled agent embeddings; its size does not grow with the team) or attention "
                        "(pooled, with one attention head instead of the mean)")
    parser.add_argument("--no-share", action="store_true", help="one actor per agent instead of one shared actor")
    parser.add_argument("--continuous", action="store_true", help="continuous actions (Gaussian policy)")
    parser.add_argument("--n-agents", type=int, help="agents in the team (default: the task's; 3 for the particle tasks, fixed by a SMAX map or RWARE layout)")
    parser.add_argument("--num-envs", type=int, help="environment copies stepped together (default 256; 128 on SMAX)")
    parser.add_argument("--lr", type=float, help="Adam learning rate of actor and critic (default 0.002; on SMAX 0.004, decayed linearly to 0)")
    parser.add_argument("--recurrent", action="store_true", help="GRU actors and critics trained on sequence chunks")
    parser.add_argument("--chunk-length", type=int, help="steps per training chunk with --recurrent (default 10)")
    parser.add_argument("--horizon", type=int, help="steps per episode (default: the task's; 25 for the particle tasks, 100 for SMAX, 500 for RWARE)")
    parser.add_argument("--eval-episodes", type=int, help="episodes of the final deterministic evaluation (default 200)")
    options = parser.add_argument_group("options from marlbenchmark/on-policy (book/deviations.md)")
    options.add_argument("--value-loss", choices=("mse", "huber"), help="critic loss: mse (default; half squared error) or huber (delta 10)")
    options.add_argument("--value-clip", type=float, metavar="EPS", help="clip the critic's change from its rollout value to +-EPS, keeping the larger loss (on-policy: 0.2; default: no clipping)")
    options.add_argument("--value-norm-stats", choices=("exact", "ema"), help="value normalization statistics: exact running moments (default) or ema (on-policy's ValueNorm)")
    options.add_argument("--feature-norm", action="store_true", help="LayerNorm on the actors' and the critic's inputs (feed-forward models)")
    options.add_argument("--advantage-norm", choices=("joint", "per_agent", "none"), help="advantages to mean 0, std 1 over all agents together (default), per agent, or not at all")


def config_from_args(args: argparse.Namespace):
    from marlpg.algos.mappo import MAPPOConfig

    given = {"env": args.env, "total_frames": args.total_frames, "device": args.device, "n_agents": args.n_agents,
             "num_envs": args.num_envs, "lr": args.lr, "chunk_length": args.chunk_length, "horizon": args.horizon,
             "eval_episodes": args.eval_episodes, "critic": args.critic, "value_loss": args.value_loss,
             "value_clip": args.value_clip, "value_norm_stats": args.value_norm_stats, "advantage_norm": args.advantage_norm}
    return MAPPOConfig(seed=args.seed, ippo=args.ippo, share=not args.no_share, continuous=args.continuous,
                       recurrent=args.recurrent, feature_norm=args.feature_norm,
                       **{k: v for k, v in given.items() if v is not None})


def report_run(result, out: Path) -> None:
    """``key=value`` lines, ``eval_return`` last; the curve and the deployable actors saved under ``out``."""
    from marlpg.algos.mappo import save_actors
    from marlpg.core.runlog import write_curve

    curve = write_curve(out / "curve.csv", result.curve)
    actors = save_actors(result.model, out / "actors.pt")
    print(f"curve={curve}")
    print(f"actors={actors}")
    print(f"frames={result.frames} seconds={result.seconds:.1f} fps={result.frames / result.seconds:.0f}")
    print_reference_gap(result, result.eval_return)
    if result.eval_win_rate is not None:
        print(f"win_rate={result.eval_win_rate:.4f}")
    print(f"eval_return={result.eval_return:.4f}")


def report_seeds(seeds: list[int], results: list, out: Path) -> None:
    """A folder per seed under ``out``, one line per seed, the mean last."""
    from marlpg.algos.mappo import gap_closed, save_actors
    from marlpg.core.runlog import write_curve

    for seed, result in zip(seeds, results):
        curve = write_curve(out / f"seed{seed}" / "curve.csv", result.curve)
        save_actors(result.model, curve.parent / "actors.pt")
        print(f"seed={seed} frames={result.frames} seconds={result.seconds:.1f} eval_return={result.eval_return:.4f}")
    mean = sum(result.eval_return for result in results) / len(results)
    if results[0].reference is not None:
        print(f"gap_closed={gap_closed(mean, results[0].reference):.4f}")
    print(f"eval_return={mean:.4f}")


def main(argv=None) -> int:
    import sys

    return run_command(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
