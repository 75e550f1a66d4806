"""Multi-seed runs and sweeps on a two-node Ray cluster joined by address give the serial run's numbers.

Each command runs in a fresh process that joins the session's cluster with ``--ray-address`` (see
``tests/ray_cluster.py``), as a lab's command would; the serial run is the same command without
Ray. Lines are compared with the wall-clock fields removed.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e .[ray]); scripts/setup_env.sh installs it")

COMMANDS = {
    "mappo": ["--seeds", "0,1", "--total-frames", "400", "--num-envs", "8"],
    "maddpg": ["--seeds", "0,1", "--env", "pricing", "--total-frames", "2000"],
    "coma": ["--seeds", "0,1", "--env", "credit", "--total-frames", "1000"],
}
CLOCK = re.compile(r" ?(seconds|fps)=[0-9.]+")


def run_module(module: str, args: list[str], env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def stdout_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [CLOCK.sub("", line) for line in result.stdout.strip().splitlines()]


SPREAD = """
import sys, time
import ray
from marlpg.scale.jobs import run_jobs

def node_of(_):
    time.sleep(0.5)  # hold the node's one CPU so that the next task goes to the other node
    return ray.get_runtime_context().get_node_id()

print(len(set(run_jobs(node_of, range(4), ray=True, address=sys.argv[1]))))
"""


def test_tasks_spread_over_both_nodes(ray_cluster):
    address, env = ray_cluster
    result = subprocess.run([sys.executable, "-c", SPREAD, address], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2"]  # the four tasks ran on both nodes


@pytest.mark.parametrize("algorithm", sorted(COMMANDS))
def test_seeds_on_a_cluster_equal_the_serial_seeds(algorithm, ray_cluster, tmp_path):
    address, env = ray_cluster
    args = [*COMMANDS[algorithm], "--quiet"]
    serial = run_module(f"marlpg.{algorithm}", [*args, "--out", str(tmp_path / "serial")], env)
    remote = run_module(
        f"marlpg.{algorithm}", [*args, "--out", str(tmp_path / "ray"), "--ray", "--ray-address", address], env
    )
    assert "in this process" in serial.stderr
    assert f"as Ray tasks on the cluster at {address}" in remote.stderr
    assert len([line for line in stdout_lines(serial) if line.startswith("seed=")]) == 2, serial.stdout
    assert stdout_lines(remote) == stdout_lines(serial)
    assert (tmp_path / "ray" / "seed1" / "curve.csv").exists()


def test_rendezvous_sweep_on_a_cluster_prints_the_serial_table(ray_cluster):
    address, env = ray_cluster
    args = ["--sweep", "--agents", "2", "4", "--coupling", "1", "--seeds", "3", "--steps", "30"]
    serial = stdout_lines(run_module("marlpg.rendezvous", args, env))
    remote = stdout_lines(run_module("marlpg.rendezvous", [*args, "--ray", "--ray-address", address], env))
    assert remote[:-1] == serial[:-1]  # the last line is the timing
    assert "Ray tasks" in remote[-1]
