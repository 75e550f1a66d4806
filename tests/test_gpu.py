"""The GPU path: the same MAPPO, MADDPG and COMA code trains with its environments and networks on CUDA.

Skipped, with the reason stated, on machines where torch sees no GPU (this course's CI runs on CPU).
"""
from __future__ import annotations

import math

import pytest
import torch

from marlpg.algos import coma, maddpg
from marlpg.envs import make_env
from marlpg.algos import mappo
from marlpg.algos.mappo import MAPPOConfig, train
from marlpg.scale.jobs import train_seeds

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False on this machine"
)

TINY = dict(num_envs=64, total_frames=2 * 64 * 25, eval_episodes=16, device="cuda")


def test_vmas_steps_on_cuda():
    env = make_env("vmas:simple_spread", 16, device="cuda", seed=0)
    start = env.reset(seed=0)
    step = env.step(torch.zeros(16, 3, dtype=torch.long, device="cuda"))
    assert start.obs.device.type == step.reward.device.type == "cuda"


def test_mappo_trains_on_cuda_and_repeats_with_the_same_seed():
    first = train(MAPPOConfig(**TINY, seed=1), progress=False, with_reference=False)
    second = train(MAPPOConfig(**TINY, seed=1), progress=False, with_reference=False)
    assert next(first.model.parameters()).device.type == "cuda"
    assert len(first.curve) == 2 and math.isfinite(first.eval_return)
    # CUDA kernels may sum in a different order from run to run; the returns agree closely, not bitwise.
    assert first.eval_return == pytest.approx(second.eval_return, abs=5.0)


def test_mappo_seeds_on_cuda_run_one_after_another():
    runs = train_seeds(mappo, MAPPOConfig(**TINY), [0, 1])
    assert [run.config.seed for run in runs] == [0, 1]
    assert all(next(run.model.parameters()).device.type == "cuda" for run in runs)


@pytest.mark.parametrize("env", ["pricing", "vmas:simple_spread"])
def test_maddpg_trains_on_cuda(env):
    cfg = maddpg.MADDPGConfig.for_env(env, total_frames=4_096, warmup_frames=1_024, num_envs=64, device="cuda")
    result = maddpg.train(cfg, progress=False, with_reference=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert math.isfinite(result.eval_return) and math.isfinite(result.curve[-1]["critic_loss"])


@pytest.mark.parametrize("env", ["credit", "vmas:simple_spread"])
def test_coma_trains_on_cuda(env):
    cfg = coma.COMAConfig(env=env, total_frames=2_000 if env == "credit" else 2 * 32 * 25, num_envs=32, device="cuda")
    result = coma.train(cfg, progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert math.isfinite(result.eval_return)
