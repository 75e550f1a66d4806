"""Insert or refresh the standard set-up cell of the chapter notebooks.

Every chapter notebook (notebooks/*.ipynb) has the same first code cell. Where a student opens
it (Colab, a JupyterHub, Binder, a laptop), the cell installs the course library and its pinned
dependencies if any of them is missing, and does nothing when they are all present (the course's
own machines, the book build, a second run); then it detects a GPU and sets ``DEVICE``.

The repository the cell installs from is read from ``_config.yml`` (``repository.url`` and
``repository.branch``), the one place it is written: after changing it there, run this script
again and every notebook follows.

Usage (from the repository root):
    python scripts/notebook_setup_cell.py                 # every notebooks/*.ipynb
    python scripts/notebook_setup_cell.py notebooks/03_maddpg.ipynb
    python scripts/notebook_setup_cell.py --check         # exit 1 if a notebook lacks the current cell
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CELL_TAG = "marlpg-setup"

# Import names of the library and of its runtime dependencies (pyproject.toml's `dependencies`).
REQUIRED_MODULES = ("marlpg", "numpy", "torch", "matplotlib", "ipywidgets", "tqdm", "vmas", "pettingzoo", "mpe2")

TEMPLATE = '''\
# Set-up, the same first cell in every chapter. Where the course library or one of its
# dependencies is missing (Colab, a fresh JupyterHub or Binder), install it: from the
# repository this notebook sits in if there is one, else from GitHub. Where everything is
# present it installs nothing. Then use a GPU if there is one.
import importlib
import importlib.util
import site
import subprocess
import sys
from pathlib import Path

COURSE_REPOSITORY = "{url}"
COURSE_BRANCH = "{branch}"
REQUIRED = {modules}

missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
if missing:
    checkout = next((folder for folder in (Path.cwd(), *Path.cwd().parents)
                     if (folder / "pyproject.toml").is_file() and (folder / "src" / "marlpg").is_dir()), None)
    source = str(checkout) if checkout else f"marlpg @ git+{{COURSE_REPOSITORY}}@{{COURSE_BRANCH}}"
    print(f"installing the course library from {{source}} (missing: {{', '.join(missing)}})")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source], check=True)
    # pip may have created the user site-packages folder only now; make it importable.
    if Path(site.getusersitepackages()).is_dir():
        site.addsitedir(site.getusersitepackages())
    importlib.invalidate_caches()

import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # before torch loads: see marlpg.core.threads
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cuda":
    print(f"device: cuda ({{torch.cuda.get_device_name(0)}})")
else:
    print("device: cpu (no GPU found; every notebook of the course runs on a CPU)")
'''


def repository(config_path: Path = REPO / "_config.yml") -> tuple[str, str]:
    """(url, branch) of ``repository:`` in _config.yml."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    section = config.get("repository") or {}
    url, branch = section.get("url"), section.get("branch", "main")
    if not url or not str(url).startswith("https://"):
        raise ValueError(f"{config_path}: repository.url must be an https:// address, got {url!r}")
    return str(url).rstrip("/"), str(branch)


def setup_source(config_path: Path = REPO / "_config.yml") -> str:
    """The set-up cell's code for the repository named in ``config_path``."""
    url, branch = repository(config_path)
    return TEMPLATE.format(url=url, branch=branch, modules=repr(REQUIRED_MODULES))


def setup_cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "id": CELL_TAG,
        "execution_count": None,
        "metadata": {"tags": [CELL_TAG, "hide-input"]},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def first_code_cell(notebook: dict) -> dict | None:
    return next((cell for cell in notebook["cells"] if cell["cell_type"] == "code"), None)


def has_current_cell(notebook: dict, source: str) -> bool:
    cell = first_code_cell(notebook)
    return cell is not None and "".join(cell["source"]) == source and CELL_TAG in cell["metadata"].get("tags", [])


def apply(notebook: dict, source: str) -> dict:
    """Replace an earlier set-up cell, or insert one before the first code cell (after the title)."""
    cells = [cell for cell in notebook["cells"] if CELL_TAG not in cell.get("metadata", {}).get("tags", [])]
    index = next((i for i, cell in enumerate(cells) if cell["cell_type"] == "code"), len(cells))
    cells.insert(index, setup_cell(source))
    notebook["cells"] = cells
    return notebook


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    source = setup_source()
    stale = []
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            parser.error(f"{path} is not a notebook file (.ipynb)")
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if has_current_cell(notebook, source):
            continue
        stale.append(path)
        if not args.check:
            path.write_text(json.dumps(apply(notebook, source), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"set-up cell written: {path}")
    if args.check and stale:
        print("notebooks without the current set-up cell (run scripts/notebook_setup_cell.py):", file=sys.stderr)
        for path in stale:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
