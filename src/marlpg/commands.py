"""What the command lines of the algorithms share: ``python -m marlpg.mappo``, ``marlpg.coma``, ``marlpg.maddpg``.

Each command module (``marlpg/mappo.py`` and its siblings) declares its flags (``add_arguments``),
turns them into the algorithm's config (``config_from_args``) and prints the results
(``report_run``, ``report_seeds``). This module adds what every command has: ``--seed`` or
``--seeds`` (run one after another or as Ray tasks through :mod:`marlpg.scale.jobs`), ``--out`` and
``--quiet``. Torch and the simulators are imported only after the flags are read, so ``--help``
and a bad flag answer at once.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from marlpg.core.runlog import OUT_HELP, default_run_dir
from marlpg.scale.jobs import INSTALL_HINT


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed`` and the multi-seed flags, the same for every algorithm's command line."""
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--seeds", default=None, help="several seeds, e.g. 0,1,2 or 0-4: one run each, one line each, the mean last")
    parser.add_argument("--ray", action="store_true", help=f"with --seeds: run the seeds as Ray tasks ({INSTALL_HINT})")
    parser.add_argument("--ray-address", default=None, metavar="ADDR", help="with --ray: a Ray cluster ('auto', 'ray://head:10001'); default: a local instance")


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive) -> a list of distinct non-negative seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"seeds must look like '0,1,2' or '0-4' (non-negative integers); got {text!r}")
        if dash and int(high) < int(low):
            raise ValueError(f"a range of seeds runs from low to high, e.g. '0-4'; got {part!r} in {text!r}")
        seeds.extend(range(int(low), int(high) + 1) if dash else [int(low)])
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list without repeats; got {text!r}")
    return seeds


def seeds_from_args(args: argparse.Namespace) -> list[int] | None:
    """The seeds of ``--seeds`` (None for a single run), or a ValueError naming the flags that clash."""
    if args.ray and args.seeds is None:
        raise ValueError("--ray runs the seeds of --seeds as Ray tasks; give --seeds")
    if args.ray_address is not None and not args.ray:
        raise ValueError(f"--ray-address {args.ray_address!r} needs --ray")
    if args.seeds is None:
        return None
    if args.seed != 0:
        raise ValueError(f"give --seed or --seeds, not both (got --seed {args.seed} and --seeds {args.seeds!r})")
    return parse_seeds(args.seeds)


def where_seeds_ran(count: int, ray: bool, address: str | None) -> str:
    """One line for a multi-seed command's standard error: how its seeds ran."""
    if not ray:
        return f"{count} seed(s) in this process, one after another"
    return f"{count} seed(s) as Ray tasks on " + (f"the cluster at {address}" if address else "a local Ray instance")


def parser_for(command) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m marlpg.{command.NAME}", description=command.DESCRIPTION)
    command.add_arguments(parser)
    add_seed_arguments(parser)
    parser.add_argument("--out", default=None, help=OUT_HELP.format(algo=command.NAME))
    parser.add_argument("--quiet", action="store_true", help="no progress bar (there is none when standard error is not a terminal)")
    return parser


def in_flag_names(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` with every config field that is also a flag named as the flag: n_agents -> --n-agents."""
    flags = {action.dest: action.option_strings[-1] for action in parser._actions if action.option_strings}
    for dest, flag in flags.items():
        # a field with an underscore is a name wherever it stands; a one-word field only as the subject of a
        # check ("horizon must be ...", "lr=...")
        after = r"\b(?!-)" if "_" in dest else r"(?= must|=)"
        message = re.sub(rf"(?<![\w-]){re.escape(dest)}{after}", flag, message)
    return message


def algorithm_of(command):
    """The module of :mod:`marlpg.algos` a command trains, imported only when it is needed (it imports torch)."""
    from importlib import import_module

    return import_module(f"marlpg.algos.{command.NAME}")


def print_reference_gap(result, eval_return: float) -> None:
    """``random=``, ``scripted=`` and ``gap_closed=`` lines where the task has a scripted reference."""
    if result.reference is None:
        return
    from marlpg.core.evaluation import gap_closed

    print(f"random={result.reference[0]:.4f}")
    print(f"scripted={result.reference[1]:.4f}")
    print(f"gap_closed={gap_closed(eval_return, result.reference):.4f}")


def run_command(command, argv=None) -> int:
    """Parse ``argv``, train one seed or several, print the command's report; bad input exits with its message."""
    parser = parser_for(command)
    args = parser.parse_args(argv)
    out = default_run_dir(command.NAME) if args.out is None else Path(args.out)
    try:
        seeds = seeds_from_args(args)
        cfg = command.config_from_args(args)
        if seeds is not None:
            results = train_seeds(command, cfg, seeds, args)
            command.report_seeds(seeds, results, out)
            return 0
        result = algorithm_of(command).train(cfg, progress=not args.quiet and sys.stderr.isatty())
    except ValueError as error:
        raise SystemExit(f"error: {in_flag_names(str(error), parser)}") from None
    command.report_run(result, out)
    return 0


def train_seeds(command, cfg, seeds: list[int], args: argparse.Namespace) -> list:
    """The runs of ``--seeds``; says on standard error where they ran; a missing Ray exits with the install hint."""
    from marlpg.scale import jobs

    try:
        results = jobs.train_seeds(algorithm_of(command), cfg, seeds, ray=args.ray, address=args.ray_address)
    except jobs.RayNotInstalled as error:
        raise SystemExit(f"error: {error}") from None
    print(where_seeds_ran(len(seeds), args.ray, args.ray_address), file=sys.stderr)
    return results
