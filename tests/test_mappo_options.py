"""MAPPO's options from marlbenchmark/on-policy (book/deviations.md), each checked against values computed here.

Huber's loss and value clipping on hand-made errors; on-policy's ValueNorm statistics against their
recursion worked by hand; per-agent advantage normalization against each agent's own moments; the
LayerNorm in front of every network; the config's checks and the command line's flags. No training runs
beyond one update.
"""
from __future__ import annotations

import math

import pytest
import torch

from marlpg.algos import mappo
from marlpg.core.normalizer import DecayingNormalizer, RunningNormalizer
from marlpg.envs.protocol import EnvSpec
from mappo_rollouts import one_step_rollout  # tests/mappo_rollouts.py

SPEC = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=3, horizon=2)


def _cfg(**overrides):
    settings = dict(num_envs=4, rollout_steps=1, minibatches=1, epochs=1, lr=0.05, entropy_coef=0.0)
    return mappo.MAPPOConfig(**{**settings, **overrides})


# -------------------------------------------------------------------------------- the critic's loss


def test_mse_is_half_the_squared_error():
    values, targets = torch.tensor([0.0, 3.0, -20.0]), torch.tensor([1.0, 0.0, 0.0])
    loss = mappo.critic_loss(values, {"targets": targets}, _cfg())
    assert loss.tolist() == pytest.approx([0.5, 4.5, 200.0])


def test_huber_is_quadratic_inside_delta_and_linear_beyond():
    values, targets = torch.tensor([0.0, 3.0, -20.0]), torch.tensor([1.0, 0.0, 0.0])
    loss = mappo.critic_loss(values, {"targets": targets}, _cfg(value_loss="huber", huber_delta=10.0))
    # |e| = 1 and 3 lie inside delta = 10: e^2 / 2; |e| = 20 beyond: 10 * (20 - 5) = 150
    assert loss.tolist() == pytest.approx([0.5, 4.5, 150.0])
    loss = mappo.critic_loss(values, {"targets": targets}, _cfg(value_loss="huber", huber_delta=2.0))
    assert loss.tolist() == pytest.approx([0.5, 2.0 * (3 - 1), 2.0 * (20 - 1)])


def test_value_clip_keeps_the_larger_of_the_two_losses():
    cfg = _cfg(value_clip=0.2)
    targets = torch.tensor([1.0, 1.0, 1.0, 0.0])
    old = torch.tensor([0.0, 0.0, 0.9, 0.0])
    values = torch.tensor([0.5, 2.0, 1.0, 0.1])
    loss = mappo.critic_loss(values, {"targets": targets, "old_values": old}, cfg)
    # 1: V moved +0.5 toward G, clipped to +0.2: clipped error 0.8 beats 0.5 -> 0.32
    # 2: V overshot to 2.0 (error 1.0); clipped to 0.2 (error 0.8): the unclipped 1.0 is larger -> 0.5
    # 3: within the clip: both 0.0 -> 0
    # 4: within the clip: error 0.1 -> 0.005
    assert loss.tolist() == pytest.approx([0.32, 0.5, 0.0, 0.005])


def test_value_clip_stops_the_gradient_of_a_clipped_step():
    cfg = _cfg(value_clip=0.2)
    values = torch.tensor([0.5], requires_grad=True)
    loss = mappo.critic_loss(values, {"targets": torch.tensor([1.0]), "old_values": torch.tensor([0.0])}, cfg)
    loss.sum().backward()
    assert values.grad.item() == 0.0  # the clipped branch is the larger and does not depend on V


def test_update_with_value_clip_limits_how_far_the_critic_moves():
    obs = torch.zeros(4, 2, 3)
    rewards = torch.full((4, 2), 50.0)  # far from where the critic starts
    moves = {}
    for clip in (None, 0.05):
        cfg = _cfg(value_norm=False, value_clip=clip, lr=0.01, epochs=30)
        torch.manual_seed(0)
        model = mappo.MAPPO(SPEC, cfg)
        rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), rewards)
        mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
        moves[clip] = (model.value(rollout.state[0], obs).detach() - rollout.values[0]).abs().max().item()
    assert moves[None] > 1.0
    # outside the band the clipped loss is the larger and has no gradient: only Adam's momentum carries V on
    assert moves[0.05] < 0.25 * moves[None]


