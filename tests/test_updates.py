"""One update on a hand-made batch, for every algorithm: each test fails when a piece of the update breaks.

No training runs: every batch is built by hand, and each check is a direction or a value computed
here (a positive advantage raises its action's probability, the entropy bonus raises the entropy,
the critic moves toward its targets, the targets come from the target networks, ...). These are
also the fast tests that mutation testing runs (see README.md, "Mutation testing").
"""
from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from marlpg.algos import coma, maddpg, mappo
from marlpg.core.gae import gae
from marlpg.core.returns import td_lambda_targets
from marlpg.envs.protocol import EnvSpec, Transition
from mappo_rollouts import one_step_rollout  # tests/mappo_rollouts.py

SPEC = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=3, horizon=2)


def _mappo(**overrides):
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=1, minibatches=1, epochs=1, lr=0.05, entropy_coef=0.0, **overrides)
    torch.manual_seed(0)
    return mappo.MAPPO(SPEC, cfg), cfg


def _skew(actor_net: nn.Sequential, logits) -> None:
    """Make the actor's output the fixed ``logits`` (last layer: no weights, bias = logits)."""
    with torch.no_grad():
        actor_net[-1].weight.zero_()
        actor_net[-1].bias.copy_(torch.tensor(logits))


# ------------------------------------------------------------------------------------------ MAPPO


@pytest.mark.parametrize("ippo", [False, True])
def test_mappo_positive_advantage_raises_that_actions_probability(ippo):
    model, cfg = _mappo(ippo=ippo, value_norm=False)
    obs = torch.zeros(4, 2, 3)  # one observation everywhere: only the advantage tells the copies apart
    actions = torch.tensor([[0, 0], [1, 1], [0, 0], [1, 1]])
    rewards = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])  # action 0 is good
    rollout = one_step_rollout(model, obs, actions, rewards)
    before = model.policy(obs[:1]).probs[0, :, 0].detach()
    mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    after = model.policy(obs[:1]).probs[0, :, 0].detach()
    assert torch.all(after > before + 1e-3)


def test_mappo_entropy_bonus_raises_entropy():
    model, cfg = _mappo(value_norm=False)
    cfg = replace(cfg, entropy_coef=1.0)
    _skew(model.actors[0].net, [2.0, 0.0, -2.0])
    obs = torch.zeros(4, 2, 3)
    actions = torch.tensor([[0, 1], [1, 2], [2, 0], [0, 0]])
    rollout = one_step_rollout(model, obs, actions, torch.zeros(4, 2))  # equal returns: every advantage is 0
    before = model.policy(obs[:1]).entropy().mean().item()
    stats = mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    after = model.policy(obs[:1]).entropy().mean().item()
    assert after > before + 1e-3
    assert stats["entropy"] == pytest.approx(before, rel=1e-5)  # one minibatch, measured before the step


def test_mappo_gae_receives_de_normalized_values():
    model, cfg = _mappo()
    with torch.no_grad():  # the critic says 0.5 in normalized units; the returns have mean 10 and std 2
        model.critic[-1].weight.zero_()
        model.critic[-1].bias.fill_(0.5)
        model.value_normalizer.mean.fill_(10.0)
        model.value_normalizer.var.fill_(4.0 - model.value_normalizer.eps)
        model.value_normalizer.count.fill_(100.0)
    rollout = one_step_rollout(model, torch.zeros(4, 2, 3), torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2))
    assert torch.allclose(rollout.values, torch.full((1, 4, 2), 11.0))
    assert torch.allclose(rollout.last_value, torch.full((4, 2), 11.0))
    _, _, returns = mappo.advantages_and_targets(model, rollout, cfg)
    assert torch.allclose(returns, torch.zeros(1, 4, 2))  # r = 0 at a termination: the target is 0, not 0 - 11


@pytest.mark.parametrize("value_norm", [True, False])
def test_mappo_critic_moves_toward_its_normalized_targets(value_norm):
    model, cfg = _mappo(value_norm=value_norm)
    cfg = replace(cfg, lr=1e-3)  # Adam's first step moves every weight by lr: small enough not to overshoot
    obs = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0]], [[0, 1.0, 0], [0, 1.0, 0]]]).repeat(2, 1, 1)
    rewards = torch.tensor([[1.0, 1.0], [3.0, 3.0]]).repeat(2, 1)
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), rewards)
    state = rollout.state[0]
    before = model.value(state, obs).detach()
    mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    after = model.value(state, obs).detach()
    # normalized, the returns 1 and 3 become -1 and +1 (mean 2, std 1); raw, both lie above the start
    target = torch.tensor([-1.0, 1.0, -1.0, 1.0]) if value_norm else torch.tensor([1.0, 3.0, 1.0, 3.0])
    target = target[:, None].expand(4, 2)
    assert torch.all((after - target).abs() < (before - target).abs())
    if value_norm:
        assert model.value_normalizer.mean.item() == pytest.approx(2.0)
        assert model.value_normalizer.var.item() == pytest.approx(1.0)


def test_ippo_critic_ignores_the_other_agents_observations_and_mappo_does_not():
    ippo, _ = _mappo(ippo=True)
    central, _ = _mappo()
    obs = torch.randn(5, 2, 3)
    state = torch.cat([obs.flatten(1), torch.full((5, 1), 0.5)], dim=-1)
    other_obs = obs.clone()
    other_obs[:, 1] = torch.randn(5, 3)
    other_state = torch.cat([other_obs.flatten(1), torch.full((5, 1), 0.5)], dim=-1)
    assert torch.equal(ippo.value(state, obs)[:, 0], ippo.value(other_state, other_obs)[:, 0])
    assert not torch.allclose(central.value(state, obs)[:, 0], central.value(other_state, other_obs)[:, 0])
    clock = state.clone()
    clock[:, -1] = 0.0
    assert not torch.allclose(ippo.value(state, obs), ippo.value(clock, obs))  # it does see the clock


