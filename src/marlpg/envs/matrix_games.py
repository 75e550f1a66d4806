"""One-step cooperative games whose right answer is known: where credit assignment can be checked.

Both games follow the batched protocol of :mod:`marlpg.envs.protocol`, with ``E`` copies played at
once. Every episode is a single step: all agents choose an action at the same time, the team
receives one payoff, repeated for every agent (``reward [E, n]``), and ``done`` is always true.

There is nothing to observe. Each agent's observation is the constant ``[1.0]`` and the global
state is the constant ``[1.0, 0.0]`` (a bias and the time fraction of the protocol, always 0 at
the only step). So a critic of the state, V(x), can only learn the mean payoff of the current
joint policy, and anything that tells agents apart must come from their actions (and, for a
shared actor, from their one-hot agent IDs).

**The credit game** (``CreditGame``): ``n`` agents with ``|U|`` actions each; only the first
``k`` agents matter. Relevant agent ``a`` has a target action ``t_a = a mod |U|``, and the team
payoff is the fraction of relevant agents that hit their target,

    r(u) = (1 / k) * sum_{a < k} [u_a == t_a]            optimum: 1.

The reward is additive over agents, so the right credit is known exactly: agent ``a``'s share of a
joint action is ``(1 / k) ([u_a == t_a] - pi_a(t_a))`` for a relevant agent, and zero for an agent
that does not matter, whatever the others do.

**The climbing game** (Claus & Boutilier, 1998): two agents, three actions, payoff matrix

            b=0   b=1   b=2
    a=0     11    -30     0
    a=1    -30      7     6
    a=2      0      0     5

The optimum (0, 0) = 11 sits next to the heaviest penalties, so agents that average over a partner
who still explores learn that action 0 is dangerous and settle for (1, 1) = 7 or (2, 2) = 5.
"""
from __future__ import annotations

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions

CLIMBING_PAYOFF = ((11.0, -30.0, 0.0), (-30.0, 7.0, 6.0), (0.0, 0.0, 5.0))


class OneStepGame:
    """Shared machinery: constant observations, one-step episodes, the team payoff repeated per agent."""

    def __init__(self, num_envs: int, n_agents: int, n_actions: int, device: str | torch.device = "cpu"):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.spec = EnvSpec(n_agents=n_agents, obs_dim=1, state_dim=2, discrete=True, n_actions=n_actions, horizon=1)

    def _observe(self) -> Observation:
        obs = torch.ones(self.num_envs, self.spec.n_agents, 1, device=self.device)
        state = torch.tensor([1.0, 0.0], device=self.device).expand(self.num_envs, 2).clone()
        return Observation(obs, state)

    def reset(self, seed: int | None = None) -> Observation:
        return self._observe()  # nothing random: the seed is accepted for the protocol's sake

    def step(self, actions: torch.Tensor) -> Transition:
        check_actions(actions, self.spec, self.num_envs)
        team = self.payoff(actions)
        reward = team.unsqueeze(-1).expand(-1, self.spec.n_agents).clone()
        done = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        return Transition(*self._observe(), reward, done)

    def payoff(self, actions: torch.Tensor) -> torch.Tensor:
        """Team payoff of joint actions ``[..., n]`` -> ``[...]``."""
        raise NotImplementedError

    def expected_payoff(self, probs: torch.Tensor) -> torch.Tensor:
        """Exact expected team payoff of independent policies ``probs [n, |U|]``."""
        raise NotImplementedError

    @property
    def optimum(self) -> float:
        raise NotImplementedError

    @property
    def optimal_actions(self) -> torch.Tensor:
        """One optimal joint action, ``[n]``."""
        raise NotImplementedError


