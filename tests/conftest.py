"""Shared fixtures: the marlpg.rendezvous grids, its command line, and a Ray cluster.

The expensive results (the full Exercise 30.7.2 grid at two step rules) are computed
once per session; everything else builds its own small configuration.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
if str(SRC) not in sys.path:  # test the working tree's code even without an editable install
    sys.path.insert(0, str(SRC))


def gauss_hermite_expectation(f, mu, sigma, dims=None, degree: int = 3):
    """E[f(x)] for x ~ N(mu, sigma^2 I) over the coordinates ``dims`` (all by default), others fixed at mu.

    A tensor-product Gauss-Hermite rule with ``degree`` nodes per coordinate is exact for
    polynomials of degree <= 2 * degree - 1 in each coordinate, so degree 3 is exact for the
    quadratic team reward. ``f`` takes a 1-D array of length len(mu).
    """
    mu = np.asarray(mu, dtype=float)
    dims = list(range(mu.size)) if dims is None else list(dims)
    nodes, weights = hermegauss(degree)
    weights = weights / np.sqrt(2 * np.pi)  # probabilists' weight exp(-x^2/2) -> standard normal density
    total = 0.0
    for index in itertools.product(range(degree), repeat=len(dims)):
        point = mu.copy()
        w = 1.0
        for d, j in zip(dims, index):
            point[d] = mu[d] + sigma * nodes[j]
            w *= weights[j]
        total += w * f(point)
    return total


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): the tensors
    are small and the machine has 2 cores; OpenMP's parallel regions only add overhead, and under load (another
    process on the cores) a tiny VMAS step can slow from ~3 ms to ~100 ms."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def auto_grid():
    """Exercise 30.7.2's full grid (n in 2,4,8,16 x coupling 0.25,1,4 x 3 critics x 30 seeds x 400 steps), step='auto'."""
    from marlpg.rendezvous import sweep

    return sweep()


@pytest.fixture(scope="session")
def seed_step_grid():
    """The same grid with the seed's fixed step 0.02 for every cell."""
    from marlpg.rendezvous import sweep

    return sweep(step=0.02)


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m marlpg.rendezvous ARGS`` with this interpreter (the venv's), on the working tree's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "marlpg.rendezvous", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """``(address, env)`` of a two-node Ray cluster started with ``ray start`` (see tests/ray_cluster.py)."""
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e .[ray]); scripts/setup_env.sh installs it")
    from ray_cluster import ray_cluster as started_cluster

    with started_cluster(tmp_path_factory.mktemp("ray_cluster")) as (address, env):
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        yield address, env
