"""The fleet: ``n`` robots crossing one floor to goals of their own without colliding (``make_env("fleet", ...)``).

The task behind chapter 09's scaling curves: cooperative navigation with collision avoidance whose
per-robot difficulty does not change with the fleet's size, so that what changes with ``n`` is the
learning problem (the critic's input, the credit, the crowd), not the task.

* Floor: a square of side ``sqrt(n / density)`` centred at 0 (``density`` robots per unit area,
  default 1: four robots on [-1, 1]^2, the density of VMAS's ``navigation`` default), with walls.
* Robots: discs of radius ``r = 0.1``. They start on distinct cells of a jittered grid (no overlaps
  at t = 0); each robot's goal lies uniformly in the disc of radius ``goal_distance`` (default 1)
  around its start, inside the floor, and apart from the other goals (no two closer than 2r, so
  every robot can park on its own without a collision). Paths cross: at density 1 a robot's neighbours are about one
  unit away, the length of a trip.
* Dynamics: holonomic, velocity first (as VMAS's particles): ``v <- (1 - 0.25) v + 3 u dt`` with
  ``dt = 0.1`` and ``u`` one of 5 discrete actions (stay, -x, +x, -y, +y); top speed 1.2 units per
  second (0.12 per step); a wall stops the velocity component that points into it. Robots pass
  through each other: a collision is counted and paid for, not simulated as contact.
* Reward of robot a at step t: its progress minus what its collisions cost,
  ``r_a,t = d_a,t-1 - d_a,t - c * k_a,t``, with ``d`` the distance to its goal, ``k_a,t`` the number
  of other robots it overlaps after the step (centres closer than 2r) and ``c = collision_cost``
  (default 0.25). The progress telescopes: a robot's return is ``d_a,0 - d_a,H - c * sum_t k_a,t``, so
  the best return is its start distance (about 0.67 on average) whatever ``n`` is. With
  ``shared_reward=True`` every robot gets the fleet's mean instead (one team reward).
* Observation of robot a (21 features, the same for every ``n``): its velocity (2), its goal's offset
  (2), its position divided by the floor's half-side (2: where the walls are), then its 3 nearest
  neighbours within ``sensing_range`` (default 1) by distance, each as offset (2), relative velocity
  (2) and a flag (1) that is 0 (with zero features) where fewer than 3 are in range. A local view.
* Global state: every robot's observation in order, then the time fraction t / H (``21 n + 1``).
* Episodes last ``H`` steps (``horizon``, default 25); the horizon is terminal (see the protocol).

Each step's transition also carries ``collisions [E, n]`` (the overlaps ``k_a,t``) and ``arrived
[E, n]`` (robots within ``r`` of their goal after the step, before any reset); :func:`fleet_metrics`
turns them into the numbers chapter 09 reports: return per robot, collisions per robot per
episode, and the success rate (the share of robots on their goal at the episode's end).

Why not VMAS's ``navigation`` with lidar, the obvious candidate: its step costs grow like the
number of robot pairs times the lidar rays, in Python loops over entity pairs. Measured here (16
copies, one CPU thread, torch 2.13): 5.6 ms per step at 4 robots, 93 at 32, 282 at 64, 981 at 128,
so a 128-robot run would collect about 16 frames per second. This floor's step is one batch of
tensor operations over all pairs (``benchmarks/bench_fleet.py`` prints its speed against VMAS's).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .protocol import EnvSpec, Observation, Transition, check_actions, time_feature

RADIUS, DT, DAMPING, ACCELERATION = 0.1, 0.1, 0.25, 3.0
NEIGHBOURS = 3
OBS_DIM = 6 + 5 * NEIGHBOURS
ACTION_DIRECTIONS = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])


class FleetTransition(Transition):
    """A :class:`Transition` with ``collisions [E, n]`` (overlaps after the step) and ``arrived [E, n]`` bool."""

    __slots__ = ("collisions", "arrived")

    def __init__(self, *args, collisions: torch.Tensor, arrived: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.collisions, self.arrived = collisions, arrived


def _positive(name: str, value, kind=float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not value > 0:
        raise ValueError(f"{name} must be a positive {'number' if kind is float else 'integer'}; got {value!r}")


class FleetNavigation:
    """``num_envs`` copies of the fleet floor, behind the batched protocol; copies reset themselves when done."""

    def __init__(self, num_envs: int, n_agents: int = 4, horizon: int = 25, *, density: float = 1.0,
                 goal_distance: float = 1.0, collision_cost: float = 0.25, sensing_range: float = 1.0,
                 shared_reward: bool = False, device: str | torch.device = "cpu", seed: int | None = None):
        _positive("num_envs", num_envs, int)
        _positive("horizon", horizon, int)
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 2:
            raise ValueError(f"n_agents must be an integer >= 2 (a fleet); got {n_agents!r}")
        for name, value in (("density", density), ("goal_distance", goal_distance), ("sensing_range", sensing_range)):
            _positive(name, value)
        if isinstance(collision_cost, bool) or not isinstance(collision_cost, (int, float)) or collision_cost < 0:
            raise ValueError(f"collision_cost must be a number >= 0; got {collision_cost!r}")
        self.num_envs, self.n = num_envs, n_agents
        self.half_side = math.sqrt(n_agents / density) / 2
        cells = math.ceil(math.sqrt(n_agents))
        if self.half_side * 2 / cells <= 2 * RADIUS:
            raise ValueError(f"density {density!r} packs {n_agents} robots of radius {RADIUS} too tightly to start apart; "
                             f"use a density below {1 / (2 * RADIUS) ** 2:.0f}")
        self.goal_distance, self.collision_cost = float(goal_distance), float(collision_cost)
        self.sensing_range, self.shared_reward = float(sensing_range), bool(shared_reward)
        self.device = torch.device(device)
        self.spec = EnvSpec(n_agents=n_agents, obs_dim=OBS_DIM, state_dim=n_agents * OBS_DIM + 1, discrete=True,
                            n_actions=len(ACTION_DIRECTIONS), horizon=horizon)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        self.directions = ACTION_DIRECTIONS.to(self.device)
        shape = (num_envs, n_agents, 2)
        self.pos, self.vel, self.goal = (torch.zeros(shape, device=self.device) for _ in range(3))
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ layout
    def _spawn(self, where: torch.Tensor) -> None:
        """New starts and goals in the copies ``where`` marks."""
        count = int(where.sum())
        if count == 0:
            return
        cells = math.ceil(math.sqrt(self.n))
        width = 2 * self.half_side / cells
        rand = lambda *shape: torch.rand(*shape, generator=self.generator, device=self.device)  # noqa: E731
        chosen = rand(count, cells * cells).argsort(-1)[:, : self.n]  # distinct cells
        corner = torch.stack([chosen % cells, chosen // cells], -1).float() * width - self.half_side
        margin = RADIUS + 0.05 * width
        start = corner + margin + rand(count, self.n, 2) * (width - 2 * margin)
        goal = self._goals_near(start, rand)
        self.pos[where], self.goal[where] = start, goal
        self.vel[where] = 0.0
        self.t[where] = 0

    def _goals_near(self, start: torch.Tensor, rand) -> torch.Tensor:
        """A goal uniform in the disc of radius ``goal_distance`` around each start, inside the floor; a goal
        that overlaps another robot's is drawn again (up to 50 times), so that every robot can park on its
        goal without a collision."""
        limit = self.half_side - RADIUS
        goal = torch.empty_like(start)
        redraw = torch.ones(start.shape[:2], dtype=torch.bool, device=self.device)
        for _ in range(50):
            angle, reach = 2 * math.pi * rand(*redraw.shape), self.goal_distance * rand(*redraw.shape).sqrt()
            offset = torch.stack([angle.cos(), angle.sin()], -1) * reach.unsqueeze(-1)
            goal = torch.where(redraw.unsqueeze(-1), (start + offset).clamp(-limit, limit), goal)
            gaps = torch.cdist(goal, goal) + torch.diag(torch.full((self.n,), math.inf, device=self.device))
            redraw = (gaps < 2 * RADIUS).any(-1)
            if not bool(redraw.any()):
                break
        return goal

    # ------------------------------------------------------------------ sensing
    def _pair_distances(self) -> torch.Tensor:
        """``[E, n, n]`` distances between robots, +inf on the diagonal."""
        gaps = torch.cdist(self.pos, self.pos)
        return gaps + torch.diag(torch.full((self.n,), math.inf, device=self.device))

    def _observe(self) -> Observation:
        distances = self._pair_distances()
        k = min(NEIGHBOURS, self.n - 1)
        nearest, index = distances.topk(k, dim=-1, largest=False)  # [E, n, k], sorted by distance
        gather = lambda x: torch.gather(x.unsqueeze(1).expand(-1, self.n, -1, -1), 2,  # noqa: E731
                                        index.unsqueeze(-1).expand(-1, -1, -1, 2))
        seen = (nearest <= self.sensing_range).unsqueeze(-1).float()
        neighbours = torch.cat([(gather(self.pos) - self.pos.unsqueeze(2)) * seen,
                                (gather(self.vel) - self.vel.unsqueeze(2)) * seen, seen], -1)  # [E, n, k, 5]
        if k < NEIGHBOURS:  # a fleet of 2 or 3: the missing neighbours are absent
            neighbours = torch.cat([neighbours, neighbours.new_zeros(self.num_envs, self.n, NEIGHBOURS - k, 5)], 2)
        obs = torch.cat([self.vel, self.goal - self.pos, self.pos / self.half_side, neighbours.flatten(2)], -1)
        state = torch.cat([obs.flatten(1), time_feature(self.t, self.spec.horizon)], -1)
        return Observation(obs, state)

    def collisions(self) -> torch.Tensor:
        """``[E, n]``: how many other robots each one overlaps now."""
        return (self._pair_distances() < 2 * RADIUS).sum(-1).float()

    def goal_distances(self) -> torch.Tensor:
        return (self.goal - self.pos).norm(dim=-1)

    # ------------------------------------------------------------------ protocol
    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._spawn(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._observe()

    def step(self, actions: torch.Tensor) -> FleetTransition:
        check_actions(actions, self.spec, self.num_envs)
        before = self.goal_distances()
        self.vel = (1 - DAMPING) * self.vel + ACCELERATION * DT * self.directions[actions]
        self.pos = self.pos + self.vel * DT
        limit = self.half_side - RADIUS
        at_wall = (self.pos.abs() >= limit) & (self.pos * self.vel > 0)
        self.pos, self.vel = self.pos.clamp(-limit, limit), self.vel.masked_fill(at_wall, 0.0)
        after, overlaps = self.goal_distances(), self.collisions()
        reward = before - after - self.collision_cost * overlaps
        if self.shared_reward:
            reward = reward.mean(-1, keepdim=True).expand(-1, self.n).clone()
        arrived = after <= RADIUS
        self.t = self.t + 1
        done = self.t >= self.spec.horizon
        final_obs, final_state = self._observe()
        self._spawn(done)
        obs, state = self._observe()
        return FleetTransition(obs, state, reward, done, final_obs=final_obs, final_state=final_state,
                               collisions=overlaps, arrived=arrived)


# ---------------------------------------------------------------------- references and metrics
def straight_to_goal(obs: torch.Tensor) -> torch.Tensor:
    """The scripted robot: the action that best steers its velocity toward ``2 x (goal offset)``, braking
    near the goal; it ignores the other robots, so it is fast but collides wherever paths cross."""
    velocity, offset = obs[..., 0:2], obs[..., 2:4]
    wanted = (2.0 * offset).clamp(-1.2, 1.2) - (1 - DAMPING) * velocity
    directions = ACTION_DIRECTIONS.to(obs.device)
    scores = wanted @ directions.T - 0.5 * ACCELERATION * DT * (directions ** 2).sum(-1)
    return scores.argmax(-1)


@torch.no_grad()
def fleet_metrics(env: FleetNavigation, act: Callable[[torch.Tensor], torch.Tensor], seed: int) -> dict[str, float]:
    """One episode in every copy of ``env`` with ``act`` (observations -> actions): the mean return per robot,
    collisions per robot per episode (overlaps summed over steps, each pair counted once per robot), and the
    success rate (the share of robots within ``r`` of their goal when the episode ends)."""
    if not isinstance(env, FleetNavigation):
        raise ValueError(f"fleet_metrics needs a FleetNavigation environment; got {type(env).__name__}")
    obs = env.reset(seed=seed).obs
    total = torch.zeros(env.num_envs, env.n, device=env.device)
    collisions = torch.zeros_like(total)
    for _ in range(env.spec.horizon):
        step = env.step(act(obs))
        total += step.reward
        collisions += step.collisions
        obs = step.obs
    return {
        "return": total.mean().item(),
        "collisions": collisions.mean().item(),
        "success": step.arrived.float().mean().item(),
    }
