"""MADDPG: replay buffer, soft update, critic targets by hand, what each critic sees, the CLI, learning prices."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from marlpg.algos import maddpg
from marlpg.core.replay import ReplayBuffer
from marlpg.envs import EnvSpec
from marlpg.algos.maddpg import (
    MADDPG,
    MADDPGConfig,
    nash_distance,
    noise_scale,
    own_action_replaced,
    same_joint_action,
    soft_update,
    td_targets,
    train,
)

from conftest import REPO, SRC

PRICING_SPEC = EnvSpec(n_agents=2, obs_dim=2, state_dim=3, discrete=False, n_actions=1, horizon=1)
TINY_SPREAD = dict(env="vmas:simple_spread", num_envs=16, rollout_steps=1, updates_per_iteration=1, total_frames=16 * 40, warmup_frames=16 * 10, batch_size=64, eval_episodes=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- replay buffer ------------------------------------------------------------------------------


def transitions(count: int, start: int, n: int = 2, obs_dim: int = 3, state_dim: int = 4, action_dim: int = 1) -> dict:
    """Transitions whose every field carries its index, so one can tell which were kept."""
    index = torch.arange(start, start + count, dtype=torch.float32)
    return dict(
        obs=index.view(-1, 1, 1).expand(count, n, obs_dim),
        state=index.view(-1, 1).expand(count, state_dim),
        actions=index.view(-1, 1, 1).expand(count, n, action_dim),
        rewards=torch.stack([index, -index], dim=1),
        next_obs=(index + 0.5).view(-1, 1, 1).expand(count, n, obs_dim),
        next_state=(index + 0.5).view(-1, 1).expand(count, state_dim),
        done=(index % 2),
    )


def test_replay_buffer_keeps_the_newest_transitions_and_their_fields_together():
    buffer = ReplayBuffer(5, n_agents=2, obs_dim=3, state_dim=4, action_dim=1)
    buffer.add(**transitions(3, 0))
    assert len(buffer) == 3
    buffer.add(**transitions(4, 3))  # 7 added, capacity 5: 0 and 1 are overwritten
    assert len(buffer) == 5 and buffer.position == 2
    assert sorted(buffer.storage["state"][:, 0].tolist()) == [2, 3, 4, 5, 6]
    batch = buffer.sample(500, torch.Generator().manual_seed(0))
    ids = batch["state"][:, 0]
    assert set(ids.tolist()) == {2, 3, 4, 5, 6}  # uniform with replacement: every stored one shows up
    assert batch["obs"].shape == (500, 2, 3) and batch["actions"].shape == (500, 2, 1) and batch["done"].shape == (500,)
    assert torch.equal(batch["rewards"], torch.stack([ids, -ids], dim=1))
    assert torch.equal(batch["next_state"][:, 0], ids + 0.5) and torch.equal(batch["done"], ids % 2)


def test_replay_buffer_sampling_repeats_with_a_seeded_generator_and_rejects_bad_input():
    buffer = ReplayBuffer(10, n_agents=2, obs_dim=3, state_dim=4, action_dim=1)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4)
    buffer.add(**transitions(10, 0))
    first = buffer.sample(8, torch.Generator().manual_seed(3))["state"]
    assert torch.equal(first, buffer.sample(8, torch.Generator().manual_seed(3))["state"])
    bad = transitions(2, 0)
    bad["obs"] = torch.zeros(2, 2, 5)
    with pytest.raises(ValueError, match="obs must have shape"):
        buffer.add(**bad)
    with pytest.raises(ValueError, match="fields"):
        buffer.add(obs=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 2, 3, 4, 1)


# --- soft update, targets, the actor's joint action ---------------------------------------------


def test_soft_update_moves_the_target_a_fraction_tau_toward_the_source():
    source, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        source.weight.fill_(1.0), source.bias.fill_(2.0)
        target.weight.fill_(-1.0), target.bias.fill_(0.0)
    soft_update(target, source, tau=0.25)
    assert target.weight.tolist() == [[-0.5, -0.5]]  # 0.25 * 1 + 0.75 * (-1)
    assert target.bias.tolist() == [0.5]
    soft_update(target, source, tau=1.0)
    assert target.weight.tolist() == [[1.0, 1.0]] and target.bias.tolist() == [2.0]


def constant_target_critics(model: MADDPG, values: list[float]) -> None:
    """Make agent i's target critic output ``values[i]`` whatever its input (per-agent critics)."""
    with torch.no_grad():
        for net, value in zip(model.target_critic.nets, values):
            net[-1].weight.zero_()
            net[-1].bias.fill_(value)


