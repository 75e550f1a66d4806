"""marlpg's own VMAS scenarios, built by name: ``make_env("vmas:marlpg.two_speed_spread", ...)``.

``two_speed_spread`` is a cooperative spread task with two kinds of agent and two kinds of
landmark, made so that the two kinds of agent must behave differently (the case where one actor
for everybody is the wrong default):

* the first ``n // 2`` agents are **scouts** (role 0): small, light and strongly driven, so fast;
* the others are **carriers** (role 1): large, heavy and weakly driven, with a low top speed.

Half the landmarks are **outposts** on a far ring around the start (:func:`outpost_radius`) that
only a scout can reach within the usual 25-step episode; the other half are **depots** near the start, among the
agents. An outpost counts as covered by the nearest *scout*, a depot by the nearest *carrier*.
The team shares one reward per step: minus the summed distance from every landmark to the nearest
agent of its kind, minus ``collision_penalty`` per pair of overlapping agents.

Every agent observes the same layout as VMAS ``simple_spread``,
``[own position (2), own velocity (2), every landmark relative to itself (2n), every other agent
relative to itself (2(n - 1))]`` (outposts first, then depots), and nothing that names its role.
From the same first observation a scout must head out to the ring and a carrier to a depot, so a
shared actor that cannot tell the roles apart (no agent ID) has one rule for both until it infers
its role from how it accelerates.

:class:`ScriptedTwoSpeed` is a reference controller with a role-aware and a role-blind variant;
:func:`two_speed_references` measures both, and a random policy, on the same episodes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from vmas.simulator.core import Agent, Landmark, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import Color, ScenarioUtils


@dataclass(frozen=True)
class Body:
    """The physical parameters that make a role: VMAS accelerates an agent by ``u_multiplier / mass``
    per unit action, damps its velocity by the world's drag (0.25 per step) and caps its speed."""

    radius: float
    mass: float
    u_multiplier: float
    max_speed: float

    @property
    def acceleration(self) -> float:
        return self.u_multiplier / self.mass


SCOUT = Body(radius=0.08, mass=0.5, u_multiplier=1.5, max_speed=1.0)  # acceleration 3
CARRIER = Body(radius=0.15, mass=2.0, u_multiplier=1.0, max_speed=0.25)  # acceleration 0.5
BODIES = (SCOUT, CARRIER)  # indexed by role
ROLE_NAMES = ("scout", "carrier")
OUTPOST_BEYOND = (0.6, 1.0)  # how far the outposts' ring lies beyond the edge of the start square


def start_half_width(n_agents: int) -> float:
    """Half the side of the square the agents start in: 0.4 for 4 agents. It grows a little faster
    than sqrt(n), so agents placed at random without overlapping never run out of room."""
    return 0.4 * (n_agents / 4) ** 0.75


def outpost_radius(n_agents: int) -> tuple[float, float]:
    """Inner and outer radius of the outposts' ring: (1.0, 1.4) for 4 agents. From the start, a scout
    gets there in 10 to 15 steps; a carrier covers about 0.5 in a whole 25-step episode."""
    half = start_half_width(n_agents)
    return half + OUTPOST_BEYOND[0], half + OUTPOST_BEYOND[1]


def two_speed_roles(n_agents: int) -> tuple[int, ...]:
    """Role of every agent of ``two_speed_spread``: 0 (scout) for the first ``n // 2``, then 1 (carrier).

    Landmark ``j`` is of the kind that role ``two_speed_roles(n)[j]`` covers: outposts, then depots.
    """
    if not isinstance(n_agents, int) or n_agents < 2:
        raise ValueError(f"two_speed_spread needs at least 2 agents (one of each role); got n_agents={n_agents!r}")
    n_fast = n_agents // 2
    return (0,) * n_fast + (1,) * (n_agents - n_fast)


