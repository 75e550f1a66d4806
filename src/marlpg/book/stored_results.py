"""Results of runs too long for a book build: written by ``benchmarks/``, stored in ``benchmarks/results/``.

A stored file is a CSV whose first lines are ``# key: value`` comments saying how it was made (the
command, the commit, the machine, the date, the load), then a header row and one row per
iteration of every run. A chapter reads it with ``load`` from the checkout it runs in or, opened on
its own (Colab), from the course repository, and shows the provenance beside the plot.
"""
from __future__ import annotations

import csv
import datetime
import io
import os
import platform
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from marlpg.book.stats import Interval, iqm_interval
from marlpg.core.evaluation import gap_closed

RESULTS_FOLDER = "benchmarks/results"
CURVE_FIELDS = ["method", "seed", "iteration", "frames", "seconds", "cpu_seconds", "return", "eval_return", "gap"]
COURSE_RAW = "https://raw.githubusercontent.com/marlpg/policy-gradient-marl/main"


@dataclass
class StoredResults:
    """A stored file: its provenance (``command``, ``commit``, ``machine``, ``date``, ...) and its rows."""

    name: str
    provenance: dict[str, str]
    rows: list[dict]

    def runs(self, **match) -> dict[tuple, list[dict]]:
        """Rows grouped into runs by (method, seed), keeping those whose columns equal ``match``."""
        grouped: dict[tuple, list[dict]] = {}
        for row in self.rows:
            if all(row.get(key) == value for key, value in match.items()):
                grouped.setdefault((row.get("method"), row.get("seed")), []).append(row)
        return grouped

    def evaluations(self, method: str) -> list[list[dict]]:
        """One list per seed (in seed order) of ``method``'s rows that hold a deterministic evaluation."""
        runs = sorted((seed, rows) for (label, seed), rows in self.runs(method=method).items())
        if not runs:
            methods = sorted({row.get("method") for row in self.rows})
            raise ValueError(f"stored results {self.name!r} have no method {method!r}; they have {methods}")
        return [[row for row in rows if row.get("eval_return") is not None] for _, rows in runs]

    def caption(self) -> str:
        keys = ("command", "commit", "machine", "date")
        return "; ".join(f"{key}: {self.provenance[key]}" for key in keys if key in self.provenance)


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


class CurveRecorder:
    """A training run's ``on_iteration`` hook that keeps its rows for a stored file (``CURVE_FIELDS``).

    Each kept row adds the method, the seed, ``extra`` (e.g. the map), this process's CPU seconds since the
    recorder was made, and the share of the gap that an evaluation closed (None on rows without one, and on
    every row of a task without a ``reference``); floats are rounded. With ``reached`` (a test of a row's unrounded
    values, e.g. an evaluation at the benchmark's target), ``first`` is the first kept row that passed it (else None).
    """

    def __init__(self, method: str, seed: int, reference: tuple[float, float] | None, *,
                 reached: Callable[[dict], bool] | None = None, extra: dict | None = None):
        self.method, self.seed, self.reference = method, seed, reference
        self.reached, self.extra = reached, dict(extra or {})
        self.rows: list[dict] = []
        self.first: dict | None = None
        self._cpu_start = time.process_time()

    def __call__(self, row: dict) -> dict:
        kept = {"method": self.method, "seed": self.seed, **{key: _rounded(value) for key, value in row.items()},
                "cpu_seconds": round(time.process_time() - self._cpu_start, 2), "gap": None, **self.extra}
        if "eval_return" in row and self.reference is not None:
            kept["gap"] = _rounded(gap_closed(row["eval_return"], self.reference))
        self.rows.append(kept)
        self._check(kept, {**kept, **row})  # tested on the unrounded values
        return kept

    def finish(self, eval_return: float, *, final_counts: bool = False, **fields) -> dict:
        """Give the last row the run's final evaluation (on the same episodes as the others) if it has none, and
        ``fields``; with ``final_counts`` that evaluation may be the first to pass ``reached``."""
        last = self.rows[-1]
        if last.get("eval_return") is None:
            gap = None if self.reference is None else _rounded(gap_closed(eval_return, self.reference))
            last.update(eval_return=_rounded(eval_return), gap=gap)
        last.update({key: _rounded(value) for key, value in fields.items()})
        if final_counts:
            self._check(last, {**last, "eval_return": eval_return, **fields})
        return last

    def _check(self, kept: dict, values: dict) -> None:
        if self.first is None and self.reached is not None and self.reached(values):
            self.first = kept


def last_at(curve: list[dict], column: str, limit: float) -> dict | None:
    """The last row of ``curve`` whose ``column`` is at most ``limit`` (None if the first is already past it)."""
    rows = [row for row in curve if row[column] <= limit]
    return rows[-1] if rows else None


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + (" with local changes" if dirty.stdout.strip() else "")


