"""``python -m marlpg.coma``: train COMA or one of its baselines (the algorithm: :mod:`marlpg.algos.coma`).

The flags' defaults are :class:`marlpg.algos.coma.COMAConfig`'s, several of them chosen by the task.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from marlpg.commands import run_command

NAME = "coma"
DESCRIPTION = "COMA: counterfactual multi-agent policy gradients (Foerster et al., 2018)."
BASELINES = ("counterfactual", "state_value", "independent")  # marlpg.algos.coma.BASELINES (a test keeps them equal)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", help="credit (default), climbing or backend:scenario (e.g. vmas:simple_spread)")
    parser.add_argument("--baseline", choices=BASELINES, help="the advantage's baseline (default counterfactual)")
    parser.add_argument("--total-frames", type=int, help="environment steps (all agents); default 4,000 for the one-step games, 500,000 otherwise")
    parser.add_argument("--n-agents", type=int, help="agents in the team (default 4 for credit, 2 for climbing)")
    parser.add_argument("--k-relevant", type=int, help="credit game: how many agents matter (default half of them)")
    parser.add_argument("--num-envs", type=int, help="environment copies stepped together (default 8 one-step, 64 otherwise)")
    parser.add_argument("--actor-lr", type=float, help="actor learning rate (default 3e-3 one-step, 5e-4 otherwise)")
    parser.add_argument("--critic-lr", type=float, help="critic learning rate (default 5e-3 one-step, 1e-3 otherwise)")
    parser.add_argument("--no-share", action="store_true", help="one actor per agent instead of a shared one with IDs")
    parser.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")


def config_from_args(args: argparse.Namespace):
    from marlpg.algos.coma import COMAConfig

    given = {"env": args.env, "baseline": args.baseline, "device": args.device}
    return COMAConfig(
        seed=args.seed, total_frames=args.total_frames, n_agents=args.n_agents, k_relevant=args.k_relevant,
        num_envs=args.num_envs, actor_lr=args.actor_lr, critic_lr=args.critic_lr, share=not args.no_share,
        **{k: v for k, v in given.items() if v is not None},
    )


def episodes_text(result) -> str:
    from marlpg.algos.coma import episodes_to_optimum

    reached = episodes_to_optimum(result)
    return "never" if reached is None else str(reached)


def report_run(result, out: Path) -> None:
    """``key=value`` lines, ``eval_return`` last; the curve saved under ``out``."""
    from marlpg.core.runlog import write_curve

    curve = write_curve(out / "curve.csv", result.curve)
    print(f"curve={curve}")
    print(f"frames={result.frames} seconds={result.seconds:.1f} fps={result.frames / result.seconds:.0f}")
    if result.optimum is not None:
        print(f"episodes_to_optimum={episodes_text(result)}")
        print(f"optimum={result.optimum:.4f}")
    print(f"eval_return={result.eval_return:.4f}")


def report_seeds(seeds: list[int], results: list, out: Path) -> None:
    """A folder per seed under ``out``, one line per seed, the mean last."""
    from marlpg.core.runlog import write_curve

    for seed, result in zip(seeds, results):
        write_curve(out / f"seed{seed}" / "curve.csv", result.curve)
        line = f"seed={seed} frames={result.frames} seconds={result.seconds:.1f}"
        if result.optimum is not None:
            line += f" episodes_to_optimum={episodes_text(result)}"
        print(f"{line} eval_return={result.eval_return:.4f}")
    if results[0].optimum is not None:
        print(f"optimum={results[0].optimum:.4f}")
    print(f"eval_return={sum(result.eval_return for result in results) / len(results):.4f}")


def main(argv=None) -> int:
    import sys

    return run_command(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
