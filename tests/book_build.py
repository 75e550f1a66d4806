"""One build of the book per test session, shared by test_book, test_browser and test_student_edition.

``jupyter-book build . -W -n --keep-going`` runs once, with ``--path-output`` pointing at a temporary
directory: it starts from an empty execution cache (every notebook is executed) and never touches the
repository's own ``_build``. Training chapters run at ``MARLPG_BUDGET=smoke``; the full budgets are the
README's build command and the benchmark scripts. The student edition reuses this build's execution
cache, so the notebooks are executed once for both editions.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def book_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["MARLPG_BUDGET"] = "smoke"  # training chapters at a tiny budget; the rendezvous numbers do not depend on it
    return env


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str
    seconds: float
    root: Path  # the --path-output folder

    @property
    def site(self) -> Path:
        return self.root / "_build" / "html"

    @property
    def cache(self) -> Path:
        return self.root / "_build" / ".jupyter_cache"

    def failure(self) -> str:
        return f"jupyter-book build failed (exit {self.returncode}):\n{self.log[-8000:]}"


def _scratch(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.lru_cache(maxsize=None)
def instructor_build() -> Build:
    """The default (instructor) edition, built once per session.

    For work on the tests only: MARLPG_REUSE_BOOK_BUILD=DIR uses the build already in DIR (a
    --path-output folder) instead of building. The test suite and CI never set it.
    """
    reuse = os.environ.get("MARLPG_REUSE_BOOK_BUILD")
    if reuse:
        log = Path(reuse, "build.log")
        return Build(0, log.read_text() if log.is_file() else "build succeeded (reused)", 0.0, Path(reuse))
    out = _scratch("marlpg-book-")
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(REPO), "-W", "-n", "--keep-going", "--path-output", str(out)],
        capture_output=True, text=True, cwd=REPO, env=book_env(), timeout=1800,
    )
    return Build(result.returncode, result.stdout + result.stderr, time.perf_counter() - start, out)


@functools.lru_cache(maxsize=None)
def student_build() -> Build:
    """The student edition (scripts/student_edition.py), reusing the instructor build's execution cache."""
    instructor = instructor_build()
    out = _scratch("marlpg-student-")
    command = [sys.executable, str(REPO / "scripts" / "student_edition.py"), "--out", str(out / "html")]
    if instructor.cache.is_dir():
        command += ["--reuse-cache", str(instructor.cache)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=book_env(), timeout=1800)
    build = Build(result.returncode, result.stdout + result.stderr, time.perf_counter() - start, out)
    return build


def student_site(build: Build) -> Path:
    return build.root / "html"
