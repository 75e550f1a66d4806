"""Episode animations for the static book (marlpg.book.animation and the recorders that feed it)."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from marlpg.book.animation import ANIMATION_CLASS, animation_html  # noqa: E402
from marlpg.book.battles import Battle, battles_animation, random_team  # noqa: E402
from marlpg.book.fleets import draw_fleet, record_fleet  # noqa: E402
from marlpg.book.training_plots import Episode, episodes_animation  # noqa: E402
from marlpg.envs import make_env  # noqa: E402
from marlpg.envs.fleet import straight_to_goal  # noqa: E402

FRAME = re.compile(r'frames\[(\d+)\] = "data:image/png;base64,')


def frames_in(html: str) -> list[int]:
    return [int(i) for i in FRAME.findall(html)]


def test_the_player_embeds_one_picture_per_step_drawn_by_draw_and_reaches_no_network():
    fig, ax = plt.subplots(figsize=(2, 2))
    drawn = []

    def draw(t):
        drawn.append(t)
        ax.clear()
        ax.plot([0, t], [0, t])

    html = animation_html(fig, draw, 5, caption="a <caption>")
    assert frames_in(html) == [0, 1, 2, 3, 4]
    assert set(drawn) >= {0, 1, 2, 3, 4}
    assert html.startswith(f'<div class="{ANIMATION_CLASS}" data-frames="5">')
    assert "http://" not in html and "https://" not in html  # the CDN stylesheet is dropped
    assert "a &lt;caption&gt;" in html  # the caption is escaped
    assert not plt.fignum_exists(fig.number)  # the figure is closed, so a notebook does not show it twice


def test_frames_differ_when_the_picture_does():
    fig, ax = plt.subplots(figsize=(2, 2))
    html = animation_html(fig, lambda t: (ax.clear(), ax.plot([0, 1], [0, t])), 3)
    pictures = re.findall(r'"data:image/png;base64,([^"]+)"', html)
    assert len(set(pictures)) == 3


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_step_counts_are_refused_by_name(bad):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        animation_html(fig, lambda t: None, bad)
    plt.close(fig)


def _episode(steps: int, shift: float = 0.0) -> Episode:
    agents = torch.linspace(0, 1, steps).reshape(steps, 1, 1, 1).expand(steps, 1, 3, 2) + shift
    return Episode(agents=agents.clone(), landmarks=torch.zeros(steps, 1, 3, 2), returns=torch.zeros(1), copies=(0,),
                   agent_radius=0.05, landmark_radius=0.05)


def test_episodes_play_side_by_side_one_frame_per_step():
    animation = episodes_animation({"trained": _episode(4), "random": _episode(4, 0.5)}, caption="two")
    assert frames_in(animation.data) == [0, 1, 2, 3] and "two" in animation.data
    with pytest.raises(ValueError, match="same number of steps"):
        episodes_animation({"a": _episode(4), "b": _episode(5)})
    with pytest.raises(ValueError, match="at least one"):
        episodes_animation({})


def test_a_recorded_fleet_episode_starts_where_the_floor_does_and_ends_before_the_reset():
    env = make_env("fleet", 3, n_agents=6, horizon=8, seed=0)
    episode = record_fleet(env, straight_to_goal, seed=4, copy=1)
    fresh = make_env("fleet", 3, n_agents=6, horizon=8, seed=0)
    fresh.reset(seed=4)
    assert torch.allclose(episode.positions[0], fresh.pos[1], atol=1e-6)
    assert torch.allclose(episode.goals, fresh.goal[1], atol=1e-6)
    assert episode.steps == 9  # the start and every step's result
    # the last picture is the end of this episode, not the fresh floor the environment reset to
    final_distance = (episode.positions[-1] - episode.goals).norm(dim=-1)
    assert torch.equal(final_distance <= 0.1, episode.arrived)
    fig, ax = plt.subplots()
    draw_fleet(ax, episode, 8, "scripted")
    assert ax.get_title() == "scripted, step 8"
    with pytest.raises(ValueError, match="t must be in 0..8"):
        draw_fleet(ax, episode, 9)
    plt.close(fig)


def test_battles_of_different_lengths_play_together_holding_the_shorter_ones_last_picture():
    def battle(steps: int, won):
        return Battle(positions=torch.rand(steps, 2, 2), health=torch.ones(steps, 2), alive=torch.ones(steps, 2, dtype=torch.bool),
                      targets=torch.full((steps, 2), -1), n_allies=1, unit_names=("marine", "marine"), won=won, length=steps)

    animation = battles_animation({"trained": battle(3, True), "random": battle(5, False)})
    assert frames_in(animation.data) == [0, 1, 2, 3, 4]


def test_the_random_team_picks_only_available_actions():
    act = random_team(seed=0)
    mask = torch.zeros(50, 3, 6, dtype=torch.bool)
    mask[..., 2] = mask[..., 4] = True
    picks = act(torch.zeros(50, 3, 1), mask)
    assert set(picks.flatten().tolist()) == {2, 4}


def test_side_by_side_draws_every_panel_at_every_step_and_refuses_none():
    from marlpg.book.animation import side_by_side

    seen = []
    html = side_by_side({"left": "a", "right": "b"}, lambda ax, name, item, t: seen.append((name, item, t)), 3,
                        caption="two panels").data
    assert 'data-frames="3"' in html and "two panels" in html
    assert {("left", "a", t) for t in range(3)} <= set(seen) and {("right", "b", t) for t in range(3)} <= set(seen)
    with pytest.raises(ValueError, match="at least one"):
        side_by_side({}, lambda *args: None, 3)
