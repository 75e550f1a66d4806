"""marlpg.book.stats: the IQM by hand, bootstrap intervals that behave, reproducibility, bad input."""
import numpy as np
import pytest

from marlpg.book.stats import Interval, iqm, iqm_curve, iqm_interval


def test_iqm_of_eight_runs_averages_the_middle_four():
    # Sorted: 1 2 | 3 4 5 6 | 7 100; two runs cut from each end, the outlier among them.
    assert iqm([100.0, 3.0, 1.0, 6.0, 4.0, 7.0, 2.0, 5.0]) == pytest.approx((3 + 4 + 5 + 6) / 4)


def test_iqm_of_five_runs_cuts_one_from_each_end():
    assert iqm([10.0, 0.0, 2.0, 4.0, -50.0]) == pytest.approx((0 + 2 + 4) / 3)


def test_iqm_of_three_runs_is_their_mean():
    assert iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)


def test_interval_of_two_runs_matches_the_bootstrap_by_hand():
    # Resamples of (0, 1): IQM 0 (p 1/4), 0.5 (p 1/2), 1 (p 1/4); the 2.5% and 97.5% quantiles are 0 and 1.
    interval = iqm_interval([0.0, 1.0], reps=2_000)
    assert (interval.point, interval.low, interval.high, interval.runs) == (0.5, 0.0, 1.0, 2)


def test_identical_runs_give_a_zero_width_interval():
    interval = iqm_interval([0.3] * 6)
    assert interval.low == interval.point == interval.high == pytest.approx(0.3)


def test_interval_contains_the_iqm_and_narrows_with_more_runs():
    rng = np.random.default_rng(7)
    few, many = rng.normal(0.6, 0.1, size=8), rng.normal(0.6, 0.1, size=128)
    narrow, wide = iqm_interval(many), iqm_interval(few)
    for interval, runs in ((wide, few), (narrow, many)):
        assert interval.low < interval.point < interval.high
        assert interval.point == pytest.approx(iqm(runs))
    assert narrow.high - narrow.low < 0.5 * (wide.high - wide.low)


def test_a_fixed_seed_gives_the_same_interval_and_leaves_the_global_random_state_alone():
    runs = np.random.default_rng(1).normal(size=10)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first, again = iqm_interval(runs, seed=5), iqm_interval(runs, seed=5)
    assert first == again
    assert iqm_interval(runs, seed=6) != first
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_curve_band_is_the_iqm_of_every_column_inside_its_interval():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(6, 4)) + np.arange(4)
    point, low, high = iqm_curve(values, reps=500)
    np.testing.assert_allclose(point, [iqm(values[:, k]) for k in range(4)])
    assert np.all(low <= point) and np.all(point <= high)
    # A resampled IQM never leaves the range of the runs it was drawn from.
    assert np.all(low >= values.min(axis=0)) and np.all(high <= values.max(axis=0))
    assert np.all(high > low)


def test_interval_formats_as_percentages():
    text = Interval(0.724, 0.61, 0.8, 5).format(".0f", scale=100, unit="%")
    assert text == "IQM 72% (95% CI 61% to 80%, 5 runs)"
    assert Interval(1.0, 1.0, 1.0, 1).format(".1f") == "IQM 1.0 (95% CI 1.0 to 1.0, 1 run)"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: iqm([]), "at least one run"),
        (lambda: iqm([1.0, float("nan")]), "finite"),
        (lambda: iqm_interval([1.0, 2.0], confidence=1.5), "confidence must lie"),
        (lambda: iqm_interval([1.0, 2.0], reps=10), "reps must be"),
        (lambda: iqm_curve([1.0, 2.0]), r"\[runs, points\]"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
