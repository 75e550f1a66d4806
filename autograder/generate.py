"""Write the student versions of Exercises 30.7.1-30.7.3 from the instructor notebooks.

    python autograder/generate.py                  # into notebooks/exercises/ (commit the result)
    python autograder/generate.py --into DIR       # somewhere else, e.g. to compare with the committed files

For each assignment this runs ``nbgrader generate_assignment ASSIGNMENT --no-db --force`` in
``autograder/``, so that nbgrader reads ``autograder/nbgrader_config.py``: the solution regions become stubs, the hidden tests and outputs are
removed, and the result lands in ``<release dir>/<assignment>/<assignment>.ipynb``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "autograder" / "nbgrader_config.py"
SOURCE = REPO / "solutions"
RELEASE = REPO / "notebooks" / "exercises"
ASSIGNMENTS = ("ex30_7_1", "ex30_7_2", "ex30_7_3")


def nbgrader_command() -> list[str]:
    """nbgrader from this interpreter's environment (the course venv), whatever is on PATH."""
    script = Path(sys.executable).with_name("nbgrader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nbgrader"]


def generate(assignments=ASSIGNMENTS, release_directory: str | os.PathLike | None = None) -> list[Path]:
    """Generate the student notebooks; return their paths. Raises RuntimeError with nbgrader's output on failure."""
    release = Path(release_directory) if release_directory is not None else RELEASE
    release = release.resolve()
    written = []
    for assignment in assignments:
        if not (SOURCE / assignment / f"{assignment}.ipynb").exists():
            raise ValueError(f"no source notebook solutions/{assignment}/{assignment}.ipynb")
        target = release / assignment
        if target.exists():
            shutil.rmtree(target)  # nbgrader refuses to overwrite without --force; start clean anyway
        command = nbgrader_command() + [
            "generate_assignment",
            assignment,
            "--no-db",
            "--force",
            f"--CourseDirectory.root={REPO}",
            f"--CourseDirectory.release_directory={release}",
        ]
        # nbgrader reads nbgrader_config.py from its working directory: run it in autograder/.
        result = subprocess.run(command, cwd=CONFIG.parent, capture_output=True, text=True)
        notebook = target / f"{assignment}.ipynb"
        if result.returncode != 0 or not notebook.exists():
            raise RuntimeError(
                f"nbgrader generate_assignment {assignment} failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        written.append(notebook)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", help="release directory (default: notebooks/exercises)")
    parser.add_argument("assignments", nargs="*", default=list(ASSIGNMENTS), help="default: all three")
    args = parser.parse_args(argv)
    for path in generate(args.assignments, args.into):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
