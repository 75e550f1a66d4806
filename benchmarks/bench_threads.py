"""How torch's idle-thread spinning costs a training run on a busy machine, with and without marlpg's setting.

    python benchmarks/bench_threads.py          # MAPPO, 256 copies, 12 iterations; quiet, then beside a busy process per core
    python benchmarks/bench_threads.py --quick  # 16 copies, 3 iterations (seconds; run by tests/test_benchmarks.py)

libgomp reads its waiting policy once, when torch loads, so each setting is timed in a fresh Python process
started by this one; the baseline (libgomp's default spinning) is timed in the same benchmark run, right
before. The "busy" rows run with one `while :; do :; done` shell per core beside the training, the load that
scripts/under_load.sh makes. Printed: each setting's median wall seconds over the repeats, and its ratio to
the default's ("x faster" above 1). marlpg.core.threads quotes the measured numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TRAIN = """
import sys
import time
import torch  # loads libgomp with the environment this process was given, before marlpg could set a default
from marlpg.algos.mappo import MAPPOConfig, train
copies, iterations = int(sys.argv[1]), int(sys.argv[2])
cfg = MAPPOConfig(num_envs=copies, total_frames=copies * 25 * iterations, eval_episodes=8, device="cpu")
began = time.perf_counter()
train(cfg, progress=False, with_reference=False)
print(time.perf_counter() - began)
"""

SETTINGS = {  # name: environment changes before the child starts (None: removed)
    "default": {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None},
    "GOMP_SPINCOUNT=10000 (marlpg)": {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": None},
    "OMP_WAIT_POLICY=PASSIVE": {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"},
}


def child_env(changes: dict[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_seconds(setting: str, copies: int, iterations: int) -> float:
    done = subprocess.run([sys.executable, "-c", TRAIN, str(copies), str(iterations)],
                          env=child_env(SETTINGS[setting]), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the training child for {setting!r} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


@contextmanager
def busy_cores(count: int):
    hogs = [subprocess.Popen(["bash", "-c", "while :; do :; done"]) for _ in range(count)]
    time.sleep(0.5)
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="16 copies, 3 iterations, one repeat")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting and load (median reported)")
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1; got {args.repeats}")
    copies, iterations, repeats = (16, 3, 1) if args.quick else (256, 12, args.repeats)
    cores = os.cpu_count() or 1
    for load, hogs in (("quiet", 0), (f"busy ({cores} busy processes)", cores)):
        with busy_cores(hogs):
            medians = {s: statistics.median(run_seconds(s, copies, iterations) for _ in range(repeats)) for s in SETTINGS}
        base = medians["default"]
        for setting, seconds in medians.items():
            print(f"{load:<28} {setting:<30} {seconds:7.2f} s  {base / seconds:5.2f}x faster than the default")


if __name__ == "__main__":
    main()
