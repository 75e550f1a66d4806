"""The pricing game: closed-form Nash and joint-profit prices against numerical search, and the protocol."""
from __future__ import annotations

import pytest
import torch

from marlpg.envs import make_env
from marlpg.envs.pricing import PricingEnv


def numerical_best_response(env: PricingEnv, prices: torch.Tensor, seller: int) -> float:
    """Seller's profit-maximizing price against the others' ``prices``, by a fine grid search (no calculus)."""
    grid = torch.linspace(env.price_low, env.price_high, 150_001, dtype=torch.float64)
    candidates = prices.to(torch.float64).repeat(grid.numel(), 1)
    candidates[:, seller] = grid
    return grid[env.profit(candidates)[:, seller].argmax()].item()


@pytest.mark.parametrize("n_agents,sigma,cost", [(2, 0.5, 0.0), (3, 0.3, 0.1), (5, 0.6, 0.2)])
def test_closed_form_nash_matches_best_response_iteration(n_agents, sigma, cost):
    env = PricingEnv(1, n_agents=n_agents, sigma=sigma, cost=cost)
    prices = torch.linspace(0.1, 1.2, n_agents, dtype=torch.float64)  # an asymmetric start
    for _ in range(60):  # best responses in turn (Gauss-Seidel), each found numerically
        for seller in range(n_agents):
            prices[seller] = numerical_best_response(env, prices, seller)
    assert prices.tolist() == pytest.approx(env.nash_prices(), abs=2e-5)
    # and the closed-form best response agrees with the grid search away from equilibrium
    probe = torch.linspace(0.3, 1.1, n_agents, dtype=torch.float64)
    closed = env.best_response(probe)
    for seller in range(n_agents):
        assert closed[seller].item() == pytest.approx(numerical_best_response(env, probe, seller), abs=2e-5)


@pytest.mark.parametrize("n_agents,sigma,cost", [(2, 0.5, 0.0), (4, 0.6, 0.15)])
def test_joint_profit_prices_maximize_the_sum_of_profits(n_agents, sigma, cost):
    env = PricingEnv(1, n_agents=n_agents, sigma=sigma, cost=cost)
    grid = torch.linspace(env.price_low, env.price_high, 150_001, dtype=torch.float64)
    total = env.profit(grid.unsqueeze(-1).expand(-1, n_agents)).sum(-1)
    assert grid[total.argmax()].item() == pytest.approx(env.collusive_price(), abs=2e-5)
    # a symmetric optimum is the optimum: no asymmetric move from it raises the total
    best = torch.full((n_agents,), env.collusive_price(), dtype=torch.float64)
    moved = best + 0.02 * torch.randn(200, n_agents, dtype=torch.float64)
    assert (env.profit(moved).sum(-1) <= env.profit(best).sum() + 1e-12).all()
    assert env.collusive_price() > env.nash_price()
    assert env.profit_at(env.collusive_price()) > env.profit_at(env.nash_price())


def test_default_numbers():
    env = PricingEnv(1)
    assert env.nash_price() == pytest.approx(2 / 3)
    assert env.collusive_price() == pytest.approx(1.0)
    assert env.profit_at(env.nash_price()) == pytest.approx(4 / 9)
    assert env.profit_at(1.0) == pytest.approx(0.5)


def test_protocol_one_shot_and_repeated():
    env = make_env("pricing", 4, n_agents=3, horizon=1)
    assert isinstance(env, PricingEnv) and env.spec.obs_dim == 3 and env.spec.state_dim == 4 and env.spec.n_actions == 1
    obs, state = env.reset(seed=0)
    assert obs.shape == (4, 3, 3) and state.shape == (4, 4) and not obs.any()
    actions = env.actions(torch.tensor([[0.5, 0.7, 0.9]]).expand(4, 3))
    obs, state, reward, done = env.step(actions)
    assert done.all() and not obs.any()
    assert reward[0].tolist() == pytest.approx(env.profit(torch.tensor([0.5, 0.7, 0.9])).tolist())

    env = make_env("pricing", 2, n_agents=2, horizon=3)
    env.reset()
    prices = torch.tensor([[0.6, 0.8], [1.0, 0.2]])
    obs, state, reward, done = env.step(env.actions(prices))
    assert not done.any()
    assert torch.allclose(env.prices(obs[:, 0].unsqueeze(-1)), prices)  # everyone sees last period's prices
    assert torch.equal(obs[:, 0], obs[:, 1]) and state[:, -1].tolist() == pytest.approx([1 / 3, 1 / 3])
    env.step(env.actions(prices))
    obs, state, reward, done = env.step(env.actions(prices))
    assert done.all() and not obs.any() and not state.any()


def test_demand_is_never_negative_and_actions_map_onto_the_price_range():
    env = PricingEnv(1)
    assert env.demand(torch.tensor([1.5, 0.0])).tolist() == [0.0, 1.75]
    assert env.prices(torch.tensor([[-1.0], [0.0], [1.0], [3.0]])).tolist() == [0.0, 0.75, 1.5, 1.5]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_agents=1), "n_agents"),
        (dict(sigma=1.0), "sigma"),
        (dict(price_high=0.5), "outside"),
        (dict(continuous=False), "continuous"),
        (dict(horizon=0), "horizon"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PricingEnv(2, **kwargs)
