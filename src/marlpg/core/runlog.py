"""What a training run leaves behind: a CSV learning curve and a progress bar."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping

from tqdm.auto import tqdm


def write_curve(path: str | Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """One CSV row per training iteration; the columns are the first row's keys."""
    rows = list(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def read_curve(path: str | Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as handle:
        return [{k: float(v) if v not in ("", "None") else float("nan") for k, v in row.items()} for row in csv.DictReader(handle)]


def progress_bar(total: int, enabled: bool, description: str):
    return tqdm(total=total, disable=not enabled, desc=description, unit="frame", unit_scale=True, dynamic_ncols=True)
