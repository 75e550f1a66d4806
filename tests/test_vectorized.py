"""The vectorized engine: equal to the faithful loops, its noise bank, the sweep's findings, divergence, bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest

from marlpg.rendezvous import (
    CRITICS,
    SWEEP_AGENTS,
    SWEEP_COUPLINGS,
    DivergenceError,
    NoiseBank,
    Rendezvous,
    cells,
    ratio_grid,
    require_stable,
    run_faithful,
    simulate,
    stable_step,
    sweep,
)
from marlpg.rendezvous.report import sweep_table

try:
    import torch
except ImportError:  # pragma: no cover - torch is a dependency of marlpg
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
BACKENDS = ["numpy", pytest.param("torch", marks=needs_torch)]


# ----------------------------------------------------------------------------- noise bank


def test_noise_bank_follows_the_seed_draw_order():
    """Seed s: default_rng(1000 + s) draws standard_normal(n) * 0.5, then one [batch, n] block per update."""
    n, batch, steps, seeds = 3, 4, 5, 2
    means, noise = NoiseBank(n, batch, steps, seeds).for_agents(n)
    assert means.shape == (seeds, n) and noise.shape == (steps, seeds, batch, n)
    for s in range(seeds):
        rng = np.random.default_rng(1000 + s)
        np.testing.assert_array_equal(means[s], rng.standard_normal(n) * 0.5)
        for t in range(steps):
            np.testing.assert_array_equal(noise[t, s], rng.standard_normal((batch, n)))


def test_noise_bank_prefix_property():
    """A bank drawn for up to 8 agents hands 3 agents exactly the streams a 3-agent bank draws."""
    big = NoiseBank(8, 6, 7, 4).for_agents(3)
    small = NoiseBank(3, 6, 7, 4).for_agents(3)
    for a, b in zip(big, small):
        np.testing.assert_array_equal(a, b)
    # and the 8-agent streams differ from the 3-agent ones past the prefix (the test is not vacuous)
    assert not np.array_equal(NoiseBank(8, 6, 7, 4).for_agents(8)[1][..., :3], small[1])


def test_noise_bank_seed_offset_and_limit():
    a = NoiseBank(2, 3, 2, 2, seed_offset=1000).for_agents(2)[0]
    b = NoiseBank(2, 3, 2, 2, seed_offset=1001).for_agents(2)[0]
    np.testing.assert_array_equal(a[1], b[0])
    with pytest.raises(ValueError) as err:
        NoiseBank(3, 2, 2, 2).for_agents(4)
    assert "3" in str(err.value) and "4" in str(err.value)


def test_simulate_with_a_shared_larger_bank_equals_its_own_bank():
    bank = NoiseBank(8, 8, 20, 3)
    shared = simulate(3, [0.5, 2.0], CRITICS, batch=8, steps=20, seeds=3, noise_bank=bank)
    own = simulate(3, [0.5, 2.0], CRITICS, batch=8, steps=20, seeds=3)
    np.testing.assert_array_equal(shared.final_reward, own.final_reward)
    np.testing.assert_array_equal(shared.grad_variance, own.grad_variance)


# ----------------------------------------------------------------------------- equal to the faithful loops


CONFIGS = [
    # n, couplings, step, extra keyword arguments (shared by both engines)
    (1, (0.0, 2.0), "auto", {}),
    (2, (0.0, 0.25, 4.0), "auto", {}),
    (3, (0.0, 1.0), 0.01, {"sigma": 0.4, "target": -0.3, "baseline_rate": 0.1}),
    (5, (0.5, 3.0), "auto", {"batch": 16}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, couplings, step, extra", CONFIGS, ids=[f"n{c[0]}" for c in CONFIGS])
def test_vectorized_equals_faithful(backend, n, couplings, step, extra):
    batch, steps, seeds = extra.get("batch", 8), 30, 3
    sigma, target, rate = extra.get("sigma", 0.25), extra.get("target", 0.7), extra.get("baseline_rate", 0.02)
    sim = simulate(
        n, couplings, CRITICS, target=target, sigma=sigma, step=step, batch=batch, steps=steps, seeds=seeds,
        baseline_rate=rate, backend=backend,
    )
    assert sim.final_reward.shape == sim.grad_variance.shape == sim.diverged.shape == (3, len(couplings), seeds)
    assert not sim.any_diverged
    for c_index, coupling in enumerate(couplings):
        eta = stable_step(n, coupling, batch) if step == "auto" else step
        assert sim.steps_used[c_index] == pytest.approx(eta, rel=1e-15)
        for k, critic in enumerate(sim.critics):
            final, variance = run_faithful(
                critic, Rendezvous(n, target, coupling), sigma=sigma, step=eta, batch=batch, steps=steps, seeds=seeds,
                baseline_rate=rate,
            )
            np.testing.assert_allclose(sim.final_reward[k, c_index], final, rtol=1e-9, atol=1e-13, err_msg=critic)
            np.testing.assert_allclose(sim.grad_variance[k, c_index], variance, rtol=1e-9, err_msg=critic)
            got_final, got_variance = sim.cell(critic, coupling)
            np.testing.assert_array_equal(got_final, sim.final_reward[k, c_index])
            np.testing.assert_array_equal(got_variance, sim.grad_variance[k, c_index])


def test_vectorized_equals_faithful_on_a_critic_subset_in_another_order():
    sim = simulate(2, [1.5], ("joint-action", "independent"), step=0.03, batch=6, steps=25, seeds=2)
    assert sim.critics == ("joint-action", "independent")
    for critic in sim.critics:
        final, variance = run_faithful(critic, Rendezvous(2, 0.7, 1.5), step=0.03, batch=6, steps=25, seeds=2)
        np.testing.assert_allclose(sim.cell(critic)[0], final, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(sim.cell(critic)[1], variance, rtol=1e-9)


@needs_torch
def test_torch_cpu_equals_numpy_on_a_full_size_cell():
    a = simulate(8, [0.25, 4.0], CRITICS, backend="numpy")
    b = simulate(8, [0.25, 4.0], CRITICS, backend="torch", device="cpu")
    np.testing.assert_allclose(b.final_reward, a.final_reward, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(b.grad_variance, a.grad_variance, rtol=1e-9)
    np.testing.assert_array_equal(b.diverged, a.diverged)


@pytest.mark.skipif(
    torch is None or not torch.cuda.is_available(),
    reason="no CUDA GPU visible to torch: the CUDA path runs only where one is (the error for asking for one is tested on CPU)",
)
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_cuda_equals_numpy(device):
    a = simulate(4, [0.25, 1.0, 4.0], CRITICS, steps=100, backend="numpy")
    b = simulate(4, [0.25, 1.0, 4.0], CRITICS, steps=100, backend="torch", device=device)
    np.testing.assert_allclose(b.final_reward, a.final_reward, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.grad_variance, a.grad_variance, rtol=1e-9)


# ----------------------------------------------------------------------------- the grid's findings (step='auto')


def by_n(simulations):
    return {sim.n_agents: sim for sim in simulations}


def test_grid_covers_exercise_30_7_2(auto_grid):
    assert SWEEP_AGENTS == (2, 4, 8, 16) and SWEEP_COUPLINGS == (0.25, 1.0, 4.0)
    assert [sim.n_agents for sim in auto_grid] == [2, 4, 8, 16]
    for sim in auto_grid:
        assert sim.critics == CRITICS
        np.testing.assert_array_equal(sim.couplings, [0.25, 1.0, 4.0])
        assert sim.grad_variance.shape == (3, 3, 30)
        np.testing.assert_allclose(sim.steps_used, [stable_step(sim.n_agents, c) for c in (0.25, 1.0, 4.0)], rtol=1e-15)


def test_auto_step_keeps_every_cell_finite(auto_grid):
    for sim in auto_grid:
        assert not sim.diverged.any(), f"n={sim.n_agents}: {sim.diverged.sum(-1)}"
        assert np.isfinite(sim.grad_variance).all() and np.isfinite(sim.final_reward).all()
        assert (sim.grad_variance > 0).all()
    ratios = ratio_grid(auto_grid)
    assert ratios.shape == (4, 3) and np.isfinite(ratios).all()


@pytest.mark.parametrize("n", [2, 8, 16])
@pytest.mark.parametrize("coupling", [0.25, 4.0])
def test_variance_order_of_the_three_critics(auto_grid, n, coupling):
    sim = by_n(auto_grid)[n]
    independent, state_value, joint = (sim.cell(k, coupling)[1].mean() for k in CRITICS)
    assert independent > state_value > joint


def test_independent_over_state_value_grows_with_agents(auto_grid):
    ratios = ratio_grid(auto_grid, "independent", "state-value")  # [n, coupling]
    assert (np.diff(ratios, axis=0) > 0).all(), ratios


def test_independent_over_state_value_shrinks_as_coupling_grows(auto_grid):
    """The course's measured finding (n >= 4), contrary to the seed's claim that the gap grows with coupling."""
    ratios = ratio_grid(auto_grid, "independent", "state-value")
    for row, n in zip(ratios, SWEEP_AGENTS):
        if n >= 4:
            assert (np.diff(row) < 0).all(), (n, row)


def test_joint_action_critic_wins_big_at_sixteen_agents(auto_grid):
    ratios = by_n(auto_grid)[16].variance_ratio("independent", "joint-action")
    assert (ratios > 10).all(), ratios
    # and it is the least noisy critic in every cell of the grid
    for sim in auto_grid:
        assert (sim.variance_ratio("state-value", "joint-action") > 1).all()


def test_cells_and_ratio_grid_agree_with_the_simulations(auto_grid):
    rows = cells(auto_grid)
    assert [(r.n_agents, r.coupling) for r in rows] == [(n, c) for n in SWEEP_AGENTS for c in SWEEP_COUPLINGS]
    grid = ratio_grid(auto_grid)
    for row in rows:
        sim = by_n(auto_grid)[row.n_agents]
        for critic in CRITICS:
            assert row.variance[critic] == pytest.approx(sim.cell(critic, row.coupling)[1].mean(), rel=1e-15)
        i, j = SWEEP_AGENTS.index(row.n_agents), SWEEP_COUPLINGS.index(row.coupling)
        assert row.ratio("independent", "state-value") == pytest.approx(grid[i, j], rel=1e-15)
        assert row.step == stable_step(row.n_agents, row.coupling)


# ----------------------------------------------------------------------------- the seed's step 0.02 on the whole grid

DIVERGING_CELLS = {(4, 4.0), (8, 1.0), (8, 4.0), (16, 0.25), (16, 1.0), (16, 4.0)}  # DESIGN.md, section 5


def test_seed_step_diverges_exactly_where_design_says(seed_step_grid):
    k = CRITICS.index("independent")
    for sim in seed_step_grid:
        np.testing.assert_array_equal(sim.steps_used, 0.02)
        for c, coupling in enumerate(sim.couplings):
            diverged = bool(sim.diverged[k, c].any())
            assert diverged == ((sim.n_agents, coupling) in DIVERGING_CELLS), (sim.n_agents, coupling)
            if diverged:
                assert np.isnan(sim.mean_variance("independent")[c])
            else:
                assert np.isfinite(sim.grad_variance[k, c]).all()


def test_require_stable_names_each_diverged_cell(seed_step_grid):
    for sim in seed_step_grid:
        if not sim.any_diverged:
            assert require_stable(sim) is sim
            continue
        with pytest.raises(DivergenceError) as err:
            require_stable(sim)
        message = str(err.value)
        for k, critic in enumerate(sim.critics):
            for c, coupling in enumerate(sim.couplings):
                line = re.search(rf"n={sim.n_agents} coupling={coupling:g} critic={critic}:.*", message)
                if sim.diverged[k, c].any():
                    assert line, (critic, coupling, message)
                    count = int(sim.diverged[k, c].sum())
                    assert f"{count} of 30 seeds" in line.group(0) and "step 0.02" in line.group(0)
                else:
                    assert line is None
        assert "auto" in message


def test_require_stable_on_a_single_diverging_cell():
    sim = simulate(8, [4.0], ("independent",), step=0.02, steps=200, seeds=4)
    assert sim.diverged.all()
    with pytest.raises(DivergenceError, match=r"n=8 coupling=4 critic=independent: 4 of 4 seeds diverged with step 0\.02"):
        require_stable(sim)


def test_no_inf_or_nan_reaches_the_printed_table(seed_step_grid):
    table = sweep_table(cells(seed_step_grid), CRITICS)
    assert "diverged" in table
    assert not re.search(r"\b(inf|nan)\b", table, re.IGNORECASE), table
    assert len(table.splitlines()) == 2 + 12


# ----------------------------------------------------------------------------- bad input


def assert_clear_error(call, *needles):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


SMALL = dict(batch=4, steps=3, seeds=2)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_simulate_bad_agent_count(bad):
    assert_clear_error(lambda: simulate(bad, **SMALL), "n_agents", repr(bad), ">= 1")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_simulate_bad_sigma(bad):
    message = assert_clear_error(lambda: simulate(2, sigma=bad, **SMALL), "sigma", repr(bad))
    assert "> 0" in message or "finite" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_simulate_non_finite_coupling(bad):
    assert_clear_error(lambda: simulate(2, [1.0, bad], **SMALL), "coupling", "finite", str(bad))


def test_simulate_negative_coupling():
    assert_clear_error(lambda: simulate(2, [-0.5], **SMALL), "coupling", ">= 0", "-0.5")


@pytest.mark.parametrize("name", ["batch", "steps", "seeds"])
@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_simulate_bad_counts(name, bad):
    assert_clear_error(lambda: simulate(2, **{**SMALL, name: bad}), name, repr(bad), ">= 1")


@pytest.mark.parametrize("bad", [0, 0.0, -0.02, float("nan"), float("inf"), "fast", "Auto", ""])
def test_simulate_bad_step(bad):
    message = assert_clear_error(lambda: simulate(2, step=bad, **SMALL), "step", repr(bad) if isinstance(bad, str) else str(bad))
    if isinstance(bad, str):
        assert "auto" in message and "> 0" in message
    else:
        assert "> 0" in message or "finite" in message


def test_simulate_unknown_critic():
    assert_clear_error(lambda: simulate(2, [1.0], ("central",), **SMALL), "'central'", "state-value", "joint-action")


@pytest.mark.parametrize("bad", ["jax", "Torch", "", "cupy"])
def test_unknown_backend(bad):
    assert_clear_error(lambda: simulate(2, backend=bad, **SMALL), "backend", repr(bad), "numpy", "torch")


@needs_torch
@pytest.mark.parametrize("bad", ["tpu", "gpu", "mps", "meta", "cuda:x", "cpu:zero"])
def test_unknown_device(bad):
    assert_clear_error(lambda: simulate(2, backend="torch", device=bad, **SMALL), "device", repr(bad), "cpu", "cuda", "auto")


@needs_torch
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:99"])
def test_cuda_device_where_none_exists(device, monkeypatch):
    """Asking for CUDA on a machine without it: a clear error, never a silent fallback to the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert_clear_error(lambda: simulate(2, backend="torch", device=device, **SMALL), repr(device), "CUDA", "cpu")


