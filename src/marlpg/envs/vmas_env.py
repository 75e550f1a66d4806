"""VMAS scenarios (vectorized, torch-native) behind the batched protocol.

VMAS simulates all ``E`` copies as one batch of tensors, on CPU or GPU, and returns per-agent
lists; this adapter stacks them into ``[E, n, ...]`` tensors, keeps the step count, and resets
every copy together at the horizon (VMAS itself never resets).

The global state is every agent's observation concatenated, plus the time feature. For
``simple_spread`` the observations already hold every agent's absolute position and velocity
and every landmark's relative position, so the concatenation is the full physical state.

``scenario`` is a VMAS scenario name (``"simple_spread"``), one of marlpg's own scenarios by name
(``"marlpg.two_speed_spread"``, see :mod:`marlpg.envs.scenarios`), or a VMAS ``BaseScenario``
instance (used once: VMAS builds its world into it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions, time_feature

if TYPE_CHECKING:
    from vmas.simulator.scenario import BaseScenario


class VmasEnv:
    def __init__(
        self,
        scenario: str | BaseScenario,
        num_envs: int,
        *,
        n_agents: int = 3,
        horizon: int = 25,
        continuous: bool = False,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        **scenario_kwargs,
    ):
        import vmas

        if num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
        self.device = torch.device(device)
        self.num_envs = num_envs
        if isinstance(scenario, str) and scenario.startswith("marlpg."):
            from .scenarios import build_scenario

            scenario = build_scenario(scenario)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            # vmas.make_env(seed=...) would reseed the global generators; keep the caller's stream.
            self._env = vmas.make_env(
                scenario,
                num_envs=num_envs,
                device=self.device,
                continuous_actions=continuous,
                max_steps=None,
                seed=seed,
                n_agents=n_agents,
                **scenario_kwargs,
            )
        self._steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        obs = self._stack(self._env.reset())
        space = self._env.action_space[0]
        self.spec = EnvSpec(
            n_agents=len(self._env.agents),
            obs_dim=obs.shape[-1],
            state_dim=obs.shape[1] * obs.shape[2] + 1,
            discrete=not continuous,
            n_actions=int(space.n) if not continuous else int(space.shape[0]),
            horizon=horizon,
        )

    def _stack(self, per_agent: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(per_agent, dim=1)

    def _observe(self, obs: torch.Tensor) -> Observation:
        state = torch.cat([obs.flatten(1), time_feature(self._steps, self.spec.horizon)], dim=-1)
        return Observation(obs, state)

    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self._env.seed(seed)
        self._steps.zero_()
        return self._observe(self._stack(self._env.reset()))

    def step(self, actions: torch.Tensor) -> Transition:
        check_actions(actions, self.spec, self.num_envs)
        per_agent = list(actions.unbind(dim=1)) if self.spec.discrete else list(actions.clamp(-1, 1).unbind(dim=1))
        obs, rewards, _, _ = self._env.step(per_agent)
        reward = self._stack(rewards)
        self._steps += 1
        done = self._steps >= self.spec.horizon
        if bool(done.all()):
            self._steps.zero_()
            obs = self._env.reset()
        elif bool(done.any()):
            for index in done.nonzero().flatten().tolist():
                obs = self._env.reset_at(index)
            self._steps[done] = 0
        return Transition(*self._observe(self._stack(obs)), reward, done)

    def render(self, env_index: int = 0):
        """An RGB array of copy ``env_index`` (needs VMAS's rendering extras)."""
        return self._env.render(mode="rgb_array", env_index=env_index)

    @property
    def world(self):
        """VMAS's world, for plots that need positions the observations only hold relatively."""
        return self._env.world
