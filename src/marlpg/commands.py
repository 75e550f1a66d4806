"""The command lines of the algorithms: ``python -m marlpg.mappo``, ``marlpg.coma``, ``marlpg.maddpg``.

Each algorithm module of :mod:`marlpg.algos` brings its own flags (``add_arguments``), turns them
into its config (``config_from_args``) and prints its results (``report_run``, ``report_seeds``).
This module adds what every command shares: ``--seed`` or ``--seeds`` (run serially or as Ray tasks
through :mod:`marlpg.scale.jobs`), ``--out`` and ``--quiet``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from marlpg.core.runlog import OUT_HELP, default_run_dir
from marlpg.scale import jobs


def parser_for(algorithm, name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m marlpg.{name}", description=algorithm.__doc__.split("\n\n")[0])
    algorithm.add_arguments(parser)
    jobs.add_seed_arguments(parser)
    parser.add_argument("--out", default=None, help=OUT_HELP.format(algo=name))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_command(algorithm, name: str, argv=None) -> int:
    """Parse ``argv``, train one seed or several, print the algorithm's report; bad input exits with its message."""
    args = parser_for(algorithm, name).parse_args(argv)
    out = default_run_dir(name) if args.out is None else Path(args.out)
    try:
        seeds = jobs.seeds_from_args(args)
        args.seed_list = seeds
        cfg = algorithm.config_from_args(args)
        if seeds is not None:
            results = jobs.train_seeds_from_args(algorithm, cfg, args)
            algorithm.report_seeds(seeds, results, out)
            return 0
        result = algorithm.train(cfg, progress=not args.quiet)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    algorithm.report_run(result, out)
    return 0