def test_ppo_diagnostics_by_hand():
    log_ratio = torch.tensor([math.log(1.5), math.log(0.5), 0.0])
    kl, clipped = mappo.ppo_diagnostics(log_ratio, None, clip=0.2)
    assert kl.item() == pytest.approx(((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5)) + 0.0) / 3)
    assert clipped.item() == pytest.approx(2 / 3)
    kl, clipped = mappo.ppo_diagnostics(log_ratio, torch.tensor([False, True, True]), clip=0.2)
    assert kl.item() == pytest.approx((-0.5 - math.log(0.5)) / 2) and clipped.item() == pytest.approx(0.5)
    assert mappo.explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])) == 1.0
    assert mappo.explained_variance(torch.tensor([2.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(0.0)
    # residuals [1, -1, 1] - mean: var 4/3 against var 1: 1 - 4/3
    assert mappo.explained_variance(torch.tensor([0.0, 3.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(-1 / 3)


def test_mappo_reports_gradient_norms_before_clipping():
    model, cfg = _mappo(value_norm=False)
    cfg = replace(cfg, max_grad_norm=1e-6)
    obs = torch.randn(4, 2, 3)
    actions = torch.tensor([[0, 1], [1, 2], [2, 0], [0, 0]])
    rollout = one_step_rollout(model, obs, actions, torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [0.0, 0.0]]))
    shadow = copy.deepcopy(model)
    advantages, targets, _ = mappo.advantages_and_targets(shadow, rollout, cfg)
    batch = {"obs": obs, "state": rollout.state[0], "actions": actions, "log_probs": rollout.log_probs[0],
             "advantages": advantages[0], "targets": targets[0]}
    policy_loss, ent, value_loss = mappo.ppo_losses(shadow, batch, cfg)
    (policy_loss - cfg.entropy_coef * ent + value_loss).backward()
    norm = lambda params: torch.cat([p.grad.flatten() for p in params if p.grad is not None]).norm().item()
    stats = mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    assert stats["actor_grad_norm"] == pytest.approx(norm(shadow.actors.parameters()), rel=1e-4)
    assert stats["critic_grad_norm"] == pytest.approx(norm(shadow.critic.parameters()), rel=1e-4)
    assert stats["approx_kl"] == 0.0 and stats["clip_fraction"] == 0.0  # one minibatch: the ratio is exactly 1


@pytest.mark.parametrize("samples, parts", [(25, 8), (4, 3), (7, 7), (1, 1)])
def test_minibatches_are_as_many_as_asked_and_even(samples, parts):
    split = mappo.minibatch_indices(samples, parts, torch.Generator().manual_seed(0), "cpu")
    assert len(split) == parts
    sizes = [len(part) for part in split]
    assert max(sizes) - min(sizes) <= 1
    assert sorted(torch.cat(split).tolist()) == list(range(samples))
    with pytest.raises(ValueError, match="minibatches must lie in 1..25"):
        mappo.minibatch_indices(25, 26, torch.Generator(), "cpu")


def test_mappo_update_with_one_copy_takes_every_minibatch_step():
    # 1 copy x 25 steps in 8 minibatches: chunk(8) would make 7 chunks of 4 (and index the 8th)
    model, cfg = _mappo(value_norm=False)
    cfg = replace(cfg, num_envs=1, rollout_steps=25, minibatches=8, epochs=2)
    rollout = mappo.Rollout(
        obs=torch.randn(25, 1, 2, 3), state=torch.zeros(25, 1, 7), actions=torch.zeros(25, 1, 2, dtype=torch.long),
        log_probs=torch.full((25, 1, 2), -math.log(3)), values=torch.zeros(25, 1, 2), rewards=torch.randn(25, 1, 2),
        dones=torch.zeros(25, 1, dtype=torch.bool), last_value=torch.zeros(1, 2),
    )
    optimizers = mappo.make_optimizers(model, cfg)
    stats = mappo.update(model, rollout, optimizers, cfg, torch.Generator().manual_seed(0))
    assert all(math.isfinite(v) for v in stats.values())
    for optimizer in optimizers:
        assert all(int(state["step"]) == 16 for state in optimizer.state.values())


def test_mappo_update_keeps_the_action_mask():
    model, cfg = _mappo(value_norm=False)
    obs = torch.randn(4, 2, 3)
    mask = torch.tensor([True, False, True]).expand(4, 2, 3)
    actions = torch.tensor([[0, 2], [2, 0], [0, 0], [2, 2]])
    rollout = one_step_rollout(model, obs, actions, torch.randn(4, 2))
    with torch.no_grad():
        log_probs = model.policy(obs, mask).log_prob(actions)
    rollout = replace(rollout, log_probs=log_probs[None], action_mask=mask[None])
    stats = mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    assert stats["approx_kl"] == 0.0  # the one minibatch's ratio is exactly 1 only under the same mask


def test_mappo_inactive_agents_and_masked_actions_add_nothing():
    model, cfg = _mappo(value_norm=False)
    obs = torch.randn(4, 2, 3)
    dist = model.policy(obs, torch.tensor([[True, False, True]]).expand(4, 2, 3))
    assert torch.all(dist.probs[..., 1] == 0)
    batch = {"obs": obs, "state": torch.randn(4, 7), "actions": torch.zeros(4, 2, dtype=torch.long),
             "log_probs": torch.zeros(4, 2), "advantages": torch.randn(4, 2), "targets": torch.randn(4, 2)}
    active = torch.tensor([[True, False]] * 4)
    masked = mappo.ppo_losses(model, {**batch, "active": active}, cfg)
    changed = {**batch, "advantages": batch["advantages"].clone(), "targets": batch["targets"].clone(), "active": active}
    changed["advantages"][:, 1] += 100.0
    changed["targets"][:, 1] -= 100.0
    assert all(torch.allclose(a, b) for a, b in zip(masked, mappo.ppo_losses(model, changed, cfg)))


# ------------------------------------------------------------------------------- two-step game


class TwoStepGame:
    """Two steps with rewards 1 then 2; the episode then terminates, or is truncated (``truncate=True``).

    Observations are 0 then 1 (per agent), with the time feature t/2 in the state; after the second
    step the episode reached the observation 2 and restarts from 0.
    """

    def __init__(self, num_envs: int = 2, truncate: bool = False):
        self.num_envs, self.truncate, self.t = num_envs, truncate, 0
        self.device = torch.device("cpu")
        self.spec = SPEC

    def _observe(self, t: int):
        obs = torch.full((self.num_envs, 2, 3), float(t))
        return obs, torch.cat([obs.flatten(1), torch.full((self.num_envs, 1), t / 2)], dim=-1)

    def reset(self, seed=None):
        self.t = 0
        return self._observe(0)

    def step(self, actions):
        self.t += 1
        reward = torch.full((self.num_envs, 2), float(self.t))
        final_obs, final_state = self._observe(self.t)
        end = torch.full((self.num_envs,), self.t == 2)
        if self.t == 2:
            self.t = 0
        obs, state = self._observe(self.t)
        cut = end if self.truncate else torch.zeros_like(end)
        return Transition(obs, state, reward, end, terminated=end & ~cut, truncated=cut,
                          final_obs=final_obs, final_state=final_state)


@pytest.mark.parametrize("truncate", [False, True])
def test_mappo_bootstraps_through_a_truncation_only(truncate):
    model, cfg = _mappo(value_norm=False, gamma=0.5, gae_lambda=1.0)
    env = TwoStepGame(truncate=truncate)
    rollout, _ = mappo.collect(model, env, env.reset(), 2, mappo.EpisodeTracker(2, 2, "cpu"))
    with torch.no_grad():
        v_end = model.value(*reversed(env._observe(2)))  # V of the state the episode reached
    _, _, returns = mappo.advantages_and_targets(model, rollout, cfg)
    # terminated: G_1 = 2, G_0 = 1 + 0.5 * 2; truncated: G_1 = 2 + 0.5 V(x_2), G_0 = 1 + 0.5 G_1
    g1 = 2.0 + (0.5 * v_end if truncate else 0.0)
    assert torch.allclose(returns[1], g1 * torch.ones(2, 2))
    assert torch.allclose(returns[0], 1.0 + 0.5 * g1 * torch.ones(2, 2))


@pytest.mark.parametrize("baseline", ["counterfactual", "independent"])
@pytest.mark.parametrize("truncate", [False, True])
def test_coma_bootstraps_through_a_truncation_only(truncate, baseline):
    cfg = coma.COMAConfig(env="vmas:simple_spread", n_agents=2, horizon=2, num_envs=2, gamma=0.5, td_lambda=1.0,
                          value_norm=False, baseline=baseline)
    torch.manual_seed(0)
    model = coma.COMA(SPEC, cfg)
    with torch.no_grad():  # a target critic unlike the online one
        for p in model.target_critic.parameters():
            p.add_(0.5 * torch.randn_like(p))
        # the policy picks action 0 at the observation 0, 0 or 1 at 1, and 2 at the final observation 2
        logits = nn.Linear(5, 3)
        logits.weight.zero_()
        logits.weight[:, 0] = torch.tensor([-20.0, 0.0, 20.0])
        logits.bias.copy_(torch.tensor([20.0, 0.0, -30.0]))
        model.actors[0].net = nn.Sequential(logits)
    env = TwoStepGame(truncate=truncate)
    obs, state = env.reset()
    rollout, _ = coma.collect(model, env, (obs, state, model.policy(obs).sample()), 2)
    targets = coma.critic_targets(model, rollout, cfg)
    if truncate:
        assert torch.all(rollout.final_actions[1] == 2)  # drawn from the policy at the state reached
        q_end = model.critic_values(rollout.final_state[1], rollout.final_obs[1], rollout.final_actions[1], target=True)
        assert torch.equal(rollout.final_obs[1], env._observe(2)[0])
    else:
        q_end = torch.zeros(2, 2)
        assert rollout.final_state is None and rollout.final_obs is None and rollout.final_actions is None
    assert torch.allclose(targets[1], 2.0 + 0.5 * q_end)
    assert torch.allclose(targets[0], 1.0 + 0.5 * targets[1])


def test_gae_and_td_lambda_bootstrap_from_the_final_value_on_truncation_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([False, True, False])
    final = torch.tensor([[9.0], [4.0], [9.0]])  # only the truncated step's entry is read
    gamma, lam = 0.9, 0.8
    # delta_1 = 2 + 0.9 * 4 - 1 = 4.6 (bootstrapped); A_2 = 3 + 0.9 * 2 - 1.5 = 3.3; A_0 = 1.4 + 0.72 * 4.6
    adv, targets = gae(rewards, values, dones, torch.tensor([2.0]), gamma, lam, torch.tensor([False, True, False]), final)
    assert adv.flatten().tolist() == pytest.approx([1.4 + 0.72 * 4.6, 4.6, 3.3])
    # G_1 = 2 + 0.9 * 4 = 5.6; G_0 = 1 + 0.9 * (0.2 * 1.0 + 0.8 * 5.6)
    td = td_lambda_targets(rewards, values, dones, torch.tensor([2.0]), gamma, lam, torch.tensor([False, True, False]), final)
    assert td.flatten().tolist() == pytest.approx([1 + 0.9 * (0.2 + 0.8 * 5.6), 5.6, 3 + 0.9 * 2.0])
    with pytest.raises(ValueError, match="truncated must imply done"):
        gae(rewards, values, dones, torch.tensor([2.0]), gamma, lam, torch.tensor([True, False, False]), final)
    with pytest.raises(ValueError, match="final_values"):
        gae(rewards, values, dones, torch.tensor([2.0]), gamma, lam, torch.tensor([False, True, False]), None)


# ------------------------------------------------------------------------------------------- COMA


def _coma(n_agents=2, **overrides):
    cfg = coma.COMAConfig(env="credit", n_agents=n_agents, **overrides)
    torch.manual_seed(0)
    spec = replace(SPEC, n_agents=n_agents, state_dim=n_agents * 3 + 1)
    return coma.COMA(spec, cfg), cfg


def test_coma_counterfactual_baseline_uses_the_current_policy():
    model, _ = _coma(value_norm=False)
    obs, actions = torch.randn(5, 2, 3), torch.randint(0, 3, (5, 2))
    state = torch.cat([obs.flatten(1), torch.zeros(5, 1)], dim=-1)
    first = model.advantages(state, obs, actions)
    _skew(model.actors[0].net, [3.0, 0.0, -3.0])
    q_all = model.critic_outputs(state, obs, actions).detach()
    probs = torch.softmax(torch.tensor([3.0, 0.0, -3.0]), -1)
    expected = q_all.gather(-1, actions[..., None]).squeeze(-1) - (q_all * probs).sum(-1)
    assert torch.allclose(model.advantages(state, obs, actions), expected, atol=1e-6)
    assert not torch.allclose(first, expected)


@pytest.mark.parametrize("baseline", ["counterfactual", "independent", "state_value"])
def test_coma_targets_come_from_the_target_critic_which_train_copies_on_schedule(baseline):
    model, cfg = _coma(value_norm=False, gamma=0.5, td_lambda=0.0, baseline=baseline)
    with torch.no_grad():
        model.target_critic[-1].weight.zero_()
        model.target_critic[-1].bias.fill_(7.0)
    obs = torch.zeros(2, 2, 2, 3)
    rollout = coma.Rollout(obs=obs, state=torch.zeros(2, 2, 7), actions=torch.zeros(2, 2, 2, dtype=torch.long),
                           rewards=torch.ones(2, 2, 2), dones=torch.zeros(2, 2, dtype=torch.bool), next_obs=obs[0],
                           next_state=torch.zeros(2, 7), next_actions=torch.zeros(2, 2, dtype=torch.long))
    # lambda = 0: G_t = r_t + gamma Q'(x_{t+1}, u_{t+1}), with Q' = 7 at t + 1 = 1 (inside) and 2 (the bootstrap)
    assert torch.allclose(coma.critic_targets(model, rollout, cfg), torch.full((2, 2, 2), 1.0 + 0.5 * 7.0))
    # agent 1 left after step 0: its target there stops at its reward
    left = replace(rollout, agent_dones=torch.tensor([[[False, True]] * 2, [[False, False]] * 2]))
    assert torch.allclose(coma.critic_targets(model, left, cfg)[0, :, 1], torch.ones(2))
    assert not coma.update_target(model, 1, replace(cfg, target_update_every=2))
    assert model.target_critic[-1].bias[0].item() == 7.0
    assert coma.update_target(model, 2, replace(cfg, target_update_every=2))
    for p, q in zip(model.target_critic.parameters(), model.critic.parameters()):
        assert torch.equal(p, q)


def test_coma_train_copies_the_critic_into_its_target():
    result = coma.train(coma.COMAConfig(env="credit", total_frames=16, num_envs=8, target_update_every=2), progress=False)
    assert len(result.curve) == 2
    for p, q in zip(result.model.target_critic.parameters(), result.model.critic.parameters()):
        assert torch.equal(p, q)
    result = coma.train(coma.COMAConfig(env="credit", total_frames=8, num_envs=8, target_update_every=2), progress=False)
    assert any(not torch.equal(p, q) for p, q in zip(result.model.target_critic.parameters(), result.model.critic.parameters()))


@pytest.mark.parametrize("n_agents", [2, 4])
def test_coma_entropy_bonus_weighs_the_same_per_agent_whatever_the_team_size(n_agents):
    model, cfg = _coma(n_agents=n_agents, share=False, entropy_coef=1.0, max_grad_norm=1e9)
    for actor in model.actors:
        _skew(actor.net, [2.0, 0.0, -2.0])
    obs = torch.zeros(1, 4, n_agents, 3)
    rollout = coma.Rollout(obs=obs, state=torch.zeros(1, 4, 3 * n_agents + 1),
                           actions=torch.zeros(1, 4, n_agents, dtype=torch.long), rewards=torch.zeros(1, 4, n_agents),
                           dones=torch.ones(1, 4, dtype=torch.bool), next_obs=obs[0], next_state=torch.zeros(4, 3 * n_agents + 1),
                           next_actions=torch.zeros(4, n_agents, dtype=torch.long))
    before = model.actors[0].net[-1].bias.detach().clone()
    entropy = coma.update_actors(model, rollout, torch.zeros(1, 4, n_agents), torch.optim.SGD(model.actors.parameters(), lr=1.0), cfg)
    step = model.actors[0].net[-1].bias.detach() - before
    # dH/dz for logits z = (2, 0, -2): -p_k (log p_k + H); one SGD step of size 1 moves the bias by it
    p = torch.softmax(torch.tensor([2.0, 0.0, -2.0]), -1)
    h = -(p * p.log()).sum()
    assert torch.allclose(step, -p * (p.log() + h), atol=1e-6)
    assert entropy == pytest.approx(h.item(), rel=1e-5)


def test_coma_positive_advantage_raises_that_actions_probability():
    model, cfg = _coma()
    obs = torch.zeros(1, 4, 2, 3)
    actions = torch.tensor([[[0, 1], [0, 1], [0, 1], [0, 1]]])
    advantages = torch.tensor([[[1.0, -1.0]] * 4])
    rollout = coma.Rollout(obs=obs, state=torch.zeros(1, 4, 7), actions=actions, rewards=torch.zeros(1, 4, 2),
                           dones=torch.ones(1, 4, dtype=torch.bool), next_obs=obs[0], next_state=torch.zeros(4, 7),
                           next_actions=torch.zeros(4, 2, dtype=torch.long))
    before = model.policy(obs[0, :1]).probs[0].detach()
    coma.update_actors(model, rollout, advantages, torch.optim.SGD(model.actors.parameters(), lr=0.1), replace(cfg, entropy_coef=0.0))
    after = model.policy(obs[0, :1]).probs[0].detach()
    assert after[0, 0] > before[0, 0] and after[1, 1] < before[1, 1]


@pytest.mark.parametrize("baseline", ["counterfactual", "independent", "state_value"])
def test_coma_critic_moves_toward_its_targets(baseline):
    model, cfg = _coma(critic_steps=1, baseline=baseline)
    obs = torch.randn(1, 4, 2, 3)
    rollout = coma.Rollout(obs=obs, state=torch.randn(1, 4, 7), actions=torch.randint(0, 3, (1, 4, 2)),
                           rewards=torch.zeros(1, 4, 2), dones=torch.ones(1, 4, dtype=torch.bool), next_obs=obs[0],
                           next_state=torch.zeros(4, 7), next_actions=torch.zeros(4, 2, dtype=torch.long))
    targets = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [1.0, 1.0], [3.0, 3.0]]])
    before = model.critic_values(rollout.state, rollout.obs, rollout.actions).detach()
    coma.update_critic(model, rollout, targets, torch.optim.SGD(model.critic.parameters(), lr=0.05), cfg, torch.Generator())
    after = model.critic_values(rollout.state, rollout.obs, rollout.actions).detach()
    normalized = torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [1.0, 1.0]]])  # mean 2, std 1
    assert ((after - normalized) ** 2).mean() < ((before - normalized) ** 2).mean()
    assert model.value_normalizer.mean.item() == pytest.approx(2.0)


