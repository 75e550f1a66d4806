"""The rendezvous experiment of Code 30.7.1: three critics, one quadratic team reward.

* ``task``        the task, its closed forms and the step rule
* ``faithful``    Code 30.7.1's protocol, loop for loop (the reference)
* ``critics``     independent, state-value and joint-action critics
* ``vectorized``  every seed, coupling and critic at once (numpy or torch, any device)
* ``sweep``       Exercise 30.7.2's grid
* ``cli``         ``python -m marlpg.rendezvous [--sweep]``
"""
from .critics import CRITICS
from .faithful import run_faithful
from .sweep import SWEEP_AGENTS, SWEEP_COUPLINGS, cells, ratio_grid, sweep
from .task import Rendezvous, stable_step, team_reward
from .vectorized import DivergenceError, NoiseBank, Simulation, require_stable, simulate

__all__ = [
    "CRITICS", "SWEEP_AGENTS", "SWEEP_COUPLINGS", "DivergenceError", "NoiseBank", "Rendezvous", "Simulation",
    "cells", "ratio_grid", "require_stable", "run_faithful", "simulate", "stable_step", "sweep", "team_reward",
]