class CreditGame(OneStepGame):
    """Only the first ``k_relevant`` of ``n`` agents matter; each scores by hitting its own target."""

    def __init__(
        self,
        num_envs: int,
        n_agents: int = 4,
        k_relevant: int | None = None,
        n_actions: int = 3,
        device: str | torch.device = "cpu",
    ):
        if not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"n_agents must be a positive integer; got {n_agents!r}")
        if k_relevant is None:
            k_relevant = max(1, n_agents // 2)
        if not isinstance(k_relevant, int) or not 1 <= k_relevant <= n_agents:
            raise ValueError(f"k_relevant must be an integer in 1..n_agents={n_agents}; got {k_relevant!r}")
        if not isinstance(n_actions, int) or n_actions < 2:
            raise ValueError(f"n_actions must be an integer >= 2; got {n_actions!r}")
        super().__init__(num_envs, n_agents, n_actions, device)
        self.k_relevant = k_relevant
        self.relevant = torch.arange(n_agents, device=self.device) < k_relevant  # [n] bool
        self.targets = torch.arange(n_agents, device=self.device) % n_actions  # [n]

    def payoff(self, actions: torch.Tensor) -> torch.Tensor:
        hits = (actions == self.targets) & self.relevant
        return hits.float().sum(-1) / self.k_relevant

    def expected_payoff(self, probs: torch.Tensor) -> torch.Tensor:
        hit_probs = probs.gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)
        return (hit_probs * self.relevant).sum(-1) / self.k_relevant

    def true_credit(self, actions: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """The exact counterfactual advantage of every agent, ``[..., n]``, for policies ``probs [n, |U|]``.

        Q(u) - sum_u' pi_a(u') Q(u_-a, u') = (1/k) ([u_a == t_a] - pi_a(t_a)) for a relevant agent, 0 otherwise.
        """
        hit_probs = probs.gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)
        hits = (actions == self.targets).float()
        return (hits - hit_probs) * self.relevant / self.k_relevant

    @property
    def optimum(self) -> float:
        return 1.0

    @property
    def optimal_actions(self) -> torch.Tensor:
        return self.targets.clone()


class ClimbingGame(OneStepGame):
    """Claus & Boutilier's (1998) climbing game: 2 agents, 3 actions, optimum 11 at (0, 0)."""

    def __init__(self, num_envs: int, device: str | torch.device = "cpu"):
        super().__init__(num_envs, 2, 3, device)
        self.matrix = torch.tensor(CLIMBING_PAYOFF, device=self.device)

    def payoff(self, actions: torch.Tensor) -> torch.Tensor:
        return self.matrix[actions[..., 0], actions[..., 1]]

    def expected_payoff(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...i,ij,...j->...", probs[..., 0, :], self.matrix, probs[..., 1, :])

    @property
    def optimum(self) -> float:
        return float(self.matrix.max())

    @property
    def optimal_actions(self) -> torch.Tensor:
        index = int(self.matrix.argmax())
        return torch.tensor([index // 3, index % 3], device=self.device)


GAMES = ("credit", "climbing")


def make_matrix_game(
    name: str,
    num_envs: int,
    *,
    n_agents: int | None = None,
    k_relevant: int | None = None,
    n_actions: int = 3,
    device: str | torch.device = "cpu",
    **ignored,
) -> OneStepGame:
    """``make_matrix_game("credit", E, n_agents=8, k_relevant=4)`` or ``make_matrix_game("climbing", E)``.

    ``ignored`` takes the settings other environments use (horizon, continuous, seed) so callers
    can pass one set of keywords to every environment; a one-step discrete game rejects
    ``continuous=True`` and any horizon other than 1 is ignored (every episode is one step).
    """
    if ignored.get("continuous"):
        raise ValueError(f"the {name!r} game has discrete actions only; got continuous=True")
    unknown = set(ignored) - {"horizon", "continuous", "seed"}
    if unknown:
        raise ValueError(f"unknown keyword argument(s) {sorted(unknown)} for the {name!r} game")
    if name == "credit":
        return CreditGame(num_envs, 4 if n_agents is None else n_agents, k_relevant, n_actions, device)
    if name == "climbing":
        if n_agents not in (None, 2):
            raise ValueError(f"the climbing game has exactly 2 agents; got n_agents={n_agents!r}")
        return ClimbingGame(num_envs, device)
    raise ValueError(f"unknown matrix game {name!r}; choose one of {GAMES}")
