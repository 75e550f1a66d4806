"""Frames per second of marlpg's MAPPO against the number of parallel environments, per device.

On-policy training collects T steps in E environment copies, then updates. VMAS steps all E
copies as one batch of tensors, so a step's cost grows far more slowly than E until the device
is busy; the update's cost grows with the E x T samples. This script trains MAPPO (VMAS
simple_spread, 3 agents, marlpg's default networks and update) for a few iterations at each E
and reports training frames/s (collection + update; the evaluation is excluded), on the CPU and,
when torch sees one, on CUDA, each row labelled with its device.

    python benchmarks/bench_scaling.py                  # E = 16 ... 4096 (a few minutes on 2 CPU cores)
    python benchmarks/bench_scaling.py --quick          # a smoke run (seconds)
    python benchmarks/bench_scaling.py --device cuda    # one device only

The ratio printed at the end (largest E against smallest, per device) is measured in this
process; the absolute numbers depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import platform

import torch

from marlpg.algos.mappo import MAPPOConfig, train

FULL_ENVS = (16, 64, 256, 1024, 4096)
QUICK_ENVS = (8, 32)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.machine()}, torch threads: {torch.get_num_threads()})"


def frames_per_second(num_envs: int, device: str, iterations: int, seed: int = 0) -> tuple[float, float]:
    """(frames/s, mean training return of the last iteration) for ``iterations`` of MAPPO."""
    cfg = MAPPOConfig(
        num_envs=num_envs, total_frames=num_envs * 25 * iterations, device=device, seed=seed, eval_episodes=8,
        minibatches=min(8, num_envs * 25),
    )
    # The first iteration also pays for building the environment's tensors; time the rest.
    result = train(cfg, progress=False, with_reference=False)
    curve = result.curve
    if len(curve) > 1:
        frames = curve[-1]["frames"] - curve[0]["frames"]
        seconds = curve[-1]["seconds"] - curve[0]["seconds"]
    else:
        frames, seconds = curve[-1]["frames"], curve[-1]["seconds"]
    return frames / seconds, curve[-1]["return"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small sizes, two iterations each")
    parser.add_argument("--device", default=None, help="'cpu', 'cuda' or 'cuda:N' (default: cpu, and cuda when present)")
    parser.add_argument("--envs", type=int, nargs="+", default=None, help=f"numbers of environments [default: {list(FULL_ENVS)}]")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per size [default: 4, or 2 with --quick]")
    args = parser.parse_args(argv)
    envs = args.envs or (QUICK_ENVS if args.quick else FULL_ENVS)
    iterations = args.iterations or (2 if args.quick else 4)
    if any(e < 1 for e in envs) or iterations < 2:
        raise SystemExit(f"error: --envs must be positive and --iterations >= 2; got envs={envs} iterations={iterations}")
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not torch.cuda.is_available() and any(d.startswith("cuda") for d in devices):
        raise SystemExit("error: --device cuda asked for, but torch sees no GPU here")
    if not args.device and not torch.cuda.is_available():
        print("CUDA: not available on this machine; CPU rows only")

    print(f"MAPPO on VMAS simple_spread, {iterations} iterations per size (the first untimed), 25 steps per iteration")
    print(f"{'device':<48} {'envs':>6} {'frames/s':>12} {'return':>9}")
    for device in devices:
        rates = []
        for num_envs in envs:
            fps, ret = frames_per_second(num_envs, device, iterations)
            rates.append(fps)
            print(f"{device_name(device):<48} {num_envs:>6} {fps:>12,.0f} {ret:>9.2f}", flush=True)
        print(f"{device}: {envs[-1]} environments run {rates[-1] / rates[0]:.1f}x the frames/s of {envs[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
