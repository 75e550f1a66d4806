"""MADDPG: deterministic policy gradients with one centralized critic per agent (Lowe et al., 2017).

Each agent i acts with a deterministic actor a_i = mu_i(o_i) on its own observation. During
training, agent i also has a critic Q_i(x, a_1, ..., a_n) on the global state and the joint action,
regressed on agent i's *own* reward, so agents with different (even opposed) rewards each get a
critic of their own game. From a replay buffer D of transitions (x, o, a, r, x', o', d):

    critic:  L(phi_i) = E_D[(Q_i(x, a_1..a_n) - y_i)^2],
             y_i = r_i + gamma (1 - d) Q'_i(x', mu'_1(o'_1), ..., mu'_n(o'_n))       (target networks ')
    actor:   grad_theta_i J = E_D[ grad_theta_i mu_i(o_i) grad_{a_i} Q_i(x, a_1..a_n) |_{a_i = mu_i(o_i)} ]
             (the other agents' actions a_j come from the buffer; only agent i's is replaced)
    targets: theta' <- tau theta + (1 - tau) theta'  after every update (soft update)

The target y_i is not a fixed regression target: mu'_j are the other agents' *current* target
policies, which move (by tau per update) as they learn, so each critic tracks a moving target.
d is 1 where the episode terminated (the horizon is a termination, see
:mod:`marlpg.envs.protocol`); where it was truncated, x' and o' are the state the episode reached
and the target bootstraps from it.

A deterministic policy does not explore by itself: actions are taken with Gaussian noise whose
scale decays over training, after a warm-up of uniform random actions. Discrete actions use the
Gumbel-softmax, as in the reference implementation (openai/maddpg): the actor is then a
stochastic policy over one-hot actions. Exploration samples from it, the actor update
differentiates through its straight-through one-hot sample, the targets' next actions are samples
from the target actors (so the critic is trained on the policy the actor improves, not on a greedy
one), and the actor loss adds ``logit_reg`` (1e-3, as openai/maddpg) times the mean squared logit,
which keeps the logits from growing without bound while the straight-through gradient pushes them.
Deployment and evaluation act greedily (argmax). The critic sees one-hot actions; with ``gumbel="soft"``
it sees, and the buffer stores, the relaxed samples themselves, as openai/maddpg does (the environment,
whose discrete actions are indices, still gets the sample's largest entry, which has the policy's
distribution).

IDDPG (``iddpg=True``) is the ablation: each critic sees only its own observation, its own
action and the time fraction, Q_i(o_i, a_i, t/H), so other agents are part of the environment.
With ``share=True`` (homogeneous agents) one actor and one critic serve every agent, each
input carrying the agent's one-hot ID.

For large teams of interchangeable agents (``critic="pooled"``), the critic's input x, a_1..a_n grows
with n and fixes n when it is built. The pooled critic reads a set of observation-action pairs instead
(:mod:`marlpg.core.critics`):

    Q_i = psi([e_i, m, tau]),   e_j = phi(o_j, a_j),   m = (1/n) sum_j e_j,

one phi and one psi for every agent, no IDs. In the actor loss agent i's action is replaced in its own
critic only, which changes e_i and moves the mean by (e_i' - e_i)/n: every agent's replaced Q costs
O(n), where the concatenated critic asks n critics about n joint actions, O(n^2).

Run ``python -m marlpg.maddpg --help`` for the command line.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from marlpg.core.agents import with_agent_ids
from marlpg.core.critics import PooledCritic
from marlpg.core.evaluation import gap_closed
from marlpg.core.networks import mlp
from marlpg.core.replay import ReplayBuffer
from marlpg.core.runlog import progress_bar
from marlpg.core.schedule import IterationBudget
from marlpg.core.seeding import resolve_device, seed_everything
from marlpg.core.threads import cpu_threads, update_thread_count
from marlpg.envs import EnvSpec, make_env

ENVS = ("pricing", "vmas:simple_spread", "fleet", "fleet:shared")
CRITICS = ("concat", "pooled")  # Q_i on the global state and joint action, or on the set of (o_j, a_j)
GUMBELS = ("hard", "soft")  # what the critic and the buffer see of a discrete action (the module docstring)


@dataclass
class MADDPGConfig(IterationBudget):
    env: str = "vmas:simple_spread"
    n_agents: int = 3
    continuous: bool = True  # False: discrete actions through the Gumbel-softmax
    num_envs: int = 64
    horizon: int = 25
    rollout_steps: int = 25  # environment steps per iteration, in every copy
    updates_per_iteration: int = 25  # gradient steps after each iteration's collection
    total_frames: int = 300_000  # a frame is one step of one environment copy (all agents)
    seed: int = 0
    device: str = "cpu"
    iddpg: bool = False  # critics on own observation and action only
    critic: str = "concat"  # one of CRITICS: "pooled" for large teams (see the module docstring)
    share: bool = True  # one actor and one critic for all agents (with one-hot IDs)
    gamma: float = 0.95
    tau: float = 0.01
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    batch_size: int = 1024
    buffer_size: int = 100_000  # transitions
    warmup_frames: int = 10_000  # uniform random actions before the first update
    noise_start: float = 0.5  # std of the Gaussian exploration noise (continuous actions)
    noise_end: float = 0.05
    noise_decay: float = 0.5  # fraction of training over which the noise decays linearly
    gumbel_temperature: float = 1.0
    gumbel: str = "hard"  # one of GUMBELS: discrete actions as straight-through one-hots, or openai/maddpg's soft samples
    logit_reg: float = 1e-3  # discrete: weight of the mean squared actor logit in the actor loss (openai/maddpg)
    max_grad_norm: float = 1.0
    initial_action: float | None = None  # continuous: start every actor near this action (None: near 0)
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (128, 128)
    eval_episodes: int = 200
    eval_every: int = 0  # iterations between deterministic evaluations during training (0: only at the end)
    update_threads: int | None = None  # CPU threads for updates (None: MARLPG_THREADS, else all)

    def __post_init__(self):
        self.actor_hidden, self.critic_hidden = tuple(self.actor_hidden), tuple(self.critic_hidden)
        positive = (
            "n_agents", "num_envs", "horizon", "rollout_steps", "updates_per_iteration", "total_frames",
            "batch_size", "buffer_size", "eval_episodes",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("warmup_frames", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
        for name in ("actor_lr", "critic_lr", "gumbel_temperature", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not self.logit_reg >= 0:
            raise ValueError(f"logit_reg must be non-negative; got {self.logit_reg!r}")
        for name in ("tau", "noise_decay"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1]; got {getattr(self, name)!r}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must lie in [0, 1]; got {self.gamma!r}")
        if not 0 <= self.noise_end <= self.noise_start:
            raise ValueError(f"need 0 <= noise_end <= noise_start; got {self.noise_end!r}, {self.noise_start!r}")
        if self.buffer_size < self.num_envs * self.rollout_steps:
            raise ValueError(f"buffer_size={self.buffer_size} cannot hold one iteration ({self.num_envs * self.rollout_steps} transitions)")
        if self.initial_action is not None and not (self.continuous and -1 < self.initial_action < 1):
            raise ValueError(f"initial_action needs continuous actions and a value in (-1, 1); got {self.initial_action!r}")
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {', '.join(map(repr, CRITICS))}; got {self.critic!r}")
        if self.gumbel not in GUMBELS:
            raise ValueError(f"gumbel must be one of {', '.join(map(repr, GUMBELS))}; got {self.gumbel!r}")
        if self.gumbel == "soft" and self.continuous:
            raise ValueError("gumbel='soft' is about discrete actions; it needs continuous=False (on the command line, --discrete)")
        if self.critic == "pooled" and (self.iddpg or not self.share):
            raise ValueError("critic='pooled' is one shared critic over every agent; it needs iddpg=False and share=True")
        if self.env == "pricing" and not self.continuous:
            raise ValueError("the pricing game has continuous prices only; got continuous=False")

    @classmethod
    def for_env(cls, env: str, **overrides) -> "MADDPGConfig":
        """The defaults for ``env`` (see PRESETS and :func:`fleet_preset`), with ``overrides`` on top."""
        preset = fleet_preset(overrides.get("n_agents", 4)) if env in FLEET_ENVS else PRESETS.get(env, {})
        return cls(env=env, **{**preset, **overrides})


# The pricing game is one-shot (horizon 1): a small critic and a short run suffice; one step and
# one update per iteration, so the curve records the prices after every update. The noise stays
# large to the end: the actor follows the critic's slope in its own price, and that slope is only
# as good as the spread of prices in the buffer (the deterministic prices are evaluated without it).
# Measured over 6 seeds: final noise 0.2 put every seed within 2.5% of Nash, 0.05 within 5%.
PRESETS = {
    "pricing": dict(
        n_agents=2, horizon=1, num_envs=64, rollout_steps=1, updates_per_iteration=1, total_frames=32_000,
        batch_size=256, buffer_size=20_000, warmup_frames=2_000, noise_start=0.3, noise_end=0.2, noise_decay=0.7,
        critic_hidden=(64, 64),
        actor_lr=3e-3, critic_lr=3e-3, eval_episodes=16,
    ),
}


FLEET_ENVS = ("fleet", "fleet:shared")


def fleet_preset(n_agents: int, iterations: int = 80) -> dict:
    """The fleet floor (marlpg.envs.fleet) with n robots: equal robot-steps per iteration and per update at
    every n (512 // n floors of 25 steps, as mappo.fleet_preset; batches of about 8192 robot-transitions),
    ``iterations`` iterations after a warm-up of 4 (or half the run, if shorter), a replay of about 400k
    robot-transitions, the pooled critic. Discrete actions, as the floor has."""
    copies = max(1, 512 // n_agents)
    per_iteration = copies * 25
    return dict(
        n_agents=n_agents, continuous=False, critic="pooled", num_envs=copies, rollout_steps=25, horizon=25,
        updates_per_iteration=25, total_frames=per_iteration * iterations, batch_size=max(32, 8192 // n_agents),
        buffer_size=max(per_iteration, 400_000 // n_agents),
        warmup_frames=per_iteration * min(4, max(1, iterations // 2)), eval_episodes=16,
    )


# --- networks ------------------------------------------------------------------------------


class PerAgent(nn.Module):
    """n functions f_i(input_i), one per agent: a shared network on the input plus the agent's one-hot ID
    (``share=True``), or a network per agent. Maps ``[..., n, in_dim] -> [..., n, out_dim]``."""

    def __init__(self, n_agents: int, in_dim: int, out_dim: int, hidden, share: bool, out_gain: float = 1.0):
        super().__init__()
        self.share = share
        count, extra = (1, n_agents) if share else (n_agents, 0)
        self.nets = nn.ModuleList(mlp(in_dim + extra, hidden, out_dim, activation=nn.ReLU, out_gain=out_gain) for _ in range(count))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.share:
            return self.nets[0](with_agent_ids(inputs))
        return torch.stack([net(inputs[..., i, :]) for i, net in enumerate(self.nets)], dim=-2)


class MADDPG(nn.Module):
    """Actors mu_i(o_i) (deployed), critics Q_i (training only), and the target copies of both."""

    def __init__(self, spec: EnvSpec, cfg: MADDPGConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        n = spec.n_agents
        # a continuous action is n_actions numbers; a discrete one enters the critic as a one-hot vector
        self.action_dim = spec.n_actions
        self.actor = PerAgent(n, spec.obs_dim, self.action_dim, cfg.actor_hidden, cfg.share, out_gain=0.01)
        if cfg.critic == "pooled":
            self.critic = PooledQ(spec.obs_dim, self.action_dim, cfg.critic_hidden)
        else:
            critic_in = spec.obs_dim + self.action_dim + 1 if cfg.iddpg else spec.state_dim + n * self.action_dim
            self.critic = PerAgent(n, critic_in, 1, cfg.critic_hidden, cfg.share)
        if cfg.initial_action is not None:  # the output layer's weights are tiny, so its bias sets the first actions
            for net in self.actor.nets:
                nn.init.constant_(net[-1].bias, torch.tensor(cfg.initial_action).atanh().item())
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)

    # actions -------------------------------------------------------------------------------
    def mu(self, obs: torch.Tensor, actor: nn.Module | None = None) -> torch.Tensor:
        """Deterministic actions as the critic sees them: in [-1, 1], or one-hot for discrete actions."""
        out = (actor or self.actor)(obs)
        if self.spec.discrete:
            return F.one_hot(out.argmax(-1), self.action_dim).to(out.dtype)
        return torch.tanh(out)

    def differentiable_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """mu(o) with a gradient: tanh outputs, or a straight-through Gumbel-softmax one-hot sample."""
        return self.actions_and_outputs(obs)[0]

    def actions_and_outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``differentiable_actions`` and the actor's raw outputs (the logits, for the regularizer)."""
        out = self.actor(obs)
        if self.spec.discrete:
            return self.gumbel_sample(out), out
        return torch.tanh(out), out

    def target_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """mu'(o'): the target actors' actions for the critic targets, in critic format.

        Continuous: deterministic. Discrete: a one-hot Gumbel-softmax sample of the target policy,
        the same kind of action as the stochastic policy the actor update improves.
        """
        with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
            out = self.target_actor(obs)
            if self.spec.discrete:
                return self.gumbel_sample(out)
            return torch.tanh(out)

    @torch.no_grad()
    def explore(self, obs: torch.Tensor, noise_std: float) -> torch.Tensor:
        """Behaviour actions (critic format): mu(o) plus clipped Gaussian noise, or a Gumbel-softmax sample."""
        out = self.actor(obs)
        if self.spec.discrete:
            return self.gumbel_sample(out)
        mean = torch.tanh(out)
        return (mean + noise_std * torch.randn_like(mean)).clamp(-1, 1)

    def gumbel_sample(self, logits: torch.Tensor) -> torch.Tensor:
        """A Gumbel-softmax sample of the policy ``softmax(logits)`` at ``gumbel_temperature``: with
        ``gumbel="hard"`` the one-hot of its largest entry, with the relaxed sample's gradient (straight-through);
        with ``"soft"`` the relaxed probability vector itself (openai/maddpg)."""
        return F.gumbel_softmax(logits, tau=self.cfg.gumbel_temperature, hard=self.cfg.gumbel == "hard")

    def env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Critic-format actions to what the environment takes (indices for discrete actions)."""
        return actions.argmax(-1) if self.spec.discrete else actions

    @torch.no_grad()
    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.env_actions(self.mu(obs))

    def random_actions(self, batch: int, device) -> torch.Tensor:
        n, d = self.spec.n_agents, self.action_dim
        if self.spec.discrete:
            return F.one_hot(torch.randint(0, d, (batch, n), device=device), d).float()
        return torch.rand(batch, n, d, device=device) * 2 - 1

    # critics -------------------------------------------------------------------------------
    def q(self, state: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, own: torch.Tensor | None = None,
          critic: nn.Module | None = None) -> torch.Tensor:
        """Q_i for every agent i, ``[B, n]``, about the joint action ``actions [B, n, d]``; with ``own [B, n, d]``,
        agent i's critic is asked about it with agent i's slot replaced by ``own[:, i]`` (the actor loss).
        IDDPG's critic reads only agent i's own action, its observation and the clock."""
        critic = critic or self.critic
        if self.cfg.critic == "pooled":
            return critic(obs, actions, state[:, -1:], own)
        joint = same_joint_action(actions) if own is None else own_action_replaced(actions, own)
        return self.q_of_joint(state, obs, joint, critic)

    def q_of_joint(self, state: torch.Tensor, obs: torch.Tensor, joint: torch.Tensor, critic: nn.Module) -> torch.Tensor:
        """The concatenated critics on ``joint [B, n, n, d]``: row i is the joint action agent i is asked about."""
        n = self.spec.n_agents
        if self.cfg.iddpg:
            mine = joint.diagonal(dim1=1, dim2=2).transpose(1, 2)  # [B, n, d]: agent i's own action
            clock = state[:, -1:].unsqueeze(1).expand(-1, n, 1)
            inputs = torch.cat([obs, mine, clock], dim=-1)
        else:
            inputs = torch.cat([state.unsqueeze(1).expand(-1, n, -1), joint.flatten(-2)], dim=-1)
        return critic(inputs).squeeze(-1)


class PooledQ(nn.Module):
    """Q_i = psi([e_i, m, tau]) with e_j = phi(o_j, a_j) and m their mean (a PooledCritic on observation-action
    pairs); with ``own``, agent i's value uses e_i' = phi(o_i, own_i) and m + (e_i' - e_i)/n."""

    def __init__(self, obs_dim: int, action_dim: int, hidden):
        super().__init__()
        self.pooled = PooledCritic(obs_dim + action_dim, hidden)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, time_fraction: torch.Tensor,
                own: torch.Tensor | None = None) -> torch.Tensor:
        embed = self.pooled.encoder
        others = embed(torch.cat([obs, actions], -1))  # [B, n, k]
        mean = others.mean(-2, keepdim=True)
        if own is None:
            mine, summary = others, mean.expand_as(others)
        else:
            mine = embed(torch.cat([obs, own], -1))
            summary = mean + (mine - others) / obs.shape[-2]
        tau = time_fraction.unsqueeze(-2).expand(*mine.shape[:-1], 1)
        return self.pooled.head(torch.cat([mine, summary, tau], -1)).squeeze(-1)


def same_joint_action(actions: torch.Tensor) -> torch.Tensor:
    """``[B, n, d] -> [B, n, n, d]``: every agent's critic is asked about the same joint action."""
    return actions.unsqueeze(1).expand(-1, actions.shape[1], -1, -1)


def own_action_replaced(buffer_actions: torch.Tensor, own_actions: torch.Tensor) -> torch.Tensor:
    """Row i: the buffer's joint action with agent i's slot replaced by ``own_actions[:, i]``.

    The gradient of Q_i then reaches only agent i's actor, as the deterministic policy gradient asks.
    """
    n = buffer_actions.shape[1]
    mine = torch.eye(n, dtype=torch.bool, device=buffer_actions.device).view(1, n, n, 1)
    return torch.where(mine, own_actions.unsqueeze(1).expand(-1, n, -1, -1), same_joint_action(buffer_actions))


def critic_targets(rewards: torch.Tensor, done: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y_i = r_i + gamma (1 - d) Q'_i(x', mu'(o')): each agent's target from its own reward."""
    return rewards + gamma * (1.0 - done.unsqueeze(-1)) * next_q


