"""MADDPG's discrete actions: straight-through one-hot samples (marlpg's default) or openai/maddpg's soft ones.

Checked on hand-made logits: what each kind of sample looks like, that both have the policy's
distribution where the environment reads them (the largest entry), that the soft sample's gradient
reaches every logit, that every path (exploration, the actor loss, the targets) takes the configured
kind, and the config's and the command line's handling of the option.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from marlpg.algos import maddpg
from marlpg.envs.protocol import EnvSpec

SPEC = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=3, horizon=2)


def _model(gumbel: str):
    torch.manual_seed(0)
    return maddpg.MADDPG(SPEC, maddpg.MADDPGConfig(continuous=False, gumbel=gumbel, batch_size=8))


def _is_one_hot(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all())


def test_hard_samples_are_one_hot_and_soft_samples_are_probability_vectors():
    logits = torch.tensor([[1.0, 0.0, -1.0]]).expand(500, 3)
    hard = _model("hard").gumbel_sample(logits)
    soft = _model("soft").gumbel_sample(logits)
    assert _is_one_hot(hard)
    assert (soft > 0).all() and torch.allclose(soft.sum(-1), torch.ones(500))
    assert not _is_one_hot(soft)


@pytest.mark.parametrize("gumbel", ["hard", "soft"])
def test_the_largest_entry_has_the_policys_distribution(gumbel):
    torch.manual_seed(1)
    logits = torch.tensor([2.0, 0.0, -1.0]).expand(40_000, 3)
    model = _model(gumbel)
    counts = torch.bincount(model.env_actions(model.gumbel_sample(logits)), minlength=3).float() / 40_000
    assert counts.tolist() == pytest.approx(torch.softmax(logits[0], -1).tolist(), abs=0.01)


def test_the_soft_samples_gradient_reaches_every_logit_and_differs_from_the_hard_ones():
    grads = {}
    for gumbel in ("hard", "soft"):
        logits = torch.tensor([[0.5, 0.0, -0.5]], requires_grad=True)
        torch.manual_seed(2)
        sample = _model(gumbel).gumbel_sample(logits)
        (sample * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        grads[gumbel] = logits.grad.clone()
        assert (grads[gumbel].abs() > 0).all()
    # the same noise: the straight-through estimator passes the relaxed sample's gradient, so the two agree
    torch.testing.assert_close(grads["hard"], grads["soft"])


def test_soft_gumbel_reaches_exploration_the_actor_loss_and_the_targets():
    model = _model("soft")
    obs = torch.randn(16, 2, 3)
    assert not _is_one_hot(model.explore(obs, noise_std=0.0))
    actions, _ = model.actions_and_outputs(obs)
    assert not _is_one_hot(actions) and actions.requires_grad
    assert not _is_one_hot(model.target_actions(obs))
    assert _is_one_hot(model.mu(obs))  # deployment and evaluation stay greedy
    hard = _model("hard")
    for x in (hard.explore(obs, noise_std=0.0), hard.actions_and_outputs(obs)[0], hard.target_actions(obs)):
        assert _is_one_hot(x)


def test_a_soft_run_stores_soft_actions_and_trains(monkeypatch):
    from marlpg.core.replay import ReplayBuffer

    stored = []
    add = ReplayBuffer.add
    monkeypatch.setattr(ReplayBuffer, "add", lambda self, **batch: (stored.append(batch["actions"]), add(self, **batch))[1])
    cfg = maddpg.MADDPGConfig(continuous=False, gumbel="soft", num_envs=4, rollout_steps=5, total_frames=40,
                              warmup_frames=20, batch_size=8, updates_per_iteration=2, eval_episodes=2)
    result = maddpg.train(cfg, progress=False, with_reference=False)
    assert torch.isfinite(torch.tensor(result.eval_return))
    assert _is_one_hot(stored[0])  # warm-up: uniformly random one-hot actions
    assert not _is_one_hot(stored[-1])  # after it, the actor's soft samples


@pytest.mark.parametrize("overrides, words", [
    ({"continuous": False, "gumbel": "relaxed"}, ["gumbel must be one of 'hard', 'soft'", "'relaxed'"]),
    ({"continuous": True, "gumbel": "soft"}, ["gumbel='soft'", "continuous=False", "--discrete"]),
])
def test_bad_gumbel_settings_say_what_is_allowed(overrides, words):
    with pytest.raises(ValueError) as error:
        maddpg.MADDPGConfig(**overrides)
    for word in words:
        assert word in str(error.value)


def test_the_command_line_takes_gumbel():
    from marlpg import maddpg as command
    from marlpg.commands import parser_for

    parser = parser_for(command)  # the command line as python -m marlpg.maddpg builds it
    cfg = command.config_from_args(parser.parse_args(["--env", "vmas:simple_spread", "--discrete", "--gumbel", "soft"]))
    assert (cfg.gumbel, cfg.continuous) == ("soft", False)
    assert command.config_from_args(parser.parse_args(["--env", "vmas:simple_spread", "--discrete"])).gumbel == "hard"
    assert replace(cfg, gumbel="hard").gumbel == "hard"
