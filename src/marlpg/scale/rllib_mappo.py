"""MAPPO through RLlib's multi-agent API: the "library shortcut", with a maintained library.

The same algorithm as :mod:`marlpg.algos.mappo`, assembled from RLlib's parts (new API stack) instead
of written out: PPO's clipped surrogate and GAE(lambda) come from RLlib's PPO learner; what makes
it MAPPO is the policy module and the observation the environment hands each agent.

* Parameter sharing: every agent maps to one RLModule, ``"shared"``; a one-hot agent ID in the
  actor's input lets the shared network behave differently per agent.
* Centralized critic: each agent's observation is ``[o_a | id_a | x]``, its own observation, its
  ID and the global state x. The module's actor reads only ``[o_a | id_a]``, so execution stays
  decentralized; its value function reads ``[id_a | x]``, which is V_phi(x) for agent a. PPO's
  learner asks the module for values through ``compute_values``, so the advantages are
  computed on the centralized critic with no change to the learner.

PPO's settings (batch, epochs, minibatches, learning rate, entropy bonus, gradient clip) default
to marlpg's. What RLlib's PPO does differently from marlpg's MAPPO (named so a comparison is read
fairly): no value normalization (RLlib clips the value loss instead; the clip is set wide here because
returns reach about -60), one environment copy per env runner stepped one step at a time
instead of hundreds of copies stepped as one batch, and the episode return it reports is the
sum over agents (divided by the number of agents here, to give marlpg's unit: mean episode
return per agent).

Needs the optional extra: ``pip install -e .[ray]``.
Run ``python -m marlpg.scale.rllib_mappo --help`` for the command line.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from marlpg.core.networks import mlp
from marlpg.scale.jobs import RayNotInstalled, require_ray
from marlpg.envs import make_env

require_ray()  # a clear error naming the extra before RLlib's own imports fail

import gymnasium as gym  # noqa: E402  (RLlib's dependency, present whenever Ray is)
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI  # noqa: E402
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.torch import TorchRLModule  # noqa: E402
from ray.rllib.env.multi_agent_env import MultiAgentEnv  # noqa: E402

SHARED = "shared"


# --- the environment: VMAS simple_spread, one copy, as an RLlib multi-agent env ---------------------


class SpreadMultiAgentEnv(MultiAgentEnv):
    """One copy of a marlpg batched environment (default VMAS simple_spread) for RLlib.

    Each agent observes ``[o_a | one-hot a | x]`` (see the module docstring). Episodes end at
    the fixed horizon, reported as termination: the global state carries the time fraction, so
    the critic treats the horizon as terminal, as marlpg's MAPPO does.
    """

    def __init__(self, config: dict | None = None):
        super().__init__()
        config = dict(config or {})
        self._env = make_env(
            config.get("env", "vmas:simple_spread"), 1, n_agents=config.get("n_agents", 3),
            horizon=config.get("horizon", 25), seed=config.get("seed"),
        )
        spec = self._env.spec
        if not spec.discrete:
            raise ValueError("this RLlib wrapper is written for discrete actions (simple_spread's default)")
        self.spec = spec
        self.agents = self.possible_agents = [f"agent_{a}" for a in range(spec.n_agents)]
        self._ids = np.eye(spec.n_agents, dtype=np.float32)
        width = spec.obs_dim + spec.n_agents + spec.state_dim
        box = gym.spaces.Box(-np.inf, np.inf, (width,), np.float32)
        self.observation_spaces = {agent: box for agent in self.agents}
        self.action_spaces = {agent: gym.spaces.Discrete(spec.n_actions) for agent in self.agents}

    def _observations(self, obs: torch.Tensor, state: torch.Tensor) -> dict:
        local, x = obs[0].cpu().numpy(), state[0].cpu().numpy()
        return {
            agent: np.concatenate([local[a], self._ids[a], x]).astype(np.float32)
            for a, agent in enumerate(self.agents)
        }

    def reset(self, *, seed=None, options=None):
        start = self._env.reset(seed=seed)
        return self._observations(start.obs, start.state), {}

    def step(self, action_dict):
        actions = torch.tensor([[int(action_dict[agent]) for agent in self.agents]])
        step = self._env.step(actions)
        rewards = {agent: float(step.reward[0, a]) for a, agent in enumerate(self.agents)}
        terminated, truncated = bool(step.terminated[0]), bool(step.truncated[0])
        # Where the episode ended, return the state it reached (final_*), not the auto-reset's first
        # one: RLlib bootstraps a truncated episode from it and calls reset() before acting again.
        obs, state = (step.final_obs, step.final_state) if terminated or truncated else (step.obs, step.state)
        return self._observations(obs, state), rewards, {"__all__": terminated}, {"__all__": truncated}, {}


# --- the policy: a shared actor on local inputs, a critic on the global state -------------------------


class SharedActorCentralCritic(TorchRLModule, ValueFunctionAPI):
    """pi_theta(u | o_a, id_a) for every agent and V_phi(id_a, x), reading slices of one observation."""

    def setup(self):
        obs_dim, n_agents = self.model_config["obs_dim"], self.model_config["n_agents"]
        self.actor_width = obs_dim + n_agents
        self.critic_from = obs_dim  # the ID and the state
        width = self.observation_space.shape[0]
        self.actor = mlp(self.actor_width, self.model_config["actor_hidden"], self.action_space.n, out_gain=0.01)
        if not self.inference_only:
            self.critic = mlp(width - self.critic_from, self.model_config["critic_hidden"], 1)

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.actor(batch[Columns.OBS][..., : self.actor_width])}

    def compute_values(self, batch, embeddings=None):
        return self.critic(batch[Columns.OBS][..., self.critic_from :]).squeeze(-1)


# --- configuration and training ---------------------------------------------------------------------


@dataclass
class RLlibMAPPOConfig:
    env: str = "vmas:simple_spread"
    n_agents: int = 3
    horizon: int = 25
    total_frames: int = 300_000  # a frame is one step of one environment copy (all agents), as in marlpg
    # PPO's settings default to marlpg.algos.mappo's (MAPPOConfig): 256 x 25 frames per update, 4 epochs of
    # 8 minibatches (of 800 frames = 2,400 agent steps), the same learning rate, entropy bonus and clip.
    frames_per_iteration: int = 6_400  # env steps per PPO update
    env_runners: int = 0  # 0: sample in the driver process; k: k remote env runners (one CPU each)
    seed: int = 0
    lr: float = 2e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatch_size: int = 2_400  # agent steps (RLlib slices the shared module's batch, n rows per frame)
    entropy_coef: float = 0.003
    max_grad_norm: float = 10.0
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (128, 128)

    def __post_init__(self):
        positive = ("n_agents", "horizon", "total_frames", "frames_per_iteration", "epochs", "minibatch_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(self.env_runners, int) or self.env_runners < 0:
            raise ValueError(f"env_runners must be a non-negative integer; got {self.env_runners!r}")
        if self.minibatch_size > self.frames_per_iteration * self.n_agents:
            raise ValueError(
                f"minibatch_size={self.minibatch_size} (agent steps) exceeds the {self.frames_per_iteration * self.n_agents} "
                f"agent steps of one iteration (frames_per_iteration={self.frames_per_iteration} x n_agents={self.n_agents})"
            )

    @property
    def iterations(self) -> int:
        return max(1, -(-self.total_frames // self.frames_per_iteration))


def build_config(cfg: RLlibMAPPOConfig) -> PPOConfig:
    """RLlib's PPOConfig for MAPPO on ``cfg.env``: one shared module with a centralized critic."""
    probe = SpreadMultiAgentEnv({"env": cfg.env, "n_agents": cfg.n_agents, "horizon": cfg.horizon})
    model_config = {
        "obs_dim": probe.spec.obs_dim, "n_agents": probe.spec.n_agents,
        "actor_hidden": list(cfg.actor_hidden), "critic_hidden": list(cfg.critic_hidden),
    }
    return (
        PPOConfig()
        .environment(SpreadMultiAgentEnv, env_config={"env": cfg.env, "n_agents": cfg.n_agents, "horizon": cfg.horizon, "seed": cfg.seed})
        .multi_agent(policies={SHARED}, policy_mapping_fn=lambda agent_id, episode, **kwargs: SHARED)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={SHARED: RLModuleSpec(module_class=SharedActorCentralCritic, model_config=model_config)}
            )
        )
        .env_runners(num_env_runners=cfg.env_runners, num_envs_per_env_runner=1, num_cpus_per_env_runner=1)
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=cfg.frames_per_iteration,
            minibatch_size=cfg.minibatch_size,
            num_epochs=cfg.epochs,
            lr=cfg.lr,
            gamma=cfg.gamma,
            lambda_=cfg.gae_lambda,
            clip_param=cfg.clip,
            entropy_coeff=cfg.entropy_coef,
            # One module holds actor and critic here; a global-norm clip would let the unnormalized value
            # loss's large gradients shrink the actor's step, so clip each tensor's norm (marlpg clips each
            # network's norm separately).
            grad_clip=cfg.max_grad_norm,
            grad_clip_by="norm",
            vf_loss_coeff=0.5,
            vf_clip_param=1e4,  # no value normalization here, so keep the value loss unclipped
            use_kl_loss=False,
        )
        .debugging(seed=cfg.seed)
    )