def td_targets(model: MADDPG, batch: dict, gamma: float) -> torch.Tensor:
    """The critics' regression targets ``[B, n]``, from the target actors and target critics."""
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        next_actions = model.target_actions(batch["next_obs"])
        next_q = model.q(batch["next_state"], batch["next_obs"], next_actions, critic=model.target_critic)
        return critic_targets(batch["rewards"], batch["done"], next_q, gamma)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta' <- tau theta + (1 - tau) theta'."""
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


# --- one update ----------------------------------------------------------------------------


def update(model: MADDPG, batch: dict, optimizers, cfg: MADDPGConfig) -> tuple[float, float]:
    """One critic step, one actor step and the soft target updates, on one sampled batch."""
    actor_opt, critic_opt = optimizers
    targets = td_targets(model, batch, cfg.gamma)
    q = model.q(batch["state"], batch["obs"], batch["actions"])
    critic_loss = F.mse_loss(q, targets)
    critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    nn.utils.clip_grad_norm_(model.critic.parameters(), cfg.max_grad_norm)
    critic_opt.step()

    own, logits = model.actions_and_outputs(batch["obs"])
    actor_loss = -model.q(batch["state"], batch["obs"], batch["actions"], own).mean()
    if model.spec.discrete:
        actor_loss = actor_loss + cfg.logit_reg * logits.pow(2).mean()
    actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()  # also leaves gradients on the critic; its next step zeroes them first
    nn.utils.clip_grad_norm_(model.actor.parameters(), cfg.max_grad_norm)
    actor_opt.step()

    soft_update(model.target_actor, model.actor, cfg.tau)
    soft_update(model.target_critic, model.critic, cfg.tau)
    return critic_loss.item(), actor_loss.item()


# --- training --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    config: MADDPGConfig
    model: MADDPG
    curve: list[dict] = field(default_factory=list)
    eval_return: float = float("nan")
    eval_prices: list[float] | None = None  # pricing: mean price of each seller under the deterministic actors
    nash_prices: list[float] | None = None
    collusive_prices: list[float] | None = None
    frames: int = 0
    seconds: float = 0.0
    reference: tuple[float, float] | None = None  # simple_spread: (random, scripted) return per agent


def store(buffer: ReplayBuffer, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, step) -> None:
    """Add one step's transitions: x' and o' are what the step reached (``final_*``, before any reset),
    and d marks terminations only, so a truncated episode's target bootstraps from where it stopped."""
    if not bool(step.alive.all()):
        raise ValueError("MADDPG needs every agent in every episode to the end; this environment has agents that leave")
    buffer.add(obs=obs, state=state, actions=actions, rewards=step.reward, next_obs=step.final_obs,
               next_state=step.final_state, done=step.terminated.float())


