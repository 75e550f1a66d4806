"""Reference policies that put a learned policy's return in context on ``simple_spread``.

Two anchors, measured on the same environment, seed and number of episodes as the learner:

* :func:`random_policy`: uniform random actions (the floor any learner should clear);
* :func:`scripted_policy`: a hand-written controller with privileged structure. It assigns agents
  to landmarks (the assignment minimising the summed distance, by brute force over permutations
  for up to 7 agents, greedily beyond) and drives each agent straight at its landmark with a
  velocity controller that knows the particle dynamics, so it brakes instead of overshooting.
  It ignores collisions, so it is a strong but not an optimal policy.

``gap = (x - random) / (scripted - random)`` then says how much of the distance between the two a
learner closed (1 = as good as the script). :func:`reference_returns` computes and caches both
numbers for an environment name, and returns them as a :class:`Reference` with a ``gap`` method.

Both backends of the task are supported:

* VMAS ``simple_spread``: observation ``[pos(2), vel(2), landmark_rel(2n), other_rel(2(n-1))]``;
  9 discrete actions (flat index ``a``: x-component ``a // 3``, y-component ``a % 3``, each
  0 = no force, 1 = negative, 2 = positive) or a 2-D force in [-1, 1]; unit force, drag 0.25,
  dt 0.1, velocity updated before position.
* mpe2 ``simple_spread_v3``: observation ``[vel(2), pos(2), landmark_rel(2n), other_rel(2(n-1)),
  comm(2(n-1))]``; 5 discrete actions (no-op, left, right, down, up) or a Box [0, 1]^5 whose
  force is ``(a[2] - a[1], a[4] - a[3])`` (the protocol's [-1, 1] maps onto it); force scale 5,
  damping 0.25, dt 0.1, position updated with the old velocity.

A policy here is any callable ``policy(obs [E, n, d_obs]) -> actions`` in the protocol's format.

Command line (prints exactly two lines, ``random=...`` and ``scripted=...``)::

    python -m marlpg.envs.reference --env vmas:simple_spread --n-agents 3 --episodes 1000
"""
from __future__ import annotations

import argparse
import functools
import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from .protocol import BatchedEnv, EnvSpec

