"""Parameter sharing: the two-role scenario, parameter counts against hand-computed sizes, timing helpers."""
from __future__ import annotations

import math

import pytest
import torch

from marlpg.book import sharing
from marlpg.envs import EnvSpec, make_env
from marlpg.envs.scenarios import (
    CARRIER,
    SCOUT,
    ScriptedTwoSpeed,
    TwoSpeedSpread,
    build_scenario,
    outpost_radius,
    start_half_width,
    two_speed_roles,
)
from marlpg.envs.vmas_env import VmasEnv
from marlpg.algos.mappo import MAPPOConfig, TrainResult

PUSH_RIGHT = 6  # VMAS discrete action: x component 2 (= +1), y component 0 (= none)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_speed(num_envs=8, n_agents=4, seed=0):
    return make_env("vmas:marlpg.two_speed_spread", num_envs, n_agents=n_agents, seed=seed)


# ---------------------------------------------------------------------------- the scenario
def test_roles_split_the_team_scouts_first():
    assert two_speed_roles(4) == (0, 0, 1, 1)
    assert two_speed_roles(5) == (0, 0, 1, 1, 1)
    assert two_speed_roles(2) == (0, 1)
    with pytest.raises(ValueError, match="at least 2 agents"):
        two_speed_roles(1)


@pytest.mark.parametrize("n_agents", [2, 4, 5])
def test_shapes_follow_the_simple_spread_layout(n_agents):
    env = two_speed(num_envs=3, n_agents=n_agents)
    obs_dim = 4 * n_agents + 2  # pos, vel, n landmarks, n - 1 others
    assert env.spec == EnvSpec(n_agents, obs_dim, n_agents * obs_dim + 1, True, 9, 25)
    obs, state = env.reset(seed=1)
    assert obs.shape == (3, n_agents, obs_dim) and state.shape == (3, n_agents * obs_dim + 1)
    step = env.step(torch.randint(0, 9, (3, n_agents)))
    assert step.obs.shape == (3, n_agents, obs_dim) and step.reward.shape == (3, n_agents)


@pytest.mark.parametrize("n_agents", [4, 12])
def test_start_positions_and_the_two_kinds_of_landmark(n_agents):
    env = two_speed(num_envs=64, n_agents=n_agents, seed=2)
    env.reset(seed=2)
    agents = torch.stack([a.state.pos for a in env.world.agents], 1)
    landmarks = torch.stack([lm.state.pos for lm in env.world.landmarks], 1)
    half, (low, high) = start_half_width(n_agents), outpost_radius(n_agents)
    assert start_half_width(4) == pytest.approx(0.4) and outpost_radius(4) == pytest.approx((1.0, 1.4))
    assert bool((agents.abs() <= half).all())
    gaps = torch.cdist(agents, agents) + torch.eye(n_agents) * 10
    assert bool((gaps >= 2 * CARRIER.radius).all())  # nobody starts overlapping
    n_out = two_speed_roles(n_agents).count(0)
    ring = landmarks[:, :n_out].norm(dim=-1)
    assert bool(((ring >= low - 1e-6) & (ring <= high + 1e-6)).all())
    assert bool((landmarks[:, n_out:].abs() <= half + 0.1 + 1e-6).all())


def test_reward_is_shared_by_the_team():
    env = two_speed()
    env.reset(seed=0)
    for _ in range(3):
        reward = env.step(torch.randint(0, 9, (8, 4))).reward
        assert torch.equal(reward, reward[:, :1].expand_as(reward))
        assert bool((reward < 0).all())


def test_roles_have_different_bodies_and_move_differently():
    env = two_speed(num_envs=4)
    agents = env.world.agents
    assert [a.shape.radius for a in agents] == [SCOUT.radius, SCOUT.radius, CARRIER.radius, CARRIER.radius]
    assert SCOUT.acceleration == 6 * CARRIER.acceleration and SCOUT.max_speed == 4 * CARRIER.max_speed
    env.reset(seed=0)
    start = torch.stack([a.state.pos.clone() for a in agents], dim=1)
    for _ in range(10):  # everybody pushes right with the same action
        env.step(torch.full((4, 4), PUSH_RIGHT))
    moved = (torch.stack([a.state.pos for a in agents], dim=1) - start)[..., 0]  # [E, n]
    scout, carrier = moved[:, :2].mean(), moved[:, 2:].mean()
    assert carrier > 0 and scout > 3 * carrier


