"""SMAX behind the batched protocol (marlpg.envs.smax_env): shapes, masks, deaths, time limits, wins.

Each environment compiles its step once (~30 s on a busy 2-core machine, seconds from JAX's disk cache
afterwards), so the tests share three module-level environments.
"""
import pytest
import torch

from marlpg.core.evaluation import win_rate
from marlpg.envs import make_env
from marlpg.envs.protocol import masked_logits
from marlpg.envs.smax_env import smax_maps

MOVES, STOP = 4, 4  # actions 0..3 move (north, east, south, west), 4 stops, 5.. attack enemy 0, 1, ...
EAST = 1
UNIT_FEATURES = 10  # world_state: per unit health, x, y, cooldown and six unit-type bits; then teams, types


@pytest.fixture(scope="module")
def battle():
    return make_env("smax:3m", 4, seed=3)


@pytest.fixture(scope="module")
def mixed():
    return make_env("smax:2s3z", 3, seed=0, horizon=6)


@pytest.fixture(scope="module")
def short():
    return make_env("smax:3m", 2, seed=0, horizon=6, max_steps=4)


def focus_fire(mask: torch.Tensor) -> torch.Tensor:
    """Hand-played 3m tactics: every marine shoots the lowest-numbered enemy in range, else walks east."""
    attacks = mask[..., MOVES + 1:]
    target = attacks.float().argmax(-1) + MOVES + 1
    return torch.where(attacks.any(-1), target, torch.full_like(target, EAST))


def stand_still(env) -> torch.Tensor:
    return torch.full((env.num_envs, env.spec.n_agents), STOP, dtype=torch.long)


def unit_health(state: torch.Tensor, n_units: int) -> torch.Tensor:
    """Health fraction of every unit (allies first) read from the global state ``[E, d_state]``."""
    return state[:, : n_units * UNIT_FEATURES].reshape(state.shape[0], n_units, UNIT_FEATURES)[..., 0]


def test_3m_shapes_and_spec(battle):
    obs, state = battle.reset(seed=3)
    spec = battle.spec
    # 3 marines against 3: own features 4 + 6 type bits, 7 + 6 features for each of the 5 other units.
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions) == (3, 10 + 5 * 13, 6 * 12 + 1, 5 + 3)
    assert spec.discrete and spec.horizon == 100
    assert spec.roles == (0, 0, 0) and spec.role_names == ("marine",)
    assert obs.shape == (4, 3, spec.obs_dim) and obs.dtype == torch.float32
    assert state.shape == (4, spec.state_dim) and bool((state[:, -1] == 0).all())  # time feature at the start
    assert battle.action_mask.shape == (4, 3, 8) and battle.action_mask.dtype == torch.bool
    assert bool(battle.action_mask[..., :5].all())  # at the start every marine may move and stop
    assert not bool(battle.action_mask[..., 5:].any())  # and no enemy is in range yet (the teams start apart)
    assert bool(battle.acting.all())


def test_2s3z_shapes_and_kinds(mixed):
    obs, state = mixed.reset(seed=0)
    spec = mixed.spec
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions) == (5, 10 + 9 * 13, 10 * 12 + 1, 5 + 5)
    assert spec.roles == (0, 0, 1, 1, 1) and spec.role_names == ("stalker", "zealot")
    assert obs.shape == (3, 5, spec.obs_dim) and state.shape == (3, spec.state_dim)
    step = mixed.step(stand_still(mixed))
    assert step.action_mask.shape == (3, 5, 10) and step.alive.shape == (3, 5) and step.reward.shape == (3, 5)
    assert step.final_obs.shape == obs.shape and step.final_state.shape == state.shape and step.won.shape == (3,)


