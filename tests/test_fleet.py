"""The fleet floor (marlpg.envs.fleet): layout, dynamics, reward, sensing and metrics against hand-made cases."""
import math

import pytest
import torch

from marlpg.algos.mappo import MAPPOConfig, train
from marlpg.envs import make_env
from marlpg.envs.reference import random_policy
from marlpg.envs.fleet import ACTION_DIRECTIONS, OBS_DIM, RADIUS, FleetNavigation, fleet_metrics, straight_to_goal

STAY, LEFT, RIGHT, DOWN, UP = range(5)


def place(env: FleetNavigation, pos, goal, vel=None) -> None:
    """Put copy 0's robots where a test wants them."""
    env.pos[0] = torch.tensor(pos, dtype=torch.float32)
    env.goal[0] = torch.tensor(goal, dtype=torch.float32)
    env.vel[0] = 0.0 if vel is None else torch.tensor(vel, dtype=torch.float32)


def actions(*per_robot, copies=1):
    return torch.tensor([per_robot] * copies)


@pytest.mark.parametrize("n", [2, 3, 4, 12, 128])
def test_shapes_and_spec_are_the_same_per_robot_at_every_size(n):
    env = make_env("fleet", 3, n_agents=n, seed=0)
    obs, state = env.reset(seed=0)
    assert env.spec.obs_dim == OBS_DIM == 21 and env.spec.n_actions == 5 and env.spec.discrete
    assert obs.shape == (3, n, OBS_DIM) and state.shape == (3, n * OBS_DIM + 1)
    step = env.step(torch.zeros(3, n, dtype=torch.long))
    assert step.reward.shape == step.collisions.shape == step.arrived.shape == (3, n)
    assert step.done.shape == (3,) and step.arrived.dtype == torch.bool
    assert math.isclose(2 * env.half_side, math.sqrt(n))  # density 1: n robots per n units of floor


@pytest.mark.parametrize("n", [4, 32, 128])
def test_starts_never_overlap_and_goals_lie_apart_within_reach_on_the_floor(n):
    env = make_env("fleet", 64, n_agents=n, seed=3)
    env.reset(seed=3)
    eye = torch.diag(torch.full((n,), math.inf))
    assert (torch.cdist(env.pos, env.pos) + eye).min() >= 2 * RADIUS
    assert (torch.cdist(env.goal, env.goal) + eye).min() >= 2 * RADIUS
    assert (env.goal - env.pos).norm(dim=-1).max() <= env.goal_distance + 1e-6
    assert env.goal.abs().max() <= env.half_side - RADIUS + 1e-6 and env.pos.abs().max() <= env.half_side
    assert env.collisions().sum() == 0


def test_same_seed_same_floor_and_different_seed_different_floor():
    a, b = make_env("fleet", 4, n_agents=6, seed=1), make_env("fleet", 4, n_agents=6, seed=1)
    assert torch.equal(a.reset(seed=5).obs, b.reset(seed=5).obs)
    assert not torch.equal(a.reset(seed=5).obs, b.reset(seed=6).obs)


def test_dynamics_damp_the_velocity_then_move_by_it():
    env = make_env("fleet", 1, n_agents=2, seed=0)
    env.reset()
    place(env, [[0.0, 0.0], [0.5, 0.5]], [[0.5, 0.0], [0.5, 0.5]], vel=[[0.4, 0.0], [0.0, 0.0]])
    env.step(actions(RIGHT, STAY))
    # v = 0.75 * 0.4 + 3 * 0.1 * 1 = 0.6; p = 0 + 0.6 * 0.1 = 0.06
    assert torch.allclose(env.vel[0, 0], torch.tensor([0.6, 0.0])) and torch.allclose(env.pos[0, 0], torch.tensor([0.06, 0.0]))
    assert torch.equal(env.vel[0, 1], torch.zeros(2)) and torch.allclose(env.pos[0, 1], torch.tensor([0.5, 0.5]))


def test_a_wall_stops_the_velocity_into_it_and_keeps_the_robot_on_the_floor():
    env = make_env("fleet", 1, n_agents=4, seed=0)  # half-side 1, so centres stay within 0.9
    env.reset()
    place(env, [[0.89, 0.0], [-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5]], [[0.0, 0.0]] + [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5]],
          vel=[[1.0, 0.5], [0, 0], [0, 0], [0, 0]])
    env.step(actions(RIGHT, STAY, STAY, STAY))
    assert math.isclose(env.pos[0, 0, 0].item(), 0.9, abs_tol=1e-6)
    assert env.vel[0, 0, 0] == 0.0 and math.isclose(env.vel[0, 0, 1].item(), 0.375, rel_tol=1e-5)