def noise_scale(cfg: MADDPGConfig, frames: int) -> float:
    """Linear decay from noise_start to noise_end over the first noise_decay of training."""
    progress = min(1.0, frames / (cfg.noise_decay * cfg.total_frames))
    return cfg.noise_start + progress * (cfg.noise_end - cfg.noise_start)


def make_envs(cfg: MADDPGConfig, device: torch.device):
    if cfg.env not in ENVS:
        raise ValueError(f"env {cfg.env!r} is not one of {ENVS}")
    common = dict(n_agents=cfg.n_agents, horizon=cfg.horizon, continuous=cfg.continuous, device=device)
    return (
        make_env(cfg.env, cfg.num_envs, seed=cfg.seed, **common),
        make_env(cfg.env, cfg.eval_episodes, seed=10_000 + cfg.seed, **common),
    )


@torch.no_grad()
def evaluate(model: MADDPG, env, seed: int) -> tuple[float, torch.Tensor]:
    """Mean episode return per agent of the deterministic actors (one episode per copy of ``env``),
    and the mean environment action of each agent over those episodes, ``[n, d]``."""
    with torch.random.fork_rng(devices=[env.device] if env.device.type == "cuda" else []):
        torch.manual_seed(seed)
        obs, _ = env.reset(seed=seed)
        total = torch.zeros(env.num_envs, env.spec.n_agents, device=env.device)
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        taken = []
        while not bool(finished.all()):
            actions = model.mu(obs)
            taken.append(actions[~finished])
            obs, _, reward, done = env.step(model.env_actions(actions))
            total += reward * (~finished).unsqueeze(-1)
            finished |= done
    return total.mean().item(), torch.cat(taken).mean(0)


