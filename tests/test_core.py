"""The shared core against hand-computed values: GAE, value normalization, agent IDs, networks."""
from __future__ import annotations

import pytest
import torch

from marlpg.core.agents import one_hot_ids, with_agent_ids
from marlpg.core.evaluation import deterministic_return, gap_closed, return_and_win_rate, win_rate
from marlpg.core.gae import gae
from marlpg.core.networks import CategoricalActor, GaussianActor, log_prob, mlp, parameter_count
from marlpg.core.normalizer import RunningNormalizer
from marlpg.core.runlog import read_curve, write_curve
from marlpg.core.seeding import resolve_device, seed_everything


def test_gae_matches_hand_computed_values():
    # Three steps, one environment, one agent; the episode ends after step 1 (index 1).
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([False, True, False])
    last_value = torch.tensor([2.0])
    gamma, lam = 0.9, 0.8
    # delta_2 = 3 + 0.9*2.0 - 1.5 = 3.3              A_2 = 3.3
    # delta_1 = 2 + 0 - 1.0 = 1.0 (episode ended)    A_1 = 1.0
    # delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4              A_0 = 1.4 + 0.9*0.8*1.0 = 2.12
    advantages, targets = gae(rewards, values, dones, last_value, gamma, lam)
    assert advantages.flatten().tolist() == pytest.approx([2.12, 1.0, 3.3])
    assert targets.flatten().tolist() == pytest.approx([2.62, 2.0, 4.8])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    torch.manual_seed(0)
    rewards, values = torch.randn(6, 4, 3), torch.randn(6, 4, 3)
    dones = torch.zeros(6, 4, dtype=torch.bool)
    last_value = torch.randn(4, 3)
    advantages, targets = gae(rewards, values, dones, last_value, gamma=0.95, lam=1.0)
    expected = last_value.clone()
    for t in reversed(range(6)):
        expected = rewards[t] + 0.95 * expected
        assert torch.allclose(targets[t], expected, atol=1e-5)
    assert torch.allclose(advantages, targets - values)


def test_gae_rejects_bad_arguments():
    r = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="gamma"):
        gae(r, r, torch.zeros(2), torch.zeros(1), gamma=1.5, lam=0.9)
    with pytest.raises(ValueError, match="values"):
        gae(r, torch.zeros(3, 1), torch.zeros(2), torch.zeros(1), gamma=0.9, lam=0.9)


def test_running_normalizer_matches_batch_moments_and_round_trips():
    torch.manual_seed(1)
    norm = RunningNormalizer()
    chunks = [torch.randn(50, 3) * 7 + 4, torch.randn(20, 3) * 2 - 1, torch.randn(5, 3)]
    for chunk in chunks:
        norm.update(chunk)
    everything = torch.cat(chunks).flatten()
    assert norm.count.item() == everything.numel()
    assert norm.mean.item() == pytest.approx(everything.mean().item(), rel=1e-5)
    assert norm.var.item() == pytest.approx(everything.var(unbiased=False).item(), rel=1e-4)
    x = torch.linspace(-30, 30, 11)
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-4)
    assert norm.normalize(everything).mean().abs().item() < 1e-4


def test_agent_ids_are_appended_per_agent():
    obs = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    out = with_agent_ids(obs)
    assert out.shape == (2, 3, 5)
    assert torch.equal(out[..., :2], obs)
    assert torch.equal(out[1, :, 2:], one_hot_ids(3))


def test_actors_start_near_uniform_and_score_joint_actions():
    torch.manual_seed(0)
    actor = CategoricalActor(4, 5, (16,))
    probs = actor.distribution(torch.randn(8, 4)).probs
    assert torch.allclose(probs, torch.full_like(probs, 0.2), atol=0.02)
    gauss = GaussianActor(4, 2, (16,))
    dist = gauss.distribution(torch.randn(8, 3, 4))
    actions = dist.sample()
    assert log_prob(dist, actions).shape == (8, 3)
    assert torch.allclose(log_prob(dist, actions), dist.log_prob(actions).sum(-1))
    assert parameter_count(mlp(4, (16,), 2)) == 4 * 16 + 16 + 16 * 2 + 2