def _lookup(result: dict, *path, default=float("nan")):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return default
        result = result[key]
    return result


def train(cfg: RLlibMAPPOConfig, progress: bool = False) -> list[dict]:
    """Train for ``cfg.total_frames`` frames; one row per PPO iteration, in marlpg's units.

    ``return`` is the mean episode return per agent of the episodes finished in the iteration.
    Starts a local Ray instance if none is running (and leaves it running).
    """
    algo = build_config(cfg).build_algo()
    curve: list[dict] = []
    began = time.perf_counter()
    try:
        for iteration in range(1, cfg.iterations + 1):
            result = algo.train()
            frames = int(_lookup(result, "num_env_steps_sampled_lifetime", default=0)
                         or _lookup(result, "env_runners", "num_env_steps_sampled_lifetime", default=0))
            team_return = float(_lookup(result, "env_runners", "episode_return_mean"))
            curve.append({
                "iteration": iteration,
                "frames": frames,
                "seconds": round(time.perf_counter() - began, 3),
                "return": team_return / cfg.n_agents,
            })
            if progress:
                print(f"iteration {iteration}: frames={frames} return={curve[-1]['return']:.2f}", flush=True)
            if frames >= cfg.total_frames:
                break
    finally:
        algo.stop()
    return curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marlpg.scale.rllib_mappo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--total-frames", type=int, default=RLlibMAPPOConfig.total_frames)
    parser.add_argument("--frames-per-iteration", type=int, default=RLlibMAPPOConfig.frames_per_iteration)
    parser.add_argument("--env-runners", type=int, default=0, help="remote env runners (0: sample in this process)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = RLlibMAPPOConfig(total_frames=args.total_frames, frames_per_iteration=args.frames_per_iteration,
                               minibatch_size=max(1, args.frames_per_iteration * RLlibMAPPOConfig.n_agents // 8),
                               env_runners=args.env_runners, seed=args.seed)
        curve = train(cfg, progress=not args.quiet)
    except (ValueError, RayNotInstalled) as error:
        raise SystemExit(f"error: {error}") from None
    last = curve[-1]
    print(f"frames={last['frames']} seconds={last['seconds']:.1f} fps={last['frames'] / last['seconds']:.0f}")
    print(f"train_return={last['return']:.4f}")  # episodes finished in the last iteration (no separate evaluation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