def test_a_landmark_counts_only_the_nearest_agent_of_its_kind():
    env = two_speed(num_envs=1)
    env.reset(seed=0)
    scenario, world = env._env.scenario, env.world
    places = {0: (0.0, 0.0), 1: (3.0, 0.0), 2: (0.0, 1.0), 3: (0.0, -1.0)}  # scouts 0, 1; carriers 2, 3
    for i, xy in places.items():
        world.agents[i].set_pos(torch.tensor([xy]), batch_index=None)
    # outposts 0, 1 and depots 2, 3; depot 2 sits on scout 0, which does not count for it
    for j, xy in {0: (3.0, 0.0), 1: (0.0, 2.0), 2: (0.0, 0.0), 3: (0.0, -1.0)}.items():
        world.landmarks[j].set_pos(torch.tensor([xy]), batch_index=None)
    # outpost 0: scout 1 on it (0); outpost 1: scout 0 at distance 2; depot 2: carrier 2 or 3 at
    # distance 1; depot 3: carrier 3 on it (0). No agents overlap.
    reward = scenario.reward(world.agents[0])
    assert reward.item() == pytest.approx(-(0 + 2 + 1 + 0))


def test_overlapping_agents_pay_the_collision_penalty():
    env = two_speed(num_envs=1)
    env.reset(seed=0)
    scenario, world = env._env.scenario, env.world

    def coverage():  # the landmark part of the reward, recomputed from the positions
        landmarks = torch.stack([lm.state.pos for lm in world.landmarks], 1)
        agents = torch.stack([a.state.pos for a in world.agents], 1)
        distance = torch.cdist(landmarks, agents).masked_fill(~scenario._covers, math.inf)
        return -distance.min(-1).values.sum().item()

    for i, xy in {0: (0.0, 0.0), 1: (3.0, 0.0), 2: (0.3, 0.0), 3: (0.0, -1.0)}.items():
        world.agents[i].set_pos(torch.tensor([xy]), batch_index=None)
    assert scenario.reward(world.agents[0]).item() == pytest.approx(coverage())
    assert SCOUT.radius + CARRIER.radius > 0.1
    world.agents[2].set_pos(torch.tensor([[0.1, 0.0]]), batch_index=None)  # now overlaps scout 0
    assert scenario.reward(world.agents[0]).item() == pytest.approx(coverage() - scenario.collision_penalty)


def test_knowing_the_roles_is_worth_a_lot():
    """The role-aware script beats the role-blind one by far more than the noise of 100 episodes."""
    from marlpg.envs.reference import evaluate_policy, random_policy

    env = two_speed(num_envs=100, seed=3)
    random_return = evaluate_policy(env, random_policy(env.spec, seed=3), 100, 3)
    blind = evaluate_policy(env, ScriptedTwoSpeed(4, role_aware=False), 100, 3)
    aware = evaluate_policy(env, ScriptedTwoSpeed(4, role_aware=True), 100, 3)
    assert random_return < blind < aware
    assert aware - blind > 0.3 * (aware - random_return)


def test_scenarios_by_name_and_by_instance():
    assert isinstance(build_scenario("marlpg.two_speed_spread"), TwoSpeedSpread)
    assert isinstance(build_scenario("two_speed_spread"), TwoSpeedSpread)
    with pytest.raises(ValueError, match="marlpg.two_speed_spread"):
        build_scenario("marlpg.no_such_task")
    with pytest.raises(ValueError, match="unknown marlpg scenario"):
        make_env("vmas:marlpg.no_such_task", 2)
    env = VmasEnv(TwoSpeedSpread(), 2, n_agents=2, seed=0)
    assert env.spec.n_agents == 2 and env.reset(seed=0).obs.shape == (2, 2, 10)


def test_plain_vmas_names_still_work():
    env = make_env("vmas:simple_spread", 2, n_agents=3, seed=0)
    assert env.spec.obs_dim == 14


