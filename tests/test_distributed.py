"""Ray path (marlpg.scale.jobs): the same seeds give the same numbers as the serial loop.

One local Ray instance (2 CPUs) serves the whole module: starting one costs several seconds.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import marlpg.coma
import marlpg.maddpg
from marlpg.algos import coma, maddpg, mappo
from marlpg.algos.mappo import MAPPOConfig
from marlpg.algos.mappo import train as mappo_train
from marlpg.mappo import main as mappo_main
from marlpg.scale import actor_learner, jobs
from marlpg.commands import parse_seeds
from marlpg.scale.jobs import RayNotInstalled, require_ray, run_jobs, start_ray, train_seeds
from marlpg.rendezvous.cli import main as rendezvous_main
from marlpg.rendezvous.sweep import sweep

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e .[ray]); scripts/setup_env.sh installs it")

TINY_MAPPO = dict(num_envs=8, rollout_steps=25, total_frames=2 * 8 * 25, eval_episodes=4, epochs=2, minibatches=4)
SMALL_SWEEP = dict(batch=8, steps=30, seeds=3)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    if ray.is_initialized():  # left running by another module
        ray.shutdown()
    start_ray(ray, num_cpus=2)  # retried when the raylet is slow to register on a busy machine
    # Ray's workers cannot import this test module; ship its helper functions by value instead.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def without_clock(curve: list[dict]) -> list[dict]:
    """A learning curve without its wall-clock column, as text so that NaN (no update yet) equals NaN."""
    return [{key: repr(value) for key, value in row.items() if key != "seconds"} for row in curve]


def square(x):
    return x * x


def torch_threads(_):
    return torch.get_num_threads()


def test_run_jobs_keeps_the_order_on_both_paths():
    jobs = [3, 1, 4, 1, 5]
    assert run_jobs(square, jobs) == run_jobs(square, jobs, ray=True) == [9, 1, 16, 1, 25]


def test_threads_per_job_pins_torch_threads_on_both_paths():
    assert run_jobs(torch_threads, [0], threads_per_job=1) == run_jobs(torch_threads, [0], ray=True) == [1]


def test_rendezvous_sweep_on_ray_equals_the_serial_sweep():
    serial = sweep((2, 3, 5), (0.5, 2.0), **SMALL_SWEEP)
    remote = sweep((2, 3, 5), (0.5, 2.0), ray=True, **SMALL_SWEEP)
    assert [s.n_agents for s in remote] == [2, 3, 5]
    for a, b in zip(serial, remote):
        np.testing.assert_array_equal(a.grad_variance, b.grad_variance)
        np.testing.assert_array_equal(a.final_reward, b.final_reward)
        np.testing.assert_array_equal(a.diverged, b.diverged)


def test_rendezvous_cli_with_ray_prints_the_serial_table(capsys):
    args = ["--sweep", "--agents", "2", "4", "--coupling", "1", "--seeds", "3", "--steps", "30"]
    assert rendezvous_main(args) == 0
    serial = capsys.readouterr().out.splitlines()
    assert rendezvous_main(args + ["--ray"]) == 0
    remote = capsys.readouterr().out.splitlines()
    assert serial[:-1] == remote[:-1]  # the last line is the timing
    assert "2 Ray tasks" in remote[-1]


def test_mappo_seeds_on_ray_equal_the_serial_runs():
    cfg = MAPPOConfig(**TINY_MAPPO)
    serial = train_seeds(mappo, cfg, [0, 1])
    remote = train_seeds(mappo, cfg, [0, 1], ray=True)
    for a, b in zip(serial, remote):
        assert len(a.curve) == 2 and math.isfinite(a.eval_return)
        assert without_clock(a.curve) == without_clock(b.curve)
        assert a.eval_return == b.eval_return
        for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(p, q), name
    assert serial[0].eval_return != serial[1].eval_return  # the seeds differ


@pytest.mark.parametrize(
    "algorithm, cfg",
    [
        (maddpg, maddpg.MADDPGConfig.for_env("pricing", total_frames=2_000, warmup_frames=500)),
        (coma, coma.COMAConfig(env="credit", total_frames=600)),
    ],
    ids=["maddpg", "coma"],
)
def test_maddpg_and_coma_seeds_on_ray_equal_the_serial_runs(algorithm, cfg):
    serial = train_seeds(algorithm, cfg, [0, 1])
    remote = train_seeds(algorithm, cfg, [0, 1], ray=True)
    for seed, a, b in zip([0, 1], serial, remote):
        assert a.config.seed == b.config.seed == seed
        assert len(a.curve) > 1 and without_clock(a.curve) == without_clock(b.curve)
        assert a.eval_return == b.eval_return
        for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(p, q), name
    assert without_clock(serial[0].curve) != without_clock(serial[1].curve)  # the seeds differ


@pytest.mark.parametrize("main", [marlpg.maddpg.main, marlpg.coma.main], ids=["maddpg", "coma"])
@pytest.mark.parametrize(
    "argv, message",
    [(["--ray"], "give --seeds"), (["--seeds", "0,1", "--ray-address", "auto"], "needs --ray"), (["--seeds", "2-1"], "low to high")],
)
def test_maddpg_and_coma_cli_bad_seed_flags(main, argv, message, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--total-frames", "200", "--quiet", "--out", str(tmp_path)])
    assert str(exit_info.value).startswith("error:") and message in str(exit_info.value)


def test_mappo_cli_seeds_prints_one_line_per_seed_and_the_mean_last(tmp_path, capsys):
    argv = ["--seeds", "0,1", "--ray", "--total-frames", "200", "--num-envs", "8", "--quiet", "--out", str(tmp_path)]
    assert mappo_main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    per_seed = [float(line.rsplit("eval_return=", 1)[1]) for line in lines if line.startswith("seed=")]
    assert len(per_seed) == 2
    assert lines[-1].startswith("eval_return=")
    assert float(lines[-1].split("=", 1)[1]) == pytest.approx(sum(per_seed) / 2, abs=1e-4)  # per-seed lines are rounded
    assert (tmp_path / "seed0" / "curve.csv").exists() and (tmp_path / "seed1" / "actors.pt").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ray"], "give --seeds"),
        (["--seeds", "0,1", "--ray-address", "auto"], "needs --ray"),
        (["--seeds", "0,x"], "'0,x'"),
        (["--seeds", "1,1"], "without repeats"),
        (["--seeds", "0,1", "--seed", "3"], "not both"),
    ],
)
def test_mappo_cli_bad_seed_flags(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        mappo_main(argv + ["--total-frames", "200", "--num-envs", "8", "--quiet", "--out", str(tmp_path)])
    assert str(exit_info.value).startswith("error:") and message in str(exit_info.value)


@pytest.mark.parametrize(
    "argv, message",
    [(["--ray"], "add --sweep"), (["--sweep", "--ray-address", "auto"], "needs --ray")],
)
def test_rendezvous_cli_bad_ray_flags_exit_2(argv, message, capsys):
    assert rendezvous_main(argv + ["--seeds", "2", "--steps", "5"]) == 2
    assert message in capsys.readouterr().err


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5, 9") == [3, 4, 5, 9]
    for bad in ["", "a", "-1", "2,2", "1-", "3-2"]:
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_run_jobs_rejects_bad_input():
    with pytest.raises(ValueError, match="threads_per_job"):
        run_jobs(square, [1], threads_per_job=0)
    with pytest.raises(ValueError, match="ray=True"):
        run_jobs(square, [1], address="auto")


def test_a_missing_ray_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to import
    with pytest.raises(RayNotInstalled, match=r"pip install -e \.\[ray\]"):
        require_ray()
    assert rendezvous_main(["--sweep", "--ray", "--agents", "2", "--seeds", "2", "--steps", "5"]) == 2
    assert jobs.INSTALL_HINT in capsys.readouterr().err


# --- the actor-learner system (marlpg.scale.actor_learner) ------------------------------------------------

TINY_SYSTEM = dict(num_envs=16, rollout_steps=25, total_frames=3 * 16 * 25, eval_episodes=8, update_threads=1)


def test_one_synchronous_worker_is_mappo_exactly():
    cfg = MAPPOConfig(**TINY_SYSTEM)
    alone = mappo_train(cfg, progress=False, with_reference=False)
    system = actor_learner.train(cfg, workers=1, mode="sync")
    assert [row["return"] for row in system.curve] == [row["return"] for row in alone.curve]
    assert system.eval_return == alone.eval_return
    for (name, p), q in zip(alone.model.state_dict().items(), system.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_two_synchronous_workers_repeat_and_record_what_the_critic_needs():
    cfg = MAPPOConfig(**TINY_SYSTEM)
    first = actor_learner.train(cfg, workers=2, mode="sync")
    second = actor_learner.train(cfg, workers=2, mode="sync")
    assert without_clock(first.curve) == without_clock(second.curve)
    assert [row["lag"] for row in first.curve] == [0, 0, 0]
    assert first.frames == cfg.total_frames
    worker = actor_learner.RolloutWorker(replace(cfg, num_envs=8), 0)
    weights = first.model.state_dict()
    rollout, (next_obs, next_state), version, _ = worker.collect(weights, 7)
    assert version == 7
    assert rollout.obs.shape[:3] == rollout.actions.shape == rollout.rewards.shape == (25, 8, 3)  # joint obs, action, rewards
    assert rollout.state.shape[:2] == (25, 8) and next_state.shape[0] == next_obs.shape[0] == 8  # the global state
    joined = actor_learner.side_by_side([rollout, rollout])
    assert joined.obs.shape[1] == 16 and joined.last_value.shape[0] == 16
    assert torch.equal(joined.actions[:, 8:], rollout.actions)


def test_asynchronous_workers_train_with_stale_policies():
    cfg = MAPPOConfig(**TINY_SYSTEM)
    result = actor_learner.train(cfg, workers=2, mode="async")
    assert result.frames == cfg.total_frames and len(result.curve) == 6  # twice the updates, each half the copies
    assert result.curve[0]["lag"] == 0 and all(row["lag"] >= 0 for row in result.curve)
    assert math.isfinite(result.eval_return)


class ScriptedRay:
    """Stands in for ``ray`` in asynchronous_rollouts: rollouts arrive in a scripted order of workers."""

    def __init__(self, arrivals: str):
        self.arrivals = list(arrivals)

    def wait(self, refs, num_returns):
        name = self.arrivals.pop(0)
        ready = next(ref for ref in refs if ref[0].name == name)
        return [ready], [ref for ref in refs if ref is not ready]

    def get(self, ref):
        worker, version = ref
        return f"rollout of {worker.name}", "next start", version, torch.ones(1)


class ScriptedWorker:
    def __init__(self, name: str):
        self.name = name
        self.collect = self

    def remote(self, weights, version):
        return self, version


def test_asynchronous_lag_counts_the_updates_since_the_policy_that_acted():
    workers = [ScriptedWorker("A"), ScriptedWorker("B")]
    arrivals = list(actor_learner.asynchronous_rollouts(ScriptedRay("ABBA"), workers, lambda: None, 4))
    # A's rollout of version 0 at update 0; B's of version 0 at update 1; B's of version 2 at update 2;
    # A's of version 1 at update 3.
    assert [(rollout, lag) for rollout, _, lag, _ in arrivals] == [
        ("rollout of A", 0), ("rollout of B", 1), ("rollout of B", 0), ("rollout of A", 2),
    ]


def test_actor_learner_rejects_bad_input():
    cfg = MAPPOConfig(**TINY_SYSTEM)
    with pytest.raises(ValueError, match="mode must be one of"):
        actor_learner.train(cfg, mode="eventually")
    with pytest.raises(ValueError, match="dividing num_envs=16; got 3"):
        actor_learner.train(cfg, workers=3)


def test_actor_learner_cli(tmp_path, capsys):
    argv = ["--total-frames", "800", "--num-envs", "16", "--mode", "async", "--out", str(tmp_path)]
    assert actor_learner.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "workers=2 mode=async updates=4" and lines[-1].startswith("eval_return=")
    assert (tmp_path / "curve.csv").exists()
    with pytest.raises(SystemExit, match="workers must be a positive integer"):
        actor_learner.main(["--workers", "0", "--out", str(tmp_path)])