@needs_torch
def test_cuda_device_index_beyond_the_machine():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    message = assert_clear_error(lambda: simulate(2, backend="torch", device="cuda:99", **SMALL), "'cuda:99'")
    assert "CUDA" in message and (str(count) in message or "no CUDA" in message)


@needs_torch
def test_auto_device_without_cuda_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    a = simulate(2, backend="torch", device="auto", **SMALL)
    b = simulate(2, backend="numpy", **SMALL)
    np.testing.assert_allclose(a.grad_variance, b.grad_variance, rtol=1e-12)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto", "tpu"])
def test_device_with_the_numpy_backend(device):
    assert_clear_error(lambda: simulate(2, backend="numpy", device=device, **SMALL), "numpy", repr(device), "torch")


def test_numpy_backend_accepts_cpu_device():
    simulate(2, backend="numpy", device="cpu", **SMALL)


@pytest.mark.parametrize("name, bad", [("batch", 0), ("steps", 0), ("seeds", 0), ("batch", -1), ("seeds", 2.5)])
def test_sweep_rejects_bad_counts(name, bad):
    """sweep hands batch/steps/seeds to its NoiseBank, so simulate's own checks never see them."""
    assert_clear_error(lambda: sweep((2, 4), (1.0,), **{name: bad}), name, repr(bad), ">= 1")


