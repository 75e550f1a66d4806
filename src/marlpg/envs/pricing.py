"""Price competition between sellers of differentiated goods: a mixed game with known answers.

``n`` sellers each post a price every period. Seller ``i`` sells

    q_i = max(0, alpha - beta p_i + c sum_{j != i} p_j),      c = sigma beta / (n - 1),

units (a symmetric linear demand, the n-seller form of Singh and Vives, 1984): its own price
lowers its sales, its rivals' prices raise them. ``sigma`` in [0, 1) is how substitutable the goods
are (0: separate markets, towards 1: nearly identical goods); writing the cross effect as
``sigma beta / (n - 1)`` keeps the total pull of all rivals the same for any ``n``. Each seller's
reward is its own profit, ``r_i = (p_i - m) q_i`` with unit cost ``m``: the sellers' interests
are partly aligned (everyone gains when prices rise together) and partly opposed (each gains by
undercutting the others), which is what makes the game mixed.

**Nash prices.** Where demand is positive, ``r_i`` is a concave parabola in ``p_i``. Setting
``d r_i / d p_i = alpha - 2 beta p_i + beta m + c sum_{j != i} p_j`` to zero gives the best response

    BR_i(p_{-i}) = (alpha + beta m + c sum_{j != i} p_j) / (2 beta),

and in a symmetric equilibrium (``p_j = p*`` for all j, so the rivals' sum is (n - 1) p*)

    p* = (alpha + beta m) / (beta (2 - sigma)).

It is the unique equilibrium: each best response is a contraction (slope ``c (n - 1) / (2 beta) =
sigma / 2 < 1`` in the rivals' prices). The kink at ``q_i = 0`` does not move it, because a seller
that prices itself out of the market earns nothing and the interior best response earns more.

**Joint-profit (collusive, monopoly) prices.** A cartel maximizing ``sum_i r_i`` sets, by the same
calculus on the sum (each price now also raises the rivals' sales, by ``c`` each),

    p^M = (alpha + beta (1 - sigma) m) / (2 beta (1 - sigma)),

higher than ``p*`` for any ``sigma > 0``. With the defaults (alpha = beta = 1, sigma = 1/2, m = 0):
``p* = 2/3`` with profit 4/9 each, and ``p^M = 1`` with profit 1/2 each.

**As a batched environment** (:mod:`marlpg.envs.protocol`). Each agent's action is one number in
[-1, 1], mapped linearly onto prices in ``[price_low, price_high]`` (default [0, 1.5], where the
action 0 means the price 0.75). An episode lasts ``horizon`` periods: ``horizon=1`` (the default)
is the one-shot pricing game, whose only equilibrium is ``p*``; a longer horizon is the finitely
repeated game. Its horizon is known and its stage game has a unique equilibrium, so backward
induction gives ``p*`` in every period as the only subgame-perfect equilibrium: prices above ``p*``
sustained by conditioning on the rivals' past prices (the folk theorem, the setting of the
algorithmic-collusion question) need an infinite or uncertain horizon, which a long horizon with
discount ``gamma`` only approximates for actors that, as here, do not observe the period. Every seller observes last period's prices of all sellers, in
action units (zeros, i.e. the mid price, at the start of an episode), so the observations are the same for
every seller and the state is that vector plus the time fraction. Rewards are profits per period,
multiplied by ``reward_scale`` (default 1: the Nash profit is 4/9 per period).
"""
from __future__ import annotations

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions, time_feature


