"""The three critics: their baselines, their (un)biasedness, and the independent critic's running average.

The per-critic advantages are taken from ``faithful.advantages_for``, the reference the
vectorized engine is checked against to rtol 1e-9 in test_vectorized.py, and from the
critic classes of ``critics.py`` where their interface is small and stable.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import gauss_hermite_expectation
from marlpg.rendezvous import Rendezvous, run_faithful, simulate
from marlpg.rendezvous.critics import CRITICS, IndependentCritic, StateValueCritic, make_critic
from marlpg.rendezvous.faithful import FAITHFUL_CRITICS, advantages_for, pairwise_team_reward


def sample_batch(rng, task, mu, sigma, batch):
    actions = mu[None, :] + sigma * rng.standard_normal((batch, task.n_agents))
    rewards = np.array([pairwise_team_reward(a, task) for a in actions])
    return actions, rewards


def test_faithful_and_library_name_the_same_critics():
    assert set(FAITHFUL_CRITICS) == set(CRITICS) == {"independent", "state-value", "joint-action"}


# ----------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("n", [1, 2, 4, 6])
@pytest.mark.parametrize("coupling", [0.0, 1.0, 3.5])
def test_joint_action_baseline_is_expectation_over_own_action(n, coupling):
    """b_i(a_-i) = E_{a_i' ~ N(mu_i, sigma^2)} R(a_i', a_-i), by Gauss-Hermite quadrature, for each agent."""
    rng = np.random.default_rng(100 * n + int(10 * coupling))
    task, sigma = Rendezvous(n, 0.7, coupling), 0.4
    mu = rng.normal(size=n)
    actions, rewards = sample_batch(rng, task, mu, sigma, batch=7)
    adv = advantages_for("joint-action", rewards, actions, mu, task, sigma, np.zeros(n))
    assert adv.shape == (7, n)
    baseline = rewards[:, None] - adv
    for b in range(7):
        for i in range(n):
            point = actions[b].copy()
            point[i] = mu[i]  # quadrature over coordinate i around mu_i; the others stay at the sampled a_-i
            expected = gauss_hermite_expectation(lambda a: pairwise_team_reward(a, task), point, sigma, dims=[i])
            assert baseline[b, i] == pytest.approx(expected, rel=1e-10, abs=1e-10), (b, i)


def test_joint_action_baseline_ignores_own_action_but_not_others():
    rng = np.random.default_rng(3)
    task, sigma = Rendezvous(3, 0.7, 2.0), 0.25
    mu = rng.normal(size=3)
    actions, rewards = sample_batch(rng, task, mu, sigma, batch=2)
    base = rewards[:, None] - advantages_for("joint-action", rewards, actions, mu, task, sigma, np.zeros(3))
    moved = actions.copy()
    moved[:, 0] += 0.5
    moved_rewards = np.array([pairwise_team_reward(a, task) for a in moved])
    moved_base = moved_rewards[:, None] - advantages_for("joint-action", moved_rewards, moved, mu, task, sigma, np.zeros(3))
    np.testing.assert_allclose(moved_base[:, 0], base[:, 0], rtol=1e-12)  # agent 0's own action: no effect
    assert np.all(np.abs(moved_base[:, 1:] - base[:, 1:]) > 1e-3)  # the others' baselines see it


def test_state_value_advantage_is_reward_minus_batch_mean_for_every_agent():
    rng = np.random.default_rng(4)
    task, sigma = Rendezvous(4, 0.7, 1.0), 0.25
    mu = rng.normal(size=4)
    actions, rewards = sample_batch(rng, task, mu, sigma, batch=9)
    adv = advantages_for("state-value", rewards, actions, mu, task, sigma, np.zeros(4))
    np.testing.assert_allclose(adv, np.repeat((rewards - rewards.mean())[:, None], 4, axis=1), rtol=1e-14)
    # the critic class: one advantage per rollout (shared by all agents), same numbers
    critic = StateValueCritic(mu, 0.02)
    np.testing.assert_allclose(critic.advantages(_Rewards(rewards), task), adv[:, 0], rtol=1e-14)


class _Rewards:
    """The part of a batch of rollouts that the state-value and independent critics read."""

    def __init__(self, rewards):
        self.rewards = rewards


def test_independent_running_baseline_two_steps_by_hand():
    mu = np.zeros(3)
    critic = IndependentCritic(mu, rate=0.1)
    r1 = np.array([-1.0, -3.0])  # mean -2
    r2 = np.array([-0.5, -1.5, -2.5, -3.5])  # mean -2
    r3 = np.array([4.0])
    # step 1: baseline 0, advantage = reward
    np.testing.assert_allclose(np.squeeze(critic.advantages(_Rewards(r1), None)), r1)
    critic.observe(r1)
    b1 = 0.0 + 0.1 * (-2.0 - 0.0)  # -0.2
    np.testing.assert_allclose(np.squeeze(critic.advantages(_Rewards(r2), None)), r2 - b1)
    critic.observe(r2)
    b2 = b1 + 0.1 * (-2.0 - b1)  # -0.2 + 0.1 * (-1.8) = -0.38
    assert b2 == pytest.approx(-0.38)
    np.testing.assert_allclose(np.squeeze(critic.advantages(_Rewards(r3), None)), r3 - b2)
    np.testing.assert_allclose(np.ravel(critic.baseline), [-0.38])


def test_independent_critic_two_updates_by_hand_matches_both_engines():
    """Code 30.7.1's independent branch for two updates, written out by hand, against run_faithful and simulate."""
    n, batch, sigma, lr, rate, target, coupling = 3, 5, 0.25, 0.05, 0.02, 0.7, 1.5
    task = Rendezvous(n, target, coupling)
    rng = np.random.default_rng(1000)  # seed 0
    mu = rng.standard_normal(n) * 0.5
    b = np.zeros(n)
    variances = []
    for _ in range(2):
        actions = mu + sigma * rng.standard_normal((batch, n))
        rewards = np.array(
            [-(np.sum((a - target) ** 2) + coupling * sum((a[i] - a[j]) ** 2 for i in range(n) for j in range(i + 1, n))) for a in actions]
        )
        adv = rewards[:, None] - b[None, :]  # the baseline used is the one from before this batch
        b = b + rate * (rewards.mean() - b)
        g = adv * (actions - mu) / sigma**2
        variances.append(g.var(axis=0).mean())
        mu = mu + lr * g.mean(axis=0)
    expected_final = -(np.sum((mu - target) ** 2) + coupling * sum((mu[i] - mu[j]) ** 2 for i in range(n) for j in range(i + 1, n)))
    expected_variance = np.mean(variances)

    final, variance = run_faithful("independent", task, sigma=sigma, step=lr, batch=batch, steps=2, seeds=1, baseline_rate=rate)
    assert final[0] == pytest.approx(expected_final, rel=1e-12)
    assert variance[0] == pytest.approx(expected_variance, rel=1e-12)

    sim = simulate(n, [coupling], ("independent",), target=target, sigma=sigma, step=lr, batch=batch, steps=2, seeds=1, baseline_rate=rate)
    assert sim.final_reward[0, 0, 0] == pytest.approx(expected_final, rel=1e-10)
    assert sim.grad_variance[0, 0, 0] == pytest.approx(expected_variance, rel=1e-10)


