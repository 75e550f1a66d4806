"""The one-step matrix games: payoffs by hand, the exact expectations and credit by enumeration, the protocol."""
from __future__ import annotations

import itertools

import pytest
import torch

from marlpg.envs import make_env
from marlpg.envs.matrix_games import CLIMBING_PAYOFF, ClimbingGame, CreditGame, make_matrix_game


def all_joint_actions(n_agents: int, n_actions: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(n_actions), repeat=n_agents)))


def random_policies(n_agents: int, n_actions: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_agents, n_actions, generator=generator).softmax(-1)


def joint_probability(joint: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    return probs.expand(len(joint), *probs.shape).gather(-1, joint.unsqueeze(-1)).squeeze(-1).prod(-1)  # [A, n] -> [A]


@pytest.mark.parametrize("name,n", [("credit", 5), ("climbing", 2)])
def test_protocol_shapes_and_one_step_episodes(name, n):
    env = make_env(name, 6, n_agents=n)
    obs, state = env.reset(seed=0)
    assert obs.shape == (6, n, 1) and state.shape == (6, 2)
    assert torch.equal(obs, torch.ones(6, n, 1)) and torch.equal(state, torch.tensor([1.0, 0.0]).expand(6, 2))
    actions = torch.randint(0, 3, (6, n))
    next_obs, next_state, reward, done = env.step(actions)
    assert reward.shape == (6, n) and done.shape == (6,) and done.dtype == torch.bool and bool(done.all())
    assert torch.equal(reward, reward[:, :1].expand(6, n)), "the team payoff is repeated for every agent"
    assert torch.equal(next_obs, obs) and torch.equal(next_state, state), "nothing to observe: a constant"
    assert env.spec.discrete and env.spec.n_actions == 3 and env.spec.horizon == 1


def test_credit_payoff_by_hand():
    env = CreditGame(4, n_agents=6, k_relevant=3)  # targets 0, 1, 2 for agents 0, 1, 2; agents 3-5 do not matter
    actions = torch.tensor([[0, 1, 2, 0, 0, 0], [0, 0, 0, 1, 2, 0], [2, 1, 0, 2, 1, 0], [1, 2, 0, 0, 1, 2]])
    assert env.payoff(actions).tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 0.0])
    assert env.optimum == 1.0
    assert env.payoff(env.optimal_actions).item() == 1.0


def test_default_k_is_half_of_the_agents():
    assert CreditGame(1, n_agents=8).k_relevant == 4
    assert CreditGame(1, n_agents=1).k_relevant == 1


def test_irrelevant_agents_never_change_the_payoff():
    env = CreditGame(1, n_agents=4, k_relevant=2)
    joint = all_joint_actions(4, 3)
    payoff = env.payoff(joint).reshape(3, 3, 3, 3)
    assert torch.equal(payoff, payoff[:, :, :1, :1].expand(3, 3, 3, 3))  # agents 2 and 3 do not matter
    assert not torch.equal(payoff, payoff[:1].expand(3, 3, 3, 3))  # agent 0 does


@pytest.mark.parametrize("env", [CreditGame(1, n_agents=4, k_relevant=3), ClimbingGame(1)], ids=["credit", "climbing"])
def test_expected_payoff_matches_enumeration(env):
    n, u = env.spec.n_agents, env.spec.n_actions
    probs = random_policies(n, u, seed=1)
    joint = all_joint_actions(n, u)
    enumerated = (joint_probability(joint, probs) * env.payoff(joint)).sum()
    assert env.expected_payoff(probs).item() == pytest.approx(enumerated.item(), abs=1e-6)


def test_true_credit_is_the_counterfactual_advantage_by_enumeration():
    env = CreditGame(1, n_agents=4, k_relevant=2)
    probs = random_policies(4, 3, seed=2)
    joint = all_joint_actions(4, 3)
    credit = env.true_credit(joint, probs)
    for a in range(4):
        baseline = torch.zeros(len(joint))
        for alternative in range(3):
            swapped = joint.clone()
            swapped[:, a] = alternative
            baseline += probs[a, alternative] * env.payoff(swapped)
        assert torch.allclose(credit[:, a], env.payoff(joint) - baseline, atol=1e-6)
    assert torch.equal(credit[:, 2:], torch.zeros(len(joint), 2)), "agents that do not matter earn no credit"
    # in expectation over the policies, every agent's credit is zero (the baseline is unbiased)
    expected = (joint_probability(joint, probs).unsqueeze(-1) * credit).sum(0)
    assert torch.allclose(expected, torch.zeros(4), atol=1e-6)


def test_climbing_matrix_and_optimum():
    env = ClimbingGame(1)
    joint = all_joint_actions(2, 3)
    assert env.payoff(joint).reshape(3, 3).tolist() == [list(row) for row in CLIMBING_PAYOFF]
    assert env.optimum == 11.0 and env.optimal_actions.tolist() == [0, 0]
    assert env.expected_payoff(torch.full((2, 3), 1 / 3)).item() == pytest.approx(sum(map(sum, CLIMBING_PAYOFF)) / 9)


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="k_relevant"):
        CreditGame(1, n_agents=4, k_relevant=5)
    with pytest.raises(ValueError, match="n_actions"):
        CreditGame(1, n_actions=1)
    with pytest.raises(ValueError, match="num_envs"):
        CreditGame(0)
    with pytest.raises(ValueError, match="exactly 2 agents"):
        make_matrix_game("climbing", 1, n_agents=3)
    with pytest.raises(ValueError, match="discrete"):
        make_env("credit", 1, continuous=True)
    with pytest.raises(ValueError, match="banana"):
        make_env("credit", 1, banana=1)
    with pytest.raises(ValueError, match="credit"):
        make_matrix_game("prisoners", 1)
    env = make_env("credit", 2, n_agents=3)
    with pytest.raises(ValueError, match="0..2"):
        env.step(torch.tensor([[0, 1, 3], [0, 0, 0]]))


def test_make_env_keeps_other_names_working():
    assert make_env("credit", 2, n_agents=7, k_relevant=2).k_relevant == 2
    assert make_env("climbing", 2).spec.n_agents == 2  # make_env's default of 3 agents does not apply
    with pytest.raises(ValueError, match="backend:scenario"):
        make_env("credit_game", 1)
