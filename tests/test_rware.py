"""RWARE behind the batched protocol (marlpg.envs.rware_env): shapes, deliveries, truncation, seeding, bad ids."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("rware")

from marlpg.envs import make_env  # noqa: E402
from marlpg.envs.rware_env import summarize_ids  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOOP, FORWARD, LEFT, RIGHT, TOGGLE_LOAD = range(5)
# Three shelves on top, a corridor, one goal cell bottom left: the smallest floor a scripted delivery needs
# (after a delivery rware draws the next request among the shelves not yet requested).
SCRIPT_LAYOUT = "xxx\n...\ng.."


@pytest.mark.parametrize(
    "env_id, robots, rows, cols",
    [("rware-tiny-2ag-v2", 2, 11, 10), ("rware-tiny-4ag-v2", 4, 11, 10), ("rware-small-8ag-v2", 8, 20, 10)],
)
def test_shapes(env_id, robots, rows, cols):
    env = make_env(f"rware:{env_id}", 3, seed=0)
    view = 8 + 9 * 7  # own position, load, direction, corridor; per cell of the 3x3 view: robot, its direction, shelf, request
    assert (env.spec.n_agents, env.spec.obs_dim, env.spec.n_actions, env.spec.horizon) == (robots, view, 5, 500)
    assert env.spec.state_dim == robots * view + 2 * rows * cols + 1
    obs, state = env.reset()
    assert obs.shape == (3, robots, view) and state.shape == (3, env.spec.state_dim)
    assert obs.dtype == state.dtype == torch.float32
    assert torch.equal(state[:, : robots * view], obs.reshape(3, -1))
    floor = state[:, robots * view : -1].reshape(3, 2, rows * cols)
    requests = {"rware-tiny-2ag-v2": 2, "rware-tiny-4ag-v2": 4, "rware-small-8ag-v2": 8}[env_id]
    assert torch.equal(floor[:, 1].sum(-1), torch.full((3,), float(requests)))  # the request map marks the queue
    assert bool((floor[:, 1] <= floor[:, 0]).all())  # only standing shelves are requested
    step = env.step(torch.zeros(3, robots, dtype=torch.long))
    assert step.reward.shape == (3, robots) and step.done.shape == (3,) and step.alive.all()
    assert step.action_mask is None


def place(warehouse, robots):
    """Put robots at ``(x, y, direction)`` by hand (rware spawns them at random)."""
    from rware.warehouse import Direction

    for agent, (x, y, direction) in zip(warehouse.agents, robots):
        agent.x, agent.y, agent.dir = x, y, Direction[direction]
        agent.carrying_shelf = None
    warehouse._recalc_grid()


def scripted_delivery(reward: str):
    """Robot 1 loads the requested shelf above the goal and carries it down two cells; robot 2 waits."""
    env = make_env("rware:rware-tiny-2ag-v2", 1, seed=0, layout=SCRIPT_LAYOUT, reward=reward)
    env.reset()
    warehouse = env.envs[0]
    place(warehouse, [(0, 0, "DOWN"), (2, 1, "UP")])
    warehouse.request_queue = [warehouse.shelfs[0], warehouse.shelfs[1]]  # the shelves at x=0 and x=1 of the top row
    script = [(TOGGLE_LOAD, NOOP), (FORWARD, NOOP), (FORWARD, NOOP), (NOOP, NOOP)]
    steps = [env.step(torch.tensor([actions])) for actions in script]
    return torch.stack([s.reward[0] for s in steps]), warehouse


def test_scripted_delivery_rewards_the_robot_that_delivers():
    rewards, warehouse = scripted_delivery("own")
    # load, step into the corridor, step onto the goal (delivery: reward 1 to robot 1 only), wait (shelf no longer requested)
    assert rewards.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    assert warehouse.shelfs[0] not in warehouse.request_queue  # replaced by the one shelf not yet requested
    assert warehouse.shelfs[2] in warehouse.request_queue


def test_team_reward_gives_every_robot_the_sum():
    rewards, _ = scripted_delivery("team")
    assert rewards.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]


def test_request_map_follows_the_delivery():
    env = make_env("rware:rware-tiny-2ag-v2", 1, seed=0, layout=SCRIPT_LAYOUT)
    env.reset()
    warehouse = env.envs[0]
    place(warehouse, [(0, 0, "DOWN"), (2, 1, "UP")])
    warehouse.request_queue = [warehouse.shelfs[0], warehouse.shelfs[1]]
    for actions in [(TOGGLE_LOAD, NOOP), (FORWARD, NOOP), (FORWARD, NOOP)]:
        step = env.step(torch.tensor([actions]))
    floor = step.state[0, 2 * 71 : -1].reshape(2, 3, 3)  # [shelves, requests] x rows x cols
    assert floor[0].tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]  # shelf 1 now stands on the goal
    assert floor[1].tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 0]]  # requests: shelves 2 and 3


def test_random_rewards_are_sparse_and_zero_one_valued():
    env = make_env("rware:rware-tiny-2ag-v2", 8, seed=3)
    env.reset()
    generator = torch.Generator().manual_seed(0)
    rewards = torch.stack([env.step(torch.randint(0, 5, (8, 2), generator=generator)).reward for _ in range(300)])
    assert set(rewards.unique().tolist()) <= {0.0, 1.0}
    assert rewards.mean() < 0.01  # deliveries are rare under random actions: at most one in a hundred robot-steps


def test_step_limit_is_a_truncation_and_resets():
    env = make_env("rware:rware-tiny-2ag-v2", 2, horizon=5, seed=1)
    obs, _ = env.reset()
    for t in range(1, 6):
        step = env.step(torch.full((2, 2), FORWARD))
        assert step.state[:, -1].tolist() == pytest.approx([t / 5] * 2 if t < 5 else [0.0, 0.0])
    assert step.truncated.all() and not step.terminated.any() and step.done.all()
    assert step.final_state[:, -1].tolist() == [1.0, 1.0]  # the state the episode reached, for bootstrapping
    assert not torch.equal(step.obs, step.final_obs)  # the next episode's first view (robots respawn at random)
    assert [w._cur_steps for w in env.envs] == [0, 0]  # rware's own counter restarted
    again = env.step(torch.zeros(2, 2, dtype=torch.long))
    assert not again.done.any() and again.state[:, -1].tolist() == pytest.approx([0.2, 0.2])


def test_inactivity_limit_is_a_termination():
    env = make_env("rware:rware-tiny-2ag-v2", 1, horizon=50, seed=0, max_inactivity_steps=3)
    env.reset()
    dones = [env.step(torch.zeros(1, 2, dtype=torch.long)) for _ in range(3)]
    assert [bool(s.done) for s in dones] == [False, False, True]
    assert bool(dones[-1].terminated) and not bool(dones[-1].truncated)


def rollout(seed: int, steps: int = 60):
    env = make_env("rware:rware-tiny-4ag-v2", 3, horizon=20, seed=seed)
    obs, state = env.reset()
    generator = torch.Generator().manual_seed(7)
    seen = [obs, state]
    for _ in range(steps):
        step = env.step(torch.randint(0, 5, (3, 4), generator=generator))
        seen += [step.obs, step.state, step.reward]
    return seen


def test_same_seed_same_rollout_and_copies_differ():
    first, second, other = rollout(5), rollout(5), rollout(6)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert not torch.equal(first[0][0], first[0][1])  # copy i is seeded with seed + i


def test_bad_id_is_refused_with_the_registered_ids():
    with pytest.raises(ValueError, match=r"'rware-tiny-3robots-v2' is not an environment id.*rware-tiny-\{1\.\.19\}ag-v2"):
        make_env("rware:rware-tiny-3robots-v2", 2)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="bad option for rware-tiny-2ag-v2.*sensor_range"):
        make_env("rware:rware-tiny-2ag-v2", 1, sensor_rang=2)
    with pytest.raises(ValueError, match="horizon=..., not max_steps"):
        make_env("rware:rware-tiny-2ag-v2", 1, max_steps=10)
    with pytest.raises(ValueError, match="reward must be one of"):
        make_env("rware:rware-tiny-2ag-v2", 1, reward="global")
    with pytest.raises(ValueError, match="discrete actions"):
        make_env("rware:rware-tiny-2ag-v2", 1, continuous=True)
    env = make_env("rware:rware-tiny-2ag-v2", 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(1, 2, dtype=torch.long))
    env.reset()
    with pytest.raises(ValueError, match="0..4"):
        env.step(torch.full((1, 2), 5))


def test_n_agents_that_disagree_with_the_id_warn():
    with pytest.warns(UserWarning, match="rware-tiny-2ag-v2 has 2 robots.*n_agents=3 was ignored"):
        make_env("rware:rware-tiny-2ag-v2", 1, n_agents=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_env("rware:rware-tiny-2ag-v2", 1)  # the id decides; nothing to warn about
        make_env("rware:rware-tiny-2ag-v2", 1, n_agents=2)


def test_summary_groups_robot_counts():
    ids = ["rware-tiny-1ag-v2", "rware-tiny-2ag-v2", "rware-tiny-3ag-v2", "rware-small-2ag-v2", "rware-small-4ag-v2"]
    assert summarize_ids(ids) == "rware-small-{2,4}ag-v2, rware-tiny-{1..3}ag-v2"


def test_mappo_command_line_runs_on_rware(tmp_path):
    command = [sys.executable, "-m", "marlpg.mappo", "--env", "rware:rware-tiny-2ag-v2", "--total-frames", "2000",
               "--num-envs", "4", "--quiet", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "MARLPG_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert "eval_return=" in result.stdout and (tmp_path / "curve.csv").exists()
