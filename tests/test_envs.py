"""The batched environment adapters (VMAS, PettingZoo/mpe2) and the simple_spread reference policies."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, SRC
from marlpg.envs import make_env
from marlpg.envs.protocol import BatchedEnv, EnvSpec
from marlpg.envs.pettingzoo_env import PettingZooEnv
from marlpg.envs.reference import (
    Reference,
    assign_landmarks,
    evaluate_policy,
    random_policy,
    reference_returns,
    scripted_policy,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


BACKENDS = {"vmas:simple_spread": (14, 9), "mpe2:simple_spread_v3": (18, 5)}  # obs_dim, discrete actions at n=3


def _random_actions(spec: EnvSpec, num_envs: int, generator: torch.Generator) -> torch.Tensor:
    if spec.discrete:
        return torch.randint(0, spec.n_actions, (num_envs, spec.n_agents), generator=generator)
    return torch.rand((num_envs, spec.n_agents, spec.n_actions), generator=generator) * 2 - 1


def _rollout(env, seed: int, steps: int):
    generator = torch.Generator().manual_seed(seed)
    first = env.reset(seed)
    out = [first.obs.clone()]
    rewards, dones = [], []
    for _ in range(steps):
        step = env.step(_random_actions(env.spec, env.num_envs, generator))
        out.append(step.obs.clone())
        rewards.append(step.reward.clone())
        dones.append(step.done.clone())
    return torch.stack(out), torch.stack(rewards), torch.stack(dones)


# ---------------------------------------------------------------------------- adapters, both backends
@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("continuous", [False, True])
def test_shapes_dtypes_and_protocol(name, continuous):
    env = make_env(name, 3, n_agents=3, horizon=5, continuous=continuous, seed=1)
    assert isinstance(env, BatchedEnv)
    spec = env.spec
    obs_dim, n_discrete = BACKENDS[name]
    assert (spec.n_agents, spec.obs_dim, spec.horizon, spec.discrete) == (3, obs_dim, 5, not continuous)
    assert spec.n_actions == (n_discrete if not continuous else (2 if name.startswith("vmas") else 5))
    assert env.num_envs == 3 and env.device == torch.device("cpu")
    first = env.reset(1)
    assert first.obs.shape == (3, 3, obs_dim) and first.obs.dtype == torch.float32
    assert first.state.shape == (3, spec.state_dim) and first.state.dtype == torch.float32
    # The state holds every agent's observation (mpe2's state() is exactly that), then the time feature.
    assert torch.allclose(first.state[:, :-1], first.obs.flatten(1))
    assert torch.all(first.state[:, -1] == 0)
    step = env.step(_random_actions(spec, 3, torch.Generator().manual_seed(0)))
    assert step.obs.shape == (3, 3, obs_dim) and step.state.shape == (3, spec.state_dim)
    assert step.reward.shape == (3, 3) and step.reward.dtype == torch.float32
    assert step.done.shape == (3,) and step.done.dtype == torch.bool and not step.done.any()
    assert torch.allclose(step.state[:, -1], torch.full((3,), 1 / 5))
    assert torch.allclose(step.state[:, :-1], step.obs.flatten(1))
    for tensor in (*first, *step):
        assert tensor.device == env.device


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_per_agent_rewards_of_the_cooperative_task(name):
    # simple_spread's reward is a coverage term shared by the agents plus collision penalties
    # (VMAS folds them into the shared term; mpe2 keeps them per agent): always negative here.
    env = make_env(name, 4, seed=3)
    env.reset(3)
    reward = env.step(torch.zeros(4, 3, dtype=torch.long)).reward
    assert reward.shape == (4, 3) and bool((reward < 0).all())


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_auto_reset_at_the_horizon(name):
    horizon = 4
    env = make_env(name, 2, horizon=horizon, seed=5)
    obs, rewards, dones = _rollout(env, 5, 2 * horizon + 1)
    expected = torch.zeros(2 * horizon + 1, 2, dtype=torch.bool)
    expected[horizon - 1] = expected[2 * horizon - 1] = True
    assert torch.equal(dones, expected)
    assert torch.isfinite(rewards).all()
    # The step that ends an episode returns the next episode's first observation: new landmarks.
    landmarks = slice(4, 10)
    assert not torch.allclose(obs[horizon][..., landmarks], obs[horizon - 1][..., landmarks])
    state = env.reset(5).state
    for t in range(horizon):
        state = env.step(torch.zeros(2, 3, dtype=torch.long)).state
        assert torch.allclose(state[:, -1], torch.full((2,), ((t + 1) % horizon) / horizon))


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_deterministic_for_a_seed(name):
    steps = 7  # horizon 3: crosses two automatic resets
    a = _rollout(make_env(name, 3, horizon=3, seed=11), 11, steps)
    b = _rollout(make_env(name, 3, horizon=3, seed=11), 11, steps)
    c = _rollout(make_env(name, 3, horizon=3, seed=12), 12, steps)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    # The copies differ from one another (copy i is not a clone of copy 0).
    assert not torch.allclose(a[0][0, 0], a[0][0, 1])


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_bad_actions_raise_clear_errors(name):
    env = make_env(name, 2, seed=0)
    env.reset(0)
    n_actions = env.spec.n_actions
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=f"0..{n_actions - 1}"):
        env.step(torch.full((2, 3), n_actions, dtype=torch.long))
    with pytest.raises(ValueError, match="0.."):
        env.step(torch.full((2, 3), -1, dtype=torch.long))
    cont = make_env(name, 2, continuous=True, seed=0)
    cont.reset(0)
    with pytest.raises(ValueError, match="shape"):
        cont.step(torch.zeros(2, 3))


def test_bad_environment_names():
    for name in ("simple_spread", "gym:simple_spread", "vmas:", ":simple_spread"):
        with pytest.raises(ValueError, match="backend:scenario"):
            make_env(name, 1)
    with pytest.raises(ValueError, match="simple_spread_v3"):  # lists what mpe2 provides
        make_env("mpe2:no_such_task_v0", 1)
    with pytest.raises(ValueError, match="cannot import"):
        make_env("pettingzoo:no_such_package.env", 1)
    with pytest.raises(ValueError, match="unknown keyword argument.*banana.*local_ratio"):
        make_env("mpe2:simple_spread_v3", 1, banana=3)


def test_mpe2_options_reach_the_environment():
    env = make_env("mpe2:simple_spread_v3", 2, n_agents=4, horizon=7, local_ratio=0.0, seed=0)
    assert (env.spec.n_agents, env.spec.obs_dim, env.spec.horizon) == (4, 24, 7)
    raw = env.envs[0].unwrapped
    assert raw.max_cycles == 7 and raw.local_ratio == 0.0
    # local_ratio 0: the reward is the global coverage term alone, the same for every agent.
    env.reset(0)
    reward = env.step(torch.zeros(2, 4, dtype=torch.long)).reward
    assert torch.allclose(reward, reward[:, :1].expand_as(reward))
    assert np.allclose(reward[0, 0].item(), raw.scenario.global_reward(raw.world), atol=1e-5)


def test_mpe2_continuous_actions_map_onto_the_box():
    env = make_env("mpe2:simple_spread_v3", 1, continuous=True, seed=0)
    env.reset(0)
    raw = env.envs[0].unwrapped
    action = torch.full((1, 3, 5), -1.0)
    action[0, 0, 2] = 1.0  # agent 0 pushes right at full force (Box value 1)
    action[0, 1, 1] = 0.0  # agent 1 pushes left at half force (Box value 0.5)
    action[0, 2, 4] = 7.0  # clipped to 1: agent 2 pushes up at full force
    assert not any(
        raw.scenario.is_collision(a, b) for a in raw.world.agents for b in raw.world.agents if a is not b
    )  # no contact forces at this seed: the velocity change is the action's alone
    env.step(action)
    # agents start at rest; v' = 0.75 v + 5 u dt with u = (b[2] - b[1], b[4] - b[3])
    expected = [[0.5, 0.0], [-0.25, 0.0], [0.0, 0.5]]
    for agent, e in zip(raw.world.agents, expected):
        assert np.allclose(agent.state.p_vel, e, atol=1e-6)


class _ToyParallelEnv:
    """A minimal ParallelEnv without state(): two agents, Box actions in [2, 4], ends once the actions sum past 40."""

    metadata = {"name": "toy"}

    def __init__(self):
        from gymnasium import spaces

        self.possible_agents = ["a", "b"]
        self.agents = []
        self._obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self._act_space = spaces.Box(2.0, 4.0, (2,), np.float32)
        self.rng = np.random.default_rng()
        self.seen = []

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.total = 0.0
        self.x = self.rng.normal(size=3).astype(np.float32)
        return {a: self.x + i for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions):
        self.seen.append({k: np.asarray(v).copy() for k, v in actions.items()})
        self.total += sum(float(np.sum(v)) for v in actions.values())
        ended = self.total > 40
        obs = {a: self.x * 0 + self.total + i for i, a in enumerate(self.agents)}
        rewards = {"a": 1.0, "b": -1.0}
        if ended:
            self.agents = []
        return obs, rewards, {"a": ended, "b": ended}, {"a": False, "b": False}, {"a": {}, "b": {}}


def test_generic_parallel_env_without_state():
    env = PettingZooEnv(_ToyParallelEnv, 2, horizon=10, seed=4)
    assert env.spec == EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=False, n_actions=2, horizon=10)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 2, 2))
    first = env.reset()  # the constructor's seed: copy i gets seed + i
    assert torch.allclose(first.obs[0, 0], torch.as_tensor(np.random.default_rng(4).normal(size=3), dtype=torch.float32))
    assert torch.allclose(first.obs[1, 0], torch.as_tensor(np.random.default_rng(5).normal(size=3), dtype=torch.float32))
    assert torch.allclose(first.state[:, :-1], first.obs.flatten(1))  # no state(): observations concatenated
    # [-1, 1] maps onto the Box [2, 4]; values outside are clipped.
    step = env.step(torch.tensor([[[-1.0, 1.0], [0.0, 9.0]]] * 2))
    seen = env.envs[0].seen[-1]
    assert np.allclose(seen["a"], [2.0, 4.0]) and np.allclose(seen["b"], [3.0, 4.0])
    assert torch.equal(step.reward, torch.tensor([[1.0, -1.0]] * 2))
    assert not step.done.any()
    # The actions sum to 13, then 29, then 45 > 40: the toy episode terminates on the third step.
    step = env.step(torch.ones(2, 2, 2))
    assert not step.done.any()
    step = env.step(torch.ones(2, 2, 2))
    assert step.done.all() and torch.all(step.state[:, -1] == 0)
    envs = [_ToyParallelEnv(), _ToyParallelEnv()]
    assert PettingZooEnv(envs, horizon=3).envs == envs
    with pytest.raises(ValueError, match="num_envs"):
        PettingZooEnv(envs, 3, horizon=3)


# ---------------------------------------------------------------------------- reference policies
def test_assignment_is_optimal_and_greedy_is_a_permutation():
    g = torch.Generator().manual_seed(0)
    distance = torch.rand(64, 4, 4, generator=g)
    choice = assign_landmarks(distance)
    assert torch.equal(choice.sort(-1).values, torch.arange(4).expand(64, 4))
    best = torch.gather(distance, 2, choice[..., None]).sum((1, 2))
    greedy = assign_landmarks(distance, exhaustive_up_to=0)
    assert torch.equal(greedy.sort(-1).values, torch.arange(4).expand(64, 4))
    assert bool((torch.gather(distance, 2, greedy[..., None]).sum((1, 2)) >= best - 1e-6).all())
    assert torch.equal(assign_landmarks(torch.tensor([[[1.0, 0.0], [0.0, 5.0]]])), torch.tensor([[1, 0]]))


@pytest.mark.parametrize(
    "name,continuous,episodes,margin",
    [
        ("vmas:simple_spread", False, 200, 45.0),  # about -145 vs -78
        ("vmas:simple_spread", True, 200, 45.0),
        ("mpe2:simple_spread_v3", False, 40, 12.0),  # about -26 vs -7
        ("mpe2:simple_spread_v3", True, 20, 12.0),
    ],
)
def test_scripted_beats_random_by_a_wide_margin(name, continuous, episodes, margin):
    ref = reference_returns(name, 3, continuous, episodes=episodes, seed=0)
    assert isinstance(ref, Reference)
    assert ref.scripted - ref.random > margin, ref
    assert ref.gap(ref.random) == 0 and ref.gap(ref.scripted) == 1
    assert reference_returns(name, 3, continuous, episodes=episodes, seed=0) is ref  # cached


def test_evaluate_policy_counts_episodes_and_agents():
    env = make_env("vmas:simple_spread", 4, horizon=5, seed=0)
    spec = env.spec
    # Return per agent per episode is the sum over 5 steps; 6 episodes need two rounds of 4 copies.
    value = evaluate_policy(env, scripted_policy(spec, "vmas"), episodes=6, seed=0)
    again = evaluate_policy(env, scripted_policy(spec, "vmas"), episodes=6, seed=0)
    assert value == again and value < 0
    obs = env.reset(0).obs
    total = torch.zeros(4, 3)
    for _ in range(5):
        step = env.step(scripted_policy(spec, "vmas")(obs))
        total += step.reward
        obs = step.obs
    first_four = total.mean(-1)
    assert evaluate_policy(env, scripted_policy(spec, "vmas"), episodes=4, seed=0) == pytest.approx(first_four.mean().item(), rel=1e-5)
    actions = random_policy(spec, seed=1)(obs)
    assert actions.shape == (4, 3) and actions.dtype == torch.long and int(actions.max()) < 9
    with pytest.raises(ValueError, match="simple_spread"):
        scripted_policy(EnvSpec(3, 10, 31, True, 9, 25), "vmas")


def test_cli_prints_the_two_lines():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-m", "marlpg.envs.reference", "--env", "vmas:simple_spread", "--n-agents", "3",
         "--episodes", "4", "--num-envs", "4", "--seed", "1"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("random=") and lines[-1].startswith("scripted=")
    random_value, scripted_value = float(lines[-2].split("=")[1]), float(lines[-1].split("=")[1])
    assert scripted_value > random_value


def test_default_reference_returns_are_the_documented_ones():
    # 3 agents, 25 steps, seed 0, default episodes (1000 on VMAS, 200 on mpe2); recorded values
    # -145.28 / -78.04 (vmas) and -26.07 / -7.31 (mpe2), mean episode return per agent.
    vmas = reference_returns("vmas:simple_spread")
    assert vmas.random == pytest.approx(-145.28, abs=0.05) and vmas.scripted == pytest.approx(-78.04, abs=0.05)
    mpe2 = reference_returns("mpe2:simple_spread_v3")
    assert mpe2.random == pytest.approx(-26.07, abs=0.05) and mpe2.scripted == pytest.approx(-7.31, abs=0.05)


def test_a_team_of_two_kinds_is_padded_masked_and_named_by_kind():
    """mpe2's speaker (sees 3 features, says one of 3 words) and listener (sees 11, makes one of 5 moves)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a team of fixed size is built without a word about n_agents
        env = make_env("mpe2:simple_speaker_listener_v4", 4, seed=0)
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.n_actions) == (2, 11, 5)
    assert spec.roles == (0, 1) and spec.role_names == ("speaker", "listener")
    obs, state = env.reset(seed=0)
    assert obs.shape == (4, 2, 11) and bool((obs[:, 0, 3:] == 0).all()) and bool((obs[:, 0, :3] != 0).any())
    assert state.shape == (4, spec.state_dim)
    legal = torch.tensor([[True, True, True, False, False], [True] * 5])
    assert torch.equal(env.action_mask, legal.expand(4, 2, 5))
    step = env.step(torch.tensor([[2, 4]] * 4))
    assert torch.equal(step.action_mask, legal.expand(4, 2, 5))
    assert torch.equal(step.reward[:, 0], step.reward[:, 1])  # one team reward
    with pytest.raises(ValueError, match=r"'speaker_0' has actions 0..2; got 3"):
        env.step(torch.tensor([[3, 0]] * 4))


def test_mappo_shares_actors_within_a_kind_and_never_samples_another_kinds_actions():
    from marlpg.algos.mappo import MAPPO, MAPPOConfig, train

    cfg = MAPPOConfig(env="mpe2:simple_speaker_listener_v4", num_envs=8, rollout_steps=25, total_frames=400,
                      minibatches=2, eval_episodes=4, seed=0)
    env = make_env(cfg.env, 64, seed=0)
    model = MAPPO(env.spec, cfg)
    assert model.groups == [[0], [1]] and len(model.actors) == 2
    obs, _ = env.reset(seed=0)
    actions = model.policy(obs, env.action_mask).sample((20,))
    assert int(actions[..., 0].max()) <= 2 and int(actions[..., 1].max()) == 4
    assert int(model.act_deterministic(obs, env.action_mask)[:, 0].max()) <= 2
    result = train(cfg, progress=False, with_reference=False)
    assert result.frames == 400 and torch.isfinite(torch.tensor(result.eval_return))