def test_masked_means_by_hand():
    x = torch.tensor([1.0, 2.0, 6.0])
    for masked_mean in (mappo.masked_mean, coma.masked_mean):
        assert masked_mean(x, None).item() == 3.0
        assert masked_mean(x, torch.tensor([True, False, True])).item() == 3.5
        assert masked_mean(x, torch.tensor([False, True, False])).item() == 2.0
        assert masked_mean(x, torch.tensor([False, False, False])).item() == 0.0


def test_coma_critic_loss_ignores_agents_that_left():
    model, cfg = _coma(critic_steps=1, value_norm=False)
    obs = torch.randn(1, 4, 2, 3)
    active = torch.tensor([[[True, False]] * 4])
    rollout = coma.Rollout(obs=obs, state=torch.randn(1, 4, 7), actions=torch.randint(0, 3, (1, 4, 2)),
                           rewards=torch.zeros(1, 4, 2), dones=torch.ones(1, 4, dtype=torch.bool), next_obs=obs[0],
                           next_state=torch.zeros(4, 7), next_actions=torch.zeros(4, 2, dtype=torch.long), active=active)
    targets = torch.randn(1, 4, 2)
    changed = targets.clone()
    changed[..., 1] += 100.0
    losses = []
    for t in (targets, changed):
        fresh = copy.deepcopy(model)
        losses.append(coma.update_critic(fresh, rollout, t, torch.optim.SGD(fresh.critic.parameters(), lr=0.0), cfg, torch.Generator()))
    assert losses[0] == pytest.approx(losses[1])
    probs_before = model.policy(obs[0]).probs.detach()
    coma.update_actors(model, rollout, torch.tensor([[[0.0, 5.0]] * 4]), torch.optim.SGD(model.actors.parameters(), lr=1.0),
                       replace(cfg, entropy_coef=0.0))
    assert torch.allclose(model.policy(obs[0]).probs, probs_before)  # the only advantage is an inactive agent's


