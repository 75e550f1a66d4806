"""The cue task: a cooperative game where memory provably matters (``make_env("cue", ...)``).

``n`` agents, ``K`` cues (``n_cues``), episodes of ``H >= 2`` steps (``horizon``). At the start of
an episode every agent a draws its own cue c_a uniformly from {0, ..., K - 1}, independently.

* Observation of agent a at step t, ``K + 1`` features: the one-hot of c_a at t = 0 and zeros
  after it, then a flag that is 1 at the last step t = H - 1. The cue is seen once, at the start.
* Global state: every agent's cue one-hot (``n K`` features) and the time fraction t / H last,
  as the protocol asks (the critic may know the cues; the actors may not).
* Actions: K choices. Only the actions at the last step count: the team reward there is the
  fraction of agents that name their own cue, r_{H-1} = (1/n) sum_a [u_a = c_a], repeated for
  every agent; every other reward is 0. Each episode's return per agent is therefore r_{H-1}.

Optimal returns, exactly:

* With memory (a policy of the observation history o_a,0 .. o_a,t): 1. The history holds c_a,
  so "name the cue you saw at t = 0" scores every time.
* Without memory (any policy pi(u | o_a,t) of the current observation, feed-forward, however
  trained, stochastic or not): 1 / K. At the last step every agent observes the same vector
  (zeros and the flag) whatever its cue, so its action is independent of c_a, and
  P(u_a = c_a) = sum_u pi(u | o) P(c_a = u) = sum_u pi(u | o) / K = 1 / K. A uniformly random
  policy scores the same 1 / K.

So the gap a recurrent policy can close over a feed-forward one is 1 - 1/K per episode, and
``H`` sets how long the cue must be remembered (H - 1 steps).
"""
from __future__ import annotations

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions, time_feature


class CueTask:
    """``num_envs`` copies of the cue task, behind the batched protocol; copies reset themselves when done."""

    def __init__(self, num_envs: int, n_agents: int = 2, n_cues: int = 3, horizon: int = 3,
                 device: str | torch.device = "cpu", seed: int | None = None):
        for name, value, low in (("num_envs", num_envs, 1), ("n_agents", n_agents, 1), ("n_cues", n_cues, 2), ("horizon", horizon, 2)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        self.num_envs, self.n_cues = num_envs, n_cues
        self.device = torch.device(device)
        self.spec = EnvSpec(n_agents=n_agents, obs_dim=n_cues + 1, state_dim=n_agents * n_cues + 1, discrete=True,
                            n_actions=n_cues, horizon=horizon)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        self.cues = torch.zeros(num_envs, n_agents, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    @property
    def optimum(self) -> float:
        """The best return per agent with memory."""
        return 1.0

    @property
    def memoryless_optimum(self) -> float:
        """The best return per agent of any policy of the current observation alone (see the module docstring)."""
        return 1.0 / self.n_cues

    def _draw_cues(self, where: torch.Tensor) -> None:
        fresh = torch.randint(self.n_cues, self.cues.shape, generator=self.generator, device=self.device)
        self.cues = torch.where(where.unsqueeze(-1), fresh, self.cues)
        self.t = torch.where(where, torch.zeros_like(self.t), self.t)

    def _observe(self) -> Observation:
        cue_one_hot = torch.nn.functional.one_hot(self.cues, self.n_cues).float()  # [E, n, K]
        first = (self.t == 0).float()[:, None, None]
        last = (self.t == self.spec.horizon - 1).float()[:, None, None].expand(-1, self.spec.n_agents, 1)
        obs = torch.cat([cue_one_hot * first, last], dim=-1)
        state = torch.cat([cue_one_hot.flatten(1), time_feature(self.t, self.spec.horizon)], dim=-1)
        return Observation(obs, state)

    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._draw_cues(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._observe()

    def step(self, actions: torch.Tensor) -> Transition:
        check_actions(actions, self.spec, self.num_envs)
        last = self.t == self.spec.horizon - 1
        hits = (actions == self.cues).float().mean(-1)
        reward = (hits * last).unsqueeze(-1).expand(-1, self.spec.n_agents).clone()
        self.t = self.t + 1
        done = self.t >= self.spec.horizon
        final_obs, final_state = self._observe()
        self._draw_cues(done)
        obs, state = self._observe()
        return Transition(obs, state, reward, done, final_obs=final_obs, final_state=final_state)