class PricingEnv:
    def __init__(
        self,
        num_envs: int,
        *,
        n_agents: int = 2,
        horizon: int = 1,
        alpha: float = 1.0,
        beta: float = 1.0,
        sigma: float = 0.5,
        cost: float = 0.0,
        price_low: float = 0.0,
        price_high: float = 1.5,
        reward_scale: float = 1.0,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        continuous: bool = True,
    ):
        checks = {
            "num_envs": isinstance(num_envs, int) and num_envs >= 1,
            "n_agents": isinstance(n_agents, int) and n_agents >= 2,
            "horizon": isinstance(horizon, int) and horizon >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                least = 2 if name == "n_agents" else 1
                raise ValueError(f"{name} must be an integer >= {least}; got {locals()[name]!r}")
        if not continuous:
            raise ValueError("the pricing game has continuous prices only; got continuous=False")
        if not 0 <= sigma < 1:
            raise ValueError(f"sigma (substitutability) must lie in [0, 1); got {sigma!r}")
        if not (alpha > 0 and beta > 0 and reward_scale > 0):
            raise ValueError(f"alpha, beta and reward_scale must be positive; got {alpha!r}, {beta!r}, {reward_scale!r}")
        if not price_low < price_high:
            raise ValueError(f"price_low must be below price_high; got {price_low!r} >= {price_high!r}")
        self.num_envs, self.n_agents, self.horizon = num_envs, n_agents, horizon
        self.alpha, self.beta, self.sigma, self.cost = float(alpha), float(beta), float(sigma), float(cost)
        self.cross = self.sigma * self.beta / (n_agents - 1)
        self.price_low, self.price_high, self.reward_scale = float(price_low), float(price_high), float(reward_scale)
        for name, price in (("Nash", self.nash_price()), ("joint-profit", self.collusive_price())):
            if not self.price_low <= price <= self.price_high:
                raise ValueError(f"the {name} price {price:.4f} lies outside [price_low, price_high] = [{price_low}, {price_high}]")
        self.device = torch.device(device)
        self.spec = EnvSpec(n_agents=n_agents, obs_dim=n_agents, state_dim=n_agents + 1, discrete=False, n_actions=1, horizon=horizon)
        self._steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._last = torch.zeros(num_envs, n_agents, device=self.device)

    # --- the economics ----------------------------------------------------------------------
    def demand(self, prices: torch.Tensor) -> torch.Tensor:
        """Units sold by each seller, ``[..., n]`` from prices ``[..., n]``."""
        rivals = prices.sum(-1, keepdim=True) - prices
        return (self.alpha - self.beta * prices + self.cross * rivals).clamp_min(0.0)

    def profit(self, prices: torch.Tensor) -> torch.Tensor:
        """Each seller's profit per period (unscaled)."""
        return (prices - self.cost) * self.demand(prices)

    def best_response(self, prices: torch.Tensor) -> torch.Tensor:
        """Every seller's profit-maximizing price against the others' ``prices`` (the closed form above)."""
        rivals = prices.sum(-1, keepdim=True) - prices
        return (self.alpha + self.beta * self.cost + self.cross * rivals) / (2 * self.beta)

    def nash_price(self) -> float:
        return (self.alpha + self.beta * self.cost) / (self.beta * (2 - self.sigma))

    def collusive_price(self) -> float:
        return (self.alpha + self.beta * (1 - self.sigma) * self.cost) / (2 * self.beta * (1 - self.sigma))

    def nash_prices(self) -> list[float]:
        return [self.nash_price()] * self.n_agents

    def collusive_prices(self) -> list[float]:
        return [self.collusive_price()] * self.n_agents

    def profit_at(self, price: float) -> float:
        """Each seller's profit when every seller charges ``price``."""
        return float(self.profit(torch.full((self.n_agents,), float(price)))[0])

    def prices(self, actions: torch.Tensor) -> torch.Tensor:
        """Prices from actions in [-1, 1] (clamped), ``[..., n, 1] -> [..., n]``."""
        unit = (actions.squeeze(-1).clamp(-1, 1) + 1) / 2
        return self.price_low + unit * (self.price_high - self.price_low)

    def actions(self, prices: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`prices`, ``[..., n] -> [..., n, 1]``."""
        return (2 * (prices - self.price_low) / (self.price_high - self.price_low) - 1).unsqueeze(-1)

    # --- the protocol -----------------------------------------------------------------------
    def _observe(self) -> Observation:
        obs = self._last.unsqueeze(1).expand(self.num_envs, self.n_agents, self.n_agents).clone()
        state = torch.cat([self._last, time_feature(self._steps, self.horizon)], dim=-1)
        return Observation(obs, state)

    def reset(self, seed: int | None = None) -> Observation:
        self._steps.zero_()
        self._last.zero_()
        return self._observe()

    def step(self, actions: torch.Tensor) -> Transition:
        check_actions(actions, self.spec, self.num_envs)
        prices = self.prices(actions)
        reward = self.profit(prices) * self.reward_scale
        self._steps += 1
        done = self._steps >= self.horizon
        self._last = torch.where(done.unsqueeze(-1), torch.zeros_like(prices), self.actions(prices).squeeze(-1))
        self._steps[done] = 0
        return Transition(*self._observe(), reward, done)
