"""marlpg.scale.rllib_mappo: RLlib's multi-agent PPO with a shared actor and a centralized critic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("ray.rllib", reason="RLlib is in the optional extra (pip install -e .[ray]); scripts/setup_env.sh installs it")

import ray  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402

from marlpg.envs import make_env  # noqa: E402
from marlpg.scale.rllib_mappo import SHARED, RLlibMAPPOConfig, SpreadMultiAgentEnv, build_config, main, train  # noqa: E402
from marlpg.scale.jobs import start_ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One small local Ray instance for the module (RLlib would otherwise start one with every CPU)."""
    if ray.is_initialized():
        ray.shutdown()
    start_ray(ray, num_cpus=2)  # retried when the raylet is slow to register on a busy machine
    yield
    ray.shutdown()


def test_env_gives_each_agent_its_observation_its_id_and_the_state():
    env = SpreadMultiAgentEnv({"seed": 3})
    reference = make_env("vmas:simple_spread", 1, seed=3)
    obs, _ = env.reset(seed=3)
    start = reference.reset(seed=3)
    d, n = env.spec.obs_dim, env.spec.n_agents
    for a, agent in enumerate(env.agents):
        np.testing.assert_allclose(obs[agent][:d], start.obs[0, a].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(obs[agent][d : d + n], np.eye(n)[a])
        np.testing.assert_allclose(obs[agent][d + n :], start.state[0].numpy(), rtol=1e-6)
        assert env.observation_spaces[agent].contains(obs[agent])
    total, steps, done = {agent: 0.0 for agent in env.agents}, 0, False
    while not done:
        actions = torch.tensor([[1, 2, 3]])
        obs, rewards, terminated, truncated, _ = env.step({agent: int(actions[0, a]) for a, agent in enumerate(env.agents)})
        step = reference.step(actions)
        for a, agent in enumerate(env.agents):
            assert rewards[agent] == pytest.approx(float(step.reward[0, a]), rel=1e-6)
        done, steps = terminated["__all__"], steps + 1
        assert not truncated["__all__"]
    assert steps == env.spec.horizon


def test_actor_reads_only_local_inputs_and_the_critic_reads_the_state():
    config = build_config(RLlibMAPPOConfig(frames_per_iteration=100, minibatch_size=50))
    module = config.get_multi_rl_module_spec(env=SpreadMultiAgentEnv()).build()[SHARED]
    env = SpreadMultiAgentEnv({"seed": 0})
    obs, _ = env.reset(seed=0)
    batch = torch.as_tensor(np.stack(list(obs.values())))
    changed = batch.clone()
    changed[:, env.spec.obs_dim + env.spec.n_agents :] += 1.0  # another global state
    with torch.no_grad():
        logits = module.forward_inference({Columns.OBS: batch})[Columns.ACTION_DIST_INPUTS]
        logits_changed = module.forward_inference({Columns.OBS: changed})[Columns.ACTION_DIST_INPUTS]
        assert torch.equal(logits, logits_changed)  # decentralized execution
        assert not torch.equal(module.compute_values({Columns.OBS: batch}), module.compute_values({Columns.OBS: changed}))


def test_trains_one_tiny_iteration_in_marlpgs_units():
    cfg = RLlibMAPPOConfig(total_frames=500, frames_per_iteration=500, minibatch_size=250, epochs=1)
    curve = train(cfg)
    assert len(curve) == 1
    row = curve[0]
    assert row["frames"] >= 500
    # Episode return per agent, summed over the 25-step horizon: simple_spread's rewards are negative
    # distances, so a near-uniform policy scores well below zero and far above -1000.
    assert math.isfinite(row["return"]) and -1000 < row["return"] < 0


@pytest.mark.parametrize("field, value", [("total_frames", 0), ("minibatch_size", 19_201), ("env_runners", -1)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        RLlibMAPPOConfig(**{field: value})


def test_cli_tiny_budget_and_bad_input(capsys):
    assert main(["--total-frames", "200", "--frames-per-iteration", "200", "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("train_return=") and math.isfinite(float(last.split("=", 1)[1]))
    with pytest.raises(SystemExit, match="error: total_frames must be a positive integer; got 0"):
        main(["--total-frames", "0"])
