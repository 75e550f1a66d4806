"""Output 30.7.1, reproduced to the printed digit by the faithful loops and by the vectorized engine.

The expected table below is copied verbatim from the seed (Section 30.7, Output 30.7.1);
it is never computed by the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from marlpg.rendezvous import Rendezvous, run_faithful, simulate
from marlpg.rendezvous.report import output_30_7_1

SEED_OUTPUT_30_7_1 = """\
cooperative rendezvous, n_agents = 4 , seeds = 30

                          central critic   independent critic
policy-gradient variance :        18.8079            29.3406
final team reward mean   :        -0.0127            -0.0137
final team reward std    :         0.0174             0.0196

gradient-variance ratio (independent / central) : 1.56 x
outcome-variance  ratio (independent / central) : 1.26 x"""


@pytest.fixture(scope="module")
def faithful_seed_runs():
    """Code 30.7.1 as printed: n = 4, coupling 1, sigma 0.25, lr 0.02, batch 32, 400 steps, 30 seeds (~7 s)."""
    return {critic: run_faithful(critic) for critic in ("state-value", "independent")}


def test_defaults_are_the_seeds():
    task = Rendezvous()
    assert (task.n_agents, task.target, task.coupling) == (4, 0.7, 1.0)


def test_faithful_loops_reproduce_output_30_7_1(faithful_seed_runs):
    table = output_30_7_1(faithful_seed_runs["state-value"], faithful_seed_runs["independent"], 4, 30)
    assert table == SEED_OUTPUT_30_7_1


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("step", ["auto", 0.02])
def test_vectorized_engine_reproduces_output_30_7_1(backend, step, faithful_seed_runs):
    if backend == "torch":
        pytest.importorskip("torch")
    sim = simulate(4, [1.0], ("state-value", "independent"), step=step, backend=backend)
    assert sim.steps_used.tolist() == [0.02]
    assert not sim.any_diverged
    table = output_30_7_1(sim.cell("state-value"), sim.cell("independent"), 4, 30)
    assert table == SEED_OUTPUT_30_7_1
    # and not merely to the printed digit: the same numbers as the loops up to float rounding
    for critic in ("state-value", "independent"):
        final, variance = sim.cell(critic)
        np.testing.assert_allclose(final, faithful_seed_runs[critic][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(variance, faithful_seed_runs[critic][1], rtol=1e-9)


def test_output_table_is_sensitive_to_the_numbers(faithful_seed_runs):
    """The comparison has teeth: one seed's variance nudged by 0.1% changes the printed table."""
    central = faithful_seed_runs["state-value"]
    nudged = (central[0], central[1] * np.r_[1.001, np.ones(29)])
    assert output_30_7_1(nudged, faithful_seed_runs["independent"], 4, 30) != SEED_OUTPUT_30_7_1


def test_output_30_7_1_layout_from_hand_numbers():
    central = (np.array([-0.01, -0.03]), np.array([10.0, 20.0]))
    independent = (np.array([-0.02, -0.06]), np.array([30.0, 60.0]))
    lines = output_30_7_1(central, independent, 3, 2).splitlines()
    assert lines[0] == "cooperative rendezvous, n_agents = 3 , seeds = 2"
    assert lines[3] == "policy-gradient variance :        15.0000            45.0000"
    assert lines[4] == "final team reward mean   :        -0.0200            -0.0400"
    assert lines[5] == "final team reward std    :         0.0100             0.0200"
    assert lines[7] == "gradient-variance ratio (independent / central) : 3.00 x"
    assert lines[8] == "outcome-variance  ratio (independent / central) : 4.00 x"


# ----------------------------------------------------------------------------- bad input to the faithful loops

SMALL = dict(task=Rendezvous(2), batch=4, steps=3, seeds=2)


@pytest.mark.parametrize(
    "name, bad, allowed",
    [
        ("sigma", 0.0, "> 0"),
        ("sigma", -0.25, "> 0"),
        ("sigma", float("nan"), "finite"),
        ("step", 0.0, "> 0"),
        ("step", -0.02, "> 0"),
        ("step", float("inf"), "finite"),
        ("batch", 0, ">= 1"),
        ("steps", 0, ">= 1"),
        ("seeds", 0, ">= 1"),
        ("batch", 2.5, ">= 1"),
    ],
)
def test_faithful_rejects_bad_input_with_a_clear_error(name, bad, allowed):
    kwargs = {**SMALL, name: bad}
    with pytest.raises(ValueError) as err:
        run_faithful("state-value", **kwargs)
    message = str(err.value)
    assert name in message and str(bad) in message and allowed in message


def test_faithful_small_run_is_finite_and_deterministic():
    a = run_faithful("joint-action", Rendezvous(3, 0.7, 0.5), step=0.01, batch=4, steps=5, seeds=3)
    b = run_faithful("joint-action", Rendezvous(3, 0.7, 0.5), step=0.01, batch=4, steps=5, seeds=3)
    assert all(np.isfinite(x).all() for x in a)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not math.isclose(a[1][0], a[1][1])  # seeds differ