@pytest.mark.parametrize("iddpg", [False, True])
def test_critic_targets_on_a_hand_made_batch(iddpg):
    model = MADDPG(PRICING_SPEC, MADDPGConfig.for_env("pricing", share=False, iddpg=iddpg))
    constant_target_critics(model, [10.0, -4.0])
    batch = {
        "obs": torch.zeros(3, 2, 2), "state": torch.zeros(3, 3), "actions": torch.zeros(3, 2, 1),
        "rewards": torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]),  # each agent's own reward
        "next_obs": torch.randn(3, 2, 2), "next_state": torch.randn(3, 3),
        "done": torch.tensor([0.0, 1.0, 0.0]),
    }
    gamma = 0.9
    by_hand = torch.tensor([
        [1.0 + 0.9 * 10.0, 2.0 + 0.9 * -4.0],  # bootstraps from each agent's own target critic
        [0.5, -1.0],  # the episode ended: no bootstrap
        [3.0 + 0.9 * 10.0, 0.0 + 0.9 * -4.0],
    ])
    assert torch.allclose(td_targets(model, batch, gamma), by_hand)


def test_own_action_replaced_puts_agent_is_action_in_row_i_only():
    buffer_actions = torch.tensor([[[1.0], [2.0], [3.0]]])
    own = torch.tensor([[[-1.0], [-2.0], [-3.0]]], requires_grad=True)
    joint = own_action_replaced(buffer_actions, own)
    assert joint.squeeze(-1).tolist() == [[[-1, 2, 3], [1, -2, 3], [1, 2, -3]]]
    (grad,) = torch.autograd.grad(joint[0, 1].sum(), own)
    assert grad.squeeze(-1).tolist() == [[0.0, 1.0, 0.0]]  # row 1 differentiates only agent 1's action
    assert torch.equal(same_joint_action(buffer_actions)[0, 2], buffer_actions[0])


@pytest.mark.parametrize("share", [True, False])
def test_maddpg_critic_sees_every_action_and_iddpg_only_its_own(share):
    spec = EnvSpec(n_agents=3, obs_dim=4, state_dim=13, discrete=False, n_actions=2, horizon=25)
    for iddpg in (False, True):
        model = MADDPG(spec, MADDPGConfig(share=share, iddpg=iddpg))
        state, obs = torch.randn(5, 13), torch.randn(5, 3, 4)
        actions = torch.randn(5, 3, 2, requires_grad=True)
        q = model.q(state, obs, actions)
        (grad,) = torch.autograd.grad(q[:, 0].sum(), actions)
        others = grad[:, 1:].abs().max().item()
        assert grad[:, 0].abs().max().item() > 0
        assert (others == 0.0) if iddpg else (others > 0.0)


def test_an_actor_sees_only_its_own_observation():
    spec = EnvSpec(n_agents=3, obs_dim=4, state_dim=13, discrete=False, n_actions=2, horizon=25)
    for share in (True, False):
        model = MADDPG(spec, MADDPGConfig(share=share))
        obs = torch.randn(6, 3, 4, requires_grad=True)
        actions = model.differentiable_actions(obs)
        for i in range(3):
            (grad,) = torch.autograd.grad(actions[:, i].sum(), obs, retain_graph=True)
            assert grad[:, i].abs().max() > 0 and grad[:, [j for j in range(3) if j != i]].abs().max() == 0


