"""What a training run leaves behind: a CSV learning curve and a progress bar."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Mapping

from tqdm.auto import tqdm


def default_run_dir(algorithm: str) -> Path:
    """Where a command-line run writes when no ``--out`` is given: ``$MARLPG_RUNS/<algorithm>``, else
    ``<cache>/marlpg/runs/<algorithm>`` with ``<cache>`` = ``$XDG_CACHE_HOME`` or ``~/.cache``.

    Never the working directory, so a run inside a checkout leaves no untracked files there; the
    command prints the full path of everything it writes.
    """
    root = os.environ.get("MARLPG_RUNS")
    if root:
        return Path(root).expanduser() / algorithm
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "marlpg" / "runs" / algorithm


OUT_HELP = "folder for the outputs (default: $MARLPG_RUNS/{algo}, else ~/.cache/marlpg/runs/{algo}; the full paths are printed)"


def write_curve(path: str | Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """One CSV row per training iteration; the columns are every row's keys, in the order they first appear
    (periodic evaluations add columns to some rows only)."""
    rows = list(rows)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return path


def read_curve(path: str | Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as handle:
        return [{k: float(v) if v not in ("", "None") else float("nan") for k, v in row.items()} for row in csv.DictReader(handle)]


def progress_bar(total: int, enabled: bool, description: str):
    return tqdm(total=total, disable=not enabled, desc=description, unit="frame", unit_scale=True, dynamic_ncols=True)
