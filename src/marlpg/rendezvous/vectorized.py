r"""Code 30.7.1's protocol on every seed, coupling and critic at once.

One call trains ``seeds x couplings x critics`` independent sets of Gaussian actors for
``steps`` updates. All of them read the same pre-drawn noise (seed s uses the stream of
``default_rng(1000 + s)`` exactly as the loop does), so a critic is compared with another
on identical rollouts, and every number equals ``faithful.run_faithful`` up to float
rounding. Arrays are laid out [seed, run, batch, agent], where a run is one
(critic, coupling) pair.

One update, for every run at once (Section 2 of the course):

.. math::

    a_{b} = \mu + \sigma\varepsilon_b,\quad
    \hat g_i = \tfrac1B\textstyle\sum_b A_{b,i}\,\varepsilon_{b,i}/\sigma,\quad
    \mathrm{noise} = \tfrac1n\textstyle\sum_i \mathrm{Var}_b\big[A_{b,i}\varepsilon_{b,i}/\sigma\big],\quad
    \mu \leftarrow \mu + \eta\,\hat g.

The step eta is either a number for every cell or ``"auto"``, the rule
``task.stable_step``: 0.4 / (n (1 + max(c, 0.25) n)) * min(1, batch / 32), which is
the seed's 0.02 at n = 4, c = 1, batch 32.
A run whose means leave [-1e6, 1e6] or stop being finite is marked diverged.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import backends
from .critics import CRITICS, make_critic
from .task import (
    SEED_TARGET,
    action_gradient,
    check_agents,
    check_count,
    check_coupling,
    check_finite,
    check_positive,
    stable_step,
    team_reward,
    team_reward_from_sums,
)

DIVERGENCE_BOUND = 1e6
"""A run has diverged once any policy mean leaves [-1e6, 1e6] or stops being finite."""


class DivergenceError(RuntimeError):
    """Raised by ``require_stable`` when a chosen step made some run blow up."""


@dataclass(frozen=True)
class CouplingBatch:
    """The rendezvous task for several runs at once, one coupling per run, shaped for [seed, run, batch, agent]."""

    n_agents: int
    target: float
    couplings: object  # [C], numpy array or torch tensor

    @property
    def coupling_column(self):  # [R, 1], broadcasts against [S, R, B]
        return self.couplings[:, None]

    def select(self, runs: slice) -> "CouplingBatch":
        return CouplingBatch(self.n_agents, self.target, self.couplings[runs])

    def action_gradient(self, actions, total=None):
        """dR/da_i for actions [S, R, B, n]; ``total`` is sum_i a_i as [S, R, B, 1] if already known."""
        return action_gradient(actions, self.target, self.couplings[:, None, None], total=total)

    @property
    def own_curvature(self):
        return (1.0 + self.couplings * (self.n_agents - 1))[:, None, None]


@dataclass
class Simulation:
    """What one call of ``simulate`` measured; every array is numpy, indexed [critic, coupling, seed]."""

    n_agents: int
    batch: int
    critics: tuple
    couplings: np.ndarray  # [C]
    steps_used: np.ndarray  # [C], the step size each coupling trained with
    final_reward: np.ndarray  # [K, C, S] team reward at the final policy means
    grad_variance: np.ndarray  # [K, C, S] gradient-noise scale averaged over updates
    diverged: np.ndarray  # [K, C, S]
    variance_trace: np.ndarray | None  # [K, C, T] gradient-noise scale per update, mean over seeds

    def cell(self, critic: str, coupling: float | None = None):
        """(final_reward[S], grad_variance[S]) of one critic at one coupling."""
        k = self.critics.index(critic)
        c = 0 if coupling is None else int(np.flatnonzero(np.isclose(self.couplings, coupling))[0])
        return self.final_reward[k, c], self.grad_variance[k, c]

    def mean_variance(self, critic: str) -> np.ndarray:
        """Gradient variance averaged over seeds, one value per coupling (NaN where a run diverged)."""
        k = self.critics.index(critic)
        mean = self.grad_variance[k].mean(-1)
        return np.where(self.diverged[k].any(-1), np.nan, mean)

    def variance_ratio(self, numerator: str, denominator: str) -> np.ndarray:
        return self.mean_variance(numerator) / self.mean_variance(denominator)

    @property
    def any_diverged(self) -> bool:
        return bool(self.diverged.any())


class NoiseBank:
    """Every random number of the protocol, drawn once and shared by any number of agents.

    Seed s draws, from ``default_rng(seed_offset + s)``, first the n initial means and
    then ``steps`` blocks of [batch, n] action noise. A generator's normals form one
    stream however the draws are split, so that is the stream's first n values
    followed by the next ``steps * batch * n``: one draw of the longest prefix any n
    needs serves every n up to ``max_agents``. Seeds are drawn on two threads (numpy's
    generators release the GIL).
    """

    def __init__(self, max_agents: int, batch: int, steps: int, seeds: int, seed_offset: int = 1000):
        check_agents(max_agents)
        check_count("batch", batch)
        check_count("steps", steps)
        check_count("seeds", seeds)
        check_count("seed_offset", seed_offset, minimum=0)
        self.max_agents, self.batch, self.steps, self.seeds = max_agents, batch, steps, seeds
        self.stream = np.empty((seeds, max_agents * (1 + steps * batch)))

        def fill(s):
            np.random.default_rng(seed_offset + s).standard_normal(out=self.stream[s])

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(fill, range(seeds)))

    def for_agents(self, n_agents: int):
        """Initial means [S, n] and action noise [T, S, B, n] for ``n_agents`` agents."""
        if n_agents > self.max_agents:
            raise ValueError(f"this noise bank serves up to {self.max_agents} agents, not {n_agents}")
        initial_means = self.stream[:, :n_agents] * 0.5
        used = self.stream[:, n_agents : n_agents * (1 + self.steps * self.batch)]
        noise = used.reshape(self.seeds, self.steps, self.batch, n_agents).transpose(1, 0, 2, 3)
        return initial_means, np.ascontiguousarray(noise)


def resolve_steps(step, n_agents: int, couplings, batch: int) -> np.ndarray:
    if isinstance(step, str):
        if step != "auto":
            raise ValueError(f"step must be a number > 0 or 'auto', got {step!r}")
        return np.array([stable_step(n_agents, c, batch) for c in couplings])
    check_positive("step", step)
    return np.full(len(couplings), float(step))


def simulate(
    n_agents: int = 4,
    couplings=(1.0,),
    critics=CRITICS,
    *,
    target: float = SEED_TARGET,
    sigma: float = 0.25,
    step="auto",
    batch: int = 32,
    steps: int = 400,
    seeds: int = 30,
    seed_offset: int = 1000,
    baseline_rate: float = 0.02,
    backend: str = "numpy",
    device: str | None = None,
    trace: bool = False,
    noise_bank: NoiseBank | None = None,
    initial_means=None,
) -> Simulation:
    """Train every (critic, coupling, seed) run for ``steps`` updates and measure it.

    Pass a ``noise_bank`` to reuse one draw of the random streams across calls
    (its batch, steps and seeds then win over the arguments of the same name).
    ``initial_means`` ([n] for every seed, or [seeds, n]) replaces the drawn starting
    means while every action-noise draw stays the same.
    """
    couplings = np.atleast_1d(np.asarray(couplings, dtype=float))
    critics = tuple(critics)
    _check_arguments(n_agents, couplings, critics, target, sigma, batch, steps, seeds, baseline_rate)
    xp, dev = backends.resolve(backend, device)
    bank = noise_bank or NoiseBank(n_agents, batch, steps, seeds, seed_offset)
    steps_used = resolve_steps(step, n_agents, couplings, bank.batch)

    drawn_means, noise = bank.for_agents(n_agents)
    initial_means = drawn_means if initial_means is None else _checked_means(initial_means, drawn_means.shape)
    noise = _NoiseStatistics(backends.to_backend(noise, xp, dev), sigma)
    # Runs are laid out critic-major along axis 1: run k*C + c is critic k at coupling c.
    n_runs = len(critics) * len(couplings)
    task = CouplingBatch(n_agents, target, backends.to_backend(np.tile(couplings, len(critics)), xp, dev))
    eta = backends.to_backend(np.tile(steps_used, len(critics)), xp, dev)[:, None]  # [R, 1]
    mu = backends.to_backend(np.repeat(initial_means[:, None, :], n_runs, axis=1), xp, dev)  # [S, R, n]
    groups = []
    for k, name in enumerate(critics):
        runs = slice(k * len(couplings), (k + 1) * len(couplings))
        groups.append((make_critic(name, mu[:, runs], baseline_rate), runs, task.select(runs)))

    mu, variances = _train(mu, groups, task, noise, sigma, eta, bank.steps)

    def by_critic(values):  # [S, R, ...] on the backend -> numpy [K, C, S, ...]
        values = backends.to_numpy(values)
        values = values.reshape(values.shape[0], len(critics), len(couplings), *values.shape[2:])
        return np.moveaxis(values, 0, 2)

    final_reward = by_critic(team_reward(mu, target, task.couplings))
    grad_variance = by_critic(variances.mean(0))
    diverged = ~(np.abs(by_critic(mu)) <= DIVERGENCE_BOUND).all(-1) | ~np.isfinite(grad_variance)
    variance_trace = backends.to_numpy(variances.mean(1)).T.reshape(len(critics), len(couplings), -1) if trace else None
    return Simulation(
        n_agents, bank.batch, critics, couplings, steps_used, final_reward, grad_variance, diverged, variance_trace
    )


def _checked_means(means, shape) -> np.ndarray:
    means = np.asarray(means, dtype=float)
    try:
        means = np.broadcast_to(means, shape)
    except ValueError:
        raise ValueError(f"initial_means must have shape [n] or [seeds, n] = {list(shape)}, got {list(means.shape)}") from None
    if not np.isfinite(means).all():
        raise ValueError("initial_means must be finite")
    return means


def _check_arguments(n_agents, couplings, critics, target, sigma, batch, steps, seeds, baseline_rate) -> None:
    check_agents(n_agents)
    for c in couplings:
        check_coupling(c)
    for name in critics:
        if name not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {name!r}")
    check_finite("target", target)
    check_positive("sigma", sigma)
    check_count("batch", batch)
    check_count("steps", steps)
    check_count("seeds", seeds)
    check_finite("baseline_rate", baseline_rate)


def _train(mu, groups, task, noise, sigma: float, eta, steps: int):
    """Run ``steps`` updates of every run; return the final means and the noise scale per update [T, S, R]."""
    n_agents = mu.shape[-1]
    variances = backends.zeros_like(mu[:, :, 0], leading=steps)
    mean_grad, mean_sq_grad = mu * 0.0, mu * 0.0
    with np.errstate(all="ignore"):  # a diverging step overflows; the caller marks those runs
        for t in range(steps):
            rollouts = Rollouts(t, mu, noise, sigma, task)
            for critic, runs, part_task in groups:
                part = rollouts.select(runs)
                advantages = critic.advantages(part, part_task)
                critic.observe(part.rewards)
                mean_grad[:, runs], mean_sq_grad[:, runs] = gradient_moments(advantages, part, noise.ones)
            variances[t] = (mean_sq_grad - mean_grad**2).sum(-1) / n_agents
            mu = mu + eta * mean_grad
    return mu, variances


def gradient_moments(advantages, rollouts, batch_weights):
    """Batch mean and mean square of the per-sample gradient g_bi = A_bi eps_bi / sigma.

    With one advantage per rollout ([S, R, B]) both batch means are matrix products with
    the noise; with one advantage per agent ([S, R, B, n]) they are products with a row of
    1/B (several times faster than ``.mean(-2)``).
    """
    sigma = rollouts.sigma
    if advantages.ndim == rollouts.eps.ndim:
        batch = rollouts.eps.shape[-2]
        return (advantages @ rollouts.eps) / (batch * sigma), (advantages**2 @ rollouts.eps_sq) / (batch * sigma**2)
    per_sample_grad = advantages * rollouts.eps[:, None]
    return (batch_weights @ per_sample_grad) / sigma, (batch_weights @ per_sample_grad**2) / sigma**2


class _NoiseStatistics:
    """The pre-drawn noise eps [T, S, B, n] and the sums over agents the reward needs."""

    def __init__(self, noise, sigma: float):
        self.eps = noise
        self.eps_sq = noise**2
        # Sums over the (short) agent axis as products with a column of ones: numpy reduces
        # a trailing axis of length 4 far slower than it multiplies matrices.
        ones = noise[0, 0, 0, :, None] * 0 + 1.0  # [n, 1]
        self.sigma_sum = sigma * (noise @ ones)[..., 0][:, :, None]  # sigma sum_i eps_i, [T, S, 1, B]
        self.sigma_sq_sum_sq = sigma**2 * (self.eps_sq @ ones)[..., 0][:, :, None]  # sigma^2 |eps|^2
        self.ones = noise[0, 0, :, 0] * 0 + 1.0 / noise.shape[-2]  # [B] of 1/B: a batch mean as a product


class Rollouts:
    """One batch of rollouts for runs [S, R]: a = mu + sigma * eps, with team rewards [S, R, B].

    The team reward needs only sum_i a_i and sum_i a_i^2 per rollout, and
    sum_i a_i^2 = |mu|^2 + 2 sigma <mu, eps> + sigma^2 |eps|^2 costs one batched matrix
    product, so the [S, R, B, n] actions are built only if a critic asks for them.
    """

    def __init__(self, t, mu, noise: _NoiseStatistics, sigma, task):
        self.mu, self.sigma = mu, sigma
        self.eps, self.eps_sq = noise.eps[t], noise.eps_sq[t]  # [S, B, n]
        self.total = mu.sum(-1)[..., None] + noise.sigma_sum[t]  # sum_i a_i, [S, R, B]
        total_sq = (mu**2).sum(-1)[..., None] + (2 * sigma) * (mu @ self.eps.swapaxes(-1, -2)) + noise.sigma_sq_sum_sq[t]
        self.rewards = team_reward_from_sums(self.total, total_sq, task.n_agents, task.target, task.coupling_column)

    def select(self, runs: slice) -> "Rollouts":
        part = Rollouts.__new__(Rollouts)
        part.__dict__.update(self.__dict__)
        part.mu, part.total, part.rewards = self.mu[:, runs], self.total[:, runs], self.rewards[:, runs]
        return part

    @property
    def actions(self):  # [S, R, B, n]
        return self.mu[..., None, :] + self.sigma * self.eps[:, None]

    @property
    def own_noise(self):  # a_i - mu_i, [S, 1, B, n]
        return self.sigma * self.eps[:, None]

    @property
    def own_noise_sq(self):  # (a_i - mu_i)^2, [S, 1, B, n]
        return self.sigma**2 * self.eps_sq[:, None]

    def reward_gradient(self, task):  # dR/da_i at every sampled joint action, [S, R, B, n]
        return task.action_gradient(self.actions, total=self.total[..., None])


def require_stable(simulation: Simulation) -> Simulation:
    """Return the simulation, or raise a ``DivergenceError`` naming every diverged cell and its step."""
    if not simulation.any_diverged:
        return simulation
    lines = []
    for k, critic in enumerate(simulation.critics):
        for c, coupling in enumerate(simulation.couplings):
            count = int(simulation.diverged[k, c].sum())
            if count:
                lines.append(
                    f"  n={simulation.n_agents} coupling={coupling:g} critic={critic}: {count} of "
                    f"{simulation.diverged.shape[-1]} seeds diverged with step {simulation.steps_used[c]:.4g} "
                    f"(the auto step here is {stable_step(simulation.n_agents, coupling, simulation.batch):.4g})"
                )
    raise DivergenceError(
        "gradient ascent diverged:\n" + "\n".join(lines) + "\nThe step is too large for the curvature of the "
        "expected reward, 2(1 + c n), or for the noise of the gradient estimate, which grows with n and "
        "shrinks with the batch. Use step='auto' (0.4 / (n (1 + max(c, 0.25) n)) * min(1, batch / 32)) "
        "or a smaller step."
    )