def test_reward_is_progress_minus_the_cost_of_each_overlap():
    env = make_env("fleet", 1, n_agents=3, seed=0, collision_cost=0.25)
    env.reset()
    # robots 0 and 1 overlap (0.15 apart < 2r) and stay; robot 2 moves right toward its goal, alone
    place(env, [[0.0, 0.0], [0.15, 0.0], [-0.6, 0.6]], [[0.0, 0.5], [0.15, -0.5], [0.0, 0.6]])
    step = env.step(actions(STAY, STAY, RIGHT))
    assert step.collisions[0].tolist() == [1.0, 1.0, 0.0]
    # robot 2: v = 0.3, it moves 0.03 closer; robots 0 and 1 do not move and pay one overlap each
    assert torch.allclose(step.reward[0], torch.tensor([-0.25, -0.25, 0.03]), atol=1e-6)


@pytest.mark.parametrize("name, options", [("fleet", dict(shared_reward=True)), ("fleet:shared", {})])
def test_a_shared_reward_gives_every_robot_the_fleets_mean(name, options):
    env = make_env(name, 1, n_agents=3, seed=0, **options)
    env.reset()
    place(env, [[0.0, 0.0], [0.15, 0.0], [-0.6, 0.6]], [[0.0, 0.5], [0.15, -0.5], [0.0, 0.6]])
    step = env.step(actions(STAY, STAY, RIGHT))
    assert torch.allclose(step.reward[0], torch.full((3,), (-0.25 - 0.25 + 0.03) / 3), atol=1e-6)