def test_coma_independent_critic_sees_the_clock_and_only_its_own_observation():
    model, _ = _coma(baseline="independent")
    obs, actions = torch.randn(5, 2, 3), torch.randint(0, 3, (5, 2))
    state = torch.cat([obs.flatten(1), torch.full((5, 1), 0.25)], dim=-1)
    late = state.clone()
    late[:, -1] = 0.75
    assert not torch.allclose(model.critic_outputs(state, obs, actions), model.critic_outputs(late, obs, actions))
    other = obs.clone()
    other[:, 1] += 1.0
    other_state = torch.cat([other.flatten(1), torch.full((5, 1), 0.25)], dim=-1)
    assert torch.equal(model.critic_outputs(state, obs, actions)[:, 0], model.critic_outputs(other_state, other, actions)[:, 0])


# ----------------------------------------------------------------------------------------- MADDPG


def _maddpg(discrete=False, **overrides):
    cfg = maddpg.MADDPGConfig(continuous=not discrete, batch_size=8, **overrides)
    torch.manual_seed(0)
    spec = replace(SPEC, discrete=discrete, n_actions=3 if discrete else 2)
    model = maddpg.MADDPG(spec, cfg)
    with torch.no_grad():  # make the target networks differ from the online ones
        for p in list(model.target_actor.parameters()) + list(model.target_critic.parameters()):
            p.add_(0.3 * torch.randn_like(p))
    optimizers = (torch.optim.Adam(model.actor.parameters(), lr=1e-2), torch.optim.Adam(model.critic.parameters(), lr=1e-2))
    return model, cfg, optimizers