def test_unit_types_describe_the_units_with_jaxmarls_numbers(battle):
    marine = battle.unit_types[0]
    assert (marine.name, marine.full_health, marine.damage, marine.sight_range, marine.attack_range) == (
        "marine", 45.0, 9.0, 9.0, 5.0)  # SMAX's marine (JaxMARL smax_env.py)
    assert [unit.name for unit in battle.unit_types][:4] == ["marine", "marauder", "stalker", "zealot"]
    assert battle.map_size == (32.0, 32.0)
    assert marine.attack_range < marine.sight_range  # a marine sees enemies before it may shoot them


def test_horizon_ends_episodes_as_terminations(mixed):
    mixed.reset(seed=0)
    for t in range(1, 7):
        step = mixed.step(stand_still(mixed))
        if t < 6:
            assert not bool(step.done.any()), f"no battle ends within {t} steps of standing still"
    assert bool(step.done.all()) and bool(step.terminated.all()) and not bool(step.truncated.any())
    assert torch.allclose(step.final_state[:, -1], torch.ones(3))  # the whole horizon was used
    assert bool((step.state[:, -1] == 0).all())  # and the copies already play their next episode


def test_time_limit_below_horizon_truncates(short):
    short.reset(seed=0)
    dones = [short.step(stand_still(short)) for _ in range(4)]
    assert not any(bool(s.done.any()) for s in dones[:3])
    last = dones[-1]
    assert bool(last.truncated.all()) and not bool(last.terminated.any()) and bool(last.done.all())
    assert torch.allclose(last.final_state[:, -1], torch.full((2,), 4 / 6))
    assert not bool(last.won.any())


def test_masked_sampling_never_picks_an_unavailable_action(battle):
    obs, _ = battle.reset(seed=5)
    generator = torch.Generator().manual_seed(0)
    saw_attack = False
    for _ in range(40):
        mask = battle.action_mask
        logits = torch.randn(mask.shape, generator=generator) * 3
        probs = torch.softmax(masked_logits(logits, mask), -1)
        actions = torch.multinomial(probs.reshape(-1, mask.shape[-1]), 1, generator=generator).reshape(mask.shape[:-1])
        assert bool(mask.gather(-1, actions.unsqueeze(-1)).all()), "an unavailable action was sampled"
        saw_attack |= bool(mask[..., MOVES + 1:].any())
        battle.step(actions)
    assert saw_attack, "the test never reached a state where attacks are legal"


def test_dead_marines_stay_dead_until_the_reset(battle):
    battle.reset(seed=1)
    was_alive = torch.ones(4, 3, dtype=torch.bool)
    ended = torch.zeros(4, dtype=torch.bool)
    deaths = 0
    for _ in range(60):  # standing still, the marines are shot one by one
        step = battle.step(stand_still(battle))
        live = ~ended
        assert not bool((step.alive & ~was_alive)[live].any()), "a dead marine came back within its episode"
        deaths += int((was_alive & ~step.alive)[live].sum())
        dead = ~step.alive & live.unsqueeze(-1) & ~step.done.unsqueeze(-1)
        assert bool((step.obs[dead] == 0).all()) and not bool(battle.acting[dead].any())
        assert bool(step.action_mask[dead][:, STOP].all()) and not bool(step.action_mask[dead][:, :STOP].any())
        assert bool((step.reward[(~was_alive) & live.unsqueeze(-1)] == 0).all())  # no reward after death
        assert bool(battle.acting[step.done].all())  # a reset copy starts with every marine in
        newly = step.done & live
        assert not bool(step.won[newly].any())  # standing still never wins
        ended |= step.done
        was_alive = torch.where(step.done.unsqueeze(-1), torch.ones_like(was_alive), step.alive)
        if bool(ended.all()):
            break
    assert bool(ended.all()) and deaths >= 4 * 3


