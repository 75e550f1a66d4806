"""The task's closed forms against hand-worked values and numerical calculus."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import gauss_hermite_expectation
from marlpg.rendezvous import Rendezvous, stable_step, team_reward
from marlpg.rendezvous.faithful import pairwise_team_reward
from marlpg.rendezvous.task import action_gradient

RNG = np.random.default_rng(20240607)


def as_typed(value) -> str:
    """How an error message should show a value: numpy scalars as the plain number a user typed."""
    return repr(value.item()) if isinstance(value, np.generic) else repr(value)


# ----------------------------------------------------------------------------- team reward


@pytest.mark.parametrize(
    "actions, target, coupling, expected",
    [
        # miss = (0-0.7)^2 + (1-0.7)^2 = 0.49 + 0.09; agreement: one unordered pair, (0-1)^2 = 1
        ((0.0, 1.0), 0.7, 1.0, -((0.49 + 0.09) + 1.0 * 1.0)),
        # the same actions with a coupling of 2.5 and no agreement term at all
        ((0.0, 1.0), 0.7, 2.5, -((0.49 + 0.09) + 2.5 * 1.0)),
        ((0.0, 1.0), 0.7, 0.0, -(0.49 + 0.09)),
        # everyone on target: nothing to pay
        ((0.7, 0.7, 0.7), 0.7, 4.0, 0.0),
        # miss = 0 + 1 + 9 = 10; pairs (1,2):1, (1,4):9, (2,4):4 -> 14; coupling 0.5 -> 7
        ((1.0, 2.0, 4.0), 1.0, 0.5, -(10.0 + 0.5 * 14.0)),
        # one agent: no pairs, only the miss (3 - 0.7)^2 = 5.29, whatever the coupling
        ((3.0,), 0.7, 5.0, -5.29),
        # agreement without hitting the target: everyone at 0, target 0.7, n = 4 -> miss 4 * 0.49
        ((0.0, 0.0, 0.0, 0.0), 0.7, 1.0, -1.96),
        # n = 4 spread: miss = 0.49+0.09+0.04+1.69 = 2.31; pairs: (0,1)1 (0,.5).25 (0,2)4 (1,.5).25 (1,2)1 (.5,2)2.25 = 8.75
        ((0.0, 1.0, 0.5, 2.0), 0.7, 1.0, -(2.31 + 8.75)),
    ],
)
def test_team_reward_hand_values(actions, target, coupling, expected):
    a = np.array(actions)
    assert team_reward(a, target, coupling) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert Rendezvous(len(actions), target, coupling).team_reward(a) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert pairwise_team_reward(a, Rendezvous(len(actions), target, coupling)) == pytest.approx(expected, abs=1e-12)


def test_team_reward_batches_over_leading_axes_and_torch():
    torch = pytest.importorskip("torch")
    batch = np.array([[0.0, 1.0], [0.7, 0.7], [1.0, 0.0]])
    expected = np.array([-1.58, 0.0, -1.58])
    np.testing.assert_allclose(team_reward(batch, 0.7, 1.0), expected, atol=1e-12)
    out = team_reward(torch.from_numpy(batch), 0.7, 1.0)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    # a coupling per leading row broadcasts: [C, B, n] actions with couplings [C, 1]
    stacked = np.stack([batch, batch])
    per_coupling = team_reward(stacked, 0.7, np.array([1.0, 0.0])[:, None])
    np.testing.assert_allclose(per_coupling, [expected, [-0.58, -0.0, -0.58]], atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("coupling", [0.0, 0.25, 1.0, 4.0])
def test_team_reward_equals_pairwise_definition(n, coupling):
    target = float(RNG.normal())
    task = Rendezvous(n, target, coupling)
    actions = RNG.normal(scale=2.0, size=(50, n))
    fast = task.team_reward(actions)
    slow = np.array([pairwise_team_reward(a, task) for a in actions])
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- gradients


def test_action_gradient_hand_values():
    # dR/da_i = -2[(a_i - t) + c (n a_i - sum a)], at a = (0, 1), t = 0.7, c = 1, n = 2:
    # a_0: -2[-0.7 + (0 - 1)] = 3.4;  a_1: -2[0.3 + (2 - 1)] = -2.6
    np.testing.assert_allclose(action_gradient(np.array([0.0, 1.0]), 0.7, 1.0), [3.4, -2.6], atol=1e-12)
    # one agent: the coupling plays no role, -2 (a - t)
    np.testing.assert_allclose(action_gradient(np.array([2.0]), 0.7, 9.0), [-2.6], atol=1e-12)


def finite_difference_gradient(f, x, h=1e-5):
    grad = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def numerical_hessian(f, x, h=1e-3):
    n = x.size
    hess = np.empty((n, n))
    eye = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            hess[i, j] = (
                f(x + eye[i] + eye[j]) - f(x + eye[i] - eye[j]) - f(x - eye[i] + eye[j]) + f(x - eye[i] - eye[j])
            ) / (4 * h * h)
    return hess


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("coupling", [0.0, 0.3, 2.0])
def test_action_gradient_matches_finite_differences(n, coupling):
    task = Rendezvous(n, 0.7, coupling)
    for _ in range(5):
        a = RNG.normal(size=n)
        fd = finite_difference_gradient(lambda x: float(pairwise_team_reward(x, task)), a)
        np.testing.assert_allclose(task.action_gradient(a), fd, rtol=1e-7, atol=1e-7)
    # batched input: one gradient row per action row
    batch = RNG.normal(size=(6, n))
    rows = np.array([finite_difference_gradient(lambda x: float(pairwise_team_reward(x, task)), a) for a in batch])
    np.testing.assert_allclose(task.action_gradient(batch), rows, rtol=1e-7, atol=1e-7)


# ----------------------------------------------------------------------------- expectation under the Gaussian policy


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("coupling", [0.0, 1.0, 4.0])
@pytest.mark.parametrize("sigma", [0.25, 1.3])
def test_expected_reward_equals_gauss_hermite(n, coupling, sigma):
    task = Rendezvous(n, 0.7, coupling)
    mu = RNG.normal(size=n)
    exact = gauss_hermite_expectation(lambda a: pairwise_team_reward(a, task), mu, sigma)
    assert task.expected_reward(mu, sigma) == pytest.approx(exact, rel=1e-10, abs=1e-10)


def test_expected_reward_equals_monte_carlo():
    task = Rendezvous(4, 0.7, 1.0)
    mu, sigma = np.array([0.3, -0.2, 1.0, 0.7]), 0.25
    samples = mu + sigma * np.random.default_rng(7).standard_normal((400_000, 4))
    rewards = task.team_reward(samples)
    standard_error = rewards.std() / math.sqrt(rewards.size)
    assert abs(rewards.mean() - task.expected_reward(mu, sigma)) < 4 * standard_error
    # the noise penalty is not negligible: ignoring it would fail the same check
    assert abs(rewards.mean() - task.team_reward(mu)) > 10 * standard_error


@pytest.mark.parametrize("n", [1, 3, 6])
@pytest.mark.parametrize("coupling", [0.0, 0.7, 3.0])
def test_expected_reward_gradient_matches_finite_differences(n, coupling):
    task = Rendezvous(n, -0.4, coupling)
    mu = RNG.normal(size=n)
    fd = finite_difference_gradient(lambda m: float(task.expected_reward(m, 0.6)), mu)
    np.testing.assert_allclose(task.expected_reward_gradient(mu), fd, rtol=1e-7, atol=1e-7)


def test_optimum_is_a_stationary_maximum():
    task = Rendezvous(5, 0.7, 2.0)
    np.testing.assert_allclose(task.optimum, np.full(5, 0.7))
    assert task.team_reward(task.optimum) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(task.expected_reward_gradient(task.optimum), 0.0, atol=1e-12)
    for _ in range(5):
        assert task.expected_reward(task.optimum + RNG.normal(scale=0.1, size=5), 0.25) < task.expected_reward(
            task.optimum, 0.25
        )


# ----------------------------------------------------------------------------- curvature


@pytest.mark.parametrize("n", [1, 2, 4, 9])
@pytest.mark.parametrize("coupling", [0.0, 0.5, 3.0])
def test_own_curvature_is_half_the_diagonal_of_minus_hessian(n, coupling):
    task = Rendezvous(n, 0.7, coupling)
    hess = numerical_hessian(lambda a: float(pairwise_team_reward(a, task)), RNG.normal(size=n))
    np.testing.assert_allclose(-np.diag(hess) / 2, task.own_curvature, rtol=1e-6)
    assert task.own_curvature == pytest.approx(1 + coupling * (n - 1))


@pytest.mark.parametrize("n", [1, 2, 4, 9])
@pytest.mark.parametrize("coupling", [0.0, 0.5, 3.0])
def test_max_curvature_is_largest_eigenvalue_of_minus_hessian(n, coupling):
    task = Rendezvous(n, 0.7, coupling)
    hess = numerical_hessian(lambda m: float(task.expected_reward(m, 0.25)), RNG.normal(size=n))
    largest = np.linalg.eigvalsh(-(hess + hess.T) / 2).max()
    assert task.max_curvature == pytest.approx(largest, rel=1e-6)


# ----------------------------------------------------------------------------- step rule


def test_stable_step_is_exactly_the_seed_step_at_the_seed_task():
    assert stable_step(4, 1.0) == 0.02
    assert stable_step(4, 1) == 0.02


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("coupling", [0.0, 0.25, 1.0, 4.0])
def test_stable_step_rule(n, coupling):
    eta = stable_step(n, coupling)
    assert eta == pytest.approx(0.4 / (n * (1 + max(coupling, 0.25) * n)), rel=1e-15)
    # noise-free gradient ascent on J is stable iff eta * max curvature < 2, i.e. eta < 1 / (1 + c n)
    assert eta < 1.0 / (1.0 + coupling * n)
    assert stable_step(n, coupling, scale=0.8) == pytest.approx(2 * eta, rel=1e-15)


def test_stable_step_floors_the_coupling_at_a_quarter():
    # Without coupling the reward noise still grows with n: 0.4 / n diverges at n = 16.
    assert stable_step(16, 0.0) == stable_step(16, 0.1) == stable_step(16, 0.25)
    assert stable_step(16, 0.5) < stable_step(16, 0.25)


def test_stable_step_shrinks_with_agents_and_coupling():
    grid = np.array([[stable_step(n, c) for c in (0.25, 1.0, 4.0)] for n in (2, 4, 8, 16)])
    assert (np.diff(grid, axis=0) < 0).all() and (np.diff(grid, axis=1) < 0).all()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4", None, np.float64(4.0)])
def test_bad_agent_count(bad):
    for make in (lambda: Rendezvous(n_agents=bad), lambda: stable_step(bad, 1.0)):
        with pytest.raises(ValueError) as err:
            make()
        message = str(err.value)
        assert "n_agents" in message and as_typed(bad) in message and ">= 1" in message


def test_numpy_integer_agent_count_is_accepted():
    assert Rendezvous(np.int64(3)).own_curvature == 3.0
    assert stable_step(np.int32(4), 1.0) == 0.02


@pytest.mark.parametrize(
    "bad, allowed",
    [(float("nan"), "finite"), (float("inf"), "finite"), (-float("inf"), "finite"), ("strong", "finite"),
     (-0.5, ">= 0"), (-1e-12, ">= 0")],
)
def test_bad_coupling(bad, allowed):
    for make in (lambda: Rendezvous(coupling=bad), lambda: stable_step(4, bad)):
        with pytest.raises(ValueError) as err:
            make()
        message = str(err.value)
        assert "coupling" in message and allowed in message and as_typed(bad) in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_non_finite_target(bad):
    with pytest.raises(ValueError) as err:
        Rendezvous(target=bad)
    assert "target" in str(err.value) and "finite" in str(err.value) and str(bad) in str(err.value)


@pytest.mark.parametrize("bad", [0.0, -0.4, float("nan")])
def test_bad_step_scale(bad):
    with pytest.raises(ValueError) as err:
        stable_step(4, 1.0, scale=bad)
    message = str(err.value)
    assert "scale" in message and ("> 0" in message or "finite" in message) and str(bad) in message