def test_seed_and_device_errors_name_the_value():
    with pytest.raises(ValueError, match="-3"):
        seed_everything(-3)
    with pytest.raises(ValueError, match="'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_command_line_runs_write_outside_the_working_directory_by_default(tmp_path, monkeypatch):
    from marlpg import coma
    from marlpg.core.runlog import default_run_dir

    monkeypatch.setenv("MARLPG_RUNS", str(tmp_path / "store"))
    assert default_run_dir("coma") == tmp_path / "store" / "coma"
    monkeypatch.delenv("MARLPG_RUNS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_run_dir("mappo") == tmp_path / "cache" / "marlpg" / "runs" / "mappo"
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    assert coma.main(["--env", "credit", "--total-frames", "16", "--quiet"]) == 0
    assert list(work.iterdir()) == []  # nothing left in the working directory
    assert (tmp_path / "cache" / "marlpg" / "runs" / "coma" / "curve.csv").is_file()


def test_iteration_budget_covers_the_frames_with_whole_iterations():
    from dataclasses import dataclass

    from marlpg.core.schedule import IterationBudget

    @dataclass
    class Config(IterationBudget):
        num_envs: int
        rollout_steps: int
        total_frames: int

    assert Config(4, 5, 40).frames_per_iteration == 20
    assert [Config(4, 5, frames).iterations for frames in (1, 20, 21, 40, 41)] == [1, 1, 2, 2, 3]


def test_curve_keeps_the_columns_that_only_evaluation_rows_have(tmp_path):
    rows = [{"iteration": 1, "return": 0.5}, {"iteration": 2, "return": 0.7, "eval_return": 0.9, "eval_win_rate": 0.25}]
    write_curve(tmp_path / "runs" / "seed0" / "curve.csv", rows[:1])
    back = read_curve(write_curve(tmp_path / "runs" / "seed0" / "curve.csv", rows))  # folders made as needed, then rewritten
    assert list(back[1]) == ["iteration", "return", "eval_return", "eval_win_rate"]
    assert back[1]["eval_win_rate"] == 0.25 and back[0]["eval_return"] != back[0]["eval_return"]  # blank reads as NaN


class _Countdown:
    """Two copies, one agent: copy c's episode lasts c + 2 steps, reward 1 per step (after it ends, 5 per step,
    which an evaluation must not count); with ``wins``, copy 1's episode ends in a win."""

    device = torch.device("cpu")
    num_envs = 2

    def __init__(self, wins: bool | None):
        self.spec = type("Spec", (), {"n_agents": 1})()
        if wins is not None:  # None: an environment that never heard of wins
            self.reports_wins = wins

    def reset(self, seed=None):
        self.t = 0
        return torch.zeros(2, 1, 1), torch.zeros(2, 1)

    action_mask = None

    def step(self, actions):
        self.t += 1
        ended = torch.tensor([self.t == 2, self.t == 3])
        over = torch.tensor([self.t > 2, self.t > 3])
        step = type("Step", (), {})()
        step.obs, step.done = torch.zeros(2, 1, 1), ended | over
        step.reward = torch.where(over, 5.0, 1.0).unsqueeze(-1)
        step.won = torch.tensor([False, self.t == 3])
        return step


def test_evaluation_counts_each_copys_first_episode_and_its_wins():
    episode_return, won = return_and_win_rate(lambda obs, mask: torch.zeros(2, 1), _Countdown(wins=True), 0)
    assert episode_return == 2.5 and won == 0.5  # returns 2 and 3; one win in two copies
    assert deterministic_return(lambda obs: torch.zeros(2, 1), _Countdown(wins=True), 0) == 2.5
    assert win_rate(lambda obs, mask: torch.zeros(2, 1), _Countdown(wins=True), 0) == 0.5
    assert return_and_win_rate(lambda obs, mask: torch.zeros(2, 1), _Countdown(wins=False), 0) == (2.5, None)
    assert return_and_win_rate(lambda obs, mask: torch.zeros(2, 1), _Countdown(wins=None), 0) == (2.5, None)
    for silent in (_Countdown(wins=False), _Countdown(wins=None)):
        with pytest.raises(ValueError, match="_Countdown reports no wins"):
            win_rate(lambda obs, mask: torch.zeros(2, 1), silent, 0)


def test_gap_closed_places_a_return_between_random_and_scripted():
    assert gap_closed(-4.0, (-10.0, -2.0)) == 0.75  # 6 of the 8 between them
    assert gap_closed(-10.0, (-10.0, -2.0)) == 0.0 and gap_closed(-2.0, (-10.0, -2.0)) == 1.0
    assert gap_closed(float("nan"), (-10.0, -2.0)) is None and gap_closed(-4.0, None) is None