def test_discrete_actions_are_one_hot_and_the_gumbel_sample_carries_a_gradient():
    spec = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=5, horizon=10)
    model = MADDPG(spec, MADDPGConfig(n_agents=2, continuous=False))
    obs = torch.randn(4, 2, 3)
    sample = model.differentiable_actions(obs)
    assert torch.equal(sample.sum(-1), torch.ones(4, 2)) and set(sample.unique().tolist()) <= {0.0, 1.0}
    (grad,) = torch.autograd.grad(model.q(torch.zeros(4, 7), obs, sample).sum(), list(model.actor.parameters())[-1])
    assert grad.abs().max() > 0  # straight-through: the critic's gradient reaches the logits
    assert model.act_deterministic(obs).dtype == torch.long and model.act_deterministic(obs).shape == (4, 2)


# --- the pooled critic (large teams) ---------------------------------------------------------------

FLEET_SPEC = EnvSpec(n_agents=5, obs_dim=4, state_dim=21, discrete=True, n_actions=3, horizon=25)


def pooled_model(spec=FLEET_SPEC) -> MADDPG:
    torch.manual_seed(0)
    return MADDPG(spec, MADDPGConfig(n_agents=spec.n_agents, continuous=False, critic="pooled", critic_hidden=(16, 16)))