def _batch(model, B=8):
    g = torch.Generator().manual_seed(1)
    n, d = model.spec.n_agents, model.action_dim
    actions = torch.rand(B, n, d, generator=g) * 2 - 1
    if model.spec.discrete:
        actions = torch.nn.functional.one_hot(actions.argmax(-1), d).float()
    return {"obs": torch.randn(B, n, 3, generator=g), "state": torch.randn(B, 7, generator=g), "actions": actions,
            "rewards": torch.randn(B, n, generator=g), "next_obs": torch.randn(B, n, 3, generator=g),
            "next_state": torch.randn(B, 7, generator=g), "done": (torch.rand(B, generator=g) < 0.3).float()}


@pytest.mark.parametrize("iddpg", [False, True])
def test_maddpg_targets_use_the_target_actor_and_the_target_critic(iddpg):
    model, cfg, _ = _maddpg(iddpg=iddpg)
    batch = _batch(model)
    joint = lambda actor: torch.tanh(actor(batch["next_obs"]))
    next_q = model.q(batch["next_state"], batch["next_obs"], joint(model.target_actor), critic=model.target_critic)
    expected = batch["rewards"] + cfg.gamma * (1 - batch["done"][:, None]) * next_q
    assert torch.allclose(maddpg.td_targets(model, batch, cfg.gamma), expected)
    online_actor = model.q(batch["next_state"], batch["next_obs"], joint(model.actor), critic=model.target_critic)
    online_critic = model.q(batch["next_state"], batch["next_obs"], joint(model.target_actor), critic=model.critic)
    assert not torch.allclose(next_q, online_actor) and not torch.allclose(next_q, online_critic)


