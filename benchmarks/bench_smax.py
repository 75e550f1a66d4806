"""SMAX through marlpg's adapter: steps per second against the number of parallel copies, and the hand-over cost.

Three measurements, each a ratio against a baseline timed in the same process:

1. Scaling: frames per second (one frame = one step of one copy) of ``SmaxEnv.step`` for E copies,
   against E = 1. One ``jax.vmap`` of a jit-compiled step runs all copies, so the ratio grows with E
   until the CPU is busy.
2. Adapter overhead: the same jit-compiled step called on JAX arrays alone (no torch), against the
   adapter (torch actions in, torch tensors out through DLPack).
3. Hand-over: turning one step's outputs (obs, state, reward, masks, ... for E copies) into torch
   tensors through DLPack (``torch.from_dlpack``, no copy) against a NumPy copy
   (``torch.from_numpy(np.array(x))``).

The actions are "stop" for every marine, so battles run until the scripted enemy wins and copies
reset inside the step (the auto-reset is part of what is timed). Each figure is the best of
``--rounds`` runs (the machine is shared). Compilation is excluded (one
warm-up step per E; the first build of each E compiles for ~30 s on a busy 2-core machine, later
runs load JAX's disk cache).

    python benchmarks/bench_smax.py            # E in 1, 8, 64, 256 on 3m
    python benchmarks/bench_smax.py --quick    # E in 1, 4, a few steps (tests/test_benchmarks.py)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from marlpg.envs import make_env

STOP = 4


def frames_per_second(env, steps: int) -> float:
    env.reset(seed=0)
    actions = torch.full((env.num_envs, env.spec.n_agents), STOP, dtype=torch.long)
    env.step(actions)  # warm-up: compiles on the first call
    began = time.perf_counter()
    for _ in range(steps):
        env.step(actions)
    return steps * env.num_envs / (time.perf_counter() - began)


def raw_frames_per_second(env, steps: int) -> float:
    """The adapter's jit-compiled step on JAX arrays only: what the torch side costs is left out."""
    env.reset(seed=0)
    carry = env._carry
    actions = jax_actions(env)
    carry, floats, _ = env._step_fn(carry, actions)
    floats.block_until_ready()
    began = time.perf_counter()
    for _ in range(steps):
        carry, floats, _ = env._step_fn(carry, actions)
    floats.block_until_ready()
    return steps * env.num_envs / (time.perf_counter() - began)


def jax_actions(env):
    """Stop for everyone, committed to the CPU as the adapter's actions are (another placement would recompile)."""
    import jax

    return jax.dlpack.from_dlpack(torch.full((env.num_envs, env.spec.n_agents), STOP, dtype=torch.int32))


def hand_over_seconds(outputs: dict, repeats: int) -> tuple[float, float]:
    """Seconds per hand-over of one step's outputs: (DLPack, NumPy copy)."""
    def dlpack():
        return {k: torch.from_dlpack(v) for k, v in outputs.items()}

    def numpy_copy():
        return {k: torch.from_numpy(np.array(v)) for k, v in outputs.items()}

    timings = []
    for convert in (dlpack, numpy_copy):
        convert()
        began = time.perf_counter()
        for _ in range(repeats):
            convert()
        timings.append((time.perf_counter() - began) / repeats)
    return timings[0], timings[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--map", default="3m")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    copies, steps, repeats, rounds = (args.copies, args.steps, 200, args.rounds) if not args.quick else ([1, 4], 5, 5, 1)
    torch.set_num_threads(1)

    print(f"SMAX {args.map}: frames/s of the adapter (torch in and out) and of its bare jit step (JAX only)")
    baseline = None
    last_env = None
    for num_envs in copies:
        env = make_env(f"smax:{args.map}", num_envs, seed=0)
        # Alternate the two, best of the rounds: on a shared machine other work lands on one or the other.
        timings = [(frames_per_second(env, steps), raw_frames_per_second(env, steps)) for _ in range(rounds)]
        adapter, raw = (max(column) for column in zip(*timings))
        baseline = adapter if baseline is None else baseline
        print(f"  E={num_envs:4d}: adapter {adapter:9.0f} frames/s ({adapter / baseline:6.1f}x E={copies[0]}), "
              f"bare JAX {raw:9.0f} frames/s (adapter at {adapter / raw:.2f}x of it)", flush=True)
        last_env = env

    last_env.reset(seed=0)
    _, *packed = last_env._step_fn(last_env._carry, jax_actions(last_env))
    outputs = dict(enumerate(packed))  # the adapter hands over two arrays per step (floats, flags)
    size = sum(v.size * v.dtype.itemsize for v in outputs.values())
    dlpack, copy = hand_over_seconds(outputs, repeats)
    print(f"hand-over of one step's outputs for E={last_env.num_envs} ({size / 1024:.0f} KiB, {len(outputs)} arrays): "
          f"DLPack {dlpack * 1e6:.0f} us, NumPy copy {copy * 1e6:.0f} us: DLPack {copy / dlpack:.1f}x faster")


if __name__ == "__main__":
    main()
