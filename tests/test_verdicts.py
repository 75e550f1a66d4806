"""The book's comparative sentences turn when the numbers behind them do (marlpg.book.verdicts)."""
from __future__ import annotations

import math

import pytest

from marlpg.book import verdicts


def test_percent_writes_a_fraction_as_a_percentage():
    assert verdicts.percent(0.3614) == "36%"
    assert verdicts.percent(0.3614, digits=1) == "36.1%"
    assert verdicts.percent(-0.05) == "-5%"
    with pytest.raises(ValueError, match="fraction"):
        verdicts.percent(float("nan"))


def test_listing_writes_items_as_prose():
    assert verdicts.listing([4, 32, 128]) == "4, 32 and 128"
    assert verdicts.listing(["IPPO", "MAPPO"]) == "IPPO and MAPPO" and verdicts.listing([7]) == "7"
    with pytest.raises(ValueError, match="at least one"):
        verdicts.listing([])


def test_median_rate_ignores_one_slow_iteration_and_the_first():
    # Iterations of 1,000 frames: the first takes 5 s (set-up), then 1 s, 1 s, 10 s (a neighbour's burst), 1 s.
    seconds = [5, 6, 7, 17, 18]
    curve = [{"frames": 1000 * (k + 1), "seconds": s} for k, s in enumerate(seconds)]
    assert verdicts.median_rate(curve) == pytest.approx(1000.0)
    # Without skipping the first, the intervals are 1, 1, 10, 1 s: still a median of 1,000 frames/s.
    assert verdicts.median_rate(curve, skip_first=False) == pytest.approx(1000.0)
    # Total frames over total seconds would have said 5,000 / 18 = 278 frames/s.
    with pytest.raises(ValueError, match="at least 3"):
        verdicts.median_rate(curve[:2])
    with pytest.raises(ValueError, match="increase"):
        verdicts.median_rate([{"frames": f, "seconds": 1.0} for f in (1, 2, 3)])


@pytest.mark.parametrize(
    "rate, word, clause",
    [(1350.0, "faster", "saved more than the copying cost"),
     (450.0, "slower", "the copying cost more"),
     (1020.0, "about level", "cost about what")],
)
def test_rate_verdict_turns_with_the_rate(rate, word, clause):
    sentence = verdicts.rate_verdict(rate, 1000.0, subject="the 2-worker system", reference="the single process")
    assert f"{rate / 1000:.2f} times the single process's frames per second: {word}" in sentence
    assert clause in sentence


def test_rate_verdict_refuses_nonsense_rates():
    with pytest.raises(ValueError, match="positive"):
        verdicts.rate_verdict(0.0, 1.0, subject="a", reference="b")
    with pytest.raises(ValueError, match="finite"):
        verdicts.rate_verdict(math.inf, 1.0, subject="a", reference="b")


def test_seeds_verdict_names_the_leader_and_whether_seeds_separate():
    apart = {"shared": [0.50, 0.55, 0.60], "per agent": [0.30, 0.35, 0.40]}
    assert verdicts.seeds_verdict(apart, "shared", "per agent") == (
        "*shared* is ahead of *per agent*, and every seed of *shared* finished above every seed of *per agent*")
    # Swap the numbers: the sentence turns.
    swapped = {"shared": apart["per agent"], "per agent": apart["shared"]}
    assert verdicts.seeds_verdict(swapped, "shared", "per agent").startswith("*per agent* is ahead of *shared*")
    # Overlapping seeds: ahead on average only.
    overlap = {"shared": [0.50, 0.30, 0.60], "per agent": [0.35, 0.40, 0.45]}
    assert "overlap" in verdicts.seeds_verdict(overlap, "shared", "per agent")
    # Level within the tolerance.
    level = {"shared": [0.50], "per agent": [0.49]}
    assert verdicts.seeds_verdict(level, "shared", "per agent", tolerance=0.02).startswith("*shared* and *per agent* are level")
    # One seed each: the sentence says that a single seed cannot separate luck from method.
    assert "one seed each" in verdicts.seeds_verdict(level, "shared", "per agent")
    with pytest.raises(ValueError, match="at least one value"):
        verdicts.seeds_verdict({"shared": []}, "shared", "per agent")


def test_interval_verdict_turns_with_the_intervals():
    from marlpg.book.stats import Interval

    apart = {"MAPPO": Interval(0.96, 0.95, 0.97, 3), "COMA": Interval(0.40, 0.30, 0.50, 3)}
    assert verdicts.interval_verdict(apart, "COMA", "MAPPO") == (
        "*MAPPO* is ahead of *COMA*: its IQM is higher by 56 percentage points and its 95% interval lies above *COMA*'s")
    swapped = {"MAPPO": apart["COMA"], "COMA": apart["MAPPO"]}
    assert verdicts.interval_verdict(swapped, "COMA", "MAPPO").startswith("*COMA* is ahead of *MAPPO*")
    overlap = {"MAPPO": Interval(0.60, 0.40, 0.80, 3), "COMA": Interval(0.55, 0.45, 0.70, 3)}
    assert verdicts.interval_verdict(overlap, "COMA", "MAPPO") == (
        "*MAPPO*'s IQM is higher by 5 percentage points, but the 95% intervals overlap, so these seeds do not "
        "separate *MAPPO* from *COMA*")
    close = {"MAPPO": Interval(0.91, 0.90, 0.92, 3), "IPPO": Interval(0.92, 0.915, 0.93, 3)}
    assert verdicts.interval_verdict(close, "MAPPO", "IPPO").startswith("*IPPO*'s IQM is higher by 1 percentage point,")
    level = {"MAPPO": Interval(0.5, 0.4, 0.6, 3), "COMA": Interval(0.5, 0.45, 0.55, 3)}
    assert "level" in verdicts.interval_verdict(level, "COMA", "MAPPO")
    with pytest.raises(ValueError, match="must hold 'IPPO'"):
        verdicts.interval_verdict(apart, "IPPO", "MAPPO")


