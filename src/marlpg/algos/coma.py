"""COMA: counterfactual multi-agent policy gradients (Foerster et al., 2018).

Each agent a acts from its own observation, u_a ~ pi_theta(. | o_a) (with a one-hot agent ID when
the actor is shared). A centralized critic Q_phi(x, u) of the state and the *joint* action answers
"which agent earned the shared reward?" with a counterfactual baseline: keep every other agent's
action fixed and average over agent a's own alternatives,

    A_a(x, u) = Q(x, u) - sum_{u'} pi_a(u' | o_a) Q(x, (u_-a, u')).

Because the baseline does not depend on u_a, it leaves the policy gradient unbiased,

    grad J = E[ sum_a grad log pi_a(u_a | o_a) A_a(x, u) ],

and an agent whose action does not change the reward gets A_a = 0 exactly (with a right critic).
The critic computes the baseline in one forward pass per agent: its input is the state, the other
agents' actions (one-hot, agent a's own block zeroed) and a's ID; its output has one Q-value per
action u' of agent a. It regresses on TD(lambda) targets from a target critic,

    G_t = r_t + gamma (1 - d_t) [ (1 - lambda) Q'(x_{t+1}, u_{t+1}) + lambda G_{t+1} ].

(after a termination the bracket is 0; after a truncation it is Q' at the state the episode reached,
with actions drawn there from the current policy: see :mod:`marlpg.core.returns`).

One iteration: collect T steps in E environments; compute the targets with the target critic; a
few gradient steps on the critic; one policy-gradient step on the actors with the advantages of
the updated critic,

    L(theta) = -E_t[ sum_a log pi_a(u_a | o_a) A_a + beta sum_a H(pi_a(. | o_a)) ],

summing over agents in both terms, so every agent's entropy bonus weighs beta whatever the team
size (an average over agents would shrink it as 1/n against the summed policy term); copy the
critic into the target every ``target_update_every`` iterations (a hard copy, as in EPyMARL).
Agents that have left their episode (see :mod:`marlpg.envs.protocol`) add nothing to either loss.

Two baselines for the same actors, as ablations (``baseline=``):

* ``state_value`` (MAPPO-style): a centralized V(x); A_a = G_t - V(x_t), the same for every agent.
* ``independent`` (independent actor-critic, IAC-Q in Foerster et al.): each agent's critic
  Q_a(o_a, t/H, u_a) sees only its own observation, its ID, the time fraction t/H (as IPPO's and
  IDDPG's critics do, so that the horizon is not aliased on multi-step tasks) and its own action;
  A_a = Q_a(o_a, u_a) - sum_u' pi_a(u') Q_a(o_a, u').

On the one-step games of :mod:`marlpg.envs.matrix_games` the state is a constant, so Q(x, u) is
just the payoff table of the joint action and V(x) the mean payoff of the current policies.

Run ``python -m marlpg.coma --help`` for the command line.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.distributions import Categorical
from torch.nn import functional as F

from marlpg.core.agents import one_hot_ids, with_agent_ids
from marlpg.core.evaluation import deterministic_return
from marlpg.core.networks import CategoricalActor, mlp
from marlpg.core.normalizer import RunningNormalizer
from marlpg.core.returns import td_lambda_targets
from marlpg.core.runlog import progress_bar
from marlpg.core.schedule import IterationBudget
from marlpg.core.seeding import resolve_device, seed_everything
from marlpg.core.threads import cpu_threads, update_thread_count
from marlpg.envs import EnvSpec, make_env
from marlpg.envs.protocol import acting_agents, agent_dones, agent_truncations

BASELINES = ("counterfactual", "state_value", "independent")
ONE_STEP_GAMES = ("credit", "climbing")
DEFAULT_AGENTS = {"credit": 4, "climbing": 2}


@dataclass
class COMAConfig(IterationBudget):
    env: str = "credit"
    baseline: str = "counterfactual"  # counterfactual (COMA) | state_value | independent
    n_agents: int | None = None  # None: 4 for credit, 2 for climbing, 3 otherwise
    k_relevant: int | None = None  # credit game: agents that matter (None: half of them)
    num_envs: int | None = None  # None: 8 for the one-step games, 64 otherwise
    horizon: int = 25  # ignored by the one-step games
    total_frames: int | None = None  # frames = steps of one environment copy; None: 4,000 one-step, 500,000 otherwise
    seed: int = 0
    device: str = "cpu"
    share: bool = True  # one actor for all agents (with a one-hot ID) or one per agent
    actor_lr: float | None = None  # None: 3e-3 one-step, 5e-4 otherwise
    critic_lr: float | None = None  # None: 5e-3 one-step, 1e-3 otherwise
    gamma: float = 0.99
    td_lambda: float = 0.8
    critic_steps: int = 4  # gradient steps on the critic per iteration
    critic_minibatches: int = 1  # each critic step uses 1/critic_minibatches of the rollout
    target_update_every: int = 2  # iterations between copies of the critic into the target critic
    entropy_coef: float = 0.01
    max_grad_norm: float = 10.0
    value_norm: bool = True
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] | None = None  # None: (64, 64) one-step, (128, 128) otherwise
    eval_episodes: int = 200
    eval_every: int = 0  # iterations between deterministic evaluations during training (0: only at the end)
    update_threads: int | None = None
    stop_at: float | None = None  # one-step games: stop once the expected return reaches this fraction of the optimum

    def __post_init__(self):
        one_step = self.one_step
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}; got {self.baseline!r}")
        if self.n_agents is None:
            self.n_agents = DEFAULT_AGENTS.get(self.env, 3)
        if self.num_envs is None:
            self.num_envs = 8 if one_step else 64
        if self.total_frames is None:
            self.total_frames = 4_000 if one_step else 500_000
        if self.actor_lr is None:
            self.actor_lr = 3e-3 if one_step else 5e-4
        if self.critic_lr is None:
            self.critic_lr = 5e-3 if one_step else 1e-3
        if self.critic_hidden is None:
            self.critic_hidden = (64, 64) if one_step else (128, 128)
        self.actor_hidden, self.critic_hidden = tuple(self.actor_hidden), tuple(self.critic_hidden)
        for name in ("n_agents", "num_envs", "horizon", "total_frames", "critic_steps", "critic_minibatches",
                     "target_update_every", "eval_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(self.eval_every, int) or isinstance(self.eval_every, bool) or self.eval_every < 0:
            raise ValueError(f"eval_every must be a non-negative integer; got {self.eval_every!r}")
        for name in ("actor_lr", "critic_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.td_lambda <= 1:
            raise ValueError(f"gamma and td_lambda must lie in [0, 1]; got {self.gamma!r}, {self.td_lambda!r}")
        if self.stop_at is not None and not (self.one_step and 0 < self.stop_at <= 1):
            raise ValueError(f"stop_at must lie in (0, 1] and needs a one-step game with a known optimum; got {self.stop_at!r} with env={self.env!r}")
        if self.rollout_steps * self.num_envs < self.critic_minibatches:
            raise ValueError(f"critic_minibatches={self.critic_minibatches} exceeds the {self.rollout_steps * self.num_envs} samples of one rollout")

    @property
    def one_step(self) -> bool:
        return self.env in ONE_STEP_GAMES

    @property
    def rollout_steps(self) -> int:
        return 1 if self.one_step else self.horizon


# --- the critic's inputs -----------------------------------------------------------------------


def counterfactual_inputs(state: torch.Tensor, actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """COMA's critic input for every agent a: ``[x, u_-a one-hot (own block zeroed), ID_a]``.

    state ``[..., d_x]``, actions ``[..., n]`` -> ``[..., n, d_x + n |U| + n]``. Row a never contains
    agent a's own action, so the critic's |U| outputs for row a can be read as Q(x, (u_-a, u')).
    """
    n = actions.shape[-1]
    joint = F.one_hot(actions, n_actions).to(state.dtype)  # [..., n, U]
    others = joint.unsqueeze(-3).expand(*actions.shape[:-1], n, n, n_actions)  # row a: every agent's action
    keep = 1.0 - torch.eye(n, device=state.device, dtype=state.dtype).unsqueeze(-1)  # zero agent a's own block
    others = (others * keep).flatten(-2)  # [..., n, n U]
    state_rows = state.unsqueeze(-2).expand(*state.shape[:-1], n, state.shape[-1])
    ids = one_hot_ids(n, state.device).to(state.dtype).expand(*actions.shape[:-1], n, n)
    return torch.cat([state_rows, others, ids], dim=-1)


def counterfactual_baseline(q_all: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """sum_{u'} pi_a(u') Q(x, (u_-a, u')) for every agent: ``[..., n, U]`` x ``[..., n, U]`` -> ``[..., n]``."""
    return (probs * q_all).sum(-1)


def counterfactual_advantage(q_all: torch.Tensor, probs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A_a = Q(x, u) - sum_{u'} pi_a(u') Q(x, (u_-a, u')), ``[..., n]``."""
    q_taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return q_taken - counterfactual_baseline(q_all, probs)


def independent_critic_input(obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """IAC-Q's critic input for every agent: ``[o_a, ID_a, t/H]`` (t/H is the state's last feature)."""
    clock = state[..., -1:].unsqueeze(-2).expand(*obs.shape[:-1], 1)
    return torch.cat([with_agent_ids(obs), clock], dim=-1)


class COMA(nn.Module):
    """The actors (deployed) and one critic with its target copy (used only in training)."""

    def __init__(self, spec: EnvSpec, cfg: COMAConfig):
        super().__init__()
        if not spec.discrete:
            raise ValueError("COMA needs discrete actions (the baseline sums over them); got a continuous environment")
        self.spec, self.cfg = spec, cfg
        n, n_actions = spec.n_agents, spec.n_actions
        actor_in = spec.obs_dim + (n if cfg.share else 0)
        self.actors = nn.ModuleList(CategoricalActor(actor_in, n_actions, cfg.actor_hidden) for _ in range(1 if cfg.share else n))
        if cfg.baseline == "counterfactual":  # Q(x, (u_-a, .)): one output per action of agent a
            self.critic = mlp(spec.state_dim + n * n_actions + n, cfg.critic_hidden, n_actions)
        elif cfg.baseline == "independent":  # Q_a(o_a, t/H, .): the agent's own observation, ID and the clock
            self.critic = mlp(spec.obs_dim + n + 1, cfg.critic_hidden, n_actions)
        else:  # V(x), one row per agent (with its ID) so every baseline has the same shapes
            self.critic = mlp(spec.state_dim + n, cfg.critic_hidden, 1)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value_normalizer = RunningNormalizer()

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [..., n, d]`` -> logits ``[..., n, U]``; agent a's row depends on ``obs[..., a, :]`` only."""
        if self.cfg.share:
            return self.actors[0].net(with_agent_ids(obs))
        return torch.stack([actor.net(obs[..., a, :]) for a, actor in enumerate(self.actors)], dim=-2)

    def policy(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.logits(obs))

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(obs).argmax(-1)

    def critic_outputs(self, state, obs, actions, target: bool = False) -> torch.Tensor:
        """Normalized critic outputs: Q-values ``[..., n, U]`` (or V ``[..., n, 1]`` for ``state_value``)."""
        net = self.target_critic if target else self.critic
        n = self.spec.n_agents
        if self.cfg.baseline == "counterfactual":
            return net(counterfactual_inputs(state, actions, self.spec.n_actions))
        if self.cfg.baseline == "independent":
            return net(independent_critic_input(obs, state))
        ids = one_hot_ids(n, state.device).expand(*state.shape[:-1], n, n)
        return net(torch.cat([state.unsqueeze(-2).expand(*state.shape[:-1], n, state.shape[-1]), ids], -1))

    def critic_values(self, state, obs, actions, target: bool = False) -> torch.Tensor:
        """The value the critic regresses on, per agent ``[..., n]``: Q of the taken action, or V."""
        out = self.critic_outputs(state, obs, actions, target)
        if self.cfg.baseline == "state_value":
            return out.squeeze(-1)
        return out.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        return self.value_normalizer.denormalize(values) if self.cfg.value_norm else values

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        return self.value_normalizer.normalize(values) if self.cfg.value_norm else values

    def advantages(self, state, obs, actions, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Every agent's advantage ``[..., n]`` in reward units, for the configured baseline.

        ``targets`` (the TD(lambda) returns) are needed only by ``state_value``: A = G - V(x).
        """
        with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
            out = self.critic_outputs(state, obs, actions)
            if self.cfg.baseline == "state_value":
                if targets is None:
                    raise ValueError("the state_value baseline needs the TD(lambda) targets to form G - V(x)")
                return targets - self.denormalize(out.squeeze(-1))
            scale = self.value_normalizer.std if self.cfg.value_norm else 1.0  # A is a difference: the mean cancels
            probs = self.policy(obs).probs
            return scale * counterfactual_advantage(out, probs, actions)


# --- experience --------------------------------------------------------------------------------


@dataclass
class Rollout:
    obs: torch.Tensor  # [T, E, n, d]
    state: torch.Tensor  # [T, E, ds]
    actions: torch.Tensor  # [T, E, n]
    rewards: torch.Tensor  # [T, E, n]
    dones: torch.Tensor  # [T, E]: the episode ended (either way)
    next_obs: torch.Tensor  # [E, n, d]: after the last step, with the actions sampled there
    next_state: torch.Tensor  # [E, ds]
    next_actions: torch.Tensor  # [E, n]
    agent_dones: torch.Tensor | None = None  # [T, E, n]: each agent's episode ended (its copy's, or it left)
    truncated: torch.Tensor | None = None  # [T, E, n]: ended by truncation; bootstrap from the final_* fields
    active: torch.Tensor | None = None  # [T, E, n]: agents that acted (None: all)
    final_obs: torch.Tensor | None = None  # [T, E, n, d]: what each step reached, set only where truncated
    final_state: torch.Tensor | None = None  # [T, E, ds]
    final_actions: torch.Tensor | None = None  # [T, E, n]: drawn from the policy at final_obs


def collect(model: COMA, env, start, steps: int):
    """Run the stochastic policy for ``steps`` steps; also sample the actions at the state after them.

    Those next actions bootstrap Q(x_T, u_T) for the targets, which are computed before the update,
    so the critic is always evaluated on joint actions the policy really takes. After the update the
    next rollout's first actions are drawn again (``resample_actions``), so the actors learn on-policy.
    """
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        obs, state, actions = start
        names = ("obs", "state", "actions", "rewards", "dones", "agent_dones", "truncated", "active",
                 "final_obs", "final_state", "final_actions")
        buffers = {k: [] for k in names}
        for _ in range(steps):
            buffers["active"].append(acting_agents(env))
            step = env.step(actions)
            for key, value in (("obs", obs), ("state", state), ("actions", actions), ("rewards", step.reward),
                               ("dones", step.done), ("agent_dones", agent_dones(step)), ("truncated", agent_truncations(step)),
                               ("final_obs", step.final_obs), ("final_state", step.final_state)):
                buffers[key].append(value)
            buffers["final_actions"].append(model.policy(step.final_obs).sample() if bool(step.truncated.any()) else actions)
            obs, state = step.obs, step.state
            actions = model.policy(obs).sample()
        stacked = {k: torch.stack(v) for k, v in buffers.items()}
        if not bool(stacked["truncated"].any()):  # nothing to bootstrap from: keep the rollout small
            stacked.update(final_obs=None, final_state=None, final_actions=None)
        return Rollout(**stacked, next_obs=obs, next_state=state, next_actions=actions), (obs, state, actions)


def critic_targets(model: COMA, rollout: Rollout, cfg: COMAConfig) -> torch.Tensor:
    """TD(lambda) targets ``[T, E, n]`` in reward units, from the target critic."""
    with torch.no_grad():  # in the body, not a decorator: mutmut skips decorated functions
        values = model.denormalize(model.critic_values(rollout.state, rollout.obs, rollout.actions, target=True))
        last = model.denormalize(model.critic_values(rollout.next_state, rollout.next_obs, rollout.next_actions, target=True))
        dones = rollout.dones if rollout.agent_dones is None else rollout.agent_dones
        truncated, final = None, None
        if rollout.final_state is not None:
            truncated = rollout.truncated
            final = model.denormalize(model.critic_values(rollout.final_state, rollout.final_obs, rollout.final_actions, target=True))
        return td_lambda_targets(rollout.rewards, values, dones, last, cfg.gamma, cfg.td_lambda, truncated, final)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` holds (all of them without a mask)."""
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def update_critic(model: COMA, rollout: Rollout, targets: torch.Tensor, optimizer, cfg: COMAConfig, generator) -> float:
    """``critic_steps`` gradient steps on 0.5 (critic - target)^2 in normalized units."""
    active = rollout.active if rollout.active is not None else torch.ones_like(targets, dtype=torch.bool)
    if cfg.value_norm:
        model.value_normalizer.update(targets[active])
    flat = {"state": rollout.state.flatten(0, 1), "obs": rollout.obs.flatten(0, 1), "actions": rollout.actions.flatten(0, 1),
            "targets": model.normalize(targets).flatten(0, 1), "active": active.flatten(0, 1)}
    samples = flat["state"].shape[0]
    total = 0.0
    for step in range(cfg.critic_steps):
        if cfg.critic_minibatches == 1:
            batch = flat
        else:
            index = torch.randperm(samples, generator=generator)[: samples // cfg.critic_minibatches].to(flat["state"].device)
            batch = {k: v[index] for k, v in flat.items()}
        error = model.critic_values(batch["state"], batch["obs"], batch["actions"]) - batch["targets"]
        loss = 0.5 * masked_mean(error.pow(2), batch["active"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.critic.parameters(), cfg.max_grad_norm)
        optimizer.step()
        total += loss.item()
    return total / cfg.critic_steps


def update_actors(model: COMA, rollout: Rollout, advantages: torch.Tensor, optimizer, cfg: COMAConfig) -> float:
    """One step up sum_a [log pi_a(u_a | o_a) A_a + beta H(pi_a)], averaged over the batch.

    Returns the mean entropy per agent (the curve's ``entropy``).
    """
    dist = model.policy(rollout.obs)
    active = rollout.active.to(advantages.dtype) if rollout.active is not None else torch.ones_like(advantages)
    policy_loss = -(dist.log_prob(rollout.actions) * advantages * active).sum(-1).mean()
    entropy_sum = (dist.entropy() * active).sum(-1).mean()
    optimizer.zero_grad(set_to_none=True)
    (policy_loss - cfg.entropy_coef * entropy_sum).backward()
    nn.utils.clip_grad_norm_(model.actors.parameters(), cfg.max_grad_norm)
    optimizer.step()
    return (entropy_sum / active.sum(-1).mean()).item()


def update_target(model: COMA, iteration: int, cfg: COMAConfig) -> bool:
    """Copy the critic into the target critic after every ``target_update_every``-th iteration; say whether it did."""
    if iteration % cfg.target_update_every != 0:
        return False
    model.target_critic.load_state_dict(model.critic.state_dict())
    return True


# --- training ------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    config: COMAConfig
    model: COMA
    curve: list[dict] = field(default_factory=list)
    eval_return: float = float("nan")
    optimum: float | None = None  # known for the one-step games
    frames: int = 0
    seconds: float = 0.0


def make_envs(cfg: COMAConfig, device: torch.device):
    common = dict(n_agents=cfg.n_agents, horizon=cfg.horizon, device=device)
    if cfg.env == "credit":
        common["k_relevant"] = cfg.k_relevant
    elif cfg.k_relevant is not None:
        raise ValueError(f"k_relevant applies to the credit game only; got k_relevant={cfg.k_relevant!r} with env={cfg.env!r}")
    train_env = make_env(cfg.env, cfg.num_envs, seed=cfg.seed, **common)
    eval_env = make_env(cfg.env, cfg.eval_episodes, seed=10_000 + cfg.seed, **common)
    if train_env.spec.n_agents != cfg.n_agents:
        raise ValueError(f"{cfg.env!r} has {train_env.spec.n_agents} agents; got n_agents={cfg.n_agents!r}")
    return train_env, eval_env


def build(cfg: COMAConfig):
    """Seed everything, build the environments, the model and its optimizers."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_env, eval_env = make_envs(cfg, device)
    model = COMA(train_env.spec, cfg).to(device)
    optimizers = (
        torch.optim.Adam(model.actors.parameters(), lr=cfg.actor_lr, eps=1e-5),
        torch.optim.Adam(model.critic.parameters(), lr=cfg.critic_lr, eps=1e-5),
    )
    return model, train_env, eval_env, optimizers


def first_start(model: COMA, env, seed: int):
    obs, state = env.reset(seed=seed)
    with torch.no_grad():
        return obs, state, model.policy(obs).sample()


@torch.no_grad()
def resample_actions(model: COMA, start):
    """Keep the observation and state, draw the actions again from the (just updated) policy."""
    obs, state, _ = start
    return obs, state, model.policy(obs).sample()


def mean_episode_return(rollout: Rollout) -> float:
    """Mean return per agent of the episodes that end in this rollout (rollouts are aligned with episodes)."""
    rewards = rollout.rewards.mean(-1)  # [T, E]
    total, running = [], torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0]):
        running = running + rewards[t]
        if bool(rollout.dones[t].any()):
            total.append(running[rollout.dones[t]])
        running = running * (~rollout.dones[t])
    return torch.cat(total).mean().item() if total else float("nan")


def train(
    cfg: COMAConfig, progress: bool = True, on_iteration: Callable[[dict], None] | None = None
) -> TrainResult:
    """Train COMA (or an ablation's baseline) for ``cfg.total_frames`` frames; ``on_iteration`` sees every row."""
    model, train_env, eval_env, (actor_opt, critic_opt) = build(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    result = TrainResult(cfg, model, optimum=getattr(train_env, "optimum", None))
    start = first_start(model, train_env, cfg.seed)
    label = {"counterfactual": "COMA", "state_value": "PG+V(x)", "independent": "IAC-Q"}[cfg.baseline]
    bar = progress_bar(cfg.iterations * cfg.frames_per_iteration, progress, label)
    threads = update_thread_count(cfg.update_threads)
    began = time.perf_counter()
    for iteration in range(1, cfg.iterations + 1):
        with cpu_threads(1):
            rollout, start = collect(model, train_env, start, cfg.rollout_steps)
        with cpu_threads(threads):
            targets = critic_targets(model, rollout, cfg)
            critic_loss = update_critic(model, rollout, targets, critic_opt, cfg, generator)
            advantages = model.advantages(rollout.state, rollout.obs, rollout.actions, targets)
            entropy = update_actors(model, rollout, advantages, actor_opt, cfg)
        start = resample_actions(model, start)  # the next rollout's first actions come from the updated policy
        update_target(model, iteration, cfg)
        result.frames += cfg.frames_per_iteration
        episode_return = mean_episode_return(rollout)
        per_agent_var = advantages.flatten(0, -2).var(0)
        row = {
            "iteration": iteration,
            "frames": result.frames,
            "seconds": round(time.perf_counter() - began, 3),
            "return": episode_return,
            "critic_loss": critic_loss,
            "entropy": entropy,
            "advantage_var": per_agent_var.mean().item(),
        }
        if cfg.one_step:  # the exact expected payoff of the current policies, free of sampling noise
            with torch.no_grad():
                row["expected_return"] = train_env.expected_payoff(model.policy(start[0][0]).probs).item()
        if cfg.eval_every and iteration % cfg.eval_every == 0:
            with cpu_threads(1):
                row["eval_return"] = evaluate(model, eval_env, 10_000 + cfg.seed)
        result.curve.append(row)
        if on_iteration is not None:
            on_iteration(row)
        bar.update(cfg.frames_per_iteration)
        bar.set_postfix(ret=f"{episode_return:.2f}")
        if cfg.stop_at is not None and row["expected_return"] >= cfg.stop_at * result.optimum:
            break
    bar.close()
    result.seconds = time.perf_counter() - began
    with cpu_threads(1):
        result.eval_return = evaluate(model, eval_env, 10_000 + cfg.seed)
    return result


def train_quietly(cfg: COMAConfig) -> TrainResult:
    """One seed's job for ``marlpg.scale.jobs.train_seeds``: ``train`` without a progress bar."""
    return train(cfg, progress=False)


def evaluate(model: COMA, env, episodes_seed: int) -> float:
    """Mean episode return per agent of the greedy policy: one episode in every copy of ``env``."""
    return deterministic_return(model.act_deterministic, env, episodes_seed)


def episodes_to_optimum(result: TrainResult, fraction: float = 0.9) -> int | None:
    """Training episodes until the policies' expected return first reaches ``fraction`` of the optimum.

    The expected return is computed exactly from the policies after each update (one-step games);
    None when it never gets there within the run.
    """
    if result.optimum is None:
        raise ValueError(f"env {result.config.env!r} has no known optimum")
    episodes_per_frame = 1.0 / result.config.rollout_steps
    for row in result.curve:
        if row["expected_return"] >= fraction * result.optimum:
            return int(row["frames"] * episodes_per_frame)
    return None


# --- measuring the advantages at fixed policies -----------------------------------------------


@torch.no_grad()
def advantage_snapshot(model: COMA, env, batch_envs: int | None = None) -> dict:
    """Every agent's advantage over one fresh batch at the current policies (one-step games).

    Returns ``actions [B, n]``, ``advantages [B, n]``, the policies' ``probs [n, U]`` and, for the
    credit game, the exact counterfactual credit ``true_credit [B, n]`` to compare with.
    """
    obs, state = env.reset()
    dist = model.policy(obs)
    actions = dist.sample()
    _, _, reward, _ = env.step(actions)
    targets = reward.unsqueeze(0)  # one-step episodes: the TD(lambda) target is the payoff
    advantages = model.advantages(state.unsqueeze(0), obs.unsqueeze(0), actions.unsqueeze(0), targets).squeeze(0)
    probs = dist.probs[0]
    out = {"actions": actions, "advantages": advantages, "probs": probs, "reward": reward[:, 0]}
    if hasattr(env, "true_credit"):
        out["true_credit"] = env.true_credit(actions, probs)
    return out


def fit_critic(cfg: COMAConfig, iterations: int) -> tuple[COMA, object]:
    """Build a model at ``cfg.seed`` and train only its critic for ``iterations`` batches, policies fixed.

    This isolates the baseline: the advantages it then gives differ only in how each critic
    explains the same experience. Returns the model and its training environment.
    """
    if not cfg.one_step:
        raise ValueError(f"fit_critic measures the one-step games {ONE_STEP_GAMES}; got env={cfg.env!r}")
    model, train_env, _, (_, critic_opt) = build(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    start = first_start(model, train_env, cfg.seed)
    for iteration in range(1, iterations + 1):
        rollout, start = collect(model, train_env, start, 1)
        update_critic(model, rollout, critic_targets(model, rollout, cfg), critic_opt, cfg, generator)
        update_target(model, iteration, cfg)
    return model, train_env
