"""python -m marlpg.rendezvous: Output 30.7.1, or the grid of Exercise 30.7.2 with --sweep."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from marlpg.scale.jobs import RayNotInstalled

from . import report
from .critics import CRITICS
from .faithful import run_faithful
from .sweep import SWEEP_AGENTS, SWEEP_COUPLINGS, cells, sweep
from .task import Rendezvous, stable_step
from .vectorized import DIVERGENCE_BOUND, DivergenceError, require_stable, simulate


def parse_step(text: str):
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"step must be a number > 0 or 'auto', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m marlpg.rendezvous",
        description=(
            "The rendezvous experiment of Code 30.7.1: n agents with Gaussian policies share a quadratic "
            "team reward; compare the policy-gradient variance of three critics. Without --sweep, print "
            "Output 30.7.1 in the seed's layout; with --sweep, the grid of Exercise 30.7.2."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sweep", action="store_true", help="run the grid of agents x couplings x critics")
    parser.add_argument("--agents", type=int, nargs="+", default=None, metavar="N",
                        help=f"number of agents (>= 1); a list with --sweep [default: 4, or {list(SWEEP_AGENTS)} with --sweep]")
    parser.add_argument("--coupling", type=float, nargs="+", default=None, metavar="C",
                        help=f"weight of the agreement term (finite, >= 0); a list with --sweep [default: 1.0, or {list(SWEEP_COUPLINGS)} with --sweep]")
    parser.add_argument("--sigma", type=float, default=0.25, help="standard deviation of every Gaussian policy (> 0)")
    parser.add_argument("--step", type=parse_step, default="auto",
                        help="gradient-ascent step: a number > 0, or 'auto' for 0.4 / (n (1 + max(c, 0.25) n)) * min(1, batch / 32), which is the seed's 0.02 at n=4, c=1, batch 32")
    parser.add_argument("--batch", type=int, default=32, help="rollouts per update (>= 1)")
    parser.add_argument("--steps", type=int, default=400, help="updates per run (>= 1)")
    parser.add_argument("--seeds", type=int, default=30, help="independent runs; seed s draws from default_rng(1000 + s)")
    parser.add_argument("--target", type=float, default=0.7, help="the common target every agent should reach")
    parser.add_argument("--backend", default="numpy", help="vectorized engine: 'numpy' or 'torch'")
    parser.add_argument("--device", default=None, help="torch device: 'cpu', 'cuda', 'cuda:<index>' or 'auto' (torch backend only)")
    parser.add_argument("--faithful", action="store_true",
                        help="without --sweep: run Code 30.7.1's loops instead of the vectorized engine (slow, same numbers)")
    parser.add_argument("--ray", action="store_true",
                        help="with --sweep: run each number of agents as a Ray task, on a local Ray instance unless --ray-address is given (same numbers; needs pip install -e .[ray])")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="with --ray: the Ray cluster to run on, e.g. 'auto' or 'ray://head:10001'")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_sweep(args) if args.sweep else run_single(args)
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, RayNotInstalled) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def shared_options(args) -> dict:
    return dict(sigma=args.sigma, step=args.step, batch=args.batch, steps=args.steps, seeds=args.seeds, target=args.target)


def run_single(args) -> int:
    if args.ray or args.ray_address is not None:
        raise ValueError("--ray and --ray-address spread the sweep's cells over Ray; add --sweep")
    agents, coupling = args.agents or [4], args.coupling or [1.0]
    if len(agents) != 1 or len(coupling) != 1:
        raise ValueError(f"give one --agents and one --coupling without --sweep, got agents={agents} coupling={coupling}")
    n, c = agents[0], coupling[0]
    options = shared_options(args)
    start = time.perf_counter()
    if args.faithful:
        if args.backend != "numpy" or args.device not in (None, "cpu"):
            raise ValueError("--faithful runs the numpy loops on the CPU; drop --backend/--device")
        step = options.pop("step")
        task = Rendezvous(n, options.pop("target"), c)
        step = stable_step(n, c, args.batch) if step == "auto" else step
        runs = {k: run_faithful(k, task, step=step, return_means=True, **options) for k in CRITICS}
        results = {k: (final, variance) for k, (final, variance, _) in runs.items()}
        # The same criterion as the vectorized engine's.
        if not all(np.isfinite(v).all() and (np.abs(m) <= DIVERGENCE_BOUND).all() for _, v, m in runs.values()):
            raise DivergenceError(f"gradient ascent diverged with step {step:g}; use --step auto or a smaller step")
    else:
        sim = require_stable(simulate(n, [c], CRITICS, backend=args.backend, device=args.device, **options))
        results = {k: sim.cell(k) for k in CRITICS}
    elapsed = time.perf_counter() - start
    print(report.output_30_7_1(results["state-value"], results["independent"], n, args.seeds))
    print()
    print(report.joint_action_note(results["joint-action"], results["independent"]))
    engine = "faithful loops" if args.faithful else f"vectorized, {args.backend}"
    print(f"\n({engine}: {elapsed:.2f} s)")
    return 0


def run_sweep(args) -> int:
    if args.faithful:
        raise ValueError("--faithful is for the single experiment; the sweep always runs vectorized")
    if args.ray_address is not None and not args.ray:
        raise ValueError(f"--ray-address {args.ray_address!r} needs --ray")
    agents = args.agents or list(SWEEP_AGENTS)
    couplings = args.coupling or list(SWEEP_COUPLINGS)
    start = time.perf_counter()
    sims = sweep(agents, couplings, CRITICS, backend=args.backend, device=args.device, ray=args.ray,
                 ray_address=args.ray_address, **shared_options(args))
    elapsed = time.perf_counter() - start
    print(report.sweep_table(cells(sims), CRITICS))
    where = f", {len(agents)} Ray tasks" if args.ray else ""
    print(f"\n({len(agents) * len(couplings) * len(CRITICS)} cells x {args.seeds} seeds x {args.steps} steps in {elapsed:.2f} s{where})")
    if any(sim.any_diverged for sim in sims):
        print("\nerror: some cells diverged (marked 'diverged'): the step is too large for them; "
              "use --step auto or a smaller step", file=sys.stderr)
        return 1
    return 0