def test_make_critic_rejects_unknown_names():
    with pytest.raises(ValueError) as err:
        make_critic("central", np.zeros(2))
    assert "'central'" in str(err.value) and "state-value" in str(err.value)
    with pytest.raises(ValueError) as err:
        run_faithful("central", Rendezvous(2), steps=1, seeds=1)
    assert "'central'" in str(err.value) and "joint-action" in str(err.value)


# ----------------------------------------------------------------------------- unbiasedness (z-tests)

TASK = Rendezvous(3, 0.7, 1.0)
MU = np.array([0.1, -0.5, 1.2])  # off target: the true gradient is (2.2, 7.0, -6.6)
SIGMA = 0.25
Z_PASS = 4.5  # |z| below this for the right expectation (per agent, deterministic streams)
Z_FAIL = 10.0  # and far above it for a wrong one


def test_true_gradient_at_the_test_point():
    np.testing.assert_allclose(TASK.expected_reward_gradient(MU), [2.2, 7.0, -6.6], atol=1e-12)


def batch_gradient_means(advantage_fn, batch, batches, seed):
    """One gradient estimate g_i = mean_b A_bi (a_bi - mu_i) / sigma^2 per batch: [batches, n]."""
    rng = np.random.default_rng(seed)
    out = np.empty((batches, TASK.n_agents))
    for m in range(batches):
        actions = MU + SIGMA * rng.standard_normal((batch, TASK.n_agents))
        rewards = TASK.team_reward(actions)
        adv = advantage_fn(rewards, actions)
        out[m] = (adv * (actions - MU) / SIGMA**2).mean(axis=0)
    return out


