"""Speed of the rendezvous experiment: Code 30.7.1's loops against the vectorized engine.

Everything is timed in this one process, and every figure is printed as a ratio
against the faithful loop measured here, so the numbers compare like with like.

    python benchmarks/bench_rendezvous.py            # full size (about 20 s)
    python benchmarks/bench_rendezvous.py --quick    # a smoke run (about 2 s)

Measured: (1) Output 30.7.1's work, two critics x 30 seeds x 400 updates at n = 4,
by the faithful loop, the numpy engine and the torch engine (CPU, and CUDA when
present); (2) the grid of Exercise 30.7.2 (n in {2,4,8,16} x coupling in {0.25,1,4}
x three critics x 30 seeds x 400 updates), best of several repetitions, which the
course promises in under one second on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from marlpg.rendezvous import run_faithful, simulate, sweep

SEED_CRITICS = ("state-value", "independent")


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each vectorized timing (best is kept)")
    args = parser.parse_args(argv)
    size = dict(steps=40, seeds=3) if args.quick else dict(steps=400, seeds=30)
    repeat = 1 if args.quick else args.repeat

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print(f"size: n=4, coupling=1, {size['seeds']} seeds x {size['steps']} updates x batch 32")

    start = time.perf_counter()
    faithful = {k: run_faithful(k, steps=size["steps"], seeds=size["seeds"]) for k in SEED_CRITICS}
    faithful_time = time.perf_counter() - start
    print(f"\nOutput 30.7.1's work (two critics)")
    print(f"  faithful loops          {faithful_time:9.3f} s   1.0x")

    engines = [("numpy", None), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])
    for backend, device in engines:
        def run():
            return simulate(4, [1.0], SEED_CRITICS, backend=backend, device=device, **size)

        sim = run()  # warm-up, and the numbers to compare
        for k in SEED_CRITICS:
            np.testing.assert_allclose(sim.cell(k)[1], faithful[k][1], rtol=1e-9)
        seconds = best_time(run, repeat)
        label = f"{backend}" + (f" ({device})" if device else "")
        print(f"  vectorized {label:<12} {seconds:9.4f} s   {faithful_time / seconds:6.0f}x faster")

    print(f"\nExercise 30.7.2 grid: 4 n x 3 couplings x 3 critics x {size['seeds']} seeds x {size['steps']} updates")
    for backend, device in engines:
        def grid():
            return sweep(backend=backend, device=device, **size)

        grid()  # warm-up
        seconds = best_time(grid, max(1, repeat - 2))
        label = f"{backend}" + (f" ({device})" if device else "")
        cells = 4 * 3 * 3
        print(f"  {label:<14} {seconds:7.3f} s  ({cells / seconds:.0f} critic-cells/s; one faithful critic-cell at "
              f"n = 4 took {faithful_time / len(SEED_CRITICS):.2f} s above)")


if __name__ == "__main__":
    main()
