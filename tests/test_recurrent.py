"""Recurrent MAPPO and IPPO on hand-built sequences: resets at episode starts, masking, chunking,
decentralized recurrent actors, and the cue task where memory provably matters."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from marlpg.algos import mappo
from marlpg.core.recurrent import GRUNet, chunk_initial_states, to_chunks, valid_steps
from marlpg.envs import make_env
from marlpg.envs.cue import CueTask
from marlpg.envs.protocol import EnvSpec, Transition

SPEC = EnvSpec(n_agents=2, obs_dim=3, state_dim=7, discrete=True, n_actions=3, horizon=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
CRITICS = pytest.mark.parametrize("flags", [dict(), dict(ippo=True), dict(critic="agent_specific")], ids=["mappo", "ippo", "agent-specific"])


def recurrent_model(spec=SPEC, **overrides):
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=4, minibatches=1, epochs=1, recurrent=True, chunk_length=4,
                            actor_hidden=(8, 8), critic_hidden=(8, 8), **overrides)
    torch.manual_seed(0)
    return mappo.MAPPO(spec, cfg), cfg


# --- chunks by hand --------------------------------------------------------------------------


def test_chunks_are_consecutive_steps_of_one_copy_and_the_tail_is_padding():
    x = torch.arange(10).reshape(5, 2)  # x[t, e] = 2 t + e: T = 5 steps of E = 2 copies
    chunks = to_chunks(x, 2, fill=-1)  # C = 3 chunks per copy, column c * E + e
    assert chunks.T.tolist() == [[0, 2], [1, 3], [4, 6], [5, 7], [8, -1], [9, -1]]
    assert valid_steps(5, 2, 2).T.tolist() == [[True, True]] * 4 + [[True, False]] * 2
    assert chunk_initial_states(x, 2).tolist() == [0, 1, 4, 5, 8, 9]  # the stored value at each chunk's first step
    assert to_chunks(x, 5).T.tolist() == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    with pytest.raises(ValueError, match="chunk_length"):
        to_chunks(x, 0)


# --- resets ----------------------------------------------------------------------------------


def test_the_state_after_an_episode_start_mid_chunk_equals_a_fresh_start():
    torch.manual_seed(1)
    net = GRUNet(3, (5, 4), 2)
    inputs, hidden = torch.randn(6, 2, 3), torch.randn(2, 4)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    starts[3, 0] = True  # copy 0: an episode starts at step 3, inside the chunk
    out, last = net(inputs, hidden, starts)
    fresh, fresh_last = net(inputs[3:, :1], torch.zeros(1, 4), torch.zeros(3, 1, dtype=torch.bool))
    assert torch.allclose(out[3:, 0], fresh[:, 0], atol=1e-6, rtol=0)
    assert torch.allclose(last[0], fresh_last[0], atol=1e-6, rtol=0)
    # without the reset the history would leak in: the same steps from the carried state differ
    _, before_start = net(inputs[:3, :1], hidden[:1], starts[:3, :1])
    carried, _ = net(inputs[3:, :1], before_start, torch.zeros(3, 1, dtype=torch.bool))
    assert not torch.allclose(carried[:, 0], fresh[:, 0], atol=1e-3)
    # copy 1 never resets: it equals running straight through from its own state
    straight, _ = net(inputs[:, 1:], hidden[1:], torch.zeros(6, 1, dtype=torch.bool))
    assert torch.allclose(out[:, 1], straight[:, 0], atol=1e-6, rtol=0)


@CRITICS
def test_policy_and_critic_forget_everything_before_an_episode_start(flags):
    model, _ = recurrent_model(**flags)
    torch.manual_seed(2)
    obs, state = torch.randn(5, 1, 2, 3), torch.randn(5, 1, 7)
    memory = model.initial_memory(1)
    actor_h, critic_h = torch.randn_like(memory.actor), torch.randn_like(memory.critic)
    starts = torch.tensor([[False], [False], [True], [False], [False]])
    dist, _ = model.policy_sequence(obs, actor_h, starts)
    values, _ = model.value_sequence(state, obs, critic_h, starts)
    fresh = model.initial_memory(1)
    fresh_dist, _ = model.policy_sequence(obs[2:], fresh.actor, starts[2:])
    fresh_values, _ = model.value_sequence(state[2:], obs[2:], fresh.critic, starts[2:])
    assert torch.allclose(dist.logits[2:], fresh_dist.logits, atol=1e-6, rtol=0)
    assert torch.allclose(values[2:], fresh_values, atol=1e-6, rtol=0)
    # before the start, the carried states matter
    other, _ = model.policy_sequence(obs, torch.randn_like(actor_h), starts)
    assert not torch.allclose(other.logits[:2], dist.logits[:2], atol=1e-4)


def test_recurrent_agent_specific_critic_reads_each_agents_own_observation_and_id():
    """Each agent's row is [x, o_a, e_a] with a hidden state of its own: changing o_0 moves V_0 only,
    and two agents with equal observations still get different values (their one-hot IDs)."""
    model, _ = recurrent_model(critic="agent_specific")
    torch.manual_seed(4)
    obs, state = torch.randn(3, 1, 2, 3), torch.randn(3, 1, 7)
    memory = model.initial_memory(1)
    assert memory.critic.shape == (1, 2, 8)
    starts = torch.tensor([[True], [False], [False]])
    values, _ = model.value_sequence(state, obs, memory.critic, starts)
    changed = obs.clone()
    changed[1, 0, 0] += 1.0
    moved, _ = model.value_sequence(state, changed, memory.critic, starts)
    assert torch.equal(moved[:1], values[:1])  # steps before the change are untouched
    assert not torch.allclose(moved[1:, 0, 0], values[1:, 0, 0], atol=1e-5)  # V_0 from step 1 on, through memory
    assert torch.equal(moved[:, 0, 1], values[:, 0, 1])  # V_1 does not read o_0
    same = obs[:, :, :1].expand(-1, -1, 2, -1)
    twins, _ = model.value_sequence(state, same, memory.critic, starts)
    assert not torch.allclose(twins[..., 0], twins[..., 1], atol=1e-5)


# --- masking ---------------------------------------------------------------------------------


def hand_made_chunks(model, seed=3):
    """Two chunks of L = 4 steps: agent 1 leaves chunk 0 after step 1, chunk 1 ends after 2 steps (padding)."""
    g = torch.Generator().manual_seed(seed)
    L, B, n = 4, 2, 2
    active = torch.ones(L, B, n, dtype=torch.bool)
    active[2:, 0, 1] = False  # agent 1 has left chunk 0's episode at step 2
    active[2:, 1, :] = False  # padding: chunk 1 holds two real steps
    memory = model.initial_memory(B)
    batch = {
        "obs": torch.randn(L, B, n, 3, generator=g), "state": torch.randn(L, B, 7, generator=g),
        "actions": torch.randint(3, (L, B, n), generator=g), "log_probs": -torch.rand(L, B, n, generator=g) - 0.5,
        "advantages": torch.randn(L, B, n, generator=g), "targets": torch.randn(L, B, n, generator=g),
        "active": active, "starts": torch.tensor([[True, False], [False, False], [False, False], [False, False]]),
        "action_mask": torch.ones(L, B, n, 3, dtype=torch.bool),
        "actor_hidden": torch.randn(memory.actor.shape, generator=g), "critic_hidden": torch.randn(memory.critic.shape, generator=g),
    }
    return batch


def losses_and_grads(model, cfg, batch):
    model.zero_grad(set_to_none=True)
    policy_loss, ent, value_loss, _ = mappo.recurrent_ppo_losses_and_ratio(model, batch, cfg)
    (policy_loss - 0.1 * ent + value_loss).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return torch.stack([policy_loss, ent, value_loss]).detach(), grads


@CRITICS
def test_masked_steps_change_neither_the_losses_nor_the_gradients(flags):
    model, cfg = recurrent_model(**flags)
    batch = hand_made_chunks(model)
    losses, grads = losses_and_grads(model, cfg, batch)
    changed = {k: v.clone() for k, v in batch.items()}
    g = torch.Generator().manual_seed(9)
    for agents, chunk in ((slice(1, 2), 0), (slice(0, 2), 1)):  # agent 1's last steps in chunk 0; chunk 1's padding
        where = (slice(2, 4), chunk, agents)
        changed["obs"][where] = 10 * torch.randn(changed["obs"][where].shape, generator=g)
        changed["actions"][where] = (changed["actions"][where] + 1) % 3
        changed["log_probs"][where] = -3.0
        changed["advantages"][where] = 100.0
        changed["targets"][where] = -50.0
        changed["action_mask"][where + (0,)] = False
    changed["state"][2:, 1] = 10.0  # the padding's global state (every agent of chunk 1 is masked there)
    changed["starts"][3, 1] = True
    new_losses, new_grads = losses_and_grads(model, cfg, changed)
    assert torch.equal(losses, new_losses)
    assert all(torch.equal(a, b) for a, b in zip(grads, new_grads))
    # an acting step's data does move them (the check can fail)
    changed["advantages"][0, 0, 0] += 1.0
    changed["targets"][1, 1, 0] += 1.0
    moved, _ = losses_and_grads(model, cfg, changed)
    assert moved[0] != losses[0] and moved[2] != losses[2]


# --- the chunked pass equals the rollout, step by step ---------------------------------------


@pytest.mark.parametrize("flags", [dict(), dict(ippo=True), dict(share=False), dict(critic="agent_specific")],
                         ids=["mappo", "ippo", "separate", "agent-specific"])
def test_chunked_replay_equals_the_step_by_step_rollout(flags):
    """Collect T = 7 steps of 3-step episodes (starts at 0, 3, 6: inside chunks of L = 4, with padding);
    replaying the chunks from their stored states gives the rollout's log-probabilities and values."""
    env = make_env("cue", 5, n_agents=2, horizon=3, seed=4)
    cfg = mappo.MAPPOConfig(env="cue", n_agents=2, horizon=3, num_envs=5, rollout_steps=7, chunk_length=4, minibatches=1,
                            recurrent=True, actor_hidden=(8, 8), critic_hidden=(8, 8), **flags)
    torch.manual_seed(0)
    model = mappo.MAPPO(env.spec, cfg)
    with torch.no_grad():
        model.value_normalizer.update(torch.tensor([2.0, 5.0, -1.0]))  # values are de-normalized in the rollout
    start = (*env.reset(seed=4), model.initial_memory(5))
    tracker = mappo.EpisodeTracker(5, 2, "cpu")
    # the second rollout (global steps 7..13) starts mid-episode, from hidden states carried across rollouts
    for expected_starts in ([0, 3, 6], [2, 5]):
        rollout, start = mappo.collect_recurrent(model, env, start, 7, tracker)
        assert rollout.starts.all(-1).nonzero().flatten().tolist() == expected_starts
        assert rollout.starts.any(-1).nonzero().flatten().tolist() == expected_starts
        advantages = torch.zeros_like(rollout.rewards)
        sequences, initial = mappo.recurrent_chunks(rollout, advantages, advantages, rollout.active, 4)
        with torch.no_grad():
            dist, _ = model.policy_sequence(sequences["obs"], initial["actor_hidden"], sequences["starts"], sequences.get("action_mask"))
            values, _ = model.value_sequence(sequences["state"], sequences["obs"], initial["critic_hidden"], sequences["starts"])
            ignoring_starts, _ = model.policy_sequence(sequences["obs"], initial["actor_hidden"], torch.zeros_like(sequences["starts"]))
        valid = sequences["active"]
        replayed = mappo.log_prob(dist, sequences["actions"])
        assert torch.allclose(replayed[valid], to_chunks(rollout.log_probs, 4)[valid], atol=1e-5, rtol=0)
        denormalized = model.value_normalizer.denormalize(values)
        assert torch.allclose(denormalized[valid], to_chunks(rollout.values, 4)[valid], atol=1e-5, rtol=0)
        assert not torch.allclose(ignoring_starts.logits[valid], dist.logits[valid], atol=1e-4)
    assert rollout.actor_hidden[0].abs().sum() > 0  # carried over, not zero


