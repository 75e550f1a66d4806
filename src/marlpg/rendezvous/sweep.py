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


def sweep(agents=SWEEP_AGENTS, couplings=SWEEP_COUPLINGS, critics=CRITICS, **simulate_kwargs) -> list[Simulation]:
    """One ``Simulation`` per number of agents, all couplings and critics inside it.

    Every cell reads the same random streams (seed s: ``default_rng(1000 + s)``), so the
    whole grid costs one draw of the longest stream. Keyword arguments go to ``simulate``.
    """
    agents = tuple(agents)
    for n in agents:
        check_agents(n)
    bank_args = {key: simulate_kwargs.pop(key) for key in ("batch", "steps", "seeds", "seed_offset") if key in simulate_kwargs}
    bank = NoiseBank(max(agents), **{"batch": 32, "steps": 400, "seeds": 30, **bank_args})
    return [simulate(n, couplings, critics, noise_bank=bank, **simulate_kwargs) for n in agents]


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
