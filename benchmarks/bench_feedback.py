"""How feedback rendering grows with hostile input: time for 10x the input over time for 1x, per pattern.

    python benchmarks/bench_feedback.py          # HTML 40 kB -> 400 kB per pattern; markdown 1.8 kB -> 18 kB
    python benchmarks/bench_feedback.py --quick  # HTML 4 kB -> 40 kB (seconds; run by tests/test_benchmarks.py)

A linear renderer prints ratios near 10 (noise aside); a quadratic one near 100. The patterns are the ones that
made bleach's sanitizer and markdown-it's text rules quadratic (autograder/feedback.py says how they were
replaced). Both sizes of a pattern are timed in the same process, one after the other.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.feedback import Budget, sanitize, untrusted_markdown  # noqa: E402

HTML_UNITS = ["<div>", "<b>", "<a ", "<a b='", "<!--", "<script>", "<", "&#", "<table><tr><td>"]
MARKDOWN_UNITS = ["*a ", "_a ", "[", "![a](", "$a ", "`a ", "<a ", "&#", "> ", "- "]


def seconds(fn, text: str) -> float:
    start = time.perf_counter()
    fn(text)
    return time.perf_counter() - start


def growth(fn, unit: str, size: int) -> tuple[float, float]:
    small, big = unit * (size // len(unit)), unit * (10 * size // len(unit))
    fn(unit * 10)  # warm up (imports, compiled patterns)
    return min(seconds(fn, small) for _ in range(3)), min(seconds(fn, big) for _ in range(3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="4 kB -> 40 kB")
    size = 4_000 if p.parse_args().quick else 40_000
    markdown = lambda text: untrusted_markdown(text, Budget())  # noqa: E731
    # student markdown is rendered in pieces of at most 20 kB (longer runs are shown as plain text), so its
    # growth is measured below that: 1.8 kB -> 18 kB
    for name, fn, units, n in (("sanitize", sanitize, HTML_UNITS, size),
                               ("student markdown", markdown, MARKDOWN_UNITS, 1_800)):
        for unit in units:
            small, big = growth(fn, unit, n)
            print(f"{name} {unit!r}: {n / 1000:g} kB {small * 1e3:.1f} ms, {10 * n / 1000:g} kB "
                  f"{big * 1e3:.1f} ms: {big / max(small, 1e-9):.1f}x for 10x the input")


if __name__ == "__main__":
    main()
