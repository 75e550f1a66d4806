"""Exercise 30.7.2's grid: every (n, coupling) cell, every critic, on shared random streams."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .critics import CRITICS
from .task import check_agents
from .vectorized import NoiseBank, Simulation, simulate

SWEEP_AGENTS = (2, 4, 8, 16)
SWEEP_COUPLINGS = (0.25, 1.0, 4.0)


@dataclass(frozen=True)
class Cell:
    """One (n, coupling) cell: each critic's gradient variance (seed mean), None where it diverged."""

    n_agents: int
    coupling: float
    step: float
    variance: dict

    def ratio(self, numerator: str, denominator: str):
        top, bottom = self.variance.get(numerator), self.variance.get(denominator)
        return None if top is None or bottom is None else top / bottom


def sweep(
    agents=SWEEP_AGENTS, couplings=SWEEP_COUPLINGS, critics=CRITICS, *, ray: bool = False, ray_address: str | None = None,
    **simulate_kwargs,
) -> list[Simulation]:
    """One ``Simulation`` per number of agents, all couplings and critics inside it.

    Every cell reads the same random streams (seed s: ``default_rng(1000 + s)``), so the
    whole grid costs one draw of the longest stream. Keyword arguments go to ``simulate``.

    With ``ray=True`` each number of agents is one Ray task (local instance, or the cluster at
    ``ray_address``; see ``marlpg.scale.jobs``). A task draws its own streams; since the n-agent
    streams are a prefix of the longest one, the grid is the same number for number.
    """
    agents = tuple(agents)
    for n in agents:
        check_agents(n)
    if ray or ray_address is not None:
        from marlpg.scale.jobs import run_jobs

        device = simulate_kwargs.get("device")
        gpus = 1 / len(agents) if device is not None and str(device).startswith("cuda") else 0
        jobs = [(n, tuple(couplings), tuple(critics), simulate_kwargs) for n in agents]
        return run_jobs(_simulate_job, jobs, ray=True, address=ray_address, gpus_per_job=round(gpus, 4))
    bank_args = {key: simulate_kwargs.pop(key) for key in ("batch", "steps", "seeds", "seed_offset") if key in simulate_kwargs}
    bank = NoiseBank(max(agents), **{"batch": 32, "steps": 400, "seeds": 30, **bank_args})
    return [simulate(n, couplings, critics, noise_bank=bank, **simulate_kwargs) for n in agents]


def _simulate_job(job) -> Simulation:
    n_agents, couplings, critics, simulate_kwargs = job
    return simulate(n_agents, couplings, critics, **simulate_kwargs)


def cells(simulations: list[Simulation]) -> list[Cell]:
    """Flatten simulations into table rows, one per (n, coupling)."""
    rows = []
    for sim in simulations:
        for c, coupling in enumerate(sim.couplings):
            variance = {}
            for k, critic in enumerate(sim.critics):
                value = sim.grad_variance[k, c].mean()
                variance[critic] = None if sim.diverged[k, c].any() else float(value)
            rows.append(Cell(sim.n_agents, float(coupling), float(sim.steps_used[c]), variance))
    return rows


def ratio_grid(simulations: list[Simulation], numerator="independent", denominator="state-value") -> np.ndarray:
    """[n, coupling] array of variance ratios (NaN where a critic diverged)."""
    return np.array([sim.variance_ratio(numerator, denominator) for sim in simulations])
