"""MAPPO's centralized critic inputs (``MAPPOConfig.critic``): the default unchanged, the agent-specific
state and the pooled critic by hand, one update on a hand-made batch, the errors and the command line."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

import marlpg.mappo
from marlpg.algos import mappo
from marlpg.commands import parser_for
from marlpg.core.critics import AttentionCritic, PooledCritic, attention_weights, masked_agent_mean
from marlpg.envs.protocol import EnvSpec

from conftest import REPO, SRC

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = EnvSpec(n_agents=3, obs_dim=4, state_dim=13, discrete=True, n_actions=3, horizon=5)


def _model(spec=SPEC, **fields):
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=2, minibatches=2, epochs=2, lr=0.01, actor_hidden=(8,),
                            critic_hidden=(8, 8), **fields)
    torch.manual_seed(0)
    return mappo.MAPPO(spec, cfg), cfg


def _inputs(batch=5, n=3, seed=3):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, n, 4, generator=g)
    state = torch.cat([obs.flatten(1), torch.rand(batch, 1, generator=g)], dim=-1)
    return obs, state


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------- "global": unchanged, bit for bit


def _global_run(**fields):
    """Values of a fixed-seed model on a hand-made rollout, one update, and the values after it."""
    model, cfg = _model(**fields)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(3, 4, 3, 4, generator=g)
    clock = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1).expand(3, 4, 1)
    state = torch.cat([obs.flatten(2), clock], -1)
    actions = torch.randint(0, 3, (2, 4, 3), generator=g)
    rewards = torch.randn(2, 4, 3, generator=g)
    with torch.no_grad():
        log_probs = model.policy(obs[:2]).log_prob(actions)
    rollout = mappo.Rollout(obs=obs[:2], state=state[:2], actions=actions, log_probs=log_probs, values=None,
                            rewards=rewards, dones=torch.zeros(2, 4, dtype=torch.bool), last_value=None)
    rollout = mappo.with_values(model, rollout, (obs[2], state[2]))
    stats = mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = model.value(state[0], obs[0])
    return rollout.values, after, stats


def test_the_global_critic_is_the_default_and_unchanged():
    values, after, stats = _global_run()
    explicit = _global_run(critic="global")
    assert torch.equal(values, explicit[0]) and torch.equal(after, explicit[1]) and stats == explicit[2]
    # computed with the code before the critic option existed (commit 1f20f37), same seed and batch
    assert values[0, 0].tolist() == pytest.approx([0.3112225830554962, 0.08480215817689896, -0.15271948277950287], abs=1e-5)
    assert values.sum().item() == pytest.approx(1.8278254270553589, abs=1e-5)
    assert after[0].tolist() == pytest.approx([0.3703565299510956, -0.45123884081840515, -0.3441830277442932], abs=1e-5)
    assert after.sum().item() == pytest.approx(0.67253577709198, abs=1e-5)
    assert stats["value_loss"] == pytest.approx(0.6361345052719116, abs=1e-5)
    assert stats["policy_loss"] == pytest.approx(-0.020337119698524475, abs=1e-5)


# ------------------------------------------------------------------- "agent_specific": V(x, o_a, id_a)


def test_agent_specific_value_is_the_shared_network_on_state_observation_and_id():
    model, _ = _model(critic="agent_specific")
    obs, state = _inputs()
    values = model.value(state, obs)
    assert values.shape == (5, 3) and model.critic[-1].out_features == 1  # one network, one output per row
    for a in range(3):
        row = torch.cat([state, obs[:, a], torch.eye(3)[a].expand(5, 3)], dim=-1)
        assert torch.allclose(values[:, a], model.critic(row).squeeze(-1), atol=1e-6)


def test_agent_specific_value_of_agent_a_follows_its_own_observation():
    model, _ = _model(critic="agent_specific")
    obs, state = _inputs()
    other = obs.clone()
    other[:, 1] += 1.0  # only agent 1's own-observation slot changes (the state is kept)
    before, after = model.value(state, obs), model.value(state, other)
    assert (after[:, 1] - before[:, 1]).abs().min() > 1e-4
    assert torch.equal(after[:, [0, 2]], before[:, [0, 2]])
    same = obs[:, :1].expand(5, 3, 4)  # identical observations: the IDs still tell the agents apart
    values = model.value(state, same)
    assert (values[:, 0] - values[:, 1]).abs().min() > 1e-5


# ------------------------------------------------------------------- "pooled": psi([phi(o_a), m, tau])


def test_masked_agent_mean_by_hand():
    embeddings = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    active = torch.tensor([[True, False, True], [False, False, False]])
    assert torch.equal(masked_agent_mean(embeddings, active), torch.tensor([[3.0, 5.5], [0.0, 0.0]]))
    assert torch.allclose(masked_agent_mean(embeddings, None), torch.tensor([[3.0, 5.0], [2.0, 2.0]]))
    one = torch.tensor([[False, True, False], [False, False, True]])  # one active agent: its own embedding
    assert torch.equal(masked_agent_mean(embeddings, one), torch.tensor([[3.0, 4.0], [3.0, 3.0]]))
    with pytest.raises(ValueError, match=r"active \(2, 2\) must match the agents of the embeddings \(2, 3\)"):
        masked_agent_mean(embeddings, active[:, :2])


def test_pooled_value_by_hand():
    model, _ = _model(critic="pooled")
    obs, state = _inputs()
    active = torch.tensor([True, False, True]).expand(5, 3)
    values = model.value(state, obs, active)
    phi, psi = model.critic.encoder, model.critic.head
    pooled = (phi(obs[:, 0]) + phi(obs[:, 2])) / 2
    for a in range(3):
        expected = psi(torch.cat([phi(obs[:, a]), pooled, state[:, -1:]], dim=-1)).squeeze(-1)
        assert torch.allclose(values[:, a], expected, atol=1e-6)


SET_CRITICS = ["pooled", "attention"]


def test_attention_value_by_hand():
    model, _ = _model(critic="attention")
    obs, state = _inputs()
    active = torch.tensor([True, False, True]).expand(5, 3)
    values = model.value(state, obs, active)
    net = model.critic
    e = net.encoder(obs)
    for a in range(3):
        scores = torch.stack([(net.query(e[:, a]) * net.key(e[:, b])).sum(-1) / math.sqrt(8) for b in (0, 2)], -1)
        alpha = scores.softmax(-1)
        context = alpha[:, :1] * net.value(e[:, 0]) + alpha[:, 1:] * net.value(e[:, 2])
        expected = net.head(torch.cat([e[:, a], context, state[:, -1:]], dim=-1)).squeeze(-1)
        assert torch.allclose(values[:, a], expected, atol=1e-6)


def test_attention_weights_by_hand():
    scores = torch.tensor([[[0.0, math.log(3.0), 5.0], [1.0, 1.0, 1.0]]])  # [1, 2 agents attending, 3 agents]
    active = torch.tensor([[True, True, False]])
    assert torch.allclose(attention_weights(scores, active), torch.tensor([[[0.25, 0.75, 0.0], [0.5, 0.5, 0.0]]]))
    square = torch.tensor([[[0.0, math.log(3.0)], [math.log(4.0), 0.0]]])  # [1, 2, 2], nobody masked
    assert torch.allclose(attention_weights(square, None), torch.tensor([[[0.25, 0.75], [0.8, 0.2]]]))
    nobody = attention_weights(scores, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(nobody, torch.zeros(1, 2, 3))


@pytest.mark.parametrize("critic", SET_CRITICS)
def test_set_critic_values_are_permutation_equivariant(critic):
    model, _ = _model(critic=critic)
    obs, state = _inputs()
    active = torch.tensor([[True, True, False]] * 5)
    values = model.value(state, obs, active)
    for order in ([2, 0, 1], [1, 0, 2], [2, 1, 0]):
        permuted = model.value(state, obs[:, order], active[:, order])
        assert torch.allclose(permuted, values[:, order], atol=1e-6)
    assert (values[:, 0] - values[:, 1]).abs().min() > 1e-5  # not equivariant by being constant


@pytest.mark.parametrize("critic", SET_CRITICS)
def test_set_critic_has_the_same_parameters_for_any_team_size(critic):
    small, _ = _model(critic=critic)
    large, _ = _model(spec=EnvSpec(n_agents=7, obs_dim=4, state_dim=29, discrete=True, n_actions=3, horizon=5),
                      critic=critic)
    assert _parameters(small.critic) == _parameters(large.critic)
    global_small, _ = _model()
    global_large, _ = _model(spec=large.spec)
    assert _parameters(global_large.critic) > _parameters(global_small.critic)  # the default grows with n
    large.critic.load_state_dict(small.critic.state_dict())  # the same shapes: one network for both teams
    obs, state = _inputs(n=7)
    values = small.critic(obs, state[:, -1:])
    assert values.shape == (5, 7) and torch.equal(values, large.value(state, obs))


@pytest.mark.parametrize("critic", SET_CRITICS)
def test_an_inactive_agents_observation_does_not_reach_the_other_agents_values(critic):
    model, _ = _model(critic=critic)
    obs, state = _inputs()
    other = obs.clone()
    other[:, 1] = torch.randn(5, 4)
    active = torch.tensor([True, False, True]).expand(5, 3)
    assert torch.equal(model.value(state, obs, active)[:, [0, 2]], model.value(state, other, active)[:, [0, 2]])
    everyone = model.value(state, obs)[:, [0, 2]] - model.value(state, other)[:, [0, 2]]
    assert everyone.abs().min() > 1e-6  # active, the same change does reach them


def test_values_in_a_rollout_use_the_agents_that_act():
    model, _ = _model(critic="pooled")
    obs, state = _inputs(batch=4)
    active = torch.tensor([[True, True, True], [True, False, True], [False, True, True], [True, True, True]])
    # copy 0: agent 1 leaves; copy 1 ends (it resets); copy 2: agent 0 left before; copy 3 runs on
    dones = torch.tensor([[False, True, False], [True, True, True], [True, False, False], [False, False, False]])
    rollout = mappo.Rollout(obs=obs[None], state=state[None], actions=torch.zeros(1, 4, 3, dtype=torch.long),
                            log_probs=torch.zeros(1, 4, 3), values=None, rewards=torch.zeros(1, 4, 3),
                            dones=dones[None], last_value=None, active=active[None])
    expected_next = torch.tensor([[True, False, True], [True, True, True], [False, True, True], [True, True, True]])
    assert torch.equal(mappo.next_active(rollout), expected_next)
    filled = mappo.with_values(model, rollout, (obs, state))
    with torch.no_grad():
        denormalize = model.value_normalizer.denormalize
        assert torch.allclose(filled.values[0], denormalize(model.value(state, obs, active)), atol=1e-6)
        assert torch.allclose(filled.last_value, denormalize(model.value(state, obs, expected_next)), atol=1e-6)
        assert not torch.allclose(filled.values[0], denormalize(model.value(state, obs)), atol=1e-4)
        assert not torch.allclose(filled.last_value, denormalize(model.value(state, obs, active)), atol=1e-4)
    assert mappo.next_active(mappo.Rollout(**{**rollout.__dict__, "dones": dones.all(-1)[None]})) is None


def test_values_at_a_truncated_episodes_end_use_the_agents_still_alive():
    model, _ = _model(critic="pooled")
    obs, state = _inputs(batch=4)
    final_obs, final_state = _inputs(batch=4, seed=4)
    dones = torch.tensor([False, False, True, False])[:, None].expand(4, 3)
    truncated = torch.tensor([[False] * 3, [False] * 3, [True, True, False], [False] * 3])  # copy 2: agent 2 left there
    rollout = mappo.Rollout(obs=obs[None], state=state[None], actions=torch.zeros(1, 4, 3, dtype=torch.long),
                            log_probs=torch.zeros(1, 4, 3), values=None, rewards=torch.zeros(1, 4, 3), dones=dones[None],
                            last_value=None, truncated=truncated[None], final_obs=final_obs[None],
                            final_state=final_state[None], active=torch.ones(1, 4, 3, dtype=torch.bool))
    filled = mappo.with_values(model, rollout, (obs, state))
    with torch.no_grad():
        denormalize = model.value_normalizer.denormalize
        alive = torch.tensor([True, True, False]).expand(4, 3)
        expected = denormalize(model.value(final_state, final_obs, alive))
        assert torch.allclose(filled.final_values[0, 2, :2], expected[2, :2], atol=1e-6)
        assert not torch.allclose(filled.final_values[0, 2, :2], denormalize(model.value(final_state, final_obs))[2, :2], atol=1e-4)


def test_the_critic_loss_pools_over_the_agents_that_act():
    model, cfg = _model(critic="pooled")
    obs, state = _inputs(batch=4)
    active = torch.tensor([[True, False, True], [True, True, True], [False, True, True], [True, True, True]])
    targets = torch.linspace(-1, 1, 12).view(4, 3)
    batch = {"obs": obs, "state": state, "actions": torch.zeros(4, 3, dtype=torch.long), "log_probs": torch.zeros(4, 3),
             "advantages": torch.zeros(4, 3), "targets": targets, "active": active}
    _, _, value_loss = mappo.ppo_losses(model, batch, cfg)
    with torch.no_grad():
        def loss_of(values):
            return 0.5 * ((values - targets).pow(2) * active).sum() / active.sum()
        assert value_loss.item() == pytest.approx(loss_of(model.value(state, obs, active)).item(), abs=1e-6)
        assert value_loss.item() != pytest.approx(loss_of(model.value(state, obs)).item(), abs=1e-4)


# ------------------------------------------------------------------- one update on a hand-made batch


@pytest.mark.parametrize("critic", ["agent_specific", *SET_CRITICS])
def test_one_update_moves_the_critic_toward_its_targets(critic):
    spec = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=3, horizon=2)
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=1, minibatches=1, epochs=1, lr=1e-3, entropy_coef=0.0, critic=critic)
    torch.manual_seed(0)
    model = mappo.MAPPO(spec, cfg)
    obs = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0]], [[0, 1.0, 0], [0, 1.0, 0]]]).repeat(2, 1, 1)
    state = torch.cat([obs.flatten(1), torch.zeros(4, 1)], dim=-1)
    actions = torch.zeros(4, 2, dtype=torch.long)
    rewards = torch.tensor([[1.0, 1.0], [3.0, 3.0]]).repeat(2, 1)
    with torch.no_grad():
        log_probs = model.policy(obs).log_prob(actions)
    rollout = mappo.with_values(model, mappo.Rollout(
        obs=obs[None], state=state[None], actions=actions[None], log_probs=log_probs[None], values=None,
        rewards=rewards[None], dones=torch.ones(1, 4, dtype=torch.bool), last_value=None), (obs, state))
    before = model.value(state, obs).detach()
    mappo.update(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    after = model.value(state, obs).detach()
    target = torch.tensor([-1.0, 1.0, -1.0, 1.0])[:, None].expand(4, 2)  # returns 1 and 3, normalized
    assert torch.all((after - target).abs() < (before - target).abs())
    assert (after - target).pow(2).mean() < (before - target).pow(2).mean()


# ------------------------------------------------------------------- errors and the command line


@pytest.mark.parametrize("fields, words", [
    (dict(critic="transformer"), ["critic must be one of 'global', 'agent_specific', 'pooled', 'attention'", "'transformer'"]),
    (dict(critic="attention", ippo=True), ["ippo=True", "critic='attention'"]),
    (dict(critic="pooled", ippo=True), ["ippo=True", "critic='global'", "critic='pooled'"]),
    (dict(critic="agent_specific", ippo=True), ["ippo=True", "critic='agent_specific'"]),
    (dict(critic="pooled", recurrent=True), ["recurrent=True supports critic in ('global', 'agent_specific')", "critic='pooled'"]),
])
def test_config_rejects_a_critic_it_cannot_build(fields, words):
    with pytest.raises(ValueError) as error:
        mappo.MAPPOConfig(**fields)
    for word in words:
        assert word in str(error.value), str(error.value)


def test_the_critic_flag():
    assert marlpg.mappo.CRITICS == mappo.CRITICS
    parser = parser_for(marlpg.mappo)
    assert marlpg.mappo.config_from_args(parser.parse_args([])).critic == "global"
    for critic in mappo.CRITICS:
        assert marlpg.mappo.config_from_args(parser.parse_args(["--critic", critic])).critic == critic


def test_the_critic_flag_errors_name_the_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        marlpg.mappo.main(["--critic", "pooled", "--ippo", "--total-frames", "100", "--out", str(tmp_path)])
    message = str(exit_info.value)
    assert message.startswith("error: ") and "--ippo=True" in message and "--critic='pooled'" in message, message
    with pytest.raises(SystemExit) as exit_info:
        marlpg.mappo.main(["--critic", "transformer", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "invalid choice: 'transformer'" in capsys.readouterr().err


def test_cli_pooled_critic_tiny_budget(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-m", "marlpg.mappo", "--critic", "pooled", "--total-frames", "800",
                          "--num-envs", "32", "--eval-episodes", "8", "--quiet", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    assert math.isfinite(float(out.stdout.strip().splitlines()[-1].removeprefix("eval_return=")))
    model = mappo.load_actors(tmp_path / "actors.pt")
    assert model.cfg.critic == "pooled" and type(model.critic) is PooledCritic
    assert type(mappo.MAPPO(model.spec, mappo.MAPPOConfig(critic="attention")).critic) is AttentionCritic