@pytest.mark.parametrize("agents", [(2, 0), (True,), (2.5,)])
def test_sweep_rejects_bad_agents(agents):
    assert_clear_error(lambda: sweep(agents, (1.0,), steps=2, seeds=1), "n_agents", ">= 1")


def test_sweep_rejects_bad_coupling_and_step():
    assert_clear_error(lambda: sweep((2,), (-1.0,), steps=2, seeds=1), "coupling", ">= 0")
    assert_clear_error(lambda: sweep((2,), (1.0,), step="huge", steps=2, seeds=1), "step", "'huge'", "auto")


@pytest.mark.parametrize("batch", [2, 8])
def test_auto_step_keeps_small_batches_finite(batch):
    # The reward noise in a batch mean grows like 1/batch, so the auto step shrinks with it.
    sims = sweep(SWEEP_AGENTS, SWEEP_COUPLINGS, CRITICS, batch=batch)
    assert not any(sim.any_diverged for sim in sims)
    assert all(sim.steps_used[0] == stable_step(sim.n_agents, SWEEP_COUPLINGS[0], batch) for sim in sims)


def test_auto_step_scales_with_batch_below_32_only():
    assert stable_step(4, 1.0, batch=8) == pytest.approx(0.005, rel=1e-15)
    assert stable_step(4, 1.0, batch=64) == stable_step(4, 1.0, batch=32) == 0.02