def test_the_view_holds_the_nearest_neighbours_in_range_sorted_and_flags_the_missing():
    env = make_env("fleet", 1, n_agents=4, seed=0, sensing_range=1.0)
    env.reset()
    place(env, [[-0.8, -0.8], [-0.5, -0.8], [-0.8, 0.0], [0.8, 0.8]], [[0.0, 0.0]] * 4,
          vel=[[0.1, 0.0], [0.0, 0.2], [0.0, 0.0], [0.0, 0.0]])
    env.goal[0] = torch.tensor([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
    obs = env._observe().obs[0, 0]
    assert torch.allclose(obs[0:2], torch.tensor([0.1, 0.0]))  # own velocity
    assert torch.allclose(obs[2:4], torch.tensor([0.8, 0.8]))  # goal offset
    assert torch.allclose(obs[4:6], torch.tensor([-0.8, -0.8]))  # position / half-side (1)
    nearest, second, third = obs[6:11], obs[11:16], obs[16:21]
    assert torch.allclose(nearest, torch.tensor([0.3, 0.0, -0.1, 0.2, 1.0]), atol=1e-6)  # robot 1, 0.3 away
    assert torch.allclose(second, torch.tensor([0.0, 0.8, -0.1, 0.0, 1.0]), atol=1e-6)  # robot 2, 0.8 away
    assert torch.equal(third, torch.zeros(5))  # robot 3 is 2.26 away, out of range: absent, flag 0


def test_a_fleet_of_two_pads_the_missing_neighbours():
    env = make_env("fleet", 2, n_agents=2, seed=0)
    obs = env.reset().obs
    assert obs.shape == (2, 2, OBS_DIM) and torch.equal(obs[..., 11:], torch.zeros(2, 2, 10))


def test_the_horizon_ends_every_copy_and_a_fresh_floor_follows():
    env = make_env("fleet", 2, n_agents=4, horizon=3, seed=0)
    first = env.reset(seed=0)
    goals = env.goal.clone()
    for t in range(3):
        step = env.step(torch.zeros(2, 4, dtype=torch.long))
        assert bool(step.done.all()) == (t == 2)
    assert not torch.equal(env.goal, goals) and (env.t == 0).all()
    assert torch.equal(step.final_obs[..., 2:4], first.obs[..., 2:4])  # the robots stayed: the old goal offsets
    assert step.final_state[:, -1].eq(1.0).all() and step.state[:, -1].eq(0.0).all()  # the clock in the state


def test_bad_settings_name_the_value_and_what_is_allowed():
    for kwargs, message in ((dict(n_agents=1), "n_agents must be an integer >= 2"),
                            (dict(n_agents=4.0), "n_agents must be an integer >= 2"),
                            (dict(density=0), "density must be a positive number"),
                            (dict(collision_cost=-1), "collision_cost must be a number >= 0"),
                            (dict(density=100), "packs 4 robots")):
        with pytest.raises(ValueError, match=message):
            make_env("fleet", 2, **{"n_agents": 4, **kwargs})
    with pytest.raises(ValueError, match="continuous"):
        make_env("fleet", 2, n_agents=4, continuous=True)
    env = make_env("fleet", 2, n_agents=4)
    env.reset()
    with pytest.raises(ValueError):
        env.step(torch.full((2, 4), 5))  # actions are 0..4
    with pytest.raises(ValueError, match="FleetNavigation"):
        fleet_metrics(make_env("cue", 2, n_agents=2), lambda obs: obs, 0)


def test_the_scripted_robot_steers_toward_its_goal():
    obs = torch.zeros(4, OBS_DIM)
    obs[:, 2:4] = torch.tensor([[1.0, 0.1], [-1.0, 0.0], [0.05, -1.0], [0.0, 0.9]])
    assert straight_to_goal(obs).tolist() == [RIGHT, LEFT, DOWN, UP]
    still = torch.zeros(1, OBS_DIM)
    assert straight_to_goal(still).tolist() == [STAY]  # on its goal and at rest: it stays
    assert ACTION_DIRECTIONS[RIGHT].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("n", [4, 32])
def test_scripted_robots_reach_their_goals_and_random_ones_do_not(n):
    scripted = fleet_metrics(make_env("fleet", 32, n_agents=n, seed=0), straight_to_goal, seed=0)
    floors = make_env("fleet", 32, n_agents=n, seed=0)
    random = fleet_metrics(floors, random_policy(floors.spec, seed=0), seed=0)
    assert scripted["success"] > 0.95 and random["success"] < 0.1
    assert scripted["return"] > random["return"] + 0.4
    assert scripted["collisions"] > 0  # blind to the others: paths cross and it pays


def test_fleet_metrics_adds_up_one_episode():
    env = make_env("fleet", 8, n_agents=4, horizon=5, seed=0, collision_cost=0.0)
    env.reset(seed=2)
    start = env.goal_distances().mean().item()
    metrics = fleet_metrics(env, straight_to_goal, seed=2)
    # without a collision cost the return telescopes to the distance covered: d_0 - d_H
    travelled = start - metrics["return"]
    assert 0 <= travelled <= start and metrics["success"] >= 0


def test_mappo_with_a_pooled_critic_learns_to_beat_the_scripted_robot_with_fewer_collisions():
    n = 8
    cfg = MAPPOConfig(env="fleet", n_agents=n, seed=0, num_envs=32, rollout_steps=25, total_frames=32 * 25 * 40,
                      minibatches=4, agent_id=False, critic="pooled", eval_episodes=8)
    model = train(cfg, progress=False, with_reference=False).model
    learned = fleet_metrics(make_env("fleet", 32, n_agents=n, seed=1), model.act_deterministic, seed=1)
    scripted = fleet_metrics(make_env("fleet", 32, n_agents=n, seed=1), straight_to_goal, seed=1)
    assert learned["success"] > 0.8, learned
    assert learned["collisions"] < scripted["collisions"], (learned, scripted)
    assert learned["return"] > scripted["return"], (learned, scripted)


def test_mappo_fleet_preset_collects_about_equal_robot_steps_at_every_size():
    from marlpg.algos.mappo import fleet_preset

    for n in (4, 12, 128):
        cfg = MAPPOConfig(env="fleet", **fleet_preset(n, iterations=3))
        robot_steps = cfg.num_envs * cfg.rollout_steps * n
        assert 12_800 * 0.98 <= robot_steps <= 12_800 and cfg.iterations == 3 and not cfg.agent_id


def test_step_seconds_times_the_steps_asked_for_and_refuses_none():
    from marlpg.envs.reference import step_seconds

    env = make_env("fleet", 2, n_agents=4, seed=0)
    calls = []
    policy = lambda obs: calls.append(obs.shape) or torch.zeros(obs.shape[:-1], dtype=torch.long)  # noqa: E731
    assert step_seconds(env, 3, policy) > 0 and len(calls) == 1 + 3  # the warm-up step is not timed
    with pytest.raises(ValueError, match="steps"):
        step_seconds(env, 0)
