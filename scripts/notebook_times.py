"""Report how long each executed notebook of the book took, and fail if one exceeds the limit.

Reads the build's execution cache (jupyter-cache, _build/.jupyter_cache by default), which records
each notebook's execution time for the version of the notebook that is on disk now, whether it was
executed by this build or by an earlier one. Every notebook in _toc.yml that the build executes
(everything but the execute.exclude_patterns of _config.yml) must have a record.

Usage: python scripts/notebook_times.py [--cache DIR] [--limit SECONDS]     (default limit: 180)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path, PurePosixPath

import yaml
from jupyter_cache import get_cache

REPO = Path(__file__).resolve().parents[1]


def toc_notebooks(repo: Path = REPO) -> list[Path]:
    """The notebooks of _toc.yml that the build executes, in order."""
    def files(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("root", "file") and isinstance(value, str):
                    yield value
                else:
                    yield from files(value)
        elif isinstance(node, list):
            for item in node:
                yield from files(item)

    config = yaml.safe_load((repo / "_config.yml").read_text(encoding="utf-8"))
    excluded = (config.get("execute") or {}).get("exclude_patterns") or []
    found = []
    for entry in files(yaml.safe_load((repo / "_toc.yml").read_text(encoding="utf-8"))):
        path = repo / (entry if entry.endswith(".ipynb") else f"{entry}.ipynb")
        if path.is_file() and not any(PurePosixPath(path.as_posix()).match(p) for p in excluded):
            found.append(path)
    return found


def execution_seconds(cache_dir: Path, notebooks: list[Path]) -> dict:
    """{notebook: seconds, or None when the cache holds no record of its current version}."""
    cache = get_cache(str(cache_dir))
    times = {}
    for path in notebooks:
        try:
            record = cache.match_cache_file(str(path))
        except KeyError:
            record = None
        times[path] = None if record is None else float(record.data.get("execution_seconds", float("nan")))
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=REPO / "_build" / ".jupyter_cache")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds allowed per notebook (default 180)")
    args = parser.parse_args(argv)
    if not args.cache.is_dir():
        parser.error(f"--cache {args.cache}: no execution cache there (build the book first)")
    if args.limit <= 0:
        parser.error(f"--limit must be > 0 seconds, got {args.limit}")
    times = execution_seconds(args.cache, toc_notebooks())
    print(f"{'notebook':<60} {'seconds':>8}")
    problems = []
    for path, seconds in times.items():
        name = str(path.relative_to(REPO))
        if seconds is None:
            print(f"{name:<60} {'-':>8}  (no record of this version)")
            problems.append(f"{name}: not executed by the build")
        else:
            flag = "  OVER THE LIMIT" if seconds > args.limit else ""
            print(f"{name:<60} {seconds:8.1f}{flag}")
            if seconds > args.limit:
                problems.append(f"{name}: {seconds:.0f} s > {args.limit:.0f} s")
    known = [s for s in times.values() if s is not None]
    print(f"{'total':<60} {sum(known):8.1f}")
    for problem in problems:
        print(f"[book] {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
