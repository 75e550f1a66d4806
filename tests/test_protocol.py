"""What the adapters report beyond (obs, state, reward, done): terminations and truncations apart,
the state an episode reached, per-agent alive masks, action masks, and independent random streams."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from marlpg.algos import mappo
from marlpg.envs import make_env
from marlpg.envs.pettingzoo_env import PettingZooEnv
from marlpg.envs.protocol import Transition, agent_dones, agent_truncations, masked_logits


def test_a_transition_unpacks_as_four_and_fills_its_defaults():
    obs, state, reward = torch.zeros(2, 3, 4), torch.zeros(2, 13), torch.zeros(2, 3)
    done = torch.tensor([True, False])
    step = Transition(obs, state, reward, done)
    o, s, r, d = step
    assert o is obs and s is state and r is reward and torch.equal(d, done)
    assert torch.equal(step.terminated, done) and not step.truncated.any() and step.alive.all()
    assert step.final_obs is obs and step.action_mask is None and step[3] is step.done and len(step) == 4
    with pytest.raises(ValueError, match="terminated | truncated"):
        Transition(obs, state, reward, done, terminated=torch.tensor([False, False]))
    cut = Transition(obs, state, reward, done, terminated=torch.tensor([False, False]), truncated=done,
                     alive=torch.tensor([[True, False, True], [True, False, True]]))
    assert agent_dones(cut).tolist() == [[True, True, True], [False, True, False]]
    assert agent_truncations(cut).tolist() == [[True, False, True], [False, False, False]]
    assert torch.equal(masked_logits(torch.zeros(1, 2), torch.tensor([[True, False]])).softmax(-1), torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="action_mask"):
        masked_logits(torch.zeros(1, 2), torch.tensor([True]))


def test_vmas_scenario_dones_end_episodes_before_the_horizon():
    # balance ends an episode when the package or the line falls: long before 200 steps with random actions
    env = make_env("vmas:balance", 8, n_agents=3, horizon=200, seed=0)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    for t in range(1, 200):
        step = env.step(torch.randint(0, env.spec.n_actions, (8, 3), generator=generator))
        if step.done.any():
            break
    assert t < 200 and torch.equal(step.terminated, step.done) and not step.truncated.any()
    ended = step.done.nonzero().flatten()
    assert torch.all(step.state[ended, -1] == 0)  # those copies restarted
    assert torch.allclose(step.final_state[ended, -1], torch.tensor(t / 200))  # final_state is where they stopped
    assert not torch.equal(step.final_obs[ended], step.obs[ended])
    going = (~step.done).nonzero().flatten()
    assert torch.equal(step.final_obs[going], step.obs[going])


def test_vmas_environments_do_not_share_a_random_stream():
    def restarts(reseed_other: bool):
        train = make_env("vmas:simple_spread", 4, n_agents=3, horizon=25, seed=0)
        other = make_env("vmas:simple_spread", 4, n_agents=3, horizon=25, seed=1)
        train.reset(seed=0)
        if reseed_other:
            other.reset(seed=123)  # an evaluation reseeds its environment
        return train.reset().obs

    assert torch.equal(restarts(False), restarts(True))


def test_evaluation_leaves_the_training_run_unchanged_on_vmas():
    cfg = mappo.MAPPOConfig(num_envs=4, rollout_steps=25, total_frames=300, epochs=1, minibatches=2, eval_episodes=4,
                            actor_hidden=(8,), critic_hidden=(8,))
    drop = ("seconds", "eval_return")
    plain = mappo.train(cfg, progress=False, with_reference=False).curve
    evaluated = mappo.train(replace(cfg, eval_every=1), progress=False, with_reference=False).curve
    assert len(plain) == 3 and all("eval_return" in row for row in evaluated)
    assert [{k: v for k, v in r.items() if k not in drop} for r in plain] == \
        [{k: v for k, v in r.items() if k not in drop} for r in evaluated]


@pytest.mark.parametrize("algorithm", ["coma", "maddpg"])
def test_periodic_evaluation_leaves_coma_and_maddpg_training_unchanged(algorithm):
    from marlpg.algos import coma, maddpg

    if algorithm == "coma":
        module, cfg = coma, coma.COMAConfig(env="vmas:simple_spread", num_envs=4, total_frames=300, eval_episodes=4,
                                            actor_hidden=(8,), critic_hidden=(8,))
    else:
        module, cfg = maddpg, maddpg.MADDPGConfig(num_envs=4, total_frames=300, warmup_frames=100, batch_size=32,
                                                  buffer_size=1_000, updates_per_iteration=2, eval_episodes=4,
                                                  actor_hidden=(8,), critic_hidden=(8,))
    drop = ("seconds", "eval_return")
    seen = []
    plain = module.train(cfg, progress=False).curve
    evaluated = module.train(replace(cfg, eval_every=1), progress=False, on_iteration=seen.append).curve
    assert len(plain) == 3 and all(isinstance(row["eval_return"], float) for row in evaluated)
    assert seen == evaluated  # on_iteration sees every row as it is made
    same = [{k: v for k, v in r.items() if k not in drop} for r in plain]
    assert same == [{k: v for k, v in r.items() if k not in drop} for r in evaluated]
    with pytest.raises(ValueError, match="eval_every"):
        replace(cfg, eval_every=-1)


class _LeavingEnv:
    """Two agents: "a" terminates after its 1st step, "b" is truncated after its 3rd (or terminates with
    ``b_terminates``); "b" gets action masks in its infos."""

    metadata = {"name": "leaving"}

    def __init__(self, b_terminates: bool = False):
        from gymnasium import spaces

        self.possible_agents = ["a", "b"]
        self.agents = []
        self.b_terminates = b_terminates
        self._obs, self._act = spaces.Box(-10, 10, (2,), np.float32), spaces.Discrete(3)
        self.seen = []

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def _infos(self):
        return {agent: {"action_mask": np.array([1, 0, 1] if agent == "b" else [1, 1, 1], dtype=np.int8)} for agent in self.agents}

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: np.full(2, float(i), np.float32) for i, a in enumerate(self.agents)}, self._infos()

    def step(self, actions):
        self.seen.append(dict(actions))
        self.t += 1
        obs = {a: np.full(2, 10.0 * self.t + i, np.float32) for i, a in enumerate(self.agents)}
        rewards = {a: 1.0 for a in self.agents}
        term = {a: (a == "a" and self.t == 1) or (a == "b" and self.t == 3 and self.b_terminates) for a in self.agents}
        trunc = {a: a == "b" and self.t == 3 and not self.b_terminates for a in self.agents}
        infos = self._infos()
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos


@pytest.mark.parametrize("b_terminates", [False, True])
def test_pettingzoo_agents_leave_one_by_one_and_truncation_is_apart(b_terminates):
    env = PettingZooEnv(lambda: _LeavingEnv(b_terminates), 1, horizon=10)
    env.reset()
    assert env.action_mask.tolist() == [[[True, True, True], [True, False, True]]]
    first = env.step(torch.tensor([[0, 2]]))
    assert not first.done.any()  # "a" terminated, but "b" plays on: the episode goes on
    assert first.alive.tolist() == [[False, True]] and env.acting.tolist() == [[False, True]]
    assert first.obs[0, 0].tolist() == [0.0, 0.0] and first.obs[0, 1].tolist() == [11.0, 11.0]
    second = env.step(torch.tensor([[1, 0]]))
    assert env.envs[0].seen[-1] == {"b": 0}  # the agent that left sends nothing
    assert second.reward.tolist() == [[0.0, 1.0]] and not second.done.any()
    third = env.step(torch.tensor([[0, 0]]))
    assert third.done.all()
    assert third.truncated.tolist() == [not b_terminates] and third.terminated.tolist() == [b_terminates]
    assert third.alive.tolist() == [[False, not b_terminates]]
    assert agent_truncations(third).tolist() == [[False, not b_terminates]]
    assert third.final_obs[0, 1].tolist() == [30.0, 30.0] and third.obs[0, 1].tolist() == [1.0, 1.0]
    assert third.final_state[0, -1].item() == pytest.approx(0.3) and third.state[0, -1].item() == 0.0
    assert env.acting.all()  # the reset copy starts with every agent


def test_pettingzoo_horizon_is_a_termination():
    env = PettingZooEnv(lambda: _LeavingEnv(), 2, horizon=2)
    env.reset()
    env.step(torch.zeros(2, 2, dtype=torch.long))
    step = env.step(torch.zeros(2, 2, dtype=torch.long))
    assert step.terminated.all() and not step.truncated.any()


def test_mpe2_time_limit_coincides_with_the_horizon_and_terminates():
    env = make_env("mpe2:simple_spread_v3", 2, n_agents=3, horizon=3, seed=0)
    env.reset(seed=0)
    for _ in range(3):
        step = env.step(torch.zeros(2, 3, dtype=torch.long))
    assert step.terminated.all() and not step.truncated.any() and step.alive.all()
