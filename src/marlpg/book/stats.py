"""Results over seeds, reported the way the field reports them (Agarwal et al., 2021, with ``rliable``).

A handful of seeds is a small sample, and its mean is pulled around by one lucky or unlucky run.
The interquartile mean (IQM) discards the lowest and the highest quarter of the runs and averages
the middle half (``scipy.stats.trim_mean(x, 0.25)``: with n runs, ``floor(n / 4)`` are cut from each
end, so with fewer than 4 runs nothing is cut and the IQM is the mean). Its uncertainty is a
percentile bootstrap confidence interval: resample the runs with replacement, recompute the IQM,
take the 2.5% and 97.5% quantiles. The bootstrap is rliable's *stratified* one, which resamples
runs within each task; every result here is on one task, so the strata are the task itself.

    iqm(scores)                  the IQM of one method's runs (any shape: all values are pooled)
    iqm_interval(scores)         an :class:`Interval`: IQM and its bootstrap confidence interval
    iqm_curve(values)            IQM and interval at every point of learning curves [runs, points]

rliable draws its resamples from NumPy's global random state (its ``random_state`` argument is
ignored by the stratified bootstrap), so the functions here seed that state for the duration of
the call and restore it afterwards: the same ``seed`` gives the same interval, and the caller's
random numbers are left alone.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

TRIM = 0.25  # the share cut from each end of the sorted runs


@dataclass(frozen=True)
class Interval:
    """A point estimate over ``runs`` runs with its ``confidence`` bootstrap interval [low, high]."""

    point: float
    low: float
    high: float
    runs: int
    confidence: float = 0.95

    def format(self, spec: str = ".2f", scale: float = 1.0, unit: str = "") -> str:
        """E.g. ``"IQM 72% (95% CI 61% to 80%, 5 runs)"`` with ``spec=".0f", scale=100, unit="%"``."""
        value = lambda v: f"{scale * v:{spec}}{unit}"  # noqa: E731
        return (f"IQM {value(self.point)} ({self.confidence:.0%} CI {value(self.low)} to {value(self.high)}, "
                f"{self.runs} run{'s' if self.runs != 1 else ''})")


def _runs(scores, name: str = "scores") -> np.ndarray:
    array = np.asarray(scores, dtype=float)
    if array.ndim == 0 or array.shape[0] < 1:
        raise ValueError(f"{name} needs at least one run along its first axis; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers; got {array.tolist()!r}")
    return array


def _check(confidence: float, reps: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence!r}")
    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 100:
        raise ValueError(f"reps must be an integer of at least 100 bootstrap resamples; got {reps!r}")


def iqm(scores) -> float:
    """Interquartile mean of all values in ``scores`` (rliable's ``aggregate_iqm``)."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(_runs(scores)))


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _bootstrap(matrix: np.ndarray, func, reps: int, confidence: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's stratified percentile bootstrap of ``func`` on ``matrix`` [runs, tasks, ...]: (point, [low, high])."""
    from rliable import library

    with _seeded_global_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arch's notices about its own random-state arguments
        points, intervals = library.get_interval_estimates(
            {"scores": matrix}, func, reps=reps, confidence_interval_size=confidence
        )
    return points["scores"], intervals["scores"]


def iqm_interval(scores, *, confidence: float = 0.95, reps: int = 2_000, seed: int = 0) -> Interval:
    """IQM of one method's runs on one task, with its stratified bootstrap confidence interval.

    ``scores`` holds one number per run (seed). One run gives a zero-width interval.
    """
    _check(confidence, reps)
    runs = _runs(scores).reshape(-1)
    from rliable import metrics

    point, (low, high) = _bootstrap(
        runs[:, None], lambda x: np.array([metrics.aggregate_iqm(x)]), reps, confidence, seed
    )
    return Interval(float(point[0]), float(low[0]), float(high[0]), len(runs), confidence)


def iqm_curve(values, *, confidence: float = 0.95, reps: int = 1_000, seed: int = 0):
    """IQM over runs at every point of learning curves, with pointwise bootstrap intervals.

    ``values`` is ``[runs, points]`` (one row per seed, all on the same x grid). Returns three arrays
    of length ``points``: the IQM, the lower and the upper end of the interval.
    """
    _check(confidence, reps)
    matrix = _runs(values, "values")
    if matrix.ndim != 2:
        raise ValueError(f"values must be [runs, points]; got shape {matrix.shape}")
    per_point = lambda x: scipy_stats.trim_mean(x[:, 0, :], TRIM, axis=0)  # noqa: E731
    point, (low, high) = _bootstrap(matrix[:, None, :], per_point, reps, confidence, seed)
    return np.asarray(point), np.asarray(low), np.asarray(high)
