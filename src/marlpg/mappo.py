"""MAPPO: PPO for every agent, trained against a centralized value function (Yu et al., 2022).

Each agent a acts from its own observation, u_a ~ pi_theta(. | o_a) (with a one-hot agent ID when
the actor is shared). During training a critic sees the global state x and estimates
V_phi(x) for every agent. One iteration:

1. Collect T steps in E parallel environments with the current policy.
2. Advantages by GAE(lambda) on the critic's values (de-normalized to returns):
       delta_t = r_t + gamma V(x_{t+1}) - V(x_t),   A_t = sum_k (gamma lambda)^k delta_{t+k}
3. For a few epochs over minibatches, ascend PPO's clipped surrogate for each agent,
       L(theta) = E_t,a[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ] + beta H(pi(. | o_a)),
       rho = pi_theta(u_a | o_a) / pi_theta_old(u_a | o_a),
   and descend the critic's squared error against the lambda-return targets, in normalized units.

IPPO (``ippo=True``) is the same algorithm with the critic V(o_a) on the agent's own observation
(plus the time fraction, which both critics get): the ablation that asks what the centralized
critic buys.

Run ``python -m marlpg.mappo --help`` for the command line.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Normal

from marlpg import distributed
from marlpg.core.agents import with_agent_ids
from marlpg.core.evaluation import deterministic_return, gap_closed
from marlpg.core.gae import gae
from marlpg.core.networks import CategoricalActor, GaussianActor, entropy, log_prob, mlp
from marlpg.core.normalizer import RunningNormalizer
from marlpg.core.runlog import progress_bar, write_curve
from marlpg.core.seeding import resolve_device, seed_everything
from marlpg.core.threads import cpu_threads, update_thread_count
from marlpg.envs import EnvSpec, make_env

DEFAULT_FRAMES = 6_000_000


@dataclass
class MAPPOConfig:
    env: str = "vmas:simple_spread"
    n_agents: int = 3
    continuous: bool = False
    num_envs: int = 256
    horizon: int = 25
    rollout_steps: int = 25  # steps per environment per iteration
    total_frames: int = DEFAULT_FRAMES  # a frame is one step of one environment copy (all agents)
    seed: int = 0
    device: str = "cpu"
    ippo: bool = False  # critic on the agent's own observation instead of the global state
    share: bool = True  # one actor for all agents (with a one-hot agent ID) or one per agent
    roles: tuple[int, ...] | None = None  # with share: one actor per role (role index per agent)
    agent_id: bool = True  # append the one-hot ID to a shared actor's input
    lr: float = 2e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 8
    entropy_coef: float = 0.003
    max_grad_norm: float = 10.0
    value_norm: bool = True
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (128, 128)
    eval_episodes: int = 200
    eval_every: int = 0  # iterations between evaluations during training (0: only at the end)
    update_threads: int | None = None  # CPU threads for updates (None: MARLPG_THREADS, else all; see core.threads)

    def __post_init__(self):
        self.actor_hidden = tuple(self.actor_hidden)
        self.roles = None if self.roles is None else tuple(int(r) for r in self.roles)
        self.critic_hidden = tuple(self.critic_hidden)
        positive = ("n_agents", "num_envs", "horizon", "rollout_steps", "total_frames", "epochs", "minibatches", "eval_episodes")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.num_envs * self.rollout_steps < self.minibatches:
            raise ValueError(
                f"minibatches={self.minibatches} exceeds the {self.num_envs * self.rollout_steps} samples of one rollout"
            )
        for name in ("clip", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")

    @property
    def frames_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def iterations(self) -> int:
        return max(1, -(-self.total_frames // self.frames_per_iteration))


class MAPPO(nn.Module):
    """The actors (deployed) and the critic (used only in training).

    Agents are split into groups that share one actor: all agents (``share=True``), one group per
    role (``share=True`` with ``roles``), or every agent alone (``share=False``).
    """

    def __init__(self, spec: EnvSpec, cfg: MAPPOConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        self.groups = actor_groups(spec.n_agents, cfg.share, cfg.roles)
        self.group_of = {agent: g for g, members in enumerate(self.groups) for agent in members}
        self.register_buffer("_order", torch.tensor([a for members in self.groups for a in members]).argsort(), persistent=False)
        self.use_ids = cfg.agent_id and any(len(members) > 1 for members in self.groups)
        actor_in = spec.obs_dim + (spec.n_agents if self.use_ids else 0)
        make_actor = CategoricalActor if spec.discrete else GaussianActor
        self.actors = nn.ModuleList(make_actor(actor_in, spec.n_actions, cfg.actor_hidden) for _ in self.groups)
        if cfg.ippo:  # V(o_a): one output per agent row, with the agent's ID so one network can serve all
            self.critic = mlp(spec.obs_dim + spec.n_agents + 1, cfg.critic_hidden, 1)
        else:  # V(x): one network, one output per agent (identical targets when the reward is shared)
            self.critic = mlp(spec.state_dim, cfg.critic_hidden, spec.n_agents)
        self.value_normalizer = RunningNormalizer()

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

    def policy(self, obs: torch.Tensor):
        """The joint policy as one distribution over ``[..., n]`` agents (``obs``: ``[..., n, d]``)."""
        inputs = self.actor_input(obs)
        out = self._per_group(inputs, lambda actor, x: actor.net(x))
        if self.spec.discrete:
            return Categorical(logits=out)
        log_std = self._per_group(inputs[..., :1], lambda actor, x: actor.log_std.expand(*x.shape[:-1], -1))
        return Normal(out, log_std.exp())

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self._per_group(self.actor_input(obs), lambda actor, x: actor.deterministic(x))

    def value(self, state: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The critic's output in normalized units, ``[..., n]``."""
        if self.cfg.ippo:
            return self.critic(local_critic_input(obs, state)).squeeze(-1)
        return self.critic(state)


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
    dones: torch.Tensor  # [T, E]
    last_value: torch.Tensor  # [E, n], de-normalized