def test_won_flag_matches_the_hand_played_battles(battle):
    battle.reset(seed=3)
    ended = torch.zeros(4, dtype=torch.bool)
    outcomes = []
    for _ in range(100):
        step = battle.step(focus_fire(battle.action_mask))
        assert not bool(step.won[~step.done].any())
        health = unit_health(step.final_state, 6)
        enemies_dead, allies_left = (health[:, 3:] == 0).all(-1), (health[:, :3] > 0).any(-1)
        for e in (step.done & ~ended).nonzero().flatten().tolist():
            assert bool(step.won[e]) == bool(enemies_dead[e] and allies_left[e])
            assert bool(step.won[e]) == bool(step.reward[e].max() >= 1.0)  # JaxMARL's criterion: the win bonus
            assert bool(step.terminated[e]) and not bool(step.truncated[e])
            outcomes.append(bool(step.won[e]))
        ended |= step.done
        if bool(ended.all()):
            break
    assert len(outcomes) == 4 and any(outcomes) and not all(outcomes), f"wanted wins and losses; got {outcomes}"


def test_win_rate_counts_each_copy_once(battle):
    rate = win_rate(lambda obs, mask: focus_fire(mask), battle, episodes_seed=3)
    assert rate == 0.5  # copies 1 and 2 of seed 3 win (test_won_flag_matches_the_hand_played_battles)
    assert win_rate(lambda obs, mask: stand_still(battle), battle, episodes_seed=3) == 0.0


def test_win_rate_needs_an_environment_that_reports_wins():
    env = make_env("credit", 2, n_agents=2)
    with pytest.raises(ValueError, match="reports no wins"):
        win_rate(lambda obs, mask: torch.zeros(2, 2, dtype=torch.long), env, episodes_seed=0)


def test_seeded_resets_repeat(battle):
    first = battle.reset(seed=11)
    again = battle.reset(seed=11)
    other = battle.reset(seed=12)
    assert torch.equal(first.obs, again.obs) and torch.equal(first.state, again.state)
    assert not torch.equal(first.state, other.state)


def test_bad_map_names_the_map_and_lists_the_maps():
    with pytest.raises(ValueError, match=r"unknown SMAX map '3marines'.*'2s3z'.*'3m'"):
        make_env("smax:3marines", 2)
    assert {"3m", "2s3z", "8m", "5m_vs_6m"} <= set(smax_maps())