def test_initial_means_move_the_start_and_keep_the_noise():
    drawn = NoiseBank(3, 8, 1, 4).for_agents(3)[0]
    same = simulate(3, [1.0], CRITICS, batch=8, steps=20, seeds=4, initial_means=drawn)
    default = simulate(3, [1.0], CRITICS, batch=8, steps=20, seeds=4)
    np.testing.assert_array_equal(same.grad_variance, default.grad_variance)
    at_target = simulate(3, [1.0], CRITICS, batch=8, steps=20, seeds=4, initial_means=[0.7, 0.7, 0.7])
    assert not np.allclose(at_target.grad_variance, default.grad_variance)
    with pytest.raises(ValueError, match=r"initial_means must have shape \[n\] or \[seeds, n\]"):
        simulate(3, [1.0], batch=8, steps=2, seeds=4, initial_means=[0.0, 1.0])
    with pytest.raises(ValueError, match="initial_means must be finite"):
        simulate(3, [1.0], batch=8, steps=2, seeds=4, initial_means=[0.0, np.nan, 1.0])


def test_auto_step_keeps_the_explorer_range_finite():
    # The notebook's explorer offers n up to 32 and coupling in [0, 8].
    bank = NoiseBank(32, 32, 400, 30)
    for n in (1, 16, 32):
        assert not simulate(n, [0.0, 0.25, 8.0], CRITICS, noise_bank=bank).any_diverged
    # ... while 0.4 / n without the floor on the coupling diverges at n = 16, c = 0.
    assert simulate(16, [0.0], ("independent",), step=0.4 / 16, noise_bank=bank).any_diverged
