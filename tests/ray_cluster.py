"""A real Ray cluster for the tests: a head node and a worker node, started with ``ray start``, joined by address.

The local-instance path (``ray.init()`` inside the process) is tested elsewhere; this one is what an
instructor or a lab does: a long-lived cluster of several nodes, and commands that connect with
``--ray-address``. Both nodes run on this machine (Ray allows several nodes per host), one CPU each,
so tasks must spread over the two nodes. Token authentication is on, as on a real cluster: every node
and client shares a token through the environment (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

STARTED = "Ray runtime started"
COMMON = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def ray_node(arguments: list[str], env: dict, log_path: Path, timeout: float = 90):
    """One ``ray start --block`` process, alive for the block; stopping it (SIGTERM) ends only its own
    processes, never another Ray instance on the machine (``ray stop`` would end them all)."""
    ray_cli = Path(sys.executable).with_name("ray")
    with open(log_path, "w") as log:
        node = subprocess.Popen([str(ray_cli), "start", *arguments, *COMMON], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while STARTED not in log_path.read_text():
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"a Ray node did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        node.terminate()
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()


@contextmanager
def ray_cluster(folder: Path, workers: int = 1):
    """Yield ``(address, env)`` of a cluster of a head and ``workers`` worker nodes; a client run with
    ``env`` may join at ``address``."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # Ray's socket paths must stay under 107 bytes, which pytest's temporary folders can exceed.
    session_root = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    address = f"127.0.0.1:{port}"
    try:
        with ExitStack() as nodes:
            head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={session_root}"]
            nodes.enter_context(ray_node(head, env, folder / "head.log"))
            for index in range(workers):
                nodes.enter_context(ray_node([f"--address={address}"], env, folder / f"worker{index}.log"))
            yield address, env
    finally:
        shutil.rmtree(session_root, ignore_errors=True)