Policy = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------- random
def random_policy(spec: EnvSpec, seed: int | None = None) -> Policy:
    """Uniform random actions: indices in ``0..n_actions-1``, or floats uniform in [-1, 1]."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))

    def policy(obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        if spec.discrete:
            actions = torch.randint(0, spec.n_actions, (batch, spec.n_agents), generator=generator)
        else:
            actions = torch.rand((batch, spec.n_agents, spec.n_actions), generator=generator) * 2 - 1
        return actions.to(obs.device)

    return policy


# ---------------------------------------------------------------------------- scripted
@dataclass(frozen=True)
class _Dynamics:
    pos: int  # where the agent's absolute position starts in its observation
    vel: int  # where its velocity starts
    force: float  # acceleration per unit action
    drag: float
    dt: float
    position_first: bool  # position integrates the old velocity (mpe) rather than the new (vmas)


_DYNAMICS = {
    "vmas": _Dynamics(pos=0, vel=2, force=1.0, drag=0.25, dt=0.1, position_first=False),
    "mpe2": _Dynamics(pos=2, vel=0, force=5.0, drag=0.25, dt=0.1, position_first=True),
}

# Time constant (seconds) of the approach: desired speed = remaining distance / tau. Tuned on a
# grid (0.05 .. 1.0) with 3 agents, 25 steps, seed 0, 1000 (vmas) / 200 (mpe2) episodes. Small
# values win: VMAS agents are slow (at most ~0.06 per step) and mostly travel at full force;
# mpe2 agents are fast (up to ~0.2-0.3 per step) and must brake, which the controller's
# one-step velocity model does.
_DEFAULT_TAU = {
    ("vmas", True): 0.1,  # key: (backend, discrete)
    ("vmas", False): 0.1,
    ("mpe2", True): 0.15,
    ("mpe2", False): 0.15,
}


def _candidate_forces(backend: str) -> torch.Tensor:
    """The unit force of every discrete action, ``[K, 2]``, indexed by action."""
    if backend == "vmas":
        component = {0: 0.0, 1: -1.0, 2: 1.0}
        return torch.tensor([[component[a // 3], component[a % 3]] for a in range(9)])
    return torch.tensor([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])


def assign_landmarks(distance: torch.Tensor, exhaustive_up_to: int = 7) -> torch.Tensor:
    """Landmark index for every agent, ``[E, n]``, from agent-landmark distances ``[E, n, n]``.

    Minimises the summed distance exactly (every permutation) for ``n <= exhaustive_up_to``,
    otherwise greedily (closest remaining agent-landmark pair first).
    """
    batch, n, m = distance.shape
    if n != m:
        raise ValueError(f"need as many landmarks as agents; got {n} agents and {m} landmarks")
    if n <= exhaustive_up_to:
        perms = torch.tensor(list(itertools.permutations(range(n))), device=distance.device)  # [K, n]
        agents = torch.arange(n, device=distance.device)
        totals = distance[:, agents, perms].sum(-1)  # [E, K]
        return perms[totals.argmin(-1)]
    d = distance.clone()
    out = torch.empty(batch, n, dtype=torch.long, device=distance.device)
    rows = torch.arange(batch, device=distance.device)
    for _ in range(n):
        flat = d.flatten(1).argmin(-1)
        agent, landmark = flat // n, flat % n
        out[rows, agent] = landmark
        d[rows, agent, :] = math.inf
        d[rows, :, landmark] = math.inf
    return out


class ScriptedSpread:
    """Go-to-assigned-landmark controller for ``simple_spread`` (see the module docstring).

    The desired velocity points at the agent's landmark with speed ``distance / tau``; the
    action is the one whose predicted next velocity is closest to it (discrete), or the force
    that reaches it in one step, clipped to the action box per axis (continuous; clipping per
    axis rather than scaling keeps diagonal moves at full force, which scored better).
    """

    def __init__(self, spec: EnvSpec, backend: str, tau: float | None = None):
        if backend not in _DYNAMICS:
            raise ValueError(f"backend must be one of {sorted(_DYNAMICS)}; got {backend!r}")
        expected = {"vmas": 4 * spec.n_agents + 2, "mpe2": 6 * spec.n_agents}[backend]
        if spec.obs_dim != expected:
            raise ValueError(
                f"{backend} simple_spread with {spec.n_agents} agents has observations of size {expected}; "
                f"got {spec.obs_dim} (is this simple_spread on {backend}?)"
            )
        if spec.discrete and spec.n_actions != {"vmas": 9, "mpe2": 5}[backend]:
            raise ValueError(f"unexpected number of discrete actions {spec.n_actions} for {backend} simple_spread")
        self.spec = spec
        self.backend = backend
        self.dyn = _DYNAMICS[backend]
        self.tau = float(_DEFAULT_TAU[(backend, spec.discrete)] if tau is None else tau)
        self._forces = _candidate_forces(backend) if spec.discrete else None

    def targets(self, obs: torch.Tensor) -> torch.Tensor:
        """Each agent's assigned landmark relative to itself, ``[E, n, 2]``."""
        n = self.spec.n_agents
        rel = obs[..., 4 : 4 + 2 * n].reshape(*obs.shape[:2], n, 2)  # [E, agent, landmark, 2]
        choice = assign_landmarks(rel.norm(dim=-1))
        return torch.gather(rel, 2, choice[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        dyn = self.dyn
        obs = obs.float()
        vel = obs[..., dyn.vel : dyn.vel + 2]
        to_go = self.targets(obs)
        if dyn.position_first:  # this step's move is already fixed by the current velocity
            to_go = to_go - vel * dyn.dt
        v_desired = to_go / self.tau
        v_coast = vel * (1 - dyn.drag)
        gain = dyn.force * dyn.dt  # velocity change per unit action
        if self.spec.discrete:
            forces = self._forces.to(obs.device)
            v_next = v_coast.unsqueeze(-2) + gain * forces  # [E, n, K, 2]
            return (v_next - v_desired.unsqueeze(-2)).norm(dim=-1).argmin(-1)
        u = (v_desired - v_coast) / gain
        u = u.clamp(-1, 1)
        if self.backend == "vmas":
            return u
        # mpe2 Box [0, 1]^5: force = (b[2] - b[1], b[4] - b[3]); protocol value p maps to b = (p + 1) / 2.
        box = torch.zeros(*u.shape[:-1], 5, device=obs.device)
        box[..., 1], box[..., 2] = (-u[..., 0]).clamp(min=0), u[..., 0].clamp(min=0)
        box[..., 3], box[..., 4] = (-u[..., 1]).clamp(min=0), u[..., 1].clamp(min=0)
        return box * 2 - 1


def scripted_policy(spec: EnvSpec, backend: str, tau: float | None = None) -> Policy:
    """The scripted ``simple_spread`` controller for ``backend`` ("vmas" or "mpe2")."""
    return ScriptedSpread(spec, backend, tau)


# ---------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_policy(env: BatchedEnv, policy: Policy, episodes: int, seed: int | None = 0) -> float:
    """Mean episode return per agent: each agent's reward summed over an episode, averaged over
    agents and over the first ``episodes`` episodes to finish (``env.reset(seed)`` first)."""
    if episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    obs = env.reset(seed).obs
    running = torch.zeros(env.num_envs, env.spec.n_agents, dtype=torch.float64, device=env.device)
    finished: list[float] = []
    max_steps = (episodes // env.num_envs + 2) * env.spec.horizon  # every copy ends by the horizon
    for _ in range(max_steps):
        step = env.step(policy(obs))
        running += step.reward.double()
        if bool(step.done.any()):
            index = step.done.nonzero().flatten()
            finished.extend(running[index].mean(-1).tolist())
            running[index] = 0
            if len(finished) >= episodes:
                break
        obs = step.obs
    return float(sum(finished[:episodes]) / episodes)


def step_seconds(env: BatchedEnv, steps: int, policy: Policy | None = None) -> float:
    """Wall seconds per batched step (every copy, every agent) under ``policy`` (default: random actions,
    seed 0), after one warm-up step that is not timed (first-call costs: compilation, allocation)."""
    if steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    policy = policy or random_policy(env.spec, seed=0)
    obs = env.reset(seed=0).obs
    obs = env.step(policy(obs)).obs
    began = time.perf_counter()
    for _ in range(steps):
        obs = env.step(policy(obs)).obs
    return (time.perf_counter() - began) / steps


class Reference(NamedTuple):
    random: float
    scripted: float

    def gap(self, x: float) -> float:
        """How much of the random-to-scripted distance ``x`` closed: 0 = random, 1 = scripted."""
        return (x - self.random) / (self.scripted - self.random)


def _backend(env_name: str) -> str:
    from . import parse_env_name

    backend, scenario = parse_env_name(env_name)
    if (backend, scenario) == ("vmas", "simple_spread"):
        return "vmas"
    if (backend, scenario) in (("mpe2", "simple_spread_v3"), ("pettingzoo", "mpe2.simple_spread_v3")):
        return "mpe2"
    raise ValueError(f"reference policies exist for simple_spread only ('vmas:simple_spread', 'mpe2:simple_spread_v3'); got {env_name!r}")


def _defaults(backend: str, episodes: int | None, num_envs: int | None) -> tuple[int, int]:
    if episodes is None:
        episodes = 1000 if backend == "vmas" else 200
    if num_envs is None:
        num_envs = min(episodes, 1000) if backend == "vmas" else min(episodes, 20)
    return episodes, num_envs


@functools.lru_cache(maxsize=None)
def reference_returns(
    env_name: str,
    n_agents: int = 3,
    continuous: bool = False,
    horizon: int = 25,
    episodes: int | None = None,
    seed: int = 0,
    num_envs: int | None = None,
) -> Reference:
    """Random and scripted mean episode return per agent for a ``simple_spread`` setting (cached).

    Defaults: 1000 episodes on VMAS, 200 on mpe2, seed 0.
    """
    from . import make_env

    backend = _backend(env_name)
    episodes, num_envs = _defaults(backend, episodes, num_envs)
    env = make_env(env_name, num_envs, n_agents=n_agents, horizon=horizon, continuous=continuous, seed=seed)
    random_return = evaluate_policy(env, random_policy(env.spec, seed=seed), episodes, seed)
    scripted_return = evaluate_policy(env, scripted_policy(env.spec, backend), episodes, seed)
    if hasattr(env, "close"):
        env.close()
    return Reference(random_return, scripted_return)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m marlpg.envs.reference",
        description="Mean episode return per agent of the random and the scripted simple_spread policies.",
    )
    parser.add_argument("--env", default="vmas:simple_spread", help="vmas:simple_spread or mpe2:simple_spread_v3")
    parser.add_argument("--n-agents", type=int, default=3)
    parser.add_argument("--continuous", action="store_true")
    parser.add_argument("--horizon", type=int, default=25)
    parser.add_argument("--episodes", type=int, default=None, help="default 1000 (vmas) or 200 (mpe2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--tau", type=float, default=None, help="scripted controller's time constant (tuning)")
    args = parser.parse_args(argv)
    # These environments step tiny tensors; intra-op threads only add overhead (and, on a loaded
    # machine with few cores, OpenMP's barriers can slow each VMAS step by two orders of magnitude).
    torch.set_num_threads(1)
    try:
        backend = _backend(args.env)
    except ValueError as exc:
        parser.error(str(exc))
    if args.tau is None:
        ref = reference_returns(
            args.env, args.n_agents, args.continuous, args.horizon, args.episodes, args.seed, args.num_envs
        )
    else:
        from . import make_env

        episodes, num_envs = _defaults(backend, args.episodes, args.num_envs)
        env = make_env(args.env, num_envs, n_agents=args.n_agents, horizon=args.horizon,
                       continuous=args.continuous, seed=args.seed)
        ref = Reference(
            evaluate_policy(env, random_policy(env.spec, seed=args.seed), episodes, args.seed),
            evaluate_policy(env, scripted_policy(env.spec, backend, args.tau), episodes, args.seed),
        )
    print(f"random={ref.random:.4f}")
    print(f"scripted={ref.scripted:.4f}", flush=True)


if __name__ == "__main__":
    main()