class TruncatedCue(CueTask):
    """The cue task with every episode end reported as a truncation (the return would have gone on)."""

    def step(self, actions):
        step = super().step(actions)
        return Transition(step.obs, step.state, step.reward, step.done, terminated=torch.zeros_like(step.done),
                          truncated=step.done, final_obs=step.final_obs, final_state=step.final_state)


@CRITICS
def test_truncated_steps_bootstrap_from_the_critic_state_that_reached_them(flags):
    env = TruncatedCue(3, n_agents=2, horizon=3, seed=2)
    cfg = mappo.MAPPOConfig(env="cue", n_agents=2, horizon=3, num_envs=3, rollout_steps=5, chunk_length=4, minibatches=1,
                            recurrent=True, actor_hidden=(8, 8), critic_hidden=(8, 8), **flags)
    torch.manual_seed(0)
    model = mappo.MAPPO(env.spec, cfg)
    rollout, _ = mappo.collect_recurrent(model, env, (*env.reset(seed=2), model.initial_memory(3)), 5, mappo.EpisodeTracker(3, 2, "cpu"))
    assert rollout.truncated[2].all() and not rollout.truncated[[0, 1, 3, 4]].any()
    with torch.no_grad():  # replay step 2 from its stored state, then one step on the state it reached, no reset
        _, after = model.value_sequence(rollout.state[2:3], rollout.obs[2:3], rollout.critic_hidden[2], rollout.starts[2:3])
        reached, _ = model.value_sequence(rollout.final_state[2:3], rollout.final_obs[2:3], after, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.allclose(rollout.final_values[2], model.value_normalizer.denormalize(reached[0]), atol=1e-6, rtol=0)
    assert rollout.final_values[[0, 1, 3, 4]].eq(0).all()
    plain = CueTask(3, n_agents=2, horizon=3, seed=2)
    untruncated, _ = mappo.collect_recurrent(model, plain, (*plain.reset(seed=2), model.initial_memory(3)), 5,
                                             mappo.EpisodeTracker(3, 2, "cpu"))
    assert untruncated.final_values is None


def test_recurrent_update_moves_the_policy_and_reports_its_diagnostics():
    env = make_env("cue", 8, n_agents=2, horizon=3, seed=0)
    cfg = mappo.MAPPOConfig(env="cue", n_agents=2, horizon=3, num_envs=8, rollout_steps=6, chunk_length=4, minibatches=4,
                            recurrent=True, actor_hidden=(8, 8), critic_hidden=(8, 8))
    torch.manual_seed(0)
    model = mappo.MAPPO(env.spec, cfg)
    start = (*env.reset(seed=0), model.initial_memory(8))
    rollout, _ = mappo.collect_recurrent(model, env, start, 6, mappo.EpisodeTracker(8, 2, "cpu"))
    before = [p.clone() for p in model.parameters()]
    stats = mappo.update_recurrent(model, rollout, mappo.make_optimizers(model, cfg), cfg, torch.Generator().manual_seed(0))
    assert set(mappo.DIAGNOSTICS) <= set(stats) and stats["approx_kl"] >= 0 and stats["actor_grad_norm"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_recurrent_config_and_model_errors():
    with pytest.raises(ValueError, match="chunk_length"):
        mappo.MAPPOConfig(recurrent=True, chunk_length=0)
    with pytest.raises(ValueError, match="chunks of one recurrent rollout"):
        mappo.MAPPOConfig(recurrent=True, num_envs=2, rollout_steps=10, chunk_length=10, minibatches=3)
    model, _ = recurrent_model()
    with pytest.raises(ValueError, match="policy_sequence"):
        model.policy(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="starts"):
        model.critic(torch.zeros(3, 1, 7), torch.zeros(1, 8), torch.zeros(2, 1, dtype=torch.bool))


# --- decentralized execution -----------------------------------------------------------------


@pytest.mark.parametrize("flags", [dict(), dict(share=False, ippo=True)], ids=["shared", "separate-ippo"])
def test_deployed_recurrent_actor_replays_the_models_greedy_actions_and_resets(flags, tmp_path):
    model, _ = recurrent_model(spec=CueTask(1, n_agents=2).spec, **flags)
    model = mappo.load_actors(mappo.save_actors(model, tmp_path / "actors.pt"))
    torch.manual_seed(5)
    obs = torch.randn(6, 3, 2, model.spec.obs_dim)  # 6 steps of a batch of 3
    starts = torch.zeros(6, 3, dtype=torch.bool)
    starts[0] = True
    starts[4, 1] = True  # copy 1 begins a new episode at step 4
    expected, _ = model.act_deterministic_sequence(obs, model.initial_memory(3).actor, starts)
    deployed = [mappo.DeployedActor(model, i) for i in range(2)]
    for t in range(6):
        for i, actor in enumerate(deployed):
            actor.reset(starts[t])
            assert torch.equal(actor(obs[t, :, i]), expected[t, :, i])
    for actor in deployed:
        actor.reset()
        assert actor.hidden is None
    deployed[0](obs[0, :, 0])
    with pytest.raises(ValueError, match="reset"):
        deployed[0](obs[0, :2, 0])


# --- the cue task ----------------------------------------------------------------------------


def test_cue_task_rewards_only_memory_at_the_last_step():
    env = make_env("cue", 500, n_agents=2, horizon=4, seed=1, n_cues=3)
    obs, state = env.reset(seed=1)
    cues = obs[:, :, :3].argmax(-1)
    assert obs[:, :, :3].sum(-1).eq(1).all() and obs[:, :, 3].eq(0).all()
    assert torch.equal(state[:, :6].reshape(500, 2, 3).argmax(-1), cues) and state[:, -1].eq(0).all()
    for t in range(4):
        if t > 0:  # after the first step nothing distinguishes the cues: every copy sees the same vector
            assert torch.equal(obs, obs[:1].expand_as(obs))
        step = env.step(cues)  # the memory policy: name the cue seen at t = 0
        if t < 3:
            assert step.reward.eq(0).all() and not step.done.any()
        obs = step.obs
    assert step.done.all() and step.reward.eq(1.0).all()  # optimum with memory: 1
    assert step.final_state[:, -1].eq(1).all()
    fresh_cues = step.obs[:, :, :3].argmax(-1)  # the copies reset themselves with new cues
    fixed = torch.zeros(500, 2, dtype=torch.long)  # a memoryless policy's last action: the same whatever the cue
    for _ in range(4):
        step = env.step(fixed)
    hits = (fresh_cues == 0).float().mean(-1)
    assert torch.equal(step.reward[:, 0], hits)
    assert abs(hits.mean().item() - 1 / 3) < 0.06  # 1/K, binomial noise of 1000 cues: sd 0.015
    assert env.memoryless_optimum == pytest.approx(1 / 3) and env.optimum == 1.0


def test_cue_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="horizon"):
        make_env("cue", 2, horizon=1)
    with pytest.raises(ValueError, match="n_cues"):
        make_env("cue", 2, n_cues=1)
    with pytest.raises(ValueError, match="continuous"):
        make_env("cue", 2, continuous=True)


def test_recurrent_mappo_beats_feed_forward_mappo_where_memory_matters():
    """Cue task, 2 agents, K = 3, H = 3: a memoryless policy scores at most 1/3, memory scores 1.

    The fixed-seed runs (19,200 frames each) must show most of that 2/3 gap: the recurrent policy
    above 0.9, the feed-forward one within sampling noise of 1/3 (300 evaluation episodes). Over
    seeds 0-4 with these settings (2 shared, loaded cores): recurrent 1.0, 0.80, 1.0, 1.0, 1.0;
    feed-forward 0.31, 0.39, 0.35, 0.36, 0.37.
    """
    common = dict(env="cue", n_agents=2, horizon=3, num_envs=64, rollout_steps=12, chunk_length=4, eval_episodes=300,
                  actor_hidden=(32, 32), critic_hidden=(32, 32), total_frames=19_200, lr=0.005, entropy_coef=0.01, seed=0,
                  epochs=4, minibatches=8, clip=0.2, gamma=0.99, gae_lambda=0.95, max_grad_norm=10.0, value_norm=True)
    recurrent = mappo.train(mappo.MAPPOConfig(recurrent=True, **common), progress=False, with_reference=False)
    feed_forward = mappo.train(mappo.MAPPOConfig(**common), progress=False, with_reference=False)
    assert recurrent.eval_return > 0.9, recurrent.eval_return
    assert abs(feed_forward.eval_return - 1 / 3) < 0.1, feed_forward.eval_return
    assert recurrent.eval_return - feed_forward.eval_return > 0.5