@dataclass
class TrainResult:
    config: MAPPOConfig
    model: MAPPO
    curve: list[dict] = field(default_factory=list)
    eval_return: float = float("nan")
    frames: int = 0
    seconds: float = 0.0
    reference: tuple[float, float] | None = None  # (random, scripted) mean episode return per agent


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


@torch.no_grad()
def collect(model: MAPPO, env, start, steps: int, tracker: EpisodeTracker):
    """Run the stochastic policy for ``steps`` steps; return the rollout and the next observation."""
    obs, state = start
    buffers = {k: [] for k in ("obs", "state", "actions", "log_probs", "values", "rewards", "dones")}
    for _ in range(steps):
        dist = model.policy(obs)
        actions = dist.sample()
        buffers["obs"].append(obs)
        buffers["state"].append(state)
        buffers["actions"].append(actions)
        buffers["log_probs"].append(log_prob(dist, actions))
        buffers["values"].append(model.value(state, obs))
        obs, state, reward, done = env.step(actions)
        buffers["rewards"].append(reward)
        buffers["dones"].append(done)
        tracker.add(reward, done)
    stacked = {k: torch.stack(v) for k, v in buffers.items()}
    denorm = model.value_normalizer.denormalize if model.cfg.value_norm else (lambda v: v)
    stacked["values"] = denorm(stacked["values"])
    last_value = denorm(model.value(state, obs))
    return Rollout(**stacked, last_value=last_value), (obs, state)


def clipped_surrogate(new_log_probs, old_log_probs, advantages, clip: float) -> torch.Tensor:
    """min(rho A, clip(rho, 1 - eps, 1 + eps) A) per sample, with rho = exp(new - old)."""
    ratio = (new_log_probs - old_log_probs).exp()
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