def provenance(**extra) -> dict[str, str]:
    """How a result is being made: command line, commit, machine, threads, date and load, plus ``extra``."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "command": " ".join(["python", *sys.argv]),
        "commit": _git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
                   f"with {torch.get_num_threads()} threads"
                   + (f", MARLPG_THREADS={os.environ['MARLPG_THREADS']}" if "MARLPG_THREADS" in os.environ else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_at_start": f"{load:.2f}",
        **{key: str(value) for key, value in extra.items()},
    }


def write(path: str | Path, rows: list[dict], fields: list[str], about: dict[str, str]) -> Path:
    """Write ``rows`` (only ``fields``, in that order) under the ``about`` comments; returns the path."""
    for key, value in about.items():
        if "\n" in f"{key}{value}":
            raise ValueError(f"provenance entries are one line each; {key!r} is not")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        for key, value in about.items():
            handle.write(f"# {key}: {value}\n")
        writer = csv.DictWriter(handle, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _number(text: str):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(name: str, text: str) -> StoredResults:
    about, lines = {}, text.splitlines()
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0).lstrip("# ").partition(":")
        about[key.strip()] = value.strip()
    rows = [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(io.StringIO("\n".join(lines)))]
    if not rows:
        raise ValueError(f"stored results {name!r} hold no rows")
    return StoredResults(name, about, rows)


def find_checkout(start: Path | None = None) -> Path | None:
    """The course checkout that holds ``benchmarks/results`` at or above ``start`` (the working directory)."""
    start = Path.cwd() if start is None else start
    return next((folder for folder in (start, *start.parents) if (folder / RESULTS_FOLDER).is_dir()), None)


def load(name: str, start: Path | None = None) -> StoredResults:
    """The stored file ``benchmarks/results/<name>``: from the checkout, else downloaded from the course."""
    checkout = find_checkout(start)
    if checkout is not None:
        path = checkout / RESULTS_FOLDER / name
        if not path.is_file():
            available = sorted(p.name for p in (checkout / RESULTS_FOLDER).glob("*.csv"))
            raise FileNotFoundError(f"no stored results {name!r} in {checkout / RESULTS_FOLDER}; there are {available}")
        return parse(name, path.read_text())
    url = f"{COURSE_RAW}/{RESULTS_FOLDER}/{name}"
    try:
        text = urllib.request.urlopen(url, timeout=30).read().decode()
    except OSError as error:
        raise FileNotFoundError(f"stored results {name!r}: no checkout here and {url} could not be read ({error}); "
                                "run the notebook from a clone of the course") from error
    return parse(name, text)


def local_path(name: str, start: Path | None = None) -> Path:
    """A stored file of any kind (a saved model, say) as a local path: ``benchmarks/results/<name>`` in the
    checkout, else downloaded once from the course into ``~/.cache/marlpg``."""
    checkout = find_checkout(start)
    if checkout is not None:
        path = checkout / RESULTS_FOLDER / name
        if not path.is_file():
            available = sorted(p.name for p in (checkout / RESULTS_FOLDER).iterdir())
            raise FileNotFoundError(f"no stored file {name!r} in {checkout / RESULTS_FOLDER}; there are {available}")
        return path
    cached = Path.home() / ".cache" / "marlpg" / name
    if not cached.is_file():
        url = f"{COURSE_RAW}/{RESULTS_FOLDER}/{name}"
        try:
            data = urllib.request.urlopen(url, timeout=60).read()
        except OSError as error:
            raise FileNotFoundError(f"stored file {name!r}: no checkout here and {url} could not be read ({error}); "
                                    "run the notebook from a clone of the course") from error
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached


@dataclass
class Comparison:
    """Methods' stored runs compared at one method's budget, in frames and in CPU seconds.

    ``runs[label]`` holds each seed's evaluation rows; ``budgets[column]`` is the budget (the median
    over the reference method's seeds of its runs' last ``column``); ``at_budget[column][label]`` is
    the IQM over seeds, with its 95% interval, of the gap closed at each seed's last evaluation within it.
    """

    runs: dict[str, list[list[dict]]]
    budgets: dict[str, float]
    at_budget: dict[str, dict[str, Interval]] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)

    def within(self, column: str) -> dict[str, list[list[dict]]]:
        """Every method's runs cut at the budget in ``column``, for a plot of the comparison."""
        limit = self.budgets[column]
        return {label: [[row for row in curve if row[column] <= limit] for curve in curves]
                for label, curves in self.runs.items()}


def compare(sources: Mapping[str, tuple[str, str]], budget_of: str, columns=("frames", "cpu_seconds"),
            start: Path | None = None) -> Comparison:
    """``sources`` maps a label to (stored file, method in it); the budget is ``budget_of``'s runs'."""
    if budget_of not in sources:
        raise ValueError(f"budget_of must be one of {sorted(sources)}; got {budget_of!r}")
    files = {name: load(name, start) for name in dict.fromkeys(name for name, _ in sources.values())}
    runs = {label: files[name].evaluations(method) for label, (name, method) in sources.items()}
    budgets = {column: float(np.median([curve[-1][column] for curve in runs[budget_of]])) for column in columns}
    comparison = Comparison(runs, budgets, captions=[f"{name}: {stored.caption()}" for name, stored in files.items()])
    for column, limit in budgets.items():
        comparison.at_budget[column] = {}
        for label, curves in runs.items():
            rows = [last_at(curve, column, limit) for curve in curves]
            if any(row is None for row in rows):
                raise ValueError(f"{label!r} has a run with no evaluation within {column} = {limit:g}; "
                                 "store evaluations more often")
            comparison.at_budget[column][label] = iqm_interval([row["gap"] for row in rows])
    return comparison