def reference_for(cfg: MADDPGConfig) -> tuple[float, float] | None:
    if not cfg.env.startswith("vmas:"):  # the random and scripted references are simple_spread's
        return None
    from marlpg.envs.reference import reference_returns

    with cpu_threads(1):
        return tuple(reference_returns(cfg.env, n_agents=cfg.n_agents, continuous=cfg.continuous))


def train(
    cfg: MADDPGConfig,
    progress: bool = True,
    on_iteration: Callable[[dict], None] | None = None,
    with_reference: bool = True,
) -> TrainResult:
    """Train MADDPG (or IDDPG) for ``cfg.total_frames`` frames; return the model, curve and evaluation."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_env, eval_env = make_envs(cfg, device)
    spec = train_env.spec
    model = MADDPG(spec, cfg).to(device)
    optimizers = (
        torch.optim.Adam(model.actor.parameters(), lr=cfg.actor_lr),
        torch.optim.Adam(model.critic.parameters(), lr=cfg.critic_lr),
    )
    buffer = ReplayBuffer(cfg.buffer_size, spec.n_agents, spec.obs_dim, spec.state_dim, model.action_dim, device)
    generator = torch.Generator().manual_seed(cfg.seed)
    pricing = hasattr(train_env, "prices")
    result = TrainResult(cfg, model, reference=reference_for(cfg) if with_reference else None)
    if pricing:
        result.nash_prices, result.collusive_prices = train_env.nash_prices(), train_env.collusive_prices()
    running = torch.zeros(cfg.num_envs, spec.n_agents, device=device)
    finished: list[torch.Tensor] = []
    obs, state = train_env.reset(seed=cfg.seed)
    bar = progress_bar(cfg.iterations * cfg.frames_per_iteration, progress, "IDDPG" if cfg.iddpg else "MADDPG")
    update_threads = update_thread_count(cfg.update_threads)
    began = time.perf_counter()
    for iteration in range(1, cfg.iterations + 1):
        noise = noise_scale(cfg, result.frames)
        with cpu_threads(1):
            for _ in range(cfg.rollout_steps):
                if result.frames < cfg.warmup_frames:
                    actions = model.random_actions(cfg.num_envs, device)
                else:
                    actions = model.explore(obs, noise)
                step = train_env.step(model.env_actions(actions))
                store(buffer, obs, state, actions, step)
                reward, done, next_obs, next_state = step.reward, step.done, step.obs, step.state
                running += reward
                if bool(done.any()):
                    finished.append(running[done].mean(-1))
                    running[done] = 0.0
                obs, state = next_obs, next_state
                result.frames += cfg.num_envs
        losses = []
        if result.frames >= cfg.warmup_frames and len(buffer) >= cfg.batch_size:
            with cpu_threads(update_threads):
                for _ in range(cfg.updates_per_iteration):
                    losses.append(update(model, buffer.sample(cfg.batch_size, generator), optimizers, cfg))
        episode_return = torch.cat(finished).mean().item() if finished else float("nan")
        finished.clear()
        critic_loss, actor_loss = (sum(x) / len(losses) for x in zip(*losses)) if losses else (float("nan"),) * 2
        row = {
            "iteration": iteration,
            "frames": result.frames,
            "seconds": round(time.perf_counter() - began, 3),
            "return": episode_return,
            "gap": gap_closed(episode_return, result.reference),
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "noise": noise,
        }
        if pricing:  # the deterministic prices the actors would post now
            with torch.no_grad():
                prices = train_env.prices(model.mu(obs)).mean(0)
            row.update({f"price_{i}": p for i, p in enumerate(prices.tolist())})
        if cfg.eval_every and iteration % cfg.eval_every == 0:
            with cpu_threads(1):
                row["eval_return"] = evaluate(model, eval_env, 10_000 + cfg.seed)[0]
        result.curve.append(row)
        if on_iteration is not None:
            on_iteration(row)
        bar.update(cfg.frames_per_iteration)
        if episode_return == episode_return:
            bar.set_postfix(ret=f"{episode_return:.3f}")
    bar.close()
    result.seconds = time.perf_counter() - began
    with cpu_threads(1):
        result.eval_return, mean_action = evaluate(model, eval_env, 10_000 + cfg.seed)
    if pricing:
        result.eval_prices = eval_env.prices(mean_action).tolist()
    return result


def train_quietly(cfg: MADDPGConfig) -> TrainResult:
    """One seed's job for ``marlpg.scale.jobs.train_seeds``: ``train`` without a progress bar or references."""
    return train(cfg, progress=False, with_reference=False)


def nash_distance(prices, nash) -> float:
    """The largest relative distance of a seller's price from its Nash price."""
    return max(abs(p - q) / abs(q) for p, q in zip(prices, nash))