@pytest.mark.parametrize("discrete", [False, True])
def test_maddpg_update_moves_the_targets_by_tau_and_the_critic_toward_its_targets(discrete):
    model, cfg, optimizers = _maddpg(discrete=discrete, tau=0.25)
    batch = _batch(model)
    torch.manual_seed(3)
    targets = maddpg.td_targets(model, batch, cfg.gamma)
    error = lambda: ((model.q(batch["state"], batch["obs"], batch["actions"]) - targets) ** 2).mean()
    old_targets = [p.detach().clone() for p in list(model.target_actor.parameters()) + list(model.target_critic.parameters())]
    before = error().item()
    torch.manual_seed(3)  # the same Gumbel draw for the targets inside update
    maddpg.update(model, batch, optimizers, cfg)
    assert error().item() < before
    online = list(model.actor.parameters()) + list(model.critic.parameters())
    new_targets = list(model.target_actor.parameters()) + list(model.target_critic.parameters())
    for old, new, source in zip(old_targets, new_targets, online):
        assert torch.allclose(new, 0.75 * old + 0.25 * source, atol=1e-6)


@pytest.mark.parametrize("iddpg", [False, True])
def test_maddpg_actor_step_raises_its_critics_value(iddpg):
    model, cfg, optimizers = _maddpg(iddpg=iddpg)
    batch = _batch(model)
    value = lambda: model.q(batch["state"], batch["obs"], batch["actions"], model.mu(batch["obs"]))
    before = value().detach()
    critic_state = copy.deepcopy(model.critic.state_dict())
    maddpg.update(model, batch, optimizers, cfg)
    updated_critic = copy.deepcopy(model.critic.state_dict())
    model.critic.load_state_dict(critic_state)  # judge the actor's step by the critic it followed
    after = value().detach()
    model.critic.load_state_dict(updated_critic)
    assert after.mean() > before.mean()


