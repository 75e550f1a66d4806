"""VMAS scenarios (vectorized, torch-native) behind the batched protocol.

VMAS simulates all ``E`` copies as one batch of tensors, on CPU or GPU, and returns per-agent
lists; this adapter stacks them into ``[E, n, ...]`` tensors, keeps the step count, and resets
each copy that finished (VMAS itself never resets). A copy finishes where the scenario's own
``done()`` says so (balance, transport, navigation and a dozen others end their episodes when the
task is solved or failed) or at the horizon; both are terminations (see
:mod:`marlpg.envs.protocol`), and ``final_obs``/``final_state`` keep what the step reached.

Random state: VMAS draws its resets from one random state shared by every VMAS environment in
the process (a class attribute of ``vmas.simulator.environment.Environment``), so reseeding an
evaluation environment would change the training environment's next resets. Each adapter keeps
its own copy of that state and swaps it in around every call into VMAS, so two adapters never
draw from each other's stream (and neither touches the caller's global generators).

The global state is every agent's observation concatenated, plus the time feature. For
``simple_spread`` the observations already hold every agent's absolute position and velocity
and every landmark's relative position, so the concatenation is the full physical state.

``scenario`` is a VMAS scenario name (``"simple_spread"``), one of marlpg's own scenarios by name
(``"marlpg.two_speed_spread"``, see :mod:`marlpg.envs.scenarios`), or a VMAS ``BaseScenario``
instance (used once: VMAS builds its world into it).
"""
from __future__ import annotations

from contextlib import contextmanager
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
        from vmas.simulator.environment.environment import Environment

        self._shared_state = Environment.vmas_random_state  # one list for every VMAS environment
        before = list(self._shared_state)
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
        self._random_state = list(self._shared_state)  # this adapter's own stream from here on
        self._shared_state[:] = before
        self._steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        with self._own_random_state():
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

    @contextmanager
    def _own_random_state(self):
        """Run the block with this adapter's VMAS random state in the shared slot, then put the other back."""
        other = list(self._shared_state)
        self._shared_state[:] = self._random_state
        try:
            yield
        finally:
            self._random_state = list(self._shared_state)
            self._shared_state[:] = other

    def _stack(self, per_agent: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(per_agent, dim=1)

    def _observe(self, obs: torch.Tensor) -> Observation:
        state = torch.cat([obs.flatten(1), time_feature(self._steps, self.spec.horizon)], dim=-1)
        return Observation(obs, state)

    def reset(self, seed: int | None = None) -> Observation:
        with self._own_random_state():
            if seed is not None:
                self._env.seed(seed)
            self._steps.zero_()
            return self._observe(self._stack(self._env.reset()))

    def step(self, actions: torch.Tensor) -> Transition:
        check_actions(actions, self.spec, self.num_envs)
        per_agent = list(actions.unbind(dim=1)) if self.spec.discrete else list(actions.clamp(-1, 1).unbind(dim=1))
        with self._own_random_state():
            obs, rewards, vmas_done, _ = self._env.step(per_agent)
            reward = self._stack(rewards)
            self._steps += 1
            final_obs, final_state = self._observe(self._stack(obs))
            done = vmas_done.to(torch.bool) | (self._steps >= self.spec.horizon)
            if bool(done.all()):
                self._steps.zero_()
                obs = self._env.reset()
            elif bool(done.any()):
                for index in done.nonzero().flatten().tolist():
                    obs = self._env.reset_at(index)
                self._steps[done] = 0
        return Transition(
            *self._observe(self._stack(obs)), reward, done, terminated=done, final_obs=final_obs, final_state=final_state
        )

    def render(self, env_index: int = 0):
        """An RGB array of copy ``env_index`` (needs VMAS's rendering extras)."""
        return self._env.render(mode="rgb_array", env_index=env_index)

    @property
    def world(self):
        """VMAS's world, for plots that need positions the observations only hold relatively."""
        return self._env.world
