"""A real Ray cluster for the tests: a head node started by ``ray start --head``, joined by address.

The local-instance path (``ray.init()`` inside the process) is tested elsewhere; this one is what an
instructor or a lab does: a long-lived cluster, and commands that connect with ``--ray-address``.
Token authentication is on, as on a real cluster: the head and every client share a token through
the environment (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``).
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
from contextlib import contextmanager
from pathlib import Path

STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def ray_head(folder: Path, num_cpus: int = 2, timeout: float = 90):
    """Yield ``(address, env)`` of a one-node cluster; a client run with ``env`` may join at ``address``.

    The head runs with ``--block`` as this fixture's child, so stopping it (SIGTERM) shuts down
    only its own processes, never another Ray instance on the machine (``ray stop`` would).
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log_path = folder / "head.log"
    ray_cli = Path(sys.executable).with_name("ray")
    # Ray's socket paths must stay under 107 bytes, which pytest's temporary folders can exceed.
    session_root = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    command = [
        str(ray_cli), "start", "--head", "--block", f"--num-cpus={num_cpus}", f"--port={port}",
        "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
        f"--temp-dir={session_root}",
    ]
    with open(log_path, "w") as log:
        head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while STARTED not in log_path.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(session_root, ignore_errors=True)