def test_maddpg_discrete_targets_sample_the_target_policy_and_the_logits_are_regularized():
    model, cfg, optimizers = _maddpg(discrete=True, logit_reg=0.5)
    for net in model.target_actor.nets:
        _skew(net, [0.0, 0.0, 0.0])
    torch.manual_seed(0)
    sampled = model.target_actions(torch.zeros(3000, 2, 3))
    assert torch.all((sampled == 0) | (sampled == 1)) and torch.all(sampled.sum(-1) == 1)  # hard one-hot samples
    chosen = sampled.argmax(-1)
    share = torch.bincount(chosen.flatten(), minlength=3).float() / chosen.numel()
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)  # a sample, not the greedy action 0
    with torch.no_grad():  # a critic that ignores the actions: the actor loss is the regularizer alone
        for net in model.critic.nets:
            net[-1].weight.zero_()
            net[-1].bias.zero_()
        for net in model.actor.nets:
            net[-1].bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    batch = _batch(model)
    logits = model.actor(batch["obs"]).detach()
    optimizers = (optimizers[0], torch.optim.SGD(model.critic.parameters(), lr=0.0))  # keep the critic at Q = 0
    _, actor_loss = maddpg.update(model, batch, optimizers, cfg)
    assert actor_loss == pytest.approx(0.5 * logits.pow(2).mean().item(), rel=1e-5)
    assert model.actor(batch["obs"]).detach().pow(2).mean() < logits.pow(2).mean()


def test_maddpg_store_keeps_the_state_a_truncated_step_reached_and_marks_only_terminations():
    model, cfg, _ = _maddpg()
    buffer = maddpg.ReplayBuffer(10, 2, 3, 7, 2)
    env = TwoStepGame(truncate=True)
    obs, state = env.reset()
    actions = torch.zeros(2, 2, 2)
    maddpg.store(buffer, obs, state, actions, env.step(actions))
    step = env.step(actions)
    maddpg.store(buffer, obs, state, actions, step)
    assert torch.equal(buffer.storage["next_obs"][2:4], env._observe(2)[0])  # not the restart's observation 0
    assert buffer.storage["done"][:4].tolist() == [0.0, 0.0, 0.0, 0.0]  # a truncation is not a termination
    env = TwoStepGame(truncate=False)
    env.reset()
    env.step(actions)
    maddpg.store(buffer, obs, state, actions, env.step(actions))
    assert buffer.storage["done"][4:6].tolist() == [1.0, 1.0]
    gone = Transition(obs, state, torch.zeros(2, 2), torch.zeros(2, dtype=torch.bool), alive=torch.tensor([[True, False]] * 2))
    with pytest.raises(ValueError, match="^MADDPG needs every agent in every episode to the end; this environment has agents that leave$"):
        maddpg.store(buffer, obs, state, actions, gone)


def test_running_normalizer_keeps_moments_per_feature():
    from marlpg.core.normalizer import RunningNormalizer

    normalizer = RunningNormalizer((2,))
    first, second = torch.tensor([[1.0, 10.0], [3.0, 30.0]]), torch.tensor([[5.0, 50.0]])
    normalizer.update(first)
    normalizer.update(second)
    together = torch.cat([first, second])
    assert torch.allclose(normalizer.mean, together.mean(0))
    assert torch.allclose(normalizer.var, together.var(0, unbiased=False))
    assert normalizer.count.item() == 3


def test_mappo_gaussian_policy_is_the_actor_mean_and_its_learned_std():
    spec = replace(SPEC, discrete=False, n_actions=2)
    torch.manual_seed(0)
    model = mappo.MAPPO(spec, mappo.MAPPOConfig(continuous=True))
    with torch.no_grad():
        model.actors[0].log_std.copy_(torch.tensor([-1.0, 0.5]))
    obs = torch.randn(4, 2, 3)
    dist = model.policy(obs)
    assert torch.allclose(dist.mean, model.actors[0].net(model.actor_input(obs)))
    assert torch.allclose(dist.stddev, torch.tensor([-1.0, 0.5]).exp().expand(4, 2, 2))


def test_mappo_advantages_are_normalized_over_the_agents_that_act():
    model, cfg = _mappo(value_norm=False)
    obs = torch.zeros(4, 2, 3)
    rewards = torch.tensor([[1.0, 100.0], [2.0, -100.0], [3.0, 50.0], [4.0, 0.0]])
    rollout = one_step_rollout(model, obs, torch.zeros(4, 2, dtype=torch.long), rewards)
    advantages, _, _ = mappo.advantages_and_targets(model, rollout, cfg)
    assert advantages.mean().item() == pytest.approx(0.0, abs=1e-6) and advantages.std().item() == pytest.approx(1.0, rel=1e-5)
    rollout = replace(rollout, active=torch.tensor([[[True, False]] * 4]))
    advantages, _, _ = mappo.advantages_and_targets(model, rollout, cfg)
    used = advantages[..., 0]
    assert used.mean().item() == pytest.approx(0.0, abs=1e-6) and used.std().item() == pytest.approx(1.0, rel=1e-5)


def test_truncation_needs_final_values_of_the_rewards_shape():
    rewards = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"final_values shaped like the rewards \(3, 2\); got \(3,\)"):
        gae(rewards, rewards, torch.ones(3, 2), torch.zeros(2), 0.9, 0.9, torch.ones(3, 2, dtype=torch.bool), torch.zeros(3))


