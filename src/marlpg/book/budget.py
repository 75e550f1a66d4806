"""One switch for how much the notebooks train: ``MARLPG_BUDGET``.

* unset or ``full``: the budgets the book is built with and its prose describes;
* ``smoke``: tiny budgets, so the test suite can run every cell of every notebook in seconds.
  The numbers a smoke run prints mean nothing; the full budgets' claims are checked by the
  learning tests and the benchmark scripts.

Notebooks ask ``budget(full=..., smoke=...)`` for each training length.
"""
from __future__ import annotations

import os

VARIABLE = "MARLPG_BUDGET"
CHOICES = ("full", "smoke")


def mode() -> str:
    value = os.environ.get(VARIABLE, "full").strip().lower() or "full"
    if value not in CHOICES:
        raise ValueError(f"{VARIABLE}={value!r} is not one of {CHOICES}")
    return value


def budget(full, smoke):
    """``full`` normally, ``smoke`` when ``MARLPG_BUDGET=smoke``."""
    return smoke if mode() == "smoke" else full
