"""Sentences for the book whose direction is decided by a measured number.

A chapter that glues a measurement into fixed prose ("faster", "ahead", "grows") can contradict
itself on a slower machine or another seed. The notebooks build every such sentence here, from the
numbers, so the words turn when the numbers do (tests/test_verdicts.py perturbs them and checks).

* ``percent``            a fraction as a percentage, the book's one convention for "gap closed"
* ``median_rate``        frames per second of a training curve, the median over its iterations
* ``rate_verdict``       "X ran at 1.35 times Y's frames per second, faster" and what that implies
* ``seeds_verdict``      who is ahead over seeds, and whether every seed agrees
* ``interval_verdict``   who is ahead by IQM, and whether the 95% intervals separate the two
* ``growth_verdict``     how a cost grows, in words, from a log-log slope
* ``lead_verdict``       whether a ratio grew between two points, in words
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


def _finite(name: str, value) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return value


def listing(items) -> str:
    """``[4, 32, 128]`` -> ``"4, 32 and 128"``: items in prose."""
    words = [str(item) for item in items]
    if not words:
        raise ValueError("listing needs at least one item")
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def percent(fraction, digits: int = 0) -> str:
    """``0.3614`` -> ``"36%"``: a share (gap closed, a change) written as a percentage."""
    return f"{100 * _finite('fraction', fraction):.{digits}f}%"


def median_rate(curve: Sequence[Mapping], skip_first: bool = True) -> float:
    """Median frames per second over a curve's iterations (rows with cumulative ``frames`` and ``seconds``).

    One slow iteration (a neighbour's burst of work, the first iteration's set-up when ``skip_first``)
    moves a median much less than the total frames over the total seconds.
    """
    rows = list(curve)
    if len(rows) < (3 if skip_first else 2):
        raise ValueError(f"need at least {3 if skip_first else 2} curve rows to time iterations; got {len(rows)}")
    frames = np.array([row["frames"] for row in rows], dtype=float)
    seconds = np.array([row["seconds"] for row in rows], dtype=float)
    steps = np.diff(frames), np.diff(seconds)
    if skip_first:
        steps = steps[0][1:], steps[1][1:]
    if np.any(steps[1] <= 0):
        raise ValueError("curve seconds must increase from row to row")
    return float(np.median(steps[0] / steps[1]))


def rate_verdict(rate, baseline, *, subject: str, reference: str, tolerance: float = 0.1) -> str:
    """A sentence comparing two frames-per-second rates, with what the comparison means for the split.

    Within ``tolerance`` (a relative difference) the two count as level.
    """
    rate, baseline = _finite("rate", rate), _finite("baseline", baseline)
    if rate <= 0 or baseline <= 0:
        raise ValueError(f"rates must be positive; got {rate!r} and {baseline!r}")
    ratio = rate / baseline
    measured = f"{subject} ran at {ratio:.2f} times {reference}'s frames per second"
    if ratio > 1 + tolerance:
        return f"{measured}: faster, so splitting the collection saved more than the copying cost"
    if ratio < 1 - tolerance:
        return f"{measured}: slower, so the copying cost more than splitting the collection saved"
    return f"{measured}: about level, so the copying cost about what splitting the collection saved"


def seeds_verdict(scores: Mapping[str, Sequence[float]], a: str, b: str, *, tolerance: float = 0.0,
                  unit: str = "") -> str:
    """Who of ``a`` and ``b`` is ahead on the mean of ``scores[name]`` (one value per seed), and how surely.

    Means within ``tolerance`` of each other are level. With one seed each there is no spread to
    compare, and the sentence says so.
    """
    for name in (a, b):
        if name not in scores or len(scores[name]) == 0:
            raise ValueError(f"scores must hold at least one value for {name!r}; got {dict(scores)!r}")
    mean = {name: float(np.mean([_finite(name, x) for x in scores[name]])) for name in (a, b)}
    difference = abs(mean[a] - mean[b])
    if difference <= tolerance:
        return f"*{a}* and *{b}* are level (means within {difference:.3g}{unit})"
    hi, lo = (a, b) if mean[a] > mean[b] else (b, a)
    if len(scores[a]) == 1 and len(scores[b]) == 1:
        return f"*{hi}* is ahead of *{lo}* on this one seed each, which cannot show how much of that is luck"
    if min(scores[hi]) > max(scores[lo]):
        return f"*{hi}* is ahead of *{lo}*, and every seed of *{hi}* finished above every seed of *{lo}*"
    return f"*{hi}* is ahead of *{lo}* on average, but their seeds overlap, so this budget does not separate them"


def interval_verdict(intervals: Mapping, a: str, b: str, *, scale: float = 100.0, unit: str = " percentage points",
                     what: str = "IQM", digits: int = 0) -> str:
    """Who of ``a`` and ``b`` is ahead by ``intervals[name].point`` and whether their intervals overlap.

    ``intervals`` maps a name to a ``marlpg.book.stats.Interval`` (an IQM over seeds with its bootstrap
    interval); the difference is written times ``scale`` in ``unit``, with ``digits`` decimals.
    """
    for name in (a, b):
        if name not in intervals:
            raise ValueError(f"intervals must hold {name!r}; they hold {sorted(intervals)}")
    if not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be a whole number of decimals, 0 or more; got {digits!r}")
    x, y = intervals[a], intervals[b]
    difference = scale * (_finite(a, x.point) - _finite(b, y.point))
    hi, lo = (a, b) if difference > 0 else (b, a)
    by = f"{abs(difference):.{digits}f}{unit}"
    smallest = f"{10 ** -digits:.{digits}f}"
    if by == f"1{unit}" and unit.endswith("points"):
        by = by[:-1]  # "1 percentage point"
    elif float(f"{abs(difference):.{digits}f}") == 0 and difference != 0:  # not "higher by 0"
        by = f"less than {smallest}{unit[:-1] if unit.endswith('points') and digits == 0 else unit}"
    if x.low > y.high or y.low > x.high:
        return f"*{hi}* is ahead of *{lo}*: its {what} is higher by {by} and its 95% interval lies above *{lo}*'s"
    if difference == 0:
        return f"*{a}* and *{b}* are level: equal {what}s, overlapping 95% intervals"
    return (f"*{hi}*'s {what} is higher by {by}, but the 95% intervals overlap, so these seeds "
            f"do not separate *{hi}* from *{lo}*")


def growth_verdict(exponent) -> str:
    """How a cost grows with ``n``, from the slope of log cost against log n (NaN: too few sizes)."""
    exponent = float(exponent)
    if math.isnan(exponent):
        return "grows (too few team sizes here to fit a slope)"
    if exponent > 1.6:
        return "grows close to quadratically"
    if exponent > 1.15:
        return "grows faster than linearly"
    if exponent > 0.85:
        return "grows about linearly"
    if exponent > 0.15:
        return "grows more slowly than linearly over this range (a fixed cost per step still weighs at the small sizes)"
    return "hardly grows over this range"


def lead_verdict(small, large, *, clear: float = 0.3, slight: float = 0.05) -> str:
    """Whether a lead (a ratio, 1 = level) grew from the smallest to the largest team, in words."""
    growth = _finite("large", large) - _finite("small", small)
    if growth > clear:
        return "grows with n"
    if growth > slight:
        return "grows with n, but slowly"
    if growth < -slight:
        return "shrinks as n grows in this measurement"
    return "does not grow with n in this measurement"


__all__ = ["growth_verdict", "lead_verdict", "median_rate", "percent", "rate_verdict", "seeds_verdict"]
