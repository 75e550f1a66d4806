"""MAPPO: PPO for every agent, trained against a centralized value function (Yu et al., 2022).

Each agent a acts from its own observation, u_a ~ pi_theta(. | o_a) (with a one-hot agent ID when
the actor is shared). During training a critic sees the global state x and estimates
V_phi(x) for every agent. One iteration:

1. Collect T steps in E parallel environments with the current policy.
2. Advantages by GAE(lambda) on the critic's values (de-normalized to returns):
       delta_t = r_t + gamma V(x_{t+1}) - V(x_t),   A_t = sum_k (gamma lambda)^k delta_{t+k}
   (V(x_{t+1}) = 0 after a termination; after a truncation, the value of the state the episode
   reached: see :mod:`marlpg.core.gae`). The advantages are normalized to mean 0 and std 1 over
   every agent and step of the rollout together (a joint normalization).
3. For a few epochs over minibatches, ascend PPO's clipped surrogate for each agent,
       L(theta) = E_t,a[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ] + beta H(pi(. | o_a)),
       rho = pi_theta(u_a | o_a) / pi_theta_old(u_a | o_a),
   and descend the critic's squared error against the lambda-return targets, in normalized units.
   The expectations run over the agents that act (an agent that has left its episode adds nothing),
   and a discrete policy puts no mass on the actions an environment's action mask forbids.

Every iteration's row of the learning curve also carries PPO's diagnostics: ``approx_kl`` (the
estimator E[(rho - 1) - log rho] of KL(pi_old || pi), averaged over minibatches), ``clip_fraction``
(share of samples with |rho - 1| > eps), ``explained_variance`` (1 - Var[G - V] / Var[G] of the
critic's rollout values against its targets, in reward units, before the update),
``actor_grad_norm`` and ``critic_grad_norm`` (before clipping) and ``entropy``.

Centralized critic input (``critic``, ``--critic``). MAPPO's critic reads one of four inputs;
each gives agent a's value in normalized units, ``[..., n]``, and everything downstream (GAE, value
normalization, the losses) is the same for all of them:

* ``"global"`` (the default): one MLP on the global state x (which ends with the time fraction
  tau) with one output per agent, V(x) = (V_1(x), ..., V_n(x)).
* ``"agent_specific"``: Yu et al.'s agent-specific global state (their SMAC input): one network f
  shared by the agents, applied to each agent's own row, V_a = f([x, o_a, e_a]) with e_a agent a's
  one-hot ID; agent a's value sees the whole state and, apart, its own observation.
* ``"pooled"``: a critic whose size does not depend on n (:mod:`marlpg.core.critics`), for large
  teams: an encoder phi embeds each agent's observation (no ID), the embeddings are averaged over
  the agents that act, and a head psi reads agent a's own embedding, the average and the time,
      V_a = psi([phi(o_a), m, tau]),   m = sum_b w_b phi(o_b) / max(1, sum_b w_b),
  with w_b = 1 for an agent that acts (the rollout's active mask; at the state a truncated episode
  reached, the agents still alive; after the rollout's last step, those that did not leave, or all
  of them where the copy reset). Permuting the agents permutes the values; the parameter count is
  the same for any n. It reads the observations, not the global state.
* ``"attention"``: the pooled critic with m replaced by one attention head from agent a over the
  agents that act, c_a = sum_b alpha_ab W_v phi(o_b), alpha_ab = softmax over active b of
  (W_q phi(o_a)) . (W_k phi(o_b)) / sqrt(k); also equivariant and of a size independent of n.

The pooled and attention inputs are feed-forward only: ``recurrent=True`` takes ``"global"`` or
``"agent_specific"`` (an error says so), and IPPO has its own critic (below), so ``ippo=True``
also takes only ``"global"``.

IPPO (``ippo=True``) is the same algorithm with the critic V(o_a) on the agent's own observation
(plus the time fraction, which both critics get): the ablation that asks what the centralized
critic buys.

Options from on-policy (book/deviations.md measures each on simple_spread). marlpg's defaults are the
plain forms of the equations above; marlbenchmark/on-policy differs in these places, each a switch here:

* ``value_loss="huber"``: Huber's loss with delta = ``huber_delta`` (10) instead of e^2 / 2 on the error
  e = V - G (normalized units);
* ``value_clip=eps_v``: the larger of the losses of V and of V_old + clip(V - V_old, -eps_v, eps_v), with
  V_old the critic's output at collection (on-policy clips with PPO's eps, 0.2);
* ``value_norm_stats="ema"``: on-policy's ValueNorm statistics (:class:`marlpg.core.normalizer.DecayingNormalizer`)
  in place of the exact running moments;
* ``feature_norm=True``: a LayerNorm on the inputs of every actor and of the critic;
* ``advantage_norm="per_agent"`` (each agent's advantages to mean 0 and std 1 over its own samples) or
  ``"none"``, against the joint normalization of step 2 (on-policy's, and the default).

Recurrent MAPPO (``recurrent=True``, ``--recurrent``; Yu et al.'s "rMAPPO"). For partial
observability the actors and the critic become GRUs (:mod:`marlpg.core.recurrent`). Agent a's
actor keeps a hidden state over its own observation history,

    h_a,t = GRU(enc(o_a,t), (1 - s_t) h_a,t-1),    u_a,t ~ pi_theta(. | h_a,t),

where s_t = 1 at the first step of an episode (the state is zeroed there). MAPPO's critic runs one
GRU over the global states, V(x_1..x_t) with one output per agent; IPPO's, and the agent-specific
critic's, run one GRU over each agent's own critic input (one hidden state per agent). Collection
stores, at every step, the hidden states the step began from, the episode starts s_t, and the
values V computed on the way (each needs the critic's state). GAE is unchanged. Training follows the paper's data chunks: each copy's T steps are cut into
ceil(T / L) consecutive chunks of L = ``chunk_length`` steps (default 10, as the paper's code), the
last padded; PPO's epochs shuffle chunks into ``minibatches``; a chunk is replayed from the hidden
states stored at its first step (not recomputed with the current parameters), resetting wherever
s_t = 1 inside it; padding and the steps of agents that have left add nothing to any loss (they
are inactive in every masked mean). Deployed, each actor carries its own hidden state
(``DeployedActor.reset`` starts a new episode). Departures from marlbenchmark/on-policy: chunks
never run from one copy's rollout into the next (on-policy lays every (copy, agent) history end
to end and cuts that line, dropping the remainder when L does not divide it; marlpg pads and
masks instead); the global critic has one hidden state per copy, not one per agent (the
agent-specific critic has one per agent, as on-policy's); no LayerNorm
after the GRU and a single tanh layer before it. Hidden states are zeroed at the copy's episode
start (an agent that has left runs on, masked out). See book/deviations.md.

Run ``python -m marlpg.mappo --help`` for the command line.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Normal

from marlpg.core.agents import with_agent_ids
from marlpg.core.critics import AttentionCritic, PooledCritic
from marlpg.core.evaluation import gap_closed, return_and_win_rate
from marlpg.core.gae import gae
from marlpg.core.networks import CategoricalActor, GaussianActor, entropy, log_prob, mlp
from marlpg.core.normalizer import DecayingNormalizer, RunningNormalizer
from marlpg.core.recurrent import GRUNet, RecurrentActor, chunk_count, chunk_initial_states, reset_where, to_chunks, valid_steps
from marlpg.core.runlog import progress_bar
from marlpg.core.schedule import IterationBudget
from marlpg.core.seeding import resolve_device, seed_everything
from marlpg.core.threads import cpu_threads, update_thread_count
from marlpg.envs import EnvSpec, make_env
from marlpg.envs.protocol import acting_agents, agent_dones, agent_truncations, current_action_mask, masked_logits

DEFAULT_FRAMES = 6_000_000
CRITICS = ("global", "agent_specific", "pooled", "attention")  # the centralized critic's inputs (see the module docstring)
RECURRENT_CRITICS = ("global", "agent_specific")  # those with a recurrent form
VALUE_LOSSES = ("mse", "huber")
NORM_STATS = ("exact", "ema")  # core.normalizer.RunningNormalizer, DecayingNormalizer
ADVANTAGE_NORMS = ("joint", "per_agent", "none")

# The settings a config leaves at None take their values from the task's backend. The generic row was tuned on
# simple_spread (book/deviations.md). SMAX's follows JaxMARL's MAPPO for SMAX (longer rollouts of fewer copies,
# a larger annealed learning rate, more entropy): with the generic row, recurrent MAPPO on smax:3m stalls at
# 0-6% greedy wins after 1.28M frames, because its greedy policy stops and waits when no enemy is in range;
# with the SMAX row it wins 99% after 1M frames (seed 0; benchmarks/bench_smax_learning.py has the seeds).
GENERIC_DEFAULTS = dict(num_envs=256, rollout_steps=25, total_frames=DEFAULT_FRAMES, lr=2e-3, anneal_lr=False,
                        minibatches=8, entropy_coef=0.003)
TASK_DEFAULTS = {
    "smax": dict(num_envs=128, rollout_steps=128, total_frames=2_000_000, lr=4e-3, anneal_lr=True, minibatches=4,
                 entropy_coef=0.01),
}


def fleet_preset(n_agents: int, iterations: int = 80) -> dict:
    """MAPPOConfig settings for the fleet floor (marlpg.envs.fleet) with n robots: equal robot-steps per
    iteration at every n (512 // n floors of 25 steps: 12,800 robot-steps where n divides 512, a little
    fewer elsewhere, 12,600 at n = 12), one shared actor without IDs
    (the robots are interchangeable), ``iterations`` iterations. Chapter 09 and benchmarks/bench_fleet.py."""
    copies = max(1, 512 // n_agents)
    return dict(n_agents=n_agents, num_envs=copies, rollout_steps=25, total_frames=copies * 25 * iterations,
                minibatches=4, agent_id=False, eval_episodes=16)


def task_defaults(env: str) -> dict:
    """The settings :class:`MAPPOConfig` uses for ``env`` (``"backend:scenario"``) where it is given None."""
    backend = env.split(":", 1)[0] if isinstance(env, str) else ""
    return {**GENERIC_DEFAULTS, **TASK_DEFAULTS.get(backend, {})}


@dataclass
class MAPPOConfig(IterationBudget):
    """One run's settings. Those marked "the task's default" are filled in on construction from
    :func:`task_defaults` (``MAPPOConfig(env="smax:3m").lr == 4e-3``). ``dataclasses.replace`` passes the
    filled-in values on, so ``replace(cfg, env=...)`` keeps the old task's settings: build a new config
    to change the task."""

    env: str = "vmas:simple_spread"
    n_agents: int | None = None  # None: the task's (3 for the particle tasks; fixed by a SMAX map or RWARE layout)
    continuous: bool = False
    num_envs: int | None = None  # None: the task's default (task_defaults)
    horizon: int | None = None  # None: the task's (25 steps for the particle tasks, 100 for SMAX, 500 for RWARE)
    rollout_steps: int | None = None  # steps per environment per iteration (None: the task's default)
    total_frames: int | None = None  # a frame is one step of one environment copy (all agents); None: the task's
    seed: int = 0
    device: str = "cpu"
    ippo: bool = False  # critic on the agent's own observation instead of the global state
    critic: str = "global"  # the centralized critic's input, one of CRITICS (see "Centralized critic input" above)
    share: bool = True  # one actor for all agents (with a one-hot agent ID) or one per agent
    roles: tuple[int, ...] | None = None  # with share: one actor per role (role index per agent)
    agent_id: bool = True  # append the one-hot ID to a shared actor's input
    lr: float | None = None  # Adam's learning rate for actor and critic (None: the task's default)
    anneal_lr: bool | None = None  # decay both learning rates linearly to 0 over the run (None: the task's default)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int | None = None  # None: the task's default
    entropy_coef: float | None = None  # None: the task's default
    max_grad_norm: float = 10.0
    value_norm: bool = True
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (128, 128)
    eval_episodes: int = 200
    eval_every: int = 0  # iterations between evaluations during training (0: only at the end)
    update_threads: int | None = None  # CPU threads for updates (None: MARLPG_THREADS, else all; see core.threads)
    recurrent: bool = False  # GRU actors and critics trained on sequence chunks (see "Recurrent MAPPO" above)
    chunk_length: int = 10  # steps per training chunk of a recurrent model
    # marlbenchmark/on-policy's choices where marlpg's defaults differ ("Options from on-policy" above)
    value_loss: str = "mse"  # one of VALUE_LOSSES: "mse" (half squared error) or "huber" (delta = huber_delta)
    huber_delta: float = 10.0
    value_clip: float | None = None  # keep the larger loss of V and of V moved at most +-value_clip from its rollout value
    value_norm_stats: str = "exact"  # one of NORM_STATS: "exact" running moments or "ema" (on-policy's ValueNorm)
    feature_norm: bool = False  # LayerNorm on the inputs of the actors and the critic (feed-forward models)
    advantage_norm: str = "joint"  # one of ADVANTAGE_NORMS: over every agent and step, per agent, or none

    def __post_init__(self):
        for name, value in task_defaults(self.env).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.actor_hidden = tuple(self.actor_hidden)
        self.roles = None if self.roles is None else tuple(int(r) for r in self.roles)
        self.critic_hidden = tuple(self.critic_hidden)
        positive = ("n_agents", "num_envs", "horizon", "rollout_steps", "total_frames", "epochs", "minibatches", "eval_episodes")
        for name in positive:
            value = getattr(self, name)
            if value is None and name in ("n_agents", "horizon"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.num_envs * self.rollout_steps < self.minibatches:
            raise ValueError(
                f"minibatches={self.minibatches} exceeds the {self.num_envs * self.rollout_steps} samples of one rollout "
                f"(num_envs={self.num_envs} x rollout_steps={self.rollout_steps}); use at most that many"
            )
        for name in ("clip", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        self._check_critic()
        self._check_recurrent()
        self._check_options()

    def _check_critic(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {', '.join(map(repr, CRITICS))}; got {self.critic!r}")
        if self.critic == "global":
            return
        if self.ippo:
            raise ValueError(
                f"ippo=True has its own critic on each agent's observation and takes critic='global' (the default); "
                f"got critic={self.critic!r}: drop ippo=True to use it"
            )
        if self.recurrent and self.critic not in RECURRENT_CRITICS:
            raise ValueError(
                f"recurrent=True supports critic in {RECURRENT_CRITICS}; got critic={self.critic!r}, "
                "which is feed-forward only"
            )

    def _check_options(self) -> None:
        for name, allowed in (("value_loss", VALUE_LOSSES), ("value_norm_stats", NORM_STATS), ("advantage_norm", ADVANTAGE_NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {getattr(self, name)!r}")
        if not self.huber_delta > 0:
            raise ValueError(f"huber_delta must be positive; got {self.huber_delta!r}")
        if self.value_clip is not None and not self.value_clip > 0:
            raise ValueError(f"value_clip must be positive, or None for no clipping; got {self.value_clip!r}")
        if self.feature_norm and (self.recurrent or self.critic in ("pooled", "attention")):
            raise ValueError(
                "feature_norm=True puts a LayerNorm before feed-forward MLPs: it takes recurrent=False and critic "
                f"'global' or 'agent_specific'; got recurrent={self.recurrent!r}, critic={self.critic!r}"
            )

    def _check_recurrent(self) -> None:
        chunks = self.num_envs * chunk_count(self.rollout_steps, self.chunk_length)
        if self.recurrent and self.minibatches > chunks:
            raise ValueError(
                f"minibatches={self.minibatches} exceeds the {chunks} chunks of one recurrent rollout (num_envs="
                f"{self.num_envs} x ceil(rollout_steps={self.rollout_steps} / chunk_length={self.chunk_length})); "
                "use at most that many"
            )


class MAPPO(nn.Module):
    """The actors (deployed) and the critic (used only in training).

    Agents are split into groups that share one actor: all agents (``share=True``), one group per
    role (``share=True`` with ``roles``, which default to the kinds the environment reports in ``spec.roles``,
    e.g. SMAX 2s3z's stalkers and zealots), or every agent alone (``share=False``).
    """

    def __init__(self, spec: EnvSpec, cfg: MAPPOConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        roles = cfg.roles if cfg.roles is not None else spec.roles  # a team of several kinds shares per kind
        self.groups = actor_groups(spec.n_agents, cfg.share, roles)
        self.group_of = {agent: g for g, members in enumerate(self.groups) for agent in members}
        self.register_buffer("_order", torch.tensor([a for members in self.groups for a in members]).argsort(), persistent=False)
        self.use_ids = cfg.agent_id and any(len(members) > 1 for members in self.groups)
        actor_in = spec.obs_dim + (spec.n_agents if self.use_ids else 0)
        make_actor = CategoricalActor if spec.discrete else GaussianActor
        if cfg.recurrent:  # GRU actors and critic: see "Recurrent MAPPO" in the module docstring
            self.actors, self.critic = recurrent_networks(spec, cfg, actor_in, len(self.groups))
        else:
            self.actors = nn.ModuleList(make_actor(actor_in, spec.n_actions, cfg.actor_hidden) for _ in self.groups)
            self.critic = feed_forward_critic(spec, cfg)
        if cfg.feature_norm:
            for actor in self.actors:
                actor.net = with_input_norm(actor.net)
            self.critic = with_input_norm(self.critic)
        self.value_normalizer = DecayingNormalizer() if cfg.value_norm_stats == "ema" else RunningNormalizer()

    def actor_input(self, obs: torch.Tensor) -> torch.Tensor:
        return with_agent_ids(obs) if self.use_ids else obs

    def _per_group(self, inputs: torch.Tensor, head) -> torch.Tensor:
        """Apply ``head(actor, x)`` to each group's agents and put the rows back in agent order."""
        if len(self.groups) == 1:
            return head(self.actors[0], inputs)
        parts = [head(actor, inputs[..., members, :]) for actor, members in zip(self.actors, self.groups)]
        return torch.cat(parts, dim=-2 if parts[0].dim() == inputs.dim() else -1).index_select(
            inputs.dim() - 2, self._order
        )

    def policy(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None):
        """The joint policy as one distribution over ``[..., n]`` agents (``obs``: ``[..., n, d]``).

        ``action_mask`` (``[..., n, U]`` bool, discrete only) removes the illegal actions.
        """
        self._feed_forward_only("policy")
        inputs = self.actor_input(obs)
        out = self._per_group(inputs, lambda actor, x: actor.net(x))
        if self.spec.discrete:
            return Categorical(logits=masked_logits(out, action_mask))
        log_std = self._per_group(inputs[..., :1], lambda actor, x: actor.log_std.expand(*x.shape[:-1], -1))
        return Normal(out, log_std.exp())

    def act_deterministic(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The greedy joint action; with ``action_mask`` the best legal one (discrete actions)."""
        self._feed_forward_only("act_deterministic")
        if action_mask is None or not self.spec.discrete:
            return self._per_group(self.actor_input(obs), lambda actor, x: actor.deterministic(x))
        return masked_logits(self._per_group(self.actor_input(obs), lambda actor, x: actor.net(x)), action_mask).argmax(-1)

    def value(self, state: torch.Tensor, obs: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """The critic's output in normalized units, ``[..., n]``.

        ``active [..., n]`` bool marks the agents that act; only the pooled critic reads it (None: all act).
        """
        self._feed_forward_only("value")
        if self.cfg.ippo:
            return self.critic(local_critic_input(obs, state)).squeeze(-1)
        if self.cfg.critic == "agent_specific":
            return self.critic(agent_specific_input(obs, state)).squeeze(-1)
        if self.cfg.critic in ("pooled", "attention"):
            return self.critic(obs, state[..., -1:], active)
        return self.critic(state)

    # --- recurrent models (cfg.recurrent): sequences [L, B, ...] with hidden states --------------

    def _feed_forward_only(self, method: str) -> None:
        if self.cfg.recurrent:
            raise ValueError(f"MAPPO.{method} takes one step without memory; a recurrent model needs {method}_sequence")

    def initial_memory(self, num_envs: int) -> "Memory":
        """Zero hidden states for ``num_envs`` copies whose next step is an episode's first."""
        device = next(self.parameters()).device
        n = self.spec.n_agents
        critic_rows = (num_envs, n) if per_agent_critic(self.cfg) else (num_envs,)
        return Memory(
            actor=torch.zeros(num_envs, n, self.actors[0].hidden_size, device=device),
            critic=torch.zeros(*critic_rows, self.critic.hidden_size, device=device),
            starts=torch.ones(num_envs, dtype=torch.bool, device=device),
        )

    def _per_group_recurrent(self, inputs: torch.Tensor, hidden: torch.Tensor, starts: torch.Tensor):
        """Each group's GRU over its agents' rows ``inputs [L, B, n, d]`` from ``hidden [B, n, H]``;
        outputs ``[L, B, n, out]`` and last states ``[B, n, H]``, in agent order."""
        outs, states = [], []
        for actor, members in zip(self.actors, self.groups):
            rows = inputs[..., members, :]
            out, last = actor(rows, hidden[..., members, :], starts.unsqueeze(-1).expand(rows.shape[:-1]))
            outs.append(out)
            states.append(last)
        if len(self.groups) == 1:
            return outs[0], states[0]
        return torch.cat(outs, -2).index_select(-2, self._order), torch.cat(states, -2).index_select(-2, self._order)

    def policy_sequence(self, obs, actor_hidden, starts, action_mask=None):
        """The joint policy at every step of ``obs [L, B, n, d]`` and the actors' last hidden states.

        ``actor_hidden [B, n, H]`` is the state before the first step; ``starts [L, B]`` marks the
        steps where an episode begins (the state is zeroed there first).
        """
        out, last = self._per_group_recurrent(self.actor_input(obs), actor_hidden, starts)
        if self.spec.discrete:
            return Categorical(logits=masked_logits(out, action_mask)), last
        log_std = torch.cat([a.log_std.expand(len(m), -1) for a, m in zip(self.actors, self.groups)]).index_select(0, self._order)
        return Normal(out, log_std.exp().expand_as(out)), last

    def act_deterministic_sequence(self, obs, actor_hidden, starts, action_mask=None):
        """Greedy actions ``[L, B, n(, da)]`` (the best legal ones under ``action_mask``) and the actors'
        last hidden states."""
        out, last = self._per_group_recurrent(self.actor_input(obs), actor_hidden, starts)
        if action_mask is not None and self.spec.discrete:
            out = masked_logits(out, action_mask)
        return self.actors[0].deterministic(out), last

    def value_sequence(self, state, obs, critic_hidden, starts):
        """The critic's outputs ``[L, B, n]`` (normalized units) and its last hidden state.

        MAPPO: one GRU over the global state ``[L, B, ds]`` (hidden ``[B, H]``); IPPO and the
        agent-specific critic: one GRU run on every agent's row of its own critic input (hidden ``[B, n, H]``).
        """
        if per_agent_critic(self.cfg):
            inputs = local_critic_input(obs, state) if self.cfg.ippo else agent_specific_input(obs, state)
            out, last = self.critic(inputs, critic_hidden, starts.unsqueeze(-1).expand(inputs.shape[:-1]))
            return out.squeeze(-1), last
        return self.critic(state, critic_hidden, starts)


@dataclass
class Memory:
    """What a recurrent model carries from one step to the next in ``E`` copies."""

    actor: torch.Tensor  # [E, n, H]: the actors' hidden states
    critic: torch.Tensor  # [E, H] (MAPPO) or [E, n, H] (IPPO)
    starts: torch.Tensor  # [E] bool: the next step is the first of an episode


def recurrent_networks(spec: EnvSpec, cfg: MAPPOConfig, actor_in: int, n_groups: int) -> tuple[nn.ModuleList, GRUNet]:
    """GRU actors (one per group) and a GRU critic: V(x_1..x_t) with n outputs, or one run per agent row
    (IPPO: V(o_1..o_t); agent-specific: f over the rows [x_t, o_a,t, e_a])."""
    actors = nn.ModuleList(
        RecurrentActor(actor_in, spec.n_actions, cfg.actor_hidden, continuous=not spec.discrete) for _ in range(n_groups)
    )
    if cfg.ippo:
        return actors, GRUNet(spec.obs_dim + spec.n_agents + 1, cfg.critic_hidden, 1)
    if cfg.critic == "agent_specific":  # f over each agent's history of [x, o_a, e_a]
        return actors, GRUNet(spec.state_dim + spec.obs_dim + spec.n_agents, cfg.critic_hidden, 1)
    return actors, GRUNet(spec.state_dim, cfg.critic_hidden, spec.n_agents)


def per_agent_critic(cfg: MAPPOConfig) -> bool:
    """Whether the recurrent critic keeps one hidden state per agent (IPPO, agent-specific) or one per copy."""
    return cfg.ippo or cfg.critic == "agent_specific"


def feed_forward_critic(spec: EnvSpec, cfg: MAPPOConfig) -> nn.Module:
    """IPPO's V(o_a, e_a, tau) per agent row, or MAPPO's critic on the input ``cfg.critic`` names."""
    if cfg.ippo:  # one output per agent row, with the agent's ID so one network can serve all
        return mlp(spec.obs_dim + spec.n_agents + 1, cfg.critic_hidden, 1)
    if cfg.critic == "agent_specific":  # f([x, o_a, e_a]), one network applied to every agent's row
        return mlp(spec.state_dim + spec.obs_dim + spec.n_agents, cfg.critic_hidden, 1)
    if cfg.critic in ("pooled", "attention"):
        return (PooledCritic if cfg.critic == "pooled" else AttentionCritic)(spec.obs_dim, cfg.critic_hidden)
    return mlp(spec.state_dim, cfg.critic_hidden, spec.n_agents)  # V(x): one output per agent


def with_input_norm(net: nn.Sequential) -> nn.Sequential:
    """``net`` behind a LayerNorm of its input (on-policy's ``use_feature_normalization``)."""
    return nn.Sequential(nn.LayerNorm(net[0].in_features), *net)


def agent_specific_input(obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Each agent's row [x, o_a, e_a]: the global state (its last feature the time fraction), the
    agent's own observation and its one-hot ID; ``[..., n, d_state + d + n]``."""
    global_state = state.unsqueeze(-2).expand(*obs.shape[:-1], state.shape[-1])
    return torch.cat([global_state, with_agent_ids(obs)], dim=-1)


def local_critic_input(obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """IPPO's critic input for every agent: its observation, its ID, and the time fraction.

    The time fraction is the state's last feature (see :mod:`marlpg.envs.protocol`); both critics
    get it, so MAPPO and IPPO differ only in whether the critic sees the other agents.
    """
    time_left = state[..., -1:].unsqueeze(-2).expand(*obs.shape[:-1], 1)
    return torch.cat([with_agent_ids(obs), time_left], dim=-1)


def actor_groups(n_agents: int, share: bool, roles: tuple[int, ...] | None) -> list[list[int]]:
    """Which agents share an actor: everyone, everyone with the same role, or nobody."""
    if not share:
        return [[a] for a in range(n_agents)]
    if roles is None:
        return [list(range(n_agents))]
    if len(roles) != n_agents:
        raise ValueError(f"roles must give one role per agent ({n_agents}); got {roles!r}")
    return [[a for a in range(n_agents) if roles[a] == r] for r in sorted(set(roles))]


@dataclass
class Rollout:
    obs: torch.Tensor  # [T, E, n, d]
    state: torch.Tensor  # [T, E, ds]
    actions: torch.Tensor  # [T, E, n] or [T, E, n, da]
    log_probs: torch.Tensor  # [T, E, n]
    values: torch.Tensor  # [T, E, n], de-normalized
    rewards: torch.Tensor  # [T, E, n]
    dones: torch.Tensor  # [T, E] or [T, E, n]: where each agent's episode ended (either way)
    last_value: torch.Tensor  # [E, n], de-normalized
    truncated: torch.Tensor | None = None  # [T, E, n]: ended by truncation, so bootstrap from final_values
    final_values: torch.Tensor | None = None  # [T, E, n], de-normalized V of the state each step reached
    final_obs: torch.Tensor | None = None  # [T, E, n, d]: what each step reached (before a reset)
    final_state: torch.Tensor | None = None  # [T, E, ds]
    active: torch.Tensor | None = None  # [T, E, n] bool: agents that acted (None: all)
    action_mask: torch.Tensor | None = None  # [T, E, n, U] bool legal actions (None: all)
    starts: torch.Tensor | None = None  # recurrent: [T, E] bool, step t is an episode's first
    actor_hidden: torch.Tensor | None = None  # recurrent: [T, E, n, H], the actors' states before step t
    critic_hidden: torch.Tensor | None = None  # recurrent: [T, E, H] or [T, E, n, H], the critic's


@dataclass
class TrainResult:
    config: MAPPOConfig
    model: MAPPO
    curve: list[dict] = field(default_factory=list)
    eval_return: float = float("nan")
    frames: int = 0
    seconds: float = 0.0
    reference: tuple[float, float] | None = None  # (random, scripted) mean episode return per agent
    eval_win_rate: float | None = None  # fraction of evaluation episodes won, where the task reports wins


class EpisodeTracker:
    """Sums each agent's reward over the running episode of every environment copy."""

    def __init__(self, num_envs: int, n_agents: int, device):
        self.running = torch.zeros(num_envs, n_agents, device=device)
        self.finished: list[torch.Tensor] = []

    def add(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        self.running += reward
        if bool(done.any()):
            self.finished.append(self.running[done].mean(-1))
            self.running[done] = 0.0

    def pop_returns(self) -> torch.Tensor:
        """The returns of the episodes finished since the last pop (empty if none), and forget them."""
        returns = torch.cat(self.finished) if self.finished else torch.empty(0, device=self.running.device)
        self.finished.clear()
        return returns

    def pop_mean(self) -> float:
        returns = self.pop_returns()
        return returns.mean().item() if len(returns) else float("nan")


def collect(model: MAPPO, env, start, steps: int, tracker: EpisodeTracker):
    """Run the stochastic policy for ``steps`` steps; return the rollout and the next observation."""
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        obs, state = start
        names = ("obs", "state", "actions", "log_probs", "rewards", "dones", "truncated", "final_obs",
                 "final_state", "active", "action_mask")
        buffers = {k: [] for k in names}
        for _ in range(steps):
            mask = current_action_mask(env)
            dist = model.policy(obs, mask)
            actions = dist.sample()
            for key, value in (("obs", obs), ("state", state), ("actions", actions), ("log_probs", log_prob(dist, actions)),
                               ("active", acting_agents(env)), ("action_mask", mask)):
                buffers[key].append(value)
            step = env.step(actions)
            obs, state = step.obs, step.state
            for key, value in (("rewards", step.reward), ("dones", agent_dones(step)), ("truncated", agent_truncations(step)),
                               ("final_obs", step.final_obs), ("final_state", step.final_state)):
                buffers[key].append(value)
            tracker.add(step.reward, step.done)
        stacked = {k: (None if v[0] is None else torch.stack(v)) for k, v in buffers.items()}
        rollout = Rollout(**stacked, values=None, last_value=None)
        return with_values(model, rollout, (obs, state)), (obs, state)


def with_values(model: MAPPO, rollout: Rollout, next_start) -> Rollout:
    """The rollout with the current critic's de-normalized values: V(x_t), V(x_T), and V(x'_t) where truncated.

    Each is computed with the agents that act there (what the pooled critic averages over): the
    rollout's active mask; at a truncated step's final state, the agents truncated (alive, their
    episode cut short); after the last step, :func:`next_active`.
    """
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        denorm = model.value_normalizer.denormalize if model.cfg.value_norm else (lambda v: v)
        next_obs, next_state = next_start
        final_values = None
        if rollout.truncated is not None and bool(rollout.truncated.any()):
            final_values = denorm(model.value(rollout.final_state, rollout.final_obs, rollout.truncated))
        return replace(
            rollout,
            values=denorm(model.value(rollout.state, rollout.obs, rollout.active)),
            last_value=denorm(model.value(next_state, next_obs, next_active(rollout))),
            final_values=final_values,
        )


def next_active(rollout: Rollout) -> torch.Tensor | None:
    """``[E, n]`` bool: the agents that act at the observation after the rollout's last step (None: all).

    Those whose episode did not end at the last step, and every agent of a copy whose episode ended
    (the copy has reset; an agent that left earlier counts as ended at every later step).
    """
    ended = rollout.dones[-1]
    if rollout.active is None or ended.dim() < 2:
        return None
    return (rollout.active[-1] & ~ended) | ended.all(-1, keepdim=True)


def collect_recurrent(model: MAPPO, env, start, steps: int, tracker: EpisodeTracker):
    """``collect`` for a recurrent model; ``start`` is ``(obs, state, memory)``.

    Each step stores the hidden states it began from (before the reset of an episode's first step)
    and where episodes start. The critic's values are computed while acting, since each needs the
    critic's state: V(x_t), V(x_T) after the last step and V(x'_t) of the state a step reached.
    """
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        obs, state, memory = start
        denorm = model.value_normalizer.denormalize if model.cfg.value_norm else (lambda v: v)
        names = ("obs", "state", "actions", "log_probs", "values", "rewards", "dones", "truncated", "final_obs",
                 "final_state", "final_values", "active", "action_mask", "starts", "actor_hidden", "critic_hidden")
        buffers = {k: [] for k in names}
        for _ in range(steps):
            mask = current_action_mask(env)
            starts = memory.starts.unsqueeze(0)
            dist, actor_next = model.policy_sequence(obs.unsqueeze(0), memory.actor, starts, None if mask is None else mask.unsqueeze(0))
            values, critic_next = model.value_sequence(state.unsqueeze(0), obs.unsqueeze(0), memory.critic, starts)
            actions = dist.sample()
            for key, value in (("obs", obs), ("state", state), ("actions", actions[0]), ("log_probs", log_prob(dist, actions)[0]),
                               ("values", denorm(values[0])), ("active", acting_agents(env)), ("action_mask", mask),
                               ("starts", memory.starts), ("actor_hidden", memory.actor), ("critic_hidden", memory.critic)):
                buffers[key].append(value)
            step = env.step(actions[0])
            final_values = torch.zeros_like(values[0])  # V(x'_t) is needed only where an episode was truncated
            if bool(step.truncated.any()):
                final_values, _ = model.value_sequence(step.final_state.unsqueeze(0), step.final_obs.unsqueeze(0), critic_next,
                                                       torch.zeros_like(starts))
                final_values = denorm(final_values[0])
            for key, value in (("rewards", step.reward), ("dones", agent_dones(step)), ("truncated", agent_truncations(step)),
                               ("final_obs", step.final_obs), ("final_state", step.final_state), ("final_values", final_values)):
                buffers[key].append(value)
            tracker.add(step.reward, step.done)
            obs, state, memory = step.obs, step.state, Memory(actor_next, critic_next, step.done.clone())
        stacked = {k: (None if v[0] is None else torch.stack(v)) for k, v in buffers.items()}
        if not bool(stacked["truncated"].any()):
            stacked["final_values"] = None
        last_value, _ = model.value_sequence(state.unsqueeze(0), obs.unsqueeze(0), memory.critic, memory.starts.unsqueeze(0))
        return Rollout(**stacked, last_value=denorm(last_value[0])), (obs, state, memory)


def recurrent_greedy_policy(model: MAPPO, num_envs: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A stateful greedy ``act(obs, action_mask)`` for :func:`marlpg.core.evaluation.return_and_win_rate`.

    Its memory starts at zero and is never reset after that, which is right there: only the first
    episode of every copy counts.
    """
    hidden = [model.initial_memory(num_envs).actor]
    no_reset = torch.zeros(1, num_envs, dtype=torch.bool, device=hidden[0].device)

    def act(obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if action_mask is None else action_mask.unsqueeze(0)
        actions, hidden[0] = model.act_deterministic_sequence(obs.unsqueeze(0), hidden[0], no_reset, mask)
        return actions[0]

    return act


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` holds (all of them without a mask)."""
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def clipped_surrogate(new_log_probs, old_log_probs, advantages, clip: float) -> torch.Tensor:
    """min(rho A, clip(rho, 1 - eps, 1 + eps) A) per sample, with rho = exp(new - old)."""
    ratio = (new_log_probs - old_log_probs).exp()
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


def ppo_losses(model: MAPPO, batch: dict, cfg: MAPPOConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate (to minimize, negated), entropy, and critic loss on one minibatch."""
    policy_loss, ent, value_loss, _ = ppo_losses_and_ratio(model, batch, cfg)
    return policy_loss, ent, value_loss


def ppo_losses_and_ratio(model: MAPPO, batch: dict, cfg: MAPPOConfig):
    """``ppo_losses`` and the log-ratio log pi_theta - log pi_old of every sample (for the diagnostics)."""
    dist = model.policy(batch["obs"], batch.get("action_mask"))
    return surrogate_losses(dist, model.value(batch["state"], batch["obs"], batch.get("active")), batch, cfg)


def recurrent_ppo_losses_and_ratio(model: MAPPO, batch: dict, cfg: MAPPOConfig):
    """``ppo_losses_and_ratio`` on a minibatch of chunks: ``[L, B, ...]`` sequences, ``[B, ...]`` initial states."""
    dist, _ = model.policy_sequence(batch["obs"], batch["actor_hidden"], batch["starts"], batch.get("action_mask"))
    values, _ = model.value_sequence(batch["state"], batch["obs"], batch["critic_hidden"], batch["starts"])
    return surrogate_losses(dist, values, batch, cfg)


def surrogate_losses(dist, values: torch.Tensor, batch: dict, cfg: MAPPOConfig):
    """Policy loss, entropy, critic loss and log-ratio from the new policy ``dist`` and the critic's ``values``."""
    active = batch.get("active")
    new_log_probs = log_prob(dist, batch["actions"])
    surrogate = clipped_surrogate(new_log_probs, batch["log_probs"], batch["advantages"], cfg.clip)
    policy_loss = -masked_mean(surrogate, active)
    ent = masked_mean(entropy(dist), active)
    value_loss = masked_mean(critic_loss(values, batch, cfg), active)
    return policy_loss, ent, value_loss, (new_log_probs - batch["log_probs"]).detach()


def critic_loss(values: torch.Tensor, batch: dict, cfg: MAPPOConfig) -> torch.Tensor:
    """Each sample's critic loss against ``batch["targets"]`` (normalized units): the half squared error or the
    Huber loss, and with ``value_clip`` the larger of that loss and the loss of the prediction moved at most
    ``value_clip`` from the rollout's own (``batch["old_values"]``), as in on-policy."""
    loss = pointwise_value_loss(values - batch["targets"], cfg)
    if cfg.value_clip is None:
        return loss
    old = batch["old_values"]
    clipped = old + (values - old).clamp(-cfg.value_clip, cfg.value_clip)
    return torch.max(loss, pointwise_value_loss(clipped - batch["targets"], cfg))


def pointwise_value_loss(error: torch.Tensor, cfg: MAPPOConfig) -> torch.Tensor:
    """e^2 / 2, or Huber's: e^2 / 2 for |e| <= delta, delta (|e| - delta / 2) beyond."""
    if cfg.value_loss == "huber":
        return nn.functional.huber_loss(error, torch.zeros_like(error), reduction="none", delta=cfg.huber_delta)
    return 0.5 * error.pow(2)


def make_optimizers(model: MAPPO, cfg: MAPPOConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the actors and Adam for the critic, in the order ``update`` takes them."""
    return (
        torch.optim.Adam(model.actors.parameters(), lr=cfg.lr, eps=1e-5),
        torch.optim.Adam(model.critic.parameters(), lr=cfg.lr, eps=1e-5),
    )


def set_learning_rate(optimizers, cfg: MAPPOConfig, iteration: int) -> float:
    """The learning rate of ``iteration`` (1-based) for both optimizers: ``cfg.lr``, or with ``anneal_lr``
    ``cfg.lr * (1 - (iteration - 1) / iterations)``, so the last iteration still takes a step."""
    lr = cfg.lr * (1 - (iteration - 1) / cfg.iterations) if cfg.anneal_lr else cfg.lr
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


DIAGNOSTICS = ("policy_loss", "entropy", "value_loss", "approx_kl", "clip_fraction", "actor_grad_norm", "critic_grad_norm")


def advantages_and_targets(model: MAPPO, rollout: Rollout, cfg: MAPPOConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GAE on the de-normalized values: the normalized advantages, the targets in the critic's units,
    and the targets in reward units."""
    advantages, targets = gae(
        rollout.rewards, rollout.values, rollout.dones, rollout.last_value, cfg.gamma, cfg.gae_lambda,
        rollout.truncated if rollout.final_values is not None else None, rollout.final_values,
    )
    active = rollout.active if rollout.active is not None else torch.ones_like(advantages, dtype=torch.bool)
    returns = targets
    if cfg.value_norm:
        model.value_normalizer.update(targets[active])
        targets = model.value_normalizer.normalize(targets)
    return normalized_advantages(advantages, active, cfg.advantage_norm), targets, returns


def normalized_advantages(advantages: torch.Tensor, active: torch.Tensor, how: str) -> torch.Tensor:
    """``advantages [T, E, n]`` to mean 0 and std 1 over the active samples: over all of them together
    (``"joint"``), over each agent's own (``"per_agent"``), or left as they are (``"none"``)."""
    if how == "none":
        return advantages
    if how == "joint":
        used = advantages[active]
        return (advantages - used.mean()) / (used.std() + 1e-8)
    weight = active.to(advantages.dtype)
    count = weight.sum((0, 1))
    mean = (advantages * weight).sum((0, 1)) / count.clamp(min=1)
    variance = ((advantages - mean).pow(2) * weight).sum((0, 1)) / (count - 1).clamp(min=1)
    return (advantages - mean) / (variance.sqrt() + 1e-8)


def rollout_critic_outputs(model: MAPPO, rollout: Rollout, cfg: MAPPOConfig) -> torch.Tensor:
    """The critic's outputs at collection in its own (normalized) units, for ``value_clip``: read before
    ``advantages_and_targets`` moves the normalizer's statistics."""
    return model.value_normalizer.normalize(rollout.values) if cfg.value_norm else rollout.values


def explained_variance(values: torch.Tensor, targets: torch.Tensor) -> float:
    """1 - Var[G - V] / Var[G]: 1 for a perfect critic, 0 for a constant one, negative for a worse one."""
    variance = targets.var()
    if not variance > 0:
        return float("nan")
    return (1 - (targets - values).var() / variance).item()


def ppo_diagnostics(log_ratio: torch.Tensor, active: torch.Tensor | None, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate KL(pi_old || pi) as E[(rho - 1) - log rho] (nonnegative, unbiased; Schulman's k3
    estimator) and the share of samples with |rho - 1| > clip, over the ``active`` samples."""
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        ratio = log_ratio.exp()
        return masked_mean(ratio - 1 - log_ratio, active), masked_mean(((ratio - 1).abs() > clip).float(), active)


def minibatch_indices(samples: int, minibatches: int, generator: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    """One random permutation split into ``minibatches`` parts whose sizes differ by at most one.

    (``chunk`` would give fewer parts than asked when ``samples`` is not a multiple, e.g. 25 samples
    in 8 chunks of 4 make 7.)
    """
    if not 1 <= minibatches <= samples:
        raise ValueError(f"minibatches must lie in 1..{samples} (the samples of one rollout); got {minibatches!r}")
    return torch.randperm(samples, generator=generator).to(device).tensor_split(minibatches)


def update_inputs(model: MAPPO, rollout: Rollout, cfg: MAPPOConfig):
    """What both updates start from: the critic's rollout outputs in its own units (for ``value_clip``, else
    None; read before the normalizer moves), the normalized advantages, the targets in the critic's units, the
    active mask, and the critic's explained variance before the update."""
    old_values = rollout_critic_outputs(model, rollout, cfg) if cfg.value_clip is not None else None
    advantages, targets, returns = advantages_and_targets(model, rollout, cfg)
    active = rollout.active if rollout.active is not None else torch.ones_like(advantages, dtype=torch.bool)
    return old_values, advantages, targets, active, explained_variance(rollout.values[active], returns[active])


def update(model: MAPPO, rollout: Rollout, optimizers, cfg: MAPPOConfig, generator: torch.Generator) -> dict:
    """PPO epochs over minibatches of environment steps (each step carries all n agents).

    Returns the losses and PPO's diagnostics (see the module docstring), averaged over minibatches.
    """
    old_values, advantages, targets, active, explained = update_inputs(model, rollout, cfg)
    flat = {
        "obs": rollout.obs, "state": rollout.state, "actions": rollout.actions, "log_probs": rollout.log_probs,
        "advantages": advantages, "targets": targets, "active": active, "action_mask": rollout.action_mask,
        "old_values": old_values,
    }
    flat = {k: v.flatten(0, 1) for k, v in flat.items() if v is not None}
    samples = flat["obs"].shape[0]
    stats = torch.zeros(len(DIAGNOSTICS))
    for _ in range(cfg.epochs):
        for index in minibatch_indices(samples, cfg.minibatches, generator, rollout.obs.device):
            batch = {k: v[index] for k, v in flat.items()}
            stats += optimizer_step(model, optimizers, cfg, ppo_losses_and_ratio(model, batch, cfg), batch["active"])
    stats /= cfg.epochs * cfg.minibatches
    return {**dict(zip(DIAGNOSTICS, stats.tolist())), "explained_variance": explained}


def optimizer_step(model: MAPPO, optimizers, cfg: MAPPOConfig, losses, active: torch.Tensor) -> torch.Tensor:
    """One Adam step of the actors and of the critic on a minibatch's losses; its row of ``DIAGNOSTICS``."""
    policy_loss, ent, value_loss, log_ratio = losses
    actor_opt, critic_opt = optimizers
    actor_opt.zero_grad(set_to_none=True)
    critic_opt.zero_grad(set_to_none=True)
    (policy_loss - cfg.entropy_coef * ent + value_loss).backward()
    actor_norm = nn.utils.clip_grad_norm_(model.actors.parameters(), cfg.max_grad_norm)
    critic_norm = nn.utils.clip_grad_norm_(model.critic.parameters(), cfg.max_grad_norm)
    actor_opt.step()
    critic_opt.step()
    kl, clipped = ppo_diagnostics(log_ratio, active, cfg.clip)
    row = [policy_loss.detach(), ent.detach(), value_loss.detach(), kl, clipped, actor_norm, critic_norm]
    return torch.stack([x.float() for x in row]).cpu()


def recurrent_chunks(rollout: Rollout, advantages: torch.Tensor, targets: torch.Tensor, active: torch.Tensor,
                     chunk_length: int, old_values: torch.Tensor | None = None) -> tuple[dict, dict]:
    """The rollout cut into chunks (see :mod:`marlpg.core.recurrent`): ``[L, C E, ...]`` sequences
    and ``[C E, ...]`` initial hidden states. Padding is inactive, with every action legal."""
    steps, copies = rollout.rewards.shape[:2]
    per_step = {
        "obs": rollout.obs, "state": rollout.state, "actions": rollout.actions, "log_probs": rollout.log_probs,
        "advantages": advantages, "targets": targets, "active": active, "starts": rollout.starts,
        "action_mask": rollout.action_mask, "old_values": old_values,
    }
    sequences = {k: to_chunks(v, chunk_length, fill=k == "action_mask") for k, v in per_step.items() if v is not None}
    sequences["active"] = sequences["active"] & valid_steps(steps, copies, chunk_length, active.device).unsqueeze(-1)
    initial = {k: chunk_initial_states(getattr(rollout, k), chunk_length) for k in ("actor_hidden", "critic_hidden")}
    return sequences, initial


def update_recurrent(model: MAPPO, rollout: Rollout, optimizers, cfg: MAPPOConfig, generator: torch.Generator) -> dict:
    """``update`` for a recurrent model: PPO epochs over minibatches of chunks of ``cfg.chunk_length`` steps,
    each replayed from its stored hidden state. Returns the same diagnostics."""
    old_values, advantages, targets, active, explained = update_inputs(model, rollout, cfg)
    sequences, initial = recurrent_chunks(rollout, advantages, targets, active, cfg.chunk_length, old_values)
    stats = torch.zeros(len(DIAGNOSTICS))
    for _ in range(cfg.epochs):
        for index in minibatch_indices(sequences["obs"].shape[1], cfg.minibatches, generator, rollout.obs.device):
            batch = {k: v[:, index] for k, v in sequences.items()} | {k: v[index] for k, v in initial.items()}
            losses = recurrent_ppo_losses_and_ratio(model, batch, cfg)
            stats += optimizer_step(model, optimizers, cfg, losses, batch["active"])
    stats /= cfg.epochs * cfg.minibatches
    return {**dict(zip(DIAGNOSTICS, stats.tolist())), "explained_variance": explained}


def greedy_policy(model: MAPPO, env):
    """``act(obs, action_mask)``: the deterministic policy, keeping to the legal actions (with memory if recurrent)."""
    return recurrent_greedy_policy(model, env.num_envs) if model.cfg.recurrent else model.act_deterministic


def evaluate(model: MAPPO, env, episodes_seed: int) -> float:
    """Mean episode return per agent of the deterministic policy: one episode in every copy of ``env``."""
    return evaluate_with_wins(model, env, episodes_seed)[0]


def evaluate_with_wins(model: MAPPO, env, episodes_seed: int) -> tuple[float, float | None]:
    """The deterministic policy's mean episode return per agent and, where the task reports wins (SMAX), the
    fraction of episodes won (else None), from the same episodes: one in every copy of ``env``."""
    return return_and_win_rate(greedy_policy(model, env), env, episodes_seed)


def make_envs(cfg: MAPPOConfig, device: torch.device):
    common = dict(n_agents=cfg.n_agents, horizon=cfg.horizon, continuous=cfg.continuous, device=device)
    train_env = make_env(cfg.env, cfg.num_envs, seed=cfg.seed, **common)
    eval_env = make_env(cfg.env, cfg.eval_episodes, seed=10_000 + cfg.seed, **common)
    return train_env, eval_env


def reference_for(cfg: MAPPOConfig) -> tuple[float, float] | None:
    """(random, scripted) returns for tasks that have a scripted reference, else None."""
    try:
        from marlpg.envs.reference import reference_returns
    except ImportError:
        return None
    try:
        sizes = {} if cfg.n_agents is None else {"n_agents": cfg.n_agents}
        return reference_returns(cfg.env, continuous=cfg.continuous, **sizes)
    except (ValueError, NotImplementedError):
        return None


def train(
    cfg: MAPPOConfig,
    progress: bool = True,
    on_iteration: Callable[[dict], None] | None = None,
    with_reference: bool = True,
    time_limit: float | None = None,
) -> TrainResult:
    """Train MAPPO (or IPPO) for ``cfg.total_frames`` frames; return the model, curve and final evaluation.

    ``time_limit`` (seconds of training, evaluation excluded) ends the run early, after the first
    iteration that reaches it: a comparison at equal wall time that holds on a slow or busy machine.
    """
    if time_limit is not None and not time_limit >= 0:
        raise ValueError(f"time_limit must be a non-negative number of seconds or None; got {time_limit!r}")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_env, eval_env = make_envs(cfg, device)
    model = MAPPO(train_env.spec, cfg).to(device)
    optimizers = make_optimizers(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    with cpu_threads(1):
        reference = reference_for(cfg) if with_reference else None
    result = TrainResult(cfg, model, reference=reference)
    tracker = EpisodeTracker(cfg.num_envs, train_env.spec.n_agents, device)
    start = train_env.reset(seed=cfg.seed)
    collect_steps, update_model = (collect_recurrent, update_recurrent) if cfg.recurrent else (collect, update)
    if cfg.recurrent:
        start = (*start, model.initial_memory(cfg.num_envs))
    bar = progress_bar(cfg.iterations * cfg.frames_per_iteration, progress, "MAPPO" if not cfg.ippo else "IPPO")
    update_threads = update_thread_count(cfg.update_threads)
    began = time.perf_counter()
    for iteration in range(1, cfg.iterations + 1):
        with cpu_threads(1):
            rollout, start = collect_steps(model, train_env, start, cfg.rollout_steps, tracker)
        lr = set_learning_rate(optimizers, cfg, iteration)
        with cpu_threads(update_threads):
            stats = update_model(model, rollout, optimizers, cfg, generator)
        result.frames += cfg.frames_per_iteration
        episode_return = tracker.pop_mean()
        row = {
            "iteration": iteration,
            "frames": result.frames,
            "seconds": round(time.perf_counter() - began, 3),
            "return": episode_return,
            "gap": gap_closed(episode_return, reference),
            "lr": lr,
            **stats,
        }
        if cfg.eval_every and iteration % cfg.eval_every == 0:
            with cpu_threads(1):
                row["eval_return"], won = evaluate_with_wins(model, eval_env, 10_000 + cfg.seed)
            if won is not None:
                row["eval_win_rate"] = won
        result.curve.append(row)
        if on_iteration is not None:
            on_iteration(row)
        bar.update(cfg.frames_per_iteration)
        bar.set_postfix(ret=f"{episode_return:.1f}")
        if time_limit is not None and time.perf_counter() - began >= time_limit:
            break
    bar.close()
    result.seconds = time.perf_counter() - began
    with cpu_threads(1):
        result.eval_return, result.eval_win_rate = evaluate_with_wins(model, eval_env, 10_000 + cfg.seed)
    return result


def train_quietly(cfg: MAPPOConfig) -> TrainResult:
    """One seed's job for ``marlpg.scale.jobs.train_seeds``: ``train`` without a progress bar or references."""
    return train(cfg, progress=False, with_reference=False)


# --- deployment: what runs on an agent -------------------------------------------------------


class DeployedActor:
    """The trained policy as it runs on agent ``agent_index``: one local observation in, one action out.

    Nothing else reaches the network: not the global state, not other agents' observations or
    actions. Only the agent's own observation and (for a shared actor) its fixed one-hot ID.

    A recurrent actor also carries its own hidden state from call to call, so it acts on its own
    observation history; call ``reset()`` before a new episode (``reset(starts)`` with a ``[B]``
    bool tensor forgets only the rows of a batch whose episode starts).
    """

    def __init__(self, model: MAPPO, agent_index: int):
        n = model.spec.n_agents
        if not 0 <= agent_index < n:
            raise ValueError(f"agent_index must lie in 0..{n - 1}; got {agent_index!r}")
        self.network = model.actors[model.group_of[agent_index]]
        self.agent_id = torch.eye(n)[agent_index] if model.use_ids else None
        self.obs_dim = model.spec.obs_dim
        self.recurrent = model.cfg.recurrent
        self.hidden: torch.Tensor | None = None  # recurrent only: [*batch, H], None before the first step

    def reset(self, starts: torch.Tensor | None = None) -> None:
        """Forget the observation history: all of it, or the rows where ``starts`` holds."""
        if starts is None or self.hidden is None:
            self.hidden = None
        else:
            self.hidden = reset_where(self.hidden, starts.to(self.hidden.device))

    @torch.no_grad()
    def __call__(self, local_obs: torch.Tensor) -> torch.Tensor:
        if local_obs.shape[-1] != self.obs_dim:
            raise ValueError(f"a local observation has {self.obs_dim} features; got shape {tuple(local_obs.shape)}")
        inputs = local_obs
        if self.agent_id is not None:
            inputs = torch.cat([local_obs, self.agent_id.to(local_obs).expand(*local_obs.shape[:-1], -1)], dim=-1)
        if self.recurrent:
            return self._recurrent_step(inputs)
        return self.network.deterministic(inputs)

    def _recurrent_step(self, inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[:-1]
        if self.hidden is None:
            self.hidden = inputs.new_zeros(*batch, self.network.hidden_size)
        elif self.hidden.shape[:-1] != batch:
            raise ValueError(
                f"this actor's history has batch shape {tuple(self.hidden.shape[:-1])}; got observations of batch "
                f"shape {tuple(batch)} (call reset() before acting on another batch)"
            )
        no_reset = torch.zeros(1, *batch, dtype=torch.bool, device=inputs.device)
        out, self.hidden = self.network(inputs.unsqueeze(0), self.hidden, no_reset)
        return self.network.deterministic(out[0])


def save_actors(model: MAPPO, path: str | Path) -> Path:
    """Save what deployment needs (the actors, the environment spec and the config), not the critic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"spec": asdict(model.spec), "config": asdict(model.cfg), "actors": model.actors.state_dict()}, path)
    return path


def load_actors(path: str | Path, device: str = "cpu") -> MAPPO:
    """A model with the saved actors (its critic untrained): call ``DeployedActor(model, i)`` per agent."""
    saved = torch.load(path, map_location=device, weights_only=True)
    known = {f.name for f in fields(MAPPOConfig)}
    cfg = MAPPOConfig(**{k: v for k, v in saved["config"].items() if k in known})
    model = MAPPO(EnvSpec(**saved["spec"]), cfg)
    model.actors.load_state_dict(saved["actors"])
    return model.to(device).eval()