def test_update_with_value_clip_sees_the_critics_own_units():
    """Old values reach the loss in the critic's (normalized) units: the rollout's de-normalized values
    put through the statistics they were de-normalized with, before the update moves them."""
    cfg = _cfg(value_clip=0.2)
    torch.manual_seed(0)
    model = mappo.MAPPO(SPEC, cfg)
    model.value_normalizer.update(torch.tensor([10.0, 30.0]))  # mean 20, std 10
    obs = torch.zeros(4, 2, 3)
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2))
    raw = model.value(rollout.state[0], obs).detach()
    assert mappo.rollout_critic_outputs(model, rollout, cfg)[0] == pytest.approx(raw, abs=1e-5)
    assert not torch.allclose(rollout.values[0], raw)  # de-normalized: a different number


# ------------------------------------------------------------------------------ value normalization


def test_decaying_normalizer_follows_on_policys_recursion():
    beta = 0.9
    norm = DecayingNormalizer(beta=beta)
    batches = [torch.tensor([1.0, 3.0]), torch.tensor([10.0, 10.0, 10.0, 10.0])]
    m = s = w = 0.0
    for batch in batches:
        norm.update(batch)
        m = beta * m + (1 - beta) * batch.mean().item()
        s = beta * s + (1 - beta) * batch.pow(2).mean().item()
        w = beta * w + (1 - beta)
    mean, var = m / w, s / w - (m / w) ** 2
    assert norm.mean.item() == pytest.approx(mean)
    assert norm.var.item() == pytest.approx(var)
    # each batch weighs by its place, not its size: the four 10s count less than the two earlier samples would
    exact = RunningNormalizer()
    for batch in batches:
        exact.update(batch)
    assert norm.mean.item() != pytest.approx(exact.mean.item())
    x = torch.tensor([2.0, -7.0])
    assert norm.denormalize(norm.normalize(x)) == pytest.approx(x)
    assert norm.normalize(x) == pytest.approx((x - mean) / math.sqrt(var))


def test_decaying_normalizer_before_any_update_and_its_variance_floor():
    norm = DecayingNormalizer()
    assert norm.mean.item() == 0.0
    assert norm.var.item() == pytest.approx(1e-2)  # on-policy's floor: (0 - 0) clamped to 0.01
    norm.update(torch.full((8,), 5.0))  # no spread at all
    assert norm.mean.item() == pytest.approx(5.0)
    assert norm.var.item() == pytest.approx(1e-2)


def test_value_norm_stats_chooses_the_normalizer():
    assert isinstance(mappo.MAPPO(SPEC, _cfg()).value_normalizer, RunningNormalizer)
    assert isinstance(mappo.MAPPO(SPEC, _cfg(value_norm_stats="ema")).value_normalizer, DecayingNormalizer)


# ------------------------------------------------------------------------- advantage normalization


def test_per_agent_advantages_use_each_agents_own_moments():
    advantages = torch.tensor([[[1.0, 100.0]], [[3.0, 300.0]], [[5.0, 200.0]]])  # [T=3, E=1, n=2]
    active = torch.ones_like(advantages, dtype=torch.bool)
    per_agent = mappo.normalized_advantages(advantages, active, "per_agent")
    for agent in range(2):
        column = advantages[..., agent].flatten()
        assert per_agent[..., agent].flatten() == pytest.approx((column - column.mean()) / column.std(), abs=1e-6)
    joint = mappo.normalized_advantages(advantages, active, "joint")
    assert joint.flatten() == pytest.approx((advantages.flatten() - advantages.mean()) / advantages.std(), abs=1e-6)
    assert mappo.normalized_advantages(advantages, active, "none") is advantages