def z_scores(estimates, expected):
    mean = estimates.mean(axis=0)
    standard_error = estimates.std(axis=0, ddof=1) / math.sqrt(len(estimates))
    return (mean - expected) / standard_error


def reference(critic, running_baseline=np.zeros(3)):
    return lambda rewards, actions: advantages_for(critic, rewards, actions, MU, TASK, SIGMA, running_baseline)


def own_action_dependent(base_fn, slope=2.0):
    """A wrong critic: the baseline also moves with the agent's own action, b_i + slope * (a_i - mu_i)."""
    return lambda rewards, actions: base_fn(rewards, actions) - slope * (actions - MU)


def test_independent_critic_is_unbiased_and_the_test_has_teeth():
    grad = TASK.expected_reward_gradient(MU)
    lagging = np.full(3, TASK.expected_reward(MU, SIGMA) + 0.8)  # any baseline fixed before the batch
    right = batch_gradient_means(reference("independent", lagging), batch=32, batches=4000, seed=11)
    assert np.abs(z_scores(right, grad)).max() < Z_PASS
    wrong = batch_gradient_means(own_action_dependent(reference("independent", lagging)), 32, 4000, seed=11)
    assert np.abs(z_scores(wrong, grad)).min() > Z_FAIL


@pytest.mark.parametrize("batch", [4, 32])
def test_state_value_critic_is_unbiased_up_to_the_batch_mean_factor(batch):
    """The batch mean contains the sample's own reward, so E[g] = (B - 1) / B * grad J exactly.

    At B = 4 that factor (0.75) is measurable and the plain gradient is rejected: the
    z-test can tell a 25% bias; at B = 32 it is the seed's ~3% shrinkage.
    """
    grad = TASK.expected_reward_gradient(MU)
    batches = 16000 if batch == 4 else 4000
    estimates = batch_gradient_means(reference("state-value"), batch=batch, batches=batches, seed=12)
    assert np.abs(z_scores(estimates, grad * (batch - 1) / batch)).max() < Z_PASS
    if batch == 4:
        assert np.abs(z_scores(estimates, grad)).min() > Z_FAIL
    wrong = batch_gradient_means(own_action_dependent(reference("state-value")), batch, batches, seed=12)
    assert np.abs(z_scores(wrong, grad * (batch - 1) / batch)).min() > Z_FAIL


def test_joint_action_critic_is_unbiased_and_the_test_has_teeth():
    grad = TASK.expected_reward_gradient(MU)
    right = batch_gradient_means(reference("joint-action"), batch=16, batches=600, seed=13)
    assert np.abs(z_scores(right, grad)).max() < Z_PASS

    def no_counterfactual(rewards, actions):
        # COMA done wrong: the "baseline" keeps agent i's own sampled action instead of averaging it out
        k = TASK.own_curvature
        return np.tile(rewards[:, None], (1, 3)) - (rewards[:, None] - SIGMA**2 * k)

    wrong = batch_gradient_means(no_counterfactual, 16, 600, seed=13)
    assert np.abs(z_scores(wrong, grad)).min() > Z_FAIL
    subtle = batch_gradient_means(own_action_dependent(reference("joint-action"), slope=2.0), 16, 600, seed=13)
    assert np.abs(z_scores(subtle, grad)).min() > Z_FAIL


def test_per_sample_variance_order_at_the_test_point():
    """Same rollouts, three critics: the more a critic sees, the less noise is left in its gradient."""
    variances = {}
    for critic in CRITICS:
        baseline = np.full(3, TASK.expected_reward(MU, SIGMA) + 0.5)  # a running average lags the reward
        g = []
        rng = np.random.default_rng(14)
        for _ in range(200):
            actions = MU + SIGMA * rng.standard_normal((32, 3))
            rewards = TASK.team_reward(actions)
            adv = advantages_for(critic, rewards, actions, MU, TASK, SIGMA, baseline)
            g.append(adv * (actions - MU) / SIGMA**2)
        variances[critic] = np.concatenate(g).var(axis=0).mean()
    assert variances["independent"] > variances["state-value"] > variances["joint-action"]