def one_hot_actions(batch: int, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.one_hot(torch.randint(0, d, (batch, n), generator=g), d).float()


def test_pooled_q_with_own_action_equals_asking_each_agents_critic_about_its_replaced_joint_action():
    """The O(n) update of the mean, m + (e_i' - e_i)/n, against the direct way: for each i, the whole
    critic on the buffer's joint action with slot i replaced, read at agent i."""
    model, n = pooled_model(), FLEET_SPEC.n_agents
    state, obs = torch.rand(6, 21), torch.randn(6, n, 4)
    buffer_actions, own = one_hot_actions(6, n, 3, 1), one_hot_actions(6, n, 3, 2)
    fast = model.q(state, obs, buffer_actions, own)
    for i in range(n):
        joint = buffer_actions.clone()
        joint[:, i] = own[:, i]
        assert torch.allclose(fast[:, i], model.q(state, obs, joint)[:, i], atol=1e-6)
    assert not torch.allclose(fast, model.q(state, obs, buffer_actions))


def test_pooled_q_gradient_reaches_an_agents_own_action_only_through_its_own_value():
    model, n = pooled_model(), FLEET_SPEC.n_agents
    state, obs = torch.rand(4, 21), torch.randn(4, n, 4)
    own = one_hot_actions(4, n, 3, 3).requires_grad_(True)
    values = model.q(state, obs, one_hot_actions(4, n, 3, 4), own)
    (grad,) = torch.autograd.grad(values[:, 1].sum(), own)
    assert grad[:, 1].abs().max() > 0 and grad[:, [0, 2, 3, 4]].abs().max() == 0


def test_pooled_q_is_permutation_equivariant_and_serves_any_team_size():
    model, n = pooled_model(), FLEET_SPEC.n_agents
    state, obs, actions = torch.rand(3, 21), torch.randn(3, n, 4), one_hot_actions(3, n, 3, 5)
    order = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(model.q(state, obs[:, order], actions[:, order]), model.q(state, obs, actions)[:, order], atol=1e-6)
    bigger = model.critic(torch.randn(3, 40, 4), one_hot_actions(3, 40, 3, 6), torch.rand(3, 1))
    assert bigger.shape == (3, 40)
    assert sum(p.numel() for p in model.critic.parameters()) == sum(p.numel() for p in pooled_model(
        EnvSpec(n_agents=40, obs_dim=4, state_dim=161, discrete=True, n_actions=3, horizon=25)).critic.parameters())


def test_pooled_q_reads_the_clock_from_the_states_last_feature():
    model, n = pooled_model(), FLEET_SPEC.n_agents
    obs, actions = torch.randn(2, n, 4), one_hot_actions(2, n, 3, 7)
    early, late = torch.zeros(2, 21), torch.zeros(2, 21)
    late[:, -1] = 1.0
    assert not torch.allclose(model.q(early, obs, actions), model.q(late, obs, actions))
    late[:, 0] = 5.0  # the rest of the global state is not the pooled critic's input
    assert torch.equal(model.q(late, obs, actions), model.q(late.clone().index_fill_(1, torch.tensor([0]), 0.0), obs, actions))


@pytest.mark.parametrize("flags", [dict(iddpg=True), dict(share=False), dict(critic="mean")])
def test_pooled_critic_config_errors(flags):
    with pytest.raises(ValueError, match="critic"):
        MADDPGConfig(**{"critic": "pooled", **flags})


def test_fleet_preset_keeps_robot_steps_per_iteration_and_per_update_equal_across_sizes():
    small, large = MADDPGConfig.for_env("fleet", n_agents=4), MADDPGConfig.for_env("fleet", n_agents=128)
    assert small.critic == large.critic == "pooled" and not small.continuous
    assert small.num_envs * small.rollout_steps * 4 == large.num_envs * large.rollout_steps * 128
    assert small.batch_size * 4 == large.batch_size * 128
    assert small.total_frames // (small.num_envs * small.rollout_steps) == 80


def test_fleet_tiny_run_and_the_cli_take_the_pooled_critic(tmp_path):
    cfg = MADDPGConfig.for_env("fleet", n_agents=8, total_frames=64 * 25 * 6, warmup_frames=64 * 25, eval_episodes=4)
    result = train(cfg, progress=False)
    assert result.reference is None and math.isfinite(result.eval_return)
    assert all(math.isfinite(row["critic_loss"]) for row in result.curve[1:])
    out = run_cli("--env", "fleet", "--n-agents", "8", "--critic", "pooled", "--total-frames", "3200", "--quiet",
                  "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("eval_return=")


def test_noise_decays_linearly_then_stays():
    cfg = MADDPGConfig(total_frames=1000, noise_start=0.5, noise_end=0.1, noise_decay=0.5)
    assert [noise_scale(cfg, f) for f in (0, 250, 500, 900)] == pytest.approx([0.5, 0.3, 0.1, 0.1])


@pytest.mark.parametrize(
    "name,value", [("num_envs", 0), ("tau", 0.0), ("tau", 1.5), ("gamma", 1.2), ("actor_lr", -1.0), ("batch_size", 2.5)]
)
def test_config_rejects_bad_values(name, value):
    with pytest.raises(ValueError, match=name):
        MADDPGConfig(**{name: value})


def test_unknown_env_is_a_clear_error():
    with pytest.raises(ValueError, match="vmas:simple_spread"):
        train(MADDPGConfig(env="vmas:balance", total_frames=64), progress=False)


# --- whole runs -----------------------------------------------------------------------------------


def test_same_seed_same_run_on_cpu():
    tiny = dict(total_frames=3_200, warmup_frames=640)
    runs = [train(MADDPGConfig.for_env("pricing", seed=s, **tiny), progress=False) for s in (4, 4, 5)]
    strip = lambda curve: repr([{k: v for k, v in row.items() if k != "seconds"} for row in curve])  # nan == nan in a repr
    assert strip(runs[0].curve) == strip(runs[1].curve) and runs[0].eval_prices == runs[1].eval_prices
    assert strip(runs[0].curve) != strip(runs[2].curve)


@pytest.mark.parametrize("flags", [dict(), dict(iddpg=True, share=False), dict(continuous=False)], ids=["maddpg", "iddpg", "gumbel"])
def test_simple_spread_tiny_runs(flags):
    result = train(MADDPGConfig(**TINY_SPREAD, **flags), progress=False, with_reference=False)
    assert len(result.curve) == 40 and math.isfinite(result.eval_return)
    assert math.isfinite(result.curve[-1]["critic_loss"])


def test_maddpg_learns_nash_prices_with_fixed_seeds():
    """The one-shot pricing game: the deterministic prices end within 5% of Nash (and far from collusion)."""
    for seed in (0, 1, 2):
        result = train(MADDPGConfig.for_env("pricing", seed=seed), progress=False)
        gap = nash_distance(result.eval_prices, result.nash_prices)
        assert gap < 0.05, f"seed {seed}: prices {result.eval_prices} vs Nash {result.nash_prices}"
        assert result.curve[0]["price_0"] == pytest.approx(0.75, abs=0.01)  # all start near the mid price
        assert result.eval_return == pytest.approx(4 / 9, rel=0.05)


def run_cli(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "marlpg.maddpg", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def test_cli_pricing_prints_prices_nash_and_return(tmp_path):
    out = run_cli("--env", "pricing", "--seed", "1", "--total-frames", "2000", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("eval_return=") and math.isfinite(float(lines[-1].split("=", 1)[1]))
    assert lines[-3].startswith("prices=[") and lines[-2] == "nash=[0.6667, 0.6667]"
    header = (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert header.startswith("iteration,frames,seconds,return") and "price_1" in header


@pytest.mark.parametrize("flags", [["--env", "vmas:simple_spread"], ["--env", "pricing", "--iddpg", "--no-share", "--n-agents", "3"]])
def test_cli_other_runs(tmp_path, flags):
    out = run_cli(*flags, "--total-frames", "1280", "--num-envs", "32", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("eval_return=")


def test_cli_bad_input_is_a_clear_error(tmp_path):
    out = run_cli("--env", "gym:cartpole", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "gym:cartpole" in out.stderr and "pricing" in out.stderr
    out = run_cli("--env", "pricing", "--total-frames", "0", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "--total-frames" in out.stderr
    out = run_cli("--env", "pricing", "--discrete", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "continuous" in out.stderr


def test_initial_action_sets_where_the_actors_start():
    model = MADDPG(PRICING_SPEC, MADDPGConfig.for_env("pricing", initial_action=0.4))
    assert model.mu(torch.zeros(5, 2, 2)).flatten().tolist() == pytest.approx([0.4] * 10, abs=0.02)
    assert torch.equal(model.mu(torch.zeros(1, 2, 2)), model.mu(torch.zeros(1, 2, 2), model.target_actor))
    with pytest.raises(ValueError, match="initial_action"):
        MADDPGConfig(initial_action=1.0)
    with pytest.raises(ValueError, match="initial_action"):
        MADDPGConfig(continuous=False, initial_action=0.1)


@pytest.mark.parametrize("n", [3, 4, 7, 12, 128, 600])
def test_fleet_preset_keeps_mappos_robot_steps_and_the_robot_transitions_per_update(n):
    from marlpg.algos import mappo

    preset, same_floors = maddpg.fleet_preset(n), mappo.fleet_preset(n)
    for key in ("n_agents", "num_envs", "rollout_steps", "total_frames"):
        assert preset[key] == same_floors[key], key
    per_iteration = preset["num_envs"] * preset["rollout_steps"]
    assert preset["batch_size"] == max(32, 8192 // n)  # about 8192 robot-transitions, never under 32 rows
    assert 8192 - n < preset["batch_size"] * n <= 8192 or preset["batch_size"] == 32
    assert preset["buffer_size"] == max(per_iteration, 400_000 // n)
    assert preset["warmup_frames"] == 4 * per_iteration
    assert (preset["updates_per_iteration"], preset["critic"], preset["continuous"], preset["horizon"],
            preset["eval_episodes"]) == (25, "pooled", False, 25, 16)
    maddpg.MADDPGConfig(env="fleet", **preset)  # a valid configuration


@pytest.mark.parametrize("iterations, warmup_iterations", [(80, 4), (8, 4), (7, 3), (3, 1), (1, 1)])
def test_fleet_preset_warms_up_for_at_most_half_the_run(iterations, warmup_iterations):
    preset = maddpg.fleet_preset(32, iterations)
    per_iteration = preset["num_envs"] * preset["rollout_steps"]
    assert preset["total_frames"] == iterations * per_iteration
    assert preset["warmup_frames"] == warmup_iterations * per_iteration


def test_for_env_takes_the_tasks_preset_and_the_overrides_on_top():
    fleet = maddpg.MADDPGConfig.for_env("fleet:shared", n_agents=12, actor_lr=1e-4)
    assert (fleet.env, fleet.n_agents, fleet.num_envs, fleet.batch_size, fleet.actor_lr) == ("fleet:shared", 12, 42, 682, 1e-4)
    assert maddpg.MADDPGConfig.for_env("fleet").num_envs == 128  # 4 robots unless told
    pricing = maddpg.MADDPGConfig.for_env("pricing", total_frames=640)
    assert (pricing.horizon, pricing.batch_size, pricing.total_frames) == (1, 256, 640)
    plain = maddpg.MADDPGConfig.for_env("vmas:simple_spread")
    assert plain == maddpg.MADDPGConfig(env="vmas:simple_spread")


@pytest.mark.parametrize("edge", [
    dict(gamma=0.0), dict(gamma=1.0), dict(tau=1.0), dict(noise_decay=1.0), dict(noise_end=0.0),
    dict(noise_start=0.3, noise_end=0.3), dict(logit_reg=0.0), dict(warmup_frames=0), dict(eval_every=0),
    dict(num_envs=4, rollout_steps=2, buffer_size=8), dict(initial_action=-0.99), dict(initial_action=0.99),
    dict(env="pricing", continuous=True, n_agents=2, horizon=1),
])
def test_config_accepts_every_edge_of_its_ranges(edge):
    MADDPGConfig(**edge)


@pytest.mark.parametrize("flags, message", [
    (dict(gamma=-0.01), "gamma must lie in [0, 1]; got -0.01"),
    (dict(gamma=1.01), "gamma must lie in [0, 1]; got 1.01"),
    (dict(tau=0.0), "tau must lie in (0, 1]; got 0.0"),
    (dict(noise_decay=1.5), "noise_decay must lie in (0, 1]; got 1.5"),
    (dict(logit_reg=-0.001), "logit_reg must be non-negative; got -0.001"),
    (dict(gumbel_temperature=0.0), "gumbel_temperature must be positive; got 0.0"),
    (dict(noise_end=-0.01), "need 0 <= noise_end <= noise_start; got -0.01, 0.5"),
    (dict(noise_start=0.2, noise_end=0.3), "need 0 <= noise_end <= noise_start; got 0.3, 0.2"),
    (dict(warmup_frames=-1), "warmup_frames must be a non-negative integer; got -1"),
    (dict(eval_every=True), "eval_every must be a non-negative integer; got True"),
    (dict(warmup_frames=2.5), "warmup_frames must be a non-negative integer; got 2.5"),
    (dict(num_envs=4, rollout_steps=2, buffer_size=7), "buffer_size=7 cannot hold one iteration (8 transitions)"),
    (dict(initial_action=-1.0), "initial_action needs continuous actions and a value in (-1, 1); got -1.0"),
    (dict(initial_action=1.0), "initial_action needs continuous actions and a value in (-1, 1); got 1.0"),
    (dict(initial_action=0.5, continuous=False), "initial_action needs continuous actions and a value in (-1, 1); got 0.5"),
    (dict(critic="mean"), "critic must be one of 'concat', 'pooled'; got 'mean'"),
    (dict(critic="pooled", share=False),
     "critic='pooled' is one shared critic over every agent; it needs iddpg=False and share=True"),
    (dict(env="pricing", continuous=False), "the pricing game has continuous prices only; got continuous=False"),
])
def test_config_errors_name_the_value_and_the_range(flags, message):
    with pytest.raises(ValueError) as error:
        MADDPGConfig(**flags)
    assert str(error.value) == message
