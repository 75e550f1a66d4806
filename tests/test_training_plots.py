"""The MAPPO notebook's plotting helpers: bands across seeds, crossings, recorded episodes, figures, bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from marlpg.envs import make_env
from marlpg.envs.reference import random_policy, scripted_policy
from marlpg.book.stats import iqm
from marlpg.book.training_plots import (
    DIAGNOSTICS,
    Episode,
    at_median_speed,
    curve_band,
    first_reaching,
    iteration_seconds,
    median_frames_per_second,
    plot_diagnostics,
    plot_learning_curves,
    plot_trajectories,
    record_episode,
    target_return,
)


def rows(returns, seconds_per_iteration=1.0, frames_per_iteration=100, **columns):
    return [
        {"frames": frames_per_iteration * (k + 1), "seconds": seconds_per_iteration * (k + 1), "return": r, "gap": None,
         **{key: values[k] for key, values in columns.items()}}
        for k, r in enumerate(returns)
    ]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def env():
    return make_env("vmas:simple_spread", 4, n_agents=3, horizon=10, seed=0)


# ----------------------------------------------------------------------------- curve_band
def test_band_against_frames_is_mean_min_and_max_per_iteration():
    grid, mean, low, high = curve_band([rows([1.0, 2.0, 3.0]), rows([3.0, 4.0, 7.0])], x="frames", band="minmax")
    np.testing.assert_array_equal(grid, [100, 200, 300])
    np.testing.assert_allclose(mean, [2.0, 3.0, 5.0])
    np.testing.assert_allclose(low, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(high, [3.0, 4.0, 7.0])


def test_default_band_is_the_iqm_over_seeds_with_a_bootstrap_interval_around_it():
    # Four seeds: the IQM drops the lowest and the highest, here the outlier 100 at the second iteration.
    curves = [rows([0.0, 1.0]), rows([1.0, 2.0]), rows([2.0, 3.0]), rows([3.0, 100.0])]
    grid, centre, low, high = curve_band(curves)
    np.testing.assert_allclose(centre, [1.5, 2.5])
    assert np.all(low <= centre) and np.all(centre <= high)
    assert np.all(low >= 0.0) and high[1] <= 100.0
    assert centre[1] == pytest.approx(iqm([1.0, 2.0, 3.0, 100.0]))


def test_iqm_band_is_nan_where_a_seed_logged_no_return():
    _, centre, low, high = curve_band([rows([float("nan"), 1.0]), rows([2.0, 3.0])])
    assert np.isnan([centre[0], low[0], high[0]]).all()
    assert centre[1] == pytest.approx(2.0)


def test_std_band_is_mean_plus_minus_one_standard_deviation():
    _, mean, low, high = curve_band([rows([0.0]), rows([2.0])], band="std")
    np.testing.assert_allclose([mean[0], low[0], high[0]], [1.0, 0.0, 2.0])


def test_band_against_seconds_interpolates_up_to_the_shortest_run():
    fast, slow = rows([0.0, 10.0], seconds_per_iteration=1.0), rows([0.0, 10.0], seconds_per_iteration=2.0)
    grid, mean, low, high = curve_band([fast, slow], x="seconds", points=5, band="minmax")
    np.testing.assert_allclose(grid, [0.0, 0.5, 1.0, 1.5, 2.0])
    # The slow run reaches 10 at 4 s, so at 2 s it is still at its first value 0; the fast one is at 10.
    np.testing.assert_allclose(high, [0.0, 0.0, 0.0, 5.0, 10.0])
    np.testing.assert_allclose(low, [0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(mean, (high + low) / 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x="iterations"), "x must be one of"),
        (dict(band="iqr"), "band must be one of"),
        (dict(y="reward"), "no column 'reward'"),
        (dict(x="seconds", points=1), "points must be at least 2"),
    ],
)
def test_band_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        curve_band([rows([1.0, 2.0])], **kwargs)


def test_band_rejects_empty_and_mismatched_curves():
    with pytest.raises(ValueError, match="at least one curve"):
        curve_band([])
    with pytest.raises(ValueError, match="at least one row"):
        curve_band([rows([1.0]), []])
    with pytest.raises(ValueError, match="different frame counts"):
        curve_band([rows([1.0, 2.0]), rows([1.0, 2.0], frames_per_iteration=50)])


def test_first_reaching_and_target_return():
    assert first_reaching([10, 20, 30], [-5.0, -1.0, 0.5], -1.0) == 20.0
    assert first_reaching([10, 20], [-5.0, -4.0], 0.0) is None
    assert target_return((-150.0, -80.0), 0.5) == pytest.approx(-115.0)
    with pytest.raises(ValueError, match="same shape"):
        first_reaching([1, 2], [1.0], 0.0)
    with pytest.raises(ValueError, match="fraction must lie in"):
        target_return((-150.0, -80.0), 1.5)


# ----------------------------------------------------------------------------- learning curves
@pytest.mark.parametrize("x", ["frames", "seconds"])
def test_learning_curve_figure_has_a_line_per_method_and_the_reference_lines(x):
    runs = {"MAPPO": [rows([-140.0, -100.0]), rows([-130.0, -95.0])], "IPPO": [rows([-145.0, -110.0])]}
    fig = plot_learning_curves(runs, x=x, reference=(-148.0, -80.0), target=0.85)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["MAPPO (IQM of 2, 95% CI)", "IPPO (1 run)"]
    assert {"random policy", "scripted policy", "85% of the gap"} <= set(labels)
    target_line = ax.get_lines()[labels.index("85% of the gap")]
    assert target_line.get_ydata()[0] == pytest.approx(-148.0 + 0.85 * 68.0)
    assert len(ax.collections) == 2  # one band per method
    assert ("seconds" in ax.get_xlabel()) == (x == "seconds")


def test_learning_curves_draw_on_a_given_axes_and_reject_no_runs():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_learning_curves({"A": [rows([1.0, 2.0])]}, ax=right) is fig
    assert not left.get_lines() and right.get_lines()
    with pytest.raises(ValueError, match="runs is empty"):
        plot_learning_curves({})


def test_minmax_band_says_so_in_the_legend():
    fig = plot_learning_curves({"A": [rows([1.0, 2.0]), rows([2.0, 3.0])]}, band="minmax")
    assert fig.axes[0].get_lines()[0].get_label() == "A (mean of 2, range)"


# ----------------------------------------------------------------------------- speed
def test_iteration_seconds_and_the_median_speed_ignore_a_slow_stretch():
    steady = rows([0.0] * 4, seconds_per_iteration=2.0)
    spiked = [dict(row) for row in steady]
    for row, extra in zip(spiked, (0.0, 30.0, 30.0, 30.0)):  # the second iteration took 32 s instead of 2
        row["seconds"] += extra
    np.testing.assert_allclose(iteration_seconds([steady, spiked]), [2, 2, 2, 2, 2, 32, 2, 2])
    assert median_frames_per_second([steady, spiked]) == pytest.approx(100 / 2.0)
    steady_rows = at_median_speed([spiked])[0]
    assert [row["steady_seconds"] for row in steady_rows] == pytest.approx([2.0, 4.0, 6.0, 8.0])
    assert "steady_seconds" not in spiked[0]  # the input is left alone


def test_median_speed_rejects_mixed_frames_per_iteration_and_no_rows():
    with pytest.raises(ValueError, match="different frames per iteration"):
        median_frames_per_second([rows([0.0, 0.0]), rows([0.0, 0.0], frames_per_iteration=50)])
    with pytest.raises(ValueError, match="at least one row"):
        iteration_seconds([[]])


# ----------------------------------------------------------------------------- diagnostics
def diagnostic_rows(scale):
    values = {key: [scale * 0.01, scale * 0.02, scale * 0.03] for key in DIAGNOSTICS}
    return rows([0.0, 0.0, 0.0], **values)


def test_diagnostics_figure_has_a_panel_per_key_and_a_line_per_method():
    runs = {"MAPPO": [diagnostic_rows(1.0), diagnostic_rows(2.0)], "IPPO": [diagnostic_rows(3.0)]}
    fig = plot_diagnostics(runs)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(DIAGNOSTICS.values())
    assert all(len(ax.get_lines()) == 2 for ax in panels)
    kl = panels[0]
    assert kl.get_yscale() == "linear"
    assert plot_diagnostics(runs, log_scale=("approx_kl",)).axes[0].get_yscale() == "log"
    np.testing.assert_allclose(kl.get_lines()[1].get_ydata(), [0.03, 0.06, 0.09])  # IPPO's single seed
    assert fig.get_figwidth() <= 7.0
    assert [text.get_text() for text in fig.legends[0].get_texts()] == ["MAPPO (IQM of 2, 95% CI)", "IPPO (1 run)"]


def test_diagnostics_hide_unused_panels_and_reject_unknown_keys():
    fig = plot_diagnostics({"A": [diagnostic_rows(1.0)]}, keys=("entropy", "clip_fraction", "approx_kl"))
    assert sum(ax.get_visible() for ax in fig.axes) == 3 and len(fig.axes) == 4
    with pytest.raises(ValueError, match="keys must be a non-empty subset"):
        plot_diagnostics({"A": [diagnostic_rows(1.0)]}, keys=("kl",))
    with pytest.raises(ValueError, match="runs is empty"):
        plot_diagnostics({})


# ----------------------------------------------------------------------------- episodes
def test_recorded_episode_has_one_position_per_step_copy_and_entity(env):
    episode = record_episode(env, random_policy(env.spec, seed=0), seed=3, copies=2)
    assert episode.agents.shape == (10, 2, 3, 2)
    assert episode.landmarks.shape == (10, 2, 3, 2)
    assert episode.returns.shape == (2,)
    assert episode.copies == (0, 1)
    assert episode.agent_radius == pytest.approx(0.15) and episode.landmark_radius == pytest.approx(0.05)
    # Landmarks stay put, agents move.
    assert torch.equal(episode.landmarks[0], episode.landmarks[-1])
    assert not torch.equal(episode.agents[0], episode.agents[-1])


def test_recording_positions_match_the_observations(env):
    seen = []

    def spy(obs):
        seen.append(obs[:, :, :2].clone())  # VMAS simple_spread: an agent's absolute position comes first
        return torch.zeros(obs.shape[:2], dtype=torch.long)

    episode = record_episode(env, spy, seed=1, copies=[3, 1])
    observed = torch.stack(seen)[:, [3, 1]]
    torch.testing.assert_close(episode.agents, observed)


def test_same_seed_same_start_and_scripted_beats_random(env):
    rand = record_episode(env, random_policy(env.spec, seed=0), seed=7, copies=4)
    script = record_episode(env, scripted_policy(env.spec, "vmas"), seed=7, copies=4)
    assert torch.equal(rand.agents[0], script.agents[0]) and torch.equal(rand.landmarks, script.landmarks)
    assert script.returns.mean() > rand.returns.mean()


@pytest.mark.parametrize("copies, message", [(0, "copies must lie in 1..4"), (5, "copies must lie in 1..4"),
                                             ([4], "copy indices must lie in 0..3"), ([], "copy indices")])
def test_recording_rejects_bad_copies(env, copies, message):
    with pytest.raises(ValueError, match=message):
        record_episode(env, random_policy(env.spec, seed=0), copies=copies)


def test_recording_needs_a_vmas_world():
    class NoWorld:
        num_envs = 1

    with pytest.raises(ValueError, match="needs a VMAS environment"):
        record_episode(NoWorld(), lambda obs: obs)


def test_trajectory_figure_draws_every_agent(env):
    episode = record_episode(env, scripted_policy(env.spec, "vmas"), seed=0, copies=2)
    fig = plot_trajectories(episode, copy=1, title="scripted")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 * 3  # a path and a start marker per agent
    assert len(ax.patches) == 3 + 3  # landmark discs and agents' final discs
    assert ax.get_title().startswith("scripted\nreturn per agent")
    with pytest.raises(ValueError, match="copy must lie in 0..1"):
        plot_trajectories(episode, copy=2)


def test_trajectory_figure_on_a_hand_made_episode():
    t = torch.linspace(0, 1, 5)
    agents = torch.stack([torch.stack([t, t], -1), torch.stack([-t, t], -1)], dim=1).unsqueeze(1)  # [5, 1, 2, 2]
    episode = Episode(agents=agents, landmarks=torch.zeros(5, 1, 2, 2), returns=torch.tensor([-3.0]), copies=(0,))
    fig = plot_trajectories(episode, limit=2.0)
    ax = fig.axes[0]
    assert ax.get_xlim() == (-2.0, 2.0)
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), agents[:, 0, 0].numpy())