def ppo_losses(model: MAPPO, batch: dict, cfg: MAPPOConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate (to minimize, negated), entropy, and critic loss on one minibatch."""
    dist = model.policy(batch["obs"])
    surrogate = clipped_surrogate(log_prob(dist, batch["actions"]), batch["log_probs"], batch["advantages"], cfg.clip)
    policy_loss = -surrogate.mean()
    ent = entropy(dist).mean()
    value_loss = 0.5 * (model.value(batch["state"], batch["obs"]) - batch["targets"]).pow(2).mean()
    return policy_loss, ent, value_loss


def make_optimizers(model: MAPPO, cfg: MAPPOConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the actors and Adam for the critic, in the order ``update`` takes them."""
    return (
        torch.optim.Adam(model.actors.parameters(), lr=cfg.lr, eps=1e-5),
        torch.optim.Adam(model.critic.parameters(), lr=cfg.lr, eps=1e-5),
    )


def update(model: MAPPO, rollout: Rollout, optimizers, cfg: MAPPOConfig, generator: torch.Generator) -> dict:
    """PPO epochs over minibatches of environment steps (each step carries all n agents)."""
    advantages, targets = gae(rollout.rewards, rollout.values, rollout.dones, rollout.last_value, cfg.gamma, cfg.gae_lambda)
    if cfg.value_norm:
        model.value_normalizer.update(targets)
        targets = model.value_normalizer.normalize(targets)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    flat = {
        "obs": rollout.obs, "state": rollout.state, "actions": rollout.actions,
        "log_probs": rollout.log_probs, "advantages": advantages, "targets": targets,
    }
    flat = {k: v.flatten(0, 1) for k, v in flat.items()}
    samples = flat["obs"].shape[0]
    actor_opt, critic_opt = optimizers
    stats = torch.zeros(3)
    for _ in range(cfg.epochs):
        order = torch.randperm(samples, generator=generator).to(rollout.obs.device)
        shuffled = {k: v[order] for k, v in flat.items()}  # one gather per epoch; minibatches are then slices
        for part in range(cfg.minibatches):
            batch = {k: v.chunk(cfg.minibatches)[part] for k, v in shuffled.items()}
            policy_loss, ent, value_loss = ppo_losses(model, batch, cfg)
            actor_opt.zero_grad(set_to_none=True)
            critic_opt.zero_grad(set_to_none=True)
            (policy_loss - cfg.entropy_coef * ent + value_loss).backward()
            nn.utils.clip_grad_norm_(model.actors.parameters(), cfg.max_grad_norm)
            nn.utils.clip_grad_norm_(model.critic.parameters(), cfg.max_grad_norm)
            actor_opt.step()
            critic_opt.step()
            stats += torch.stack([policy_loss.detach(), ent.detach(), value_loss.detach()]).cpu()
    stats /= cfg.epochs * cfg.minibatches
    return dict(zip(("policy_loss", "entropy", "value_loss"), stats.tolist()))


def evaluate(model: MAPPO, env, episodes_seed: int) -> float:
    """Mean episode return per agent of the deterministic policy: one episode in every copy of ``env``."""
    return deterministic_return(model.act_deterministic, env, episodes_seed)


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
        return reference_returns(cfg.env, n_agents=cfg.n_agents, continuous=cfg.continuous)
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
    bar = progress_bar(cfg.iterations * cfg.frames_per_iteration, progress, "MAPPO" if not cfg.ippo else "IPPO")
    update_threads = update_thread_count(cfg.update_threads)
    began = time.perf_counter()
    for iteration in range(1, cfg.iterations + 1):
        with cpu_threads(1):
            rollout, start = collect(model, train_env, start, cfg.rollout_steps, tracker)
        with cpu_threads(update_threads):
            stats = update(model, rollout, optimizers, cfg, generator)
        result.frames += cfg.frames_per_iteration
        episode_return = tracker.pop_mean()
        row = {
            "iteration": iteration,
            "frames": result.frames,
            "seconds": round(time.perf_counter() - began, 3),
            "return": episode_return,
            "gap": gap_closed(episode_return, reference),
            **stats,
        }
        if cfg.eval_every and iteration % cfg.eval_every == 0:
            with cpu_threads(1):
                row["eval_return"] = evaluate(model, eval_env, 10_000 + cfg.seed)
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
        result.eval_return = evaluate(model, eval_env, 10_000 + cfg.seed)
    return result


def _train_quietly(cfg: MAPPOConfig) -> TrainResult:
    return train(cfg, progress=False, with_reference=False)


def train_seeds(
    cfg: MAPPOConfig, seeds, *, ray: bool = False, ray_address: str | None = None, threads_per_seed: int = 1
) -> list[TrainResult]:
    """One run of ``train`` per seed, in the order of ``seeds``: in a loop, or as Ray tasks.

    The Ray results equal the serial ones exactly (see ``marlpg.distributed.train_seeds``).
    """
    results = distributed.train_seeds(
        _train_quietly, cfg, seeds, ray=ray, address=ray_address, threads_per_seed=threads_per_seed
    )
    with cpu_threads(1):
        reference = reference_for(cfg)
    for result in results:
        result.reference = reference
    return results


# --- deployment: what runs on an agent -------------------------------------------------------


class DeployedActor:
    """The trained policy as it runs on agent ``agent_index``: one local observation in, one action out.

    Nothing else reaches the network: not the global state, not other agents' observations or
    actions. Only the agent's own observation and (for a shared actor) its fixed one-hot ID.
    """

    def __init__(self, model: MAPPO, agent_index: int):
        n = model.spec.n_agents
        if not 0 <= agent_index < n:
            raise ValueError(f"agent_index must lie in 0..{n - 1}; got {agent_index!r}")
        self.network = model.actors[model.group_of[agent_index]]
        self.agent_id = torch.eye(n)[agent_index] if model.use_ids else None
        self.obs_dim = model.spec.obs_dim

    @torch.no_grad()
    def __call__(self, local_obs: torch.Tensor) -> torch.Tensor:
        if local_obs.shape[-1] != self.obs_dim:
            raise ValueError(f"a local observation has {self.obs_dim} features; got shape {tuple(local_obs.shape)}")
        inputs = local_obs
        if self.agent_id is not None:
            inputs = torch.cat([local_obs, self.agent_id.to(local_obs).expand(*local_obs.shape[:-1], -1)], dim=-1)
        return self.network.deterministic(inputs)


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


# --- command line ----------------------------------------------------------------------------


def parse_args(argv=None) -> tuple[MAPPOConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m marlpg.mappo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=MAPPOConfig.env, help="backend:scenario, e.g. vmas:simple_spread or mpe2:simple_spread_v3")
    parser.add_argument("--total-frames", type=int, default=DEFAULT_FRAMES, help="environment steps (all agents) to train for")
    distributed.add_seed_arguments(parser)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--ippo", action="store_true", help="critic on each agent's own observation (the IPPO ablation)")
    parser.add_argument("--no-share", action="store_true", help="one actor per agent instead of one shared actor")
    parser.add_argument("--continuous", action="store_true", help="continuous actions (Gaussian policy)")
    parser.add_argument("--n-agents", type=int, default=MAPPOConfig.n_agents)
    parser.add_argument("--num-envs", type=int, default=MAPPOConfig.num_envs)
    parser.add_argument("--lr", type=float, default=MAPPOConfig.lr)
    parser.add_argument("--out", default="runs/mappo", help="folder for curve.csv and actors.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.seed_list = distributed.seeds_from_args(args)
    cfg = MAPPOConfig(
        env=args.env, total_frames=args.total_frames, seed=args.seed, device=args.device, ippo=args.ippo,
        share=not args.no_share, continuous=args.continuous, n_agents=args.n_agents, num_envs=args.num_envs, lr=args.lr,
    )
    return cfg, args


def main(argv=None) -> int:
    try:
        cfg, args = parse_args(argv)
        if args.seed_list is not None:
            return main_seeds(cfg, args)
        result = train(cfg, progress=not args.quiet)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    out = Path(args.out)
    curve = write_curve(out / "curve.csv", result.curve)
    actors = save_actors(result.model, out / "actors.pt")
    print(f"curve={curve}")
    print(f"actors={actors}")
    print(f"frames={result.frames} seconds={result.seconds:.1f} fps={result.frames / result.seconds:.0f}")
    if result.reference is not None:
        print(f"random={result.reference[0]:.4f}")
        print(f"scripted={result.reference[1]:.4f}")
        print(f"gap_closed={gap_closed(result.eval_return, result.reference):.4f}")
    print(f"eval_return={result.eval_return:.4f}")
    return 0


def main_seeds(cfg: MAPPOConfig, args: argparse.Namespace) -> int:
    """``--seeds``: one run per seed (a folder each under --out), one line per seed, the mean last."""
    seeds = args.seed_list
    results = distributed.train_seeds_from_args(train_seeds, cfg, args)
    for seed, result in zip(seeds, results):
        curve = write_curve(Path(args.out) / f"seed{seed}" / "curve.csv", result.curve)
        save_actors(result.model, curve.parent / "actors.pt")
        print(f"seed={seed} frames={result.frames} seconds={result.seconds:.1f} eval_return={result.eval_return:.4f}")
    mean = sum(result.eval_return for result in results) / len(results)
    if results[0].reference is not None:
        print(f"gap_closed={gap_closed(mean, results[0].reference):.4f}")
    print(f"eval_return={mean:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