@pytest.mark.parametrize("anneal", [False, True])
def test_mappo_learning_rate_schedule(anneal):
    """With anneal_lr the rate falls linearly from lr at iteration 1 to lr/iterations at the last; without, it stays."""
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=5, total_frames=4 * 5 * 4, minibatches=2, lr=0.01, anneal_lr=anneal)
    assert cfg.iterations == 4
    model = mappo.MAPPO(SPEC, cfg)
    optimizers = mappo.make_optimizers(model, cfg)
    rates = [mappo.set_learning_rate(optimizers, cfg, iteration) for iteration in (1, 2, 3, 4)]
    expected = [0.01, 0.0075, 0.005, 0.0025] if anneal else [0.01] * 4
    assert rates == pytest.approx(expected)
    assert [group["lr"] for optimizer in optimizers for group in optimizer.param_groups] == pytest.approx([expected[-1]] * 2)


def test_mappo_training_applies_the_schedule_every_iteration():
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=5, total_frames=4 * 5 * 3, minibatches=2, lr=0.003,
                            anneal_lr=True, eval_episodes=1)
    result = mappo.train(cfg, progress=False, with_reference=False)
    assert [row["lr"] for row in result.curve] == pytest.approx([0.003, 0.002, 0.001])
    optimizer = mappo.make_optimizers(result.model, cfg)[0]  # a fresh optimizer starts at lr again
    assert optimizer.param_groups[0]["lr"] == 0.003


@pytest.mark.parametrize("critic", ["concat", "pooled"])
def test_maddpg_actor_loss_asks_each_critic_about_its_own_action_among_the_buffers_others(critic):
    model, cfg, optimizers = _maddpg(critic=critic)
    batch = _batch(model)
    optimizers = (optimizers[0], torch.optim.SGD(model.critic.parameters(), lr=0.0))  # the critic stays as it is
    with torch.no_grad():
        own = model.mu(batch["obs"])  # continuous: the actor's action itself, no sampling
        expected = -model.q(batch["state"], batch["obs"], batch["actions"], own).mean().item()
        everyone_current = -model.q(batch["state"], batch["obs"], own).mean().item()
    assert expected != pytest.approx(everyone_current, abs=1e-4)  # the check below can tell the two apart
    _, actor_loss = maddpg.update(model, batch, optimizers, cfg)
    assert actor_loss == pytest.approx(expected, rel=1e-5)


def test_maddpg_deterministic_discrete_actions_are_float_one_hots_over_every_action():
    model, _, _ = _maddpg(discrete=True)
    for net in model.actor.nets:
        _skew(net, [5.0, 0.0, 0.0])  # every agent's greedy action is the first one
    actions = model.mu(torch.zeros(4, 2, 3))
    assert actions.dtype == torch.float32 and actions.shape == (4, 2, 3)
    assert torch.equal(actions, torch.tensor([1.0, 0.0, 0.0]).expand(4, 2, 3))
    assert torch.equal(model.act_deterministic(torch.zeros(4, 2, 3)), torch.zeros(4, 2, dtype=torch.long))


def test_maddpg_continuous_actions_reach_the_environment_unchanged():
    model, _, _ = _maddpg()
    actions = torch.tensor([[[0.5, -0.25], [1.0, 0.0]]])
    assert torch.equal(model.env_actions(actions), actions)


def test_maddpg_gumbel_temperature_reaches_every_sample(monkeypatch):
    model, _, _ = _maddpg(discrete=True, gumbel_temperature=0.37)
    temperatures = []
    real = maddpg.F.gumbel_softmax

    def spy(logits, tau=1.0, hard=False, **kwargs):
        temperatures.append(tau)
        return real(logits, tau=tau, hard=hard, **kwargs)

    monkeypatch.setattr(maddpg.F, "gumbel_softmax", spy)
    obs = torch.zeros(4, 2, 3)
    model.actions_and_outputs(obs), model.target_actions(obs), model.explore(obs, 0.1)
    assert temperatures == [0.37, 0.37, 0.37]


@pytest.mark.parametrize("share", [True, False])
def test_maddpg_networks_are_relu_mlps_shared_or_per_agent_with_frozen_targets(share):
    model, _, _ = _maddpg(share=share)
    for net in (model.actor, model.critic, model.target_actor, model.target_critic):
        assert len(net.nets) == (1 if share else 2)
        hidden = [layer for layer in net.nets[0] if not isinstance(layer, nn.Linear)]
        assert hidden and all(isinstance(layer, nn.ReLU) for layer in hidden)
    fresh = maddpg.MADDPG(model.spec, model.cfg)  # orthogonal output layers: gain 0.01 for the actor, 1 for the critic
    actor_out, critic_out = fresh.actor.nets[0][-1].weight, fresh.critic.nets[0][-1].weight
    assert torch.linalg.matrix_norm(actor_out, ord=2).item() == pytest.approx(0.01, rel=1e-4)
    assert torch.linalg.matrix_norm(critic_out, ord=2).item() == pytest.approx(1.0, rel=1e-4)
    assert not any(p.requires_grad for p in [*model.target_actor.parameters(), *model.target_critic.parameters()])


@pytest.mark.parametrize("discrete", [False, True])
def test_maddpg_random_actions_cover_the_action_space_in_critic_format(discrete):
    model, _, _ = _maddpg(discrete=discrete)
    torch.manual_seed(0)
    actions = model.random_actions(4000, torch.device("cpu"))
    assert actions.shape == (4000, 2, model.action_dim) and actions.dtype == torch.float32
    if discrete:
        assert torch.all(actions.sum(-1) == 1) and torch.all((actions == 0) | (actions == 1))
        share = actions.mean((0, 1))
        assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.02)
    else:
        assert actions.min() >= -1 and actions.max() <= 1
        assert actions.mean().abs() < 0.03 and actions.min() < -0.99 and actions.max() > 0.99  # uniform on [-1, 1]