# ---------------------------------------------------------------------------- parameter counts
def test_mlp_parameters_by_hand():
    # 17 -> 64 -> 64 -> 9: (17 + 1) * 64 + (64 + 1) * 64 + (64 + 1) * 9
    assert sharing.mlp_parameters(17, (64, 64), 9) == 1152 + 4160 + 585 == 5897
    assert sharing.mlp_parameters(3, (), 2) == 8


def test_parameter_table_on_simple_spread_with_three_agents():
    spec = EnvSpec(n_agents=3, obs_dim=14, state_dim=43, discrete=True, n_actions=9, horizon=25)
    table = sharing.parameter_table(spec, sharing.sharing_schemes())
    per_network = 15 * 64 + 65 * 64 + 65 * 9  # 14 inputs, no ID: 5705
    assert table["shared"]["actor input"] == 17
    assert table["shared"]["actor parameters"] == 18 * 64 + 65 * 64 + 65 * 9 == 5897
    assert table["shared, no ID"]["actor parameters"] == per_network == 5705
    assert table["per agent"] == {
        "networks": 3,
        "actor input": 14,
        "actor parameters": 3 * per_network,
        "critic input": 43,
        "critic parameters": 44 * 128 + 129 * 128 + 129 * 3,
    }
    assert len({row["critic parameters"] for row in table.values()}) == 1


def test_parameter_table_per_role():
    spec = EnvSpec(n_agents=4, obs_dim=18, state_dim=73, discrete=True, n_actions=9, horizon=25)
    table = sharing.parameter_table(spec, sharing.sharing_schemes(two_speed_roles(4)))
    with_id = 23 * 64 + 65 * 64 + 65 * 9  # 18 observation + 4 ID inputs
    assert table["per role"]["networks"] == 2
    assert table["per role"]["actor parameters"] == 2 * with_id == 12434
    assert table["shared"]["actor parameters"] == with_id
    assert table["per agent"]["actor parameters"] == 4 * (19 * 64 + 65 * 64 + 65 * 9)


def test_schemes_are_mappo_flags():
    assert "per role" not in sharing.sharing_schemes()
    schemes = sharing.sharing_schemes((0, 1))
    assert schemes["per role"] == {"share": True, "roles": (0, 1)}
    for flags in schemes.values():
        MAPPOConfig(n_agents=2, **flags)


def test_curve_band():
    cfg = MAPPOConfig()
    results = [
        TrainResult(cfg, None, curve=[{"frames": 10, "return": r0}, {"frames": 20, "return": r1}])
        for r0, r1 in ((1.0, 4.0), (3.0, 2.0))
    ]
    frames, mean, low, high = sharing.curve_band(results)
    assert frames.tolist() == [10, 20]
    assert mean.tolist() == [2.0, 3.0] and low.tolist() == [1.0, 2.0] and high.tolist() == [3.0, 4.0]
    assert [sharing.mean_training_return(r) for r in results] == [2.5, 2.5]


# ---------------------------------------------------------------------------- timing
def test_step_timings_at_tiny_team_sizes():
    rows = sharing.step_timings([2, 3], lidar=True, num_envs=2, steps=2)
    assert [row["n_agents"] for row in rows] == [2, 3]
    for row in rows:
        assert row["obs_dim"] == 18  # position, velocity, goal offset, 12 lidar ranges: independent of n
        assert row["actor parameters"] == sharing.mlp_parameters(18, (64, 64), 9)
        assert 0 < row["actor ms"] < 1e3 and 0 < row["simulator ms"] < 1e4
        assert row["step ms"] == pytest.approx(row["actor ms"] + row["simulator ms"])
        assert row["actor us per agent"] == pytest.approx(1e3 * row["actor ms"] / (2 * row["n_agents"]))
    assert sharing.time_decentralized_step(2, lidar=False, num_envs=2, steps=1)["obs_dim"] == 6


def test_training_iteration_timing_and_what_grows():
    row = sharing.time_training_iteration(3, num_envs=2)
    assert row["frames"] == 2 * 25 and row["agent steps"] == 3 * 50
    assert row["rollout s"] > 0 and row["update s"] > 0
    assert row["actor parameters"] == sharing.mlp_parameters(6, (64, 64), 9)
    assert row["critic input"] == 3 * 6 + 1
    assert row["critic parameters"] == sharing.mlp_parameters(19, (128, 128), 3)