def test_per_agent_advantages_leave_out_inactive_samples():
    advantages = torch.tensor([[[1.0, 0.0]], [[3.0, 4.0]], [[1000.0, 8.0]]])
    active = torch.tensor([[[True, True]], [[True, True]], [[False, True]]])
    out = mappo.normalized_advantages(advantages, active, "per_agent")
    first = torch.tensor([1.0, 3.0])
    assert out[:2, 0, 0] == pytest.approx((first - first.mean()) / first.std(), abs=1e-6)
    second = advantages[:, 0, 1]
    assert out[:, 0, 1] == pytest.approx((second - second.mean()) / second.std(), abs=1e-6)


def test_advantage_norm_reaches_the_update():
    cfg = _cfg(value_norm=False, advantage_norm="per_agent")
    torch.manual_seed(0)
    model = mappo.MAPPO(SPEC, cfg)
    obs = torch.zeros(4, 2, 3)
    rewards = torch.tensor([[1.0, 100.0], [2.0, 300.0], [3.0, 200.0], [4.0, 400.0]])
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), rewards)
    advantages, _, _ = mappo.advantages_and_targets(model, rollout, cfg)
    for agent in range(2):
        assert advantages[..., agent].mean().item() == pytest.approx(0.0, abs=1e-5)
        assert advantages[..., agent].std().item() == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------------ feature norm


@pytest.mark.parametrize("overrides", [{}, {"critic": "agent_specific"}, {"ippo": True}])
def test_feature_norm_puts_a_layernorm_before_every_network(overrides):
    model = mappo.MAPPO(SPEC, _cfg(feature_norm=True, **overrides))
    for net in [actor.net for actor in model.actors] + [model.critic]:
        assert isinstance(net[0], torch.nn.LayerNorm)
        assert net[0].normalized_shape == (net[1].in_features,)
    obs = torch.randn(5, 2, 3)
    state = torch.randn(5, 7)
    # scaling every input feature of the critic by the same positive factor changes nothing behind a LayerNorm
    if not overrides:
        torch.testing.assert_close(model.value(3.0 * state, obs), model.value(state, obs), atol=1e-4, rtol=0)
    assert model.policy(obs).probs.shape == (5, 2, 3)


def test_without_feature_norm_no_layernorm():
    model = mappo.MAPPO(SPEC, _cfg())
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())


# -------------------------------------------------------------------------------------- the checks


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"value_loss": "l1"}, ["value_loss must be one of 'mse', 'huber'", "'l1'"]),
        ({"value_norm_stats": "popart"}, ["value_norm_stats must be one of 'exact', 'ema'", "'popart'"]),
        ({"advantage_norm": "batch"}, ["advantage_norm must be one of 'joint', 'per_agent', 'none'", "'batch'"]),
        ({"huber_delta": 0.0}, ["huber_delta must be positive", "0.0"]),
        ({"value_clip": -0.1}, ["value_clip must be positive", "-0.1"]),
        ({"value_clip": 0.0}, ["value_clip must be positive", "None for no clipping"]),
        ({"feature_norm": True, "recurrent": True}, ["feature_norm=True", "recurrent=True"]),
        ({"feature_norm": True, "critic": "pooled"}, ["feature_norm=True", "critic='pooled'"]),
        ({"feature_norm": True, "critic": "attention"}, ["feature_norm=True", "critic='attention'"]),
    ],
)
def test_bad_options_name_the_value_and_what_is_allowed(overrides, words):
    with pytest.raises(ValueError) as error:
        mappo.MAPPOConfig(**overrides)
    for word in words:
        assert word in str(error.value)