@pytest.mark.parametrize(
    "exponent, words",
    [(2.0, "close to quadratically"), (1.3, "faster than linearly"), (1.0, "about linearly"),
     (0.5, "more slowly than linearly"), (0.0, "hardly grows"), (float("nan"), "too few team sizes")],
)
def test_growth_verdict(exponent, words):
    assert words in verdicts.growth_verdict(exponent)


@pytest.mark.parametrize(
    "small, large, words",
    [(1.1, 1.6, "grows with n"), (1.1, 1.2, "grows with n, but slowly"), (1.1, 1.12, "does not grow"),
     (1.5, 1.1, "shrinks as n grows")],
)
def test_lead_verdict(small, large, words):
    assert verdicts.lead_verdict(small, large).startswith(words)


def test_a_difference_below_one_point_is_not_called_zero():
    from types import SimpleNamespace

    close = {"a": SimpleNamespace(point=0.503, low=0.4, high=0.6), "b": SimpleNamespace(point=0.5, low=0.4, high=0.6)}
    assert "higher by less than 1 percentage point" in verdicts.interval_verdict(close, "a", "b")
    assert "higher by less than 1 percentage point" in verdicts.interval_verdict(close, "b", "a")  # the leader is named first


def test_the_fleet_claims_verdict_turns_with_the_numbers():
    """Chapter 09's verdict on the practical example, built from made-up summaries that flip each claim."""
    from marlpg.book.fleets import claim_verdict
    from marlpg.book.stats import Interval

    def summary(ippo_returns, pool_returns, width=0.01):
        runs = {}
        for n, value in ippo_returns.items():
            runs["IPPO", n] = {"return": Interval(value, value - width, value + width, 3)}
        for n, value in pool_returns.items():
            runs["MAPPO-pool", n] = {"return": Interval(value, value - width, value + width, 3)}
        return runs

    script = {4: {"return": 0.40}, 128: {"return": 0.40}}
    best = {4: 0.5, 128: 0.5}
    good = claim_verdict(summary({4: 0.45, 128: 0.44}, {4: 0.46, 128: 0.47}), script, best)
    assert good["diverged"].startswith("independent learning (IPPO) did not diverge at any size")
    assert good["best"] == "MAPPO-pool" and good["largest"] == 128
    assert good["versus"].startswith("*MAPPO-pool* is ahead of *IPPO*")
    assert "kept its share" in good["scaled"] and "(92%) to 128 (94%)" in good["scaled"]

    bad = claim_verdict(summary({4: 0.45, 128: 0.30}, {4: 0.46, 128: 0.35}), script, best)
    assert bad["diverged"].startswith("independent learning (IPPO) ended below the scripted robot at 128 robots")
    assert "lost part of its share" in bad["scaled"]

    level = claim_verdict(summary({4: 0.45, 128: 0.455}, {4: 0.46, 128: 0.45}, width=0.05), script, best)
    assert "do not separate" in level["versus"]
    assert "did not fall below the scripted robot" in level["diverged"]  # the intervals reach below the script
    with pytest.raises(ValueError, match="IPPO"):
        claim_verdict({("MAPPO-pool", 4): {"return": Interval(0.4, 0.3, 0.5, 3)}}, script, best)


def test_interval_verdict_writes_small_differences_with_the_digits_asked_for():
    from marlpg.book.stats import Interval

    runs = {"MAPPO": Interval(0.34, 0.30, 0.38, 3), "IPPO": Interval(0.12, 0.10, 0.15, 3)}
    text = verdicts.interval_verdict(runs, "MAPPO", "IPPO", scale=1, unit=" deliveries", digits=2, what="IQM return")
    assert text == ("*MAPPO* is ahead of *IPPO*: its IQM return is higher by 0.22 deliveries and its 95% interval "
                    "lies above *IPPO*'s")
    tiny = {"a": Interval(0.121, 0.0, 1.0, 3), "b": Interval(0.12, 0.0, 1.0, 3)}
    assert "higher by less than 0.01 deliveries" in verdicts.interval_verdict(tiny, "a", "b", scale=1,
                                                                              unit=" deliveries", digits=2)
    with pytest.raises(ValueError, match="digits must be a whole number"):
        verdicts.interval_verdict(runs, "MAPPO", "IPPO", digits=-1)