class TwoSpeedSpread(BaseScenario):
    """Scouts and carriers cover outposts and depots (see the module docstring)."""

    def make_world(self, batch_dim: int, device: torch.device, **kwargs):
        n_agents = kwargs.pop("n_agents", 4)
        self.collision_penalty = float(kwargs.pop("collision_penalty", 1.0))
        ScenarioUtils.check_kwargs_consumed(kwargs)
        self.roles = two_speed_roles(n_agents)
        self.n_far = self.roles.count(0)
        self.start_half_width = start_half_width(n_agents)
        self.outpost_radius = outpost_radius(n_agents)

        world = World(batch_dim, device)
        colors = (Color.ORANGE, Color.BLUE)
        for i, role in enumerate(self.roles):
            body = BODIES[role]
            world.add_agent(
                Agent(
                    name=f"{ROLE_NAMES[role]}_{i}",
                    shape=Sphere(radius=body.radius),
                    mass=body.mass,
                    u_multiplier=body.u_multiplier,
                    max_speed=body.max_speed,
                    collide=True,
                    color=colors[role],
                )
            )
        for j, role in enumerate(self.roles):
            name = f"{'outpost' if role == 0 else 'depot'}_{j}"
            world.add_landmark(Landmark(name=name, collide=False, color=colors[role]))
        roles = torch.tensor(self.roles, device=device)
        # [landmark, agent]: True where the agent is of the kind that covers the landmark
        self._covers = roles[:, None] == roles[None, :]
        radii = torch.tensor([BODIES[r].radius for r in self.roles], device=device)
        self._contact = radii[:, None] + radii[None, :]  # overlap distance of every pair
        return world

    def reset_world_at(self, env_index: int | None = None):
        world, half = self.world, self.start_half_width
        ScenarioUtils.spawn_entities_randomly(
            world.agents,
            world,
            env_index,
            min_dist_between_entities=2 * CARRIER.radius + 0.02,
            x_bounds=(-half, half),
            y_bounds=(-half, half),
        )
        rows = world.batch_dim if env_index is None else 1
        low, high = self.outpost_radius
        for j, landmark in enumerate(world.landmarks):
            if j < self.n_far:  # on the far ring, at a random angle
                angle = torch.empty(rows, device=world.device).uniform_(0, 2 * math.pi)
                radius = torch.empty(rows, device=world.device).uniform_(low, high)
                pos = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
            else:  # near: anywhere in (slightly more than) the start area
                pos = torch.empty(rows, 2, device=world.device).uniform_(-(half + 0.1), half + 0.1)
            landmark.set_pos(pos, batch_index=env_index)

    def reward(self, agent: Agent):
        if agent is self.world.agents[0]:  # the team reward, computed once per step
            agents = torch.stack([a.state.pos for a in self.world.agents], dim=1)  # [E, n, 2]
            landmarks = torch.stack([lm.state.pos for lm in self.world.landmarks], dim=1)  # [E, m, 2]
            distance = torch.cdist(landmarks, agents).masked_fill(~self._covers, math.inf)  # [E, m, n]
            coverage = distance.min(dim=-1).values.sum(-1)  # [E]
            gaps = torch.cdist(agents, agents)
            overlapping = (gaps < self._contact).triu(diagonal=1).sum((-1, -2))
            self._team_reward = -coverage - self.collision_penalty * overlapping
        return self._team_reward

    def observation(self, agent: Agent):
        landmarks = [lm.state.pos - agent.state.pos for lm in self.world.landmarks]
        others = [other.state.pos - agent.state.pos for other in self.world.agents if other is not agent]
        return torch.cat([agent.state.pos, agent.state.vel, *landmarks, *others], dim=-1)


# ---------------------------------------------------------------------------- reference policies
# VMAS's 9 discrete actions: flat index a -> (x, y) = (a // 3, a % 3), each 0 = none, 1 = -1, 2 = +1.
_COMPONENT = (0.0, -1.0, 1.0)
_DIRECTIONS = torch.tensor([[_COMPONENT[a // 3], _COMPONENT[a % 3]] for a in range(9)])


class ScriptedTwoSpeed:
    """Go-to-a-landmark controller for ``two_speed_spread`` with discrete actions.

    At every step each agent is given one landmark by an assignment over the whole team that
    minimises the summed distance (:func:`marlpg.envs.reference.assign_landmarks`). The
    **role-aware** script assigns scouts among the outposts and carriers among the depots; the
    **role-blind** script assigns over all landmarks, as if every agent could cover every landmark.
    Both then steer with the agent's own dynamics: the action whose predicted next velocity is
    closest to ``remaining distance / tau``.
    """

    def __init__(self, n_agents: int, role_aware: bool = True, tau: float = 0.3):
        self.n = n_agents
        self.role_aware = role_aware
        self.tau = tau
        roles = torch.tensor(two_speed_roles(n_agents))
        self.gain = torch.tensor([0.1 * BODIES[r].acceleration for r in roles])  # velocity change per unit action
        self.wrong_kind = roles[:, None] != roles[None, :]  # [agent, landmark]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        from .reference import assign_landmarks

        n = self.n
        vel = obs[..., 2:4]
        rel = obs[..., 4 : 4 + 2 * n].reshape(*obs.shape[:2], n, 2)  # [E, agent, landmark, 2]
        cost = rel.norm(dim=-1)
        if self.role_aware:  # a large cost, not infinity, keeps the sums of the assignment finite
            cost = cost.masked_fill(self.wrong_kind.to(obs.device), 1e6)
        choice = assign_landmarks(cost)
        to_go = torch.gather(rel, 2, choice[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)
        v_desired = to_go / self.tau
        v_next = (0.75 * vel).unsqueeze(-2) + self.gain.to(obs.device)[:, None, None] * _DIRECTIONS.to(obs.device)
        return (v_next - v_desired.unsqueeze(-2)).norm(dim=-1).argmin(-1)


def two_speed_references(n_agents: int = 4, episodes: int = 1000, seed: int = 0, horizon: int = 25) -> dict[str, float]:
    """Mean episode return per agent of a random policy and of the role-blind and role-aware scripts,
    all on the same episodes of ``two_speed_spread``."""
    from . import make_env
    from .reference import evaluate_policy, random_policy

    env = make_env("vmas:marlpg.two_speed_spread", min(episodes, 1000), n_agents=n_agents, horizon=horizon, seed=seed)
    policies = {
        "random": random_policy(env.spec, seed=seed),
        "role-blind script": ScriptedTwoSpeed(n_agents, role_aware=False),
        "role-aware script": ScriptedTwoSpeed(n_agents, role_aware=True),
    }
    return {name: evaluate_policy(env, policy, episodes, seed) for name, policy in policies.items()}


SCENARIOS = {"two_speed_spread": TwoSpeedSpread}


def build_scenario(name: str) -> BaseScenario:
    """A fresh instance of the marlpg scenario ``name`` (``"two_speed_spread"`` or ``"marlpg.two_speed_spread"``)."""
    key = name.removeprefix("marlpg.")
    if key not in SCENARIOS:
        raise ValueError(f"unknown marlpg scenario {name!r}; known: {sorted('marlpg.' + k for k in SCENARIOS)}")
    return SCENARIOS[key]()
