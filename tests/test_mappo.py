"""MAPPO: the clipped loss by hand, decentralized execution, determinism, the CLI, and learning."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from marlpg.core.runlog import read_curve
from marlpg.algos.mappo import (
    MAPPO,
    DeployedActor,
    MAPPOConfig,
    actor_groups,
    clipped_surrogate,
    load_actors,
    task_defaults,
    train,
)

from conftest import REPO, SRC

TINY = dict(num_envs=32, total_frames=32 * 25 * 2, eval_episodes=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_clipped_surrogate_on_a_hand_made_batch():
    ratios = torch.tensor([0.5, 1.0, 1.5, 0.5, 1.5])
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])
    old = torch.zeros(5)
    out = clipped_surrogate(ratios.log(), old, advantages, clip=0.2)
    # A > 0: min(rho, clip(rho)) A -> 0.5 (rho below the band is not clipped upward), 1.2 (capped at 1 + eps)
    # A < 0: min(rho A, clip(rho) A) -> -0.8 for rho = 0.5 (pessimistic: the clipped value), -1.5 for rho = 1.5
    assert out.tolist() == pytest.approx([0.5, -1.0, 1.2, -0.8, -1.5])


def test_clipped_surrogate_gradient_vanishes_outside_the_trust_region():
    new = torch.tensor([math.log(1.5), math.log(1.1)], requires_grad=True)
    clipped_surrogate(new, torch.zeros(2), torch.tensor([1.0, 1.0]), clip=0.2).sum().backward()
    assert new.grad.tolist() == pytest.approx([0.0, 1.1])


def test_actor_groups():
    assert actor_groups(3, share=True, roles=None) == [[0, 1, 2]]
    assert actor_groups(3, share=False, roles=None) == [[0], [1], [2]]
    assert actor_groups(4, share=True, roles=(1, 0, 1, 0)) == [[1, 3], [0, 2]]
    with pytest.raises(ValueError, match="one role per agent"):
        actor_groups(3, share=True, roles=(0, 1))


@pytest.mark.parametrize("name,value", [("num_envs", 0), ("total_frames", -5), ("epochs", 1.5), ("lr", 0.0)])
def test_config_rejects_bad_values(name, value):
    with pytest.raises(ValueError, match=name):
        MAPPOConfig(**{name: value})


def test_task_defaults_fill_only_what_the_config_leaves_unset():
    spread, battle = MAPPOConfig(), MAPPOConfig(env="smax:3m")
    assert (spread.num_envs, spread.rollout_steps, spread.lr, spread.anneal_lr) == (256, 25, 2e-3, False)
    assert (spread.minibatches, spread.entropy_coef, spread.total_frames) == (8, 0.003, 6_000_000)
    assert (battle.num_envs, battle.rollout_steps, battle.lr, battle.anneal_lr) == (128, 128, 4e-3, True)
    assert (battle.minibatches, battle.entropy_coef, battle.total_frames) == (4, 0.01, 2_000_000)
    given = MAPPOConfig(env="smax:2s3z", lr=1e-3, anneal_lr=False, num_envs=16)
    assert (given.lr, given.anneal_lr, given.num_envs, given.rollout_steps) == (1e-3, False, 16, 128)
    assert task_defaults("rware:tiny-2ag") == task_defaults("vmas:simple_spread")


@pytest.mark.parametrize(
    "flags",
    [dict(), dict(share=False), dict(roles=(0, 1, 1)), dict(ippo=True), dict(continuous=True, share=False, ippo=True),
     dict(recurrent=True), dict(recurrent=True, roles=(0, 1, 1), ippo=True), dict(recurrent=True, continuous=True, share=False)],
    ids=["shared", "separate", "roles", "ippo", "continuous", "recurrent", "recurrent-roles-ippo", "recurrent-continuous"],
)
def test_deployed_actor_sees_only_its_own_observation_and_id(flags):
    """Decentralized execution: record every tensor that reaches an actor network while it acts.

    A recurrent actor's network also takes a hidden state: it must be the one this actor carried
    from its own previous step (zero at the first), with no reset in between.
    """
    result = train(MAPPOConfig(**TINY, **flags), progress=False, with_reference=False)
    model = result.model
    spec = model.spec
    recurrent = model.cfg.recurrent
    seen: list[tuple[torch.Tensor, ...]] = []
    networks = [actor if recurrent else actor.net for actor in model.actors]
    hooks = [net.register_forward_pre_hook(lambda _m, args: seen.append(tuple(a.clone() for a in args))) for net in networks]
    from marlpg.envs import make_env

    env = make_env("vmas:simple_spread", 4, seed=3, continuous=spec.discrete is False)
    obs, state = env.reset(seed=3)
    deployed = [DeployedActor(model, i) for i in range(spec.n_agents)]
    for _ in range(3):
        actions = []
        for i, actor in enumerate(deployed):
            seen.clear()
            carried = actor.hidden.clone() if recurrent and actor.hidden is not None else None
            actions.append(actor(obs[:, i]))
            (call,) = seen  # one forward pass
            if recurrent:
                inputs, hidden, starts = call
                inputs = inputs[0]  # a sequence of one step
                assert torch.equal(hidden, torch.zeros_like(hidden) if carried is None else carried)
                assert not starts.any()
            else:
                (inputs,) = call
            expected = obs[:, i]
            if model.use_ids:
                expected = torch.cat([expected, torch.eye(spec.n_agents)[i].expand(4, -1)], dim=-1)
            assert torch.equal(inputs, expected), "the actor received something other than its own observation (+ ID)"
            assert inputs.shape[-1] != spec.state_dim
        obs, state, _, _ = env.step(torch.stack(actions, dim=1))
    for hook in hooks:
        hook.remove()


def test_an_agents_action_does_not_depend_on_other_agents_observations():
    model = train(MAPPOConfig(**TINY), progress=False, with_reference=False).model
    obs = torch.randn(6, 3, model.spec.obs_dim, requires_grad=True)
    logits = model.policy(obs).logits
    for i in range(3):
        (grad,) = torch.autograd.grad(logits[:, i].sum(), obs, retain_graph=True)
        others = [j for j in range(3) if j != i]
        assert grad[:, others].abs().max().item() == 0.0
        assert grad[:, i].abs().max().item() > 0.0


def test_deployed_actor_rejects_bad_input():
    model = MAPPO(train(MAPPOConfig(**TINY), progress=False, with_reference=False).model.spec, MAPPOConfig())
    with pytest.raises(ValueError, match="agent_index"):
        DeployedActor(model, 3)
    with pytest.raises(ValueError, match="14 features"):
        DeployedActor(model, 0)(torch.zeros(2, 15))


def test_same_seed_same_run_on_cpu():
    first = train(MAPPOConfig(**TINY, seed=5), progress=False, with_reference=False)
    second = train(MAPPOConfig(**TINY, seed=5), progress=False, with_reference=False)
    other = train(MAPPOConfig(**TINY, seed=6), progress=False, with_reference=False)
    strip = lambda curve: [{k: v for k, v in row.items() if k != "seconds"} for row in curve]
    assert strip(first.curve) == strip(second.curve)
    assert first.eval_return == second.eval_return
    assert strip(first.curve) != strip(other.curve)


def test_mpe2_adapter_trains():
    result = train(
        MAPPOConfig(env="mpe2:simple_spread_v3", num_envs=4, total_frames=4 * 25 * 2, eval_episodes=2),
        progress=False,
        with_reference=False,
    )
    assert len(result.curve) == 2 and math.isfinite(result.eval_return)


def run_cli(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "marlpg.mappo", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def test_cli_tiny_budget_writes_curve_and_a_loadable_checkpoint(tmp_path):
    out = run_cli("--total-frames", "1600", "--num-envs", "32", "--seed", "1", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("eval_return=")
    value = float(lines[-1].split("=", 1)[1])
    assert math.isfinite(value)
    assert any(line.startswith("random=") for line in lines) and any(line.startswith("scripted=") for line in lines)
    header = (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert header.startswith("iteration,frames,seconds,return,gap")
    diagnostics = ("approx_kl", "clip_fraction", "explained_variance", "actor_grad_norm", "critic_grad_norm", "entropy")
    assert set(diagnostics) <= set(header.split(","))
    for row in read_curve(tmp_path / "curve.csv"):
        assert row["approx_kl"] >= 0 and 0 <= row["clip_fraction"] <= 1 and row["explained_variance"] <= 1
        assert row["actor_grad_norm"] > 0 and row["critic_grad_norm"] > 0 and row["entropy"] > 0
    model = load_actors(tmp_path / "actors.pt")
    action = DeployedActor(model, 2)(torch.zeros(5, model.spec.obs_dim))
    assert action.shape == (5,)


@pytest.mark.parametrize("flags", [["--ippo"], ["--no-share", "--continuous"], ["--recurrent", "--chunk-length", "5", "--ippo"]])
def test_cli_flags_run(tmp_path, flags):
    out = run_cli("--total-frames", "800", "--num-envs", "32", "--quiet", "--out", str(tmp_path), *flags)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("eval_return=")


def test_cli_bad_input_is_a_clear_error(tmp_path):
    out = run_cli("--env", "gym:cartpole", "--total-frames", "800", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0
    assert "gym:cartpole" in out.stderr and "backend:scenario" in out.stderr
    out = run_cli("--total-frames", "0", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "--total-frames must be a positive integer" in out.stderr


def test_mappo_learns_simple_spread_with_a_fixed_seed():
    """A fixed-seed run of ~400k frames moves well away from the random policy (about -145)."""
    result = train(MAPPOConfig(total_frames=400_000, seed=0), progress=False, with_reference=False)
    first = result.curve[0]["return"]
    assert first < -135
    assert result.eval_return > -125, f"eval return {result.eval_return:.1f} after {result.frames} frames"


def test_time_limit_ends_training_after_the_iteration_that_reaches_it():
    cfg = MAPPOConfig(num_envs=8, total_frames=5 * 8 * 25, eval_episodes=4)
    stopped = train(cfg, progress=False, with_reference=False, time_limit=0)
    assert len(stopped.curve) == 1 and stopped.frames == cfg.frames_per_iteration
    assert len(train(cfg, progress=False, with_reference=False, time_limit=3600).curve) == 5
    with pytest.raises(ValueError, match="time_limit"):
        train(cfg, progress=False, with_reference=False, time_limit=-1)