def test_the_command_line_carries_the_options():
    from marlpg import mappo as command
    from marlpg.commands import parser_for

    parser = parser_for(command)  # the command line as python -m marlpg.mappo builds it
    args = parser.parse_args(["--value-loss", "huber", "--value-clip", "0.2", "--value-norm-stats", "ema",
                              "--feature-norm", "--advantage-norm", "per_agent"])
    cfg = command.config_from_args(args)
    assert (cfg.value_loss, cfg.value_clip, cfg.value_norm_stats, cfg.feature_norm, cfg.advantage_norm) == (
        "huber", 0.2, "ema", True, "per_agent")
    defaults = command.config_from_args(parser.parse_args([]))
    assert (defaults.value_loss, defaults.value_clip, defaults.value_norm_stats, defaults.feature_norm,
            defaults.advantage_norm) == ("mse", None, "exact", False, "joint")


@pytest.mark.parametrize("overrides", [
    {"value_loss": "huber", "value_clip": 0.2, "value_norm_stats": "ema", "advantage_norm": "per_agent"},
    {"feature_norm": True},
])
def test_recurrent_and_feed_forward_updates_run_with_the_options(overrides):
    torch.manual_seed(0)
    for recurrent in (False, True):
        if recurrent and overrides.get("feature_norm"):
            continue
        cfg = mappo.MAPPOConfig(env="vmas:simple_spread", num_envs=2, rollout_steps=4, minibatches=2, epochs=1,
                                total_frames=8, eval_episodes=2, recurrent=recurrent, chunk_length=2, **overrides)
        result = mappo.train(cfg, progress=False, with_reference=False)
        row = result.curve[-1]
        assert math.isfinite(row["value_loss"]) and math.isfinite(result.eval_return)


def test_a_small_positive_huber_delta_is_accepted():
    assert _cfg(value_loss="huber", huber_delta=0.5).huber_delta == 0.5


def test_value_clip_bounds_a_step_down_as_well_as_up():
    cfg = _cfg(value_clip=0.2)
    loss = mappo.critic_loss(torch.tensor([-0.5]), {"targets": torch.tensor([-1.0]), "old_values": torch.tensor([0.0])}, cfg)
    # V moved -0.5 toward G = -1; clipped to -0.2, its error 0.8 is the larger: 0.32, not the unclipped 0.125
    assert loss.tolist() == pytest.approx([0.32])


def test_an_agent_with_one_active_sample_gets_advantage_zero():
    advantages = torch.tensor([[[7.0, 1.0]], [[50.0, 3.0]]])
    active = torch.tensor([[[True, True]], [[False, True]]])
    out = mappo.normalized_advantages(advantages, active, "per_agent")
    assert out[0, 0, 0].item() == pytest.approx(0.0, abs=1e-6)  # its own mean is itself


def test_without_value_norm_the_old_values_are_the_rollouts_own():
    cfg = _cfg(value_norm=False, value_norm_stats="ema", value_clip=0.2)  # ema's unfitted std is 0.1, not 1
    torch.manual_seed(0)
    model = mappo.MAPPO(SPEC, cfg)
    obs = torch.randn(4, 2, 3)  # not zeros: a zero input gives the critic's zero bias, the same in any units
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), torch.ones(4, 2))
    assert rollout.values.abs().min() > 0
    assert torch.equal(mappo.rollout_critic_outputs(model, rollout, cfg), rollout.values)


def test_update_inputs_keep_the_rollouts_active_mask():
    cfg = _cfg(value_norm=False)
    torch.manual_seed(0)
    model = mappo.MAPPO(SPEC, cfg)
    obs = torch.zeros(4, 2, 3)
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), torch.randn(4, 2))
    rollout.active = torch.tensor([[[True, False], [True, True], [False, True], [True, True]]])
    _, _, _, active, _ = mappo.update_inputs(model, rollout, cfg)
    assert torch.equal(active, rollout.active)


def test_decaying_normalizer_keeps_one_statistic_per_element():
    norm = DecayingNormalizer(shape=(2,), beta=0.5)
    norm.update(torch.tensor([[1.0, 10.0], [3.0, 30.0]]))
    assert norm.mean.tolist() == pytest.approx([2.0, 20.0])
    assert norm.var.tolist() == pytest.approx([1.0, 100.0])