@pytest.mark.parametrize("kwargs, message", [
    (dict(horizon=5, max_steps=9), "max_steps must be an integer in 1..horizon=5"),
    (dict(continuous=True), "continuous=True is not supported"),
    (dict(scenario="3m"), "pass the map by name"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_env("smax:3m", 2, **kwargs)


def test_actions_outside_the_range_are_refused(short):
    short.reset(seed=0)
    with pytest.raises(ValueError, match=r"0\.\.7"):
        short.step(torch.full((2, 3), 8, dtype=torch.long))


def test_the_step_reaches_torch_without_copies(short):
    """One float and one bool buffer per step, shared with JAX through DLPack; every field is a view of them."""
    short.reset(seed=0)
    step = short.step(stand_still(short))
    floats = {t.untyped_storage().data_ptr() for t in (step.obs, step.state, step.reward, step.final_obs, step.final_state)}
    flags = {t.untyped_storage().data_ptr() for t in (step.done, step.alive, step.action_mask, step.won, short.acting)}
    assert len(floats) == 1 and len(flags) == 1
    assert torch.equal(step.obs, step.final_obs)  # no episode ended at step 1: the next view is the one reached


def test_mappo_greedy_actions_keep_to_the_legal_ones(battle, mixed):
    """Where the best logit is an illegal action, the greedy policy (feed-forward and recurrent) takes the best
    legal one; 2s3z's two kinds get one actor each."""
    from marlpg.algos.mappo import MAPPO, MAPPOConfig, greedy_policy

    obs, _ = battle.reset(seed=5)
    for recurrent in (False, True):
        model = MAPPO(battle.spec, MAPPOConfig(env="smax:3m", recurrent=recurrent))
        for _ in range(10):
            mask = battle.action_mask
            actions = greedy_policy(model, battle)(obs, mask)
            assert bool(mask.gather(-1, actions.unsqueeze(-1)).all()), "the greedy policy took an illegal action"
            obs = battle.step(actions).obs
    assert MAPPO(mixed.spec, MAPPOConfig(env="smax:2s3z")).groups == [[0, 1], [2, 3, 4]]


def test_mappo_command_line_reports_the_win_rate(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    run = subprocess.run(
        [sys.executable, "-m", "marlpg.mappo", "--env", "smax:3m", "--total-frames", "1600", "--num-envs", "8",
         "--eval-episodes", "8", "--quiet", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1200, env=dict(os.environ, PYTHONPATH=str(src)),
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith("eval_return=") and lines[-2].startswith("win_rate="), lines
    assert 0.0 <= float(lines[-2].split("=", 1)[1]) <= 1.0
    assert "ignored" not in run.stderr, run.stderr  # the map's own team size and horizon, no warning


def test_battle_view_names_each_attacks_target_and_health_as_a_fraction(battle, mixed):
    battle.reset(seed=3)
    view = battle.battle_view()
    assert view["positions"].shape == (4, 6, 2) and view["health"].shape == (4, 6)
    assert torch.equal(view["targets"], torch.full((4, 6), -1)) and bool((view["health"] == 1).all())
    for _ in range(30):  # walk east until someone can shoot, then shoot
        actions = focus_fire(battle.action_mask)
        step = battle.step(actions)
        if bool((actions > STOP).any()):
            break
    view = battle.battle_view()
    shooting = (actions > STOP) & view["alive"][:, :3] & ~step.done[:, None]
    assert bool(shooting.any())
    assert torch.equal(view["targets"][:, :3][shooting], (actions - STOP - 1 + 3)[shooting])  # enemies are units 3, 4, 5
    assert bool((view["targets"][:, :3][~(actions > STOP)] == -1).all())
    assert torch.allclose(view["health"], battle.unit_health() / 45.0)  # a marine's full health is 45
    mixed.reset(seed=0)
    kinds = mixed.battle_view()["types"][0]
    assert [mixed.unit_types[t].name for t in kinds.tolist()] == ["stalker"] * 2 + ["zealot"] * 3 + ["stalker"] * 2 + ["zealot"] * 3
    assert bool((mixed.battle_view()["health"] == 1).all())  # stalkers and zealots each at their own full health


def test_record_battle_stops_at_the_end_and_reports_the_outcome():
    from marlpg.book.battles import plot_battle, record_battle

    env = make_env("smax:3m", 4, seed=3)
    battles = [record_battle(env, lambda obs, mask: focus_fire(mask), seed=3, copy=c) for c in range(4)]
    assert [b.won for b in battles].count(True) == 2  # seed 3: copies 1 and 2 win (test_win_rate_counts_each_copy_once)
    for b in battles:
        assert b.steps == b.length and b.positions.shape == (b.steps, 6, 2) and b.unit_names == ("marine",) * 6
    idle = record_battle(env, lambda obs, mask: stand_still(env), seed=3, max_steps=5)
    assert idle.won is None and idle.steps == 6 and bool((idle.targets == -1).all())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    plot_battle(battles[1], [0, battles[1].steps - 1], axes)
    assert axes[1].get_title() == f"step {battles[1].steps - 1}"
    plt.close(fig)


def test_focus_fire_share_counts_steps_with_two_or_more_attackers():
    from marlpg.book.battles import Battle, focus_fire_share

    targets = torch.tensor([[-1, -1, -1, -1], [2, 2, -1, 0], [2, 3, -1, 1], [3, -1, -1, 0], [3, 3, -1, 1]])
    empty = torch.zeros(5, 4)
    battle = Battle(positions=torch.zeros(5, 4, 2), health=empty, alive=empty.bool(), targets=targets, n_allies=2,
                    unit_names=("marine",) * 4, won=True, length=5)
    assert focus_fire_share(battle) == 2 / 3  # steps 1, 2 and 4 have two attackers; 1 and 4 share a target
    battle.targets = torch.full((5, 4), -1)
    assert focus_fire_share(battle) is None
