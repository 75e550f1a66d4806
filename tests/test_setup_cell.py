"""Every chapter notebook starts with the standard set-up cell (scripts/notebook_setup_cell.py).

The cell installs the course library where it is missing, from the repository that _config.yml names,
and does nothing where it is present; then it picks the device.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebook_setup_cell", REPO / "scripts" / "notebook_setup_cell.py")
setup_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_cell)

CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_chapters():
    assert len(CHAPTERS) >= 4


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_is_the_setup_cell(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert setup_cell.has_current_cell(notebook, setup_cell.setup_source()), (
        f"{path.name}: the first code cell is not the current set-up cell; "
        "run `python scripts/notebook_setup_cell.py` (after any change of repository.url in _config.yml)")
    assert notebook["cells"][0]["cell_type"] == "markdown", "the title stays first"


def test_cell_names_the_repository_of_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/someone/fork/\n  branch: spring\n")
    source = setup_cell.setup_source(config)
    assert 'COURSE_REPOSITORY = "https://github.com/someone/fork"' in source
    assert 'COURSE_BRANCH = "spring"' in source
    assert source == setup_cell.setup_source(config)  # deterministic
    compile(source, "setup-cell", "exec")
    config.write_text("repository:\n  url: git@github.com:someone/fork\n")
    with pytest.raises(ValueError, match="repository.url must be an https:// address"):
        setup_cell.setup_source(config)


def test_apply_inserts_after_the_title_and_replaces_an_old_cell():
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
                          {"cell_type": "code", "metadata": {}, "source": ["import numpy"], "outputs": [],
                           "execution_count": None}]}
    once = setup_cell.apply(copy.deepcopy(notebook), "print('v1')\n")
    assert [c["cell_type"] for c in once["cells"]] == ["markdown", "code", "code"]
    assert "".join(once["cells"][1]["source"]) == "print('v1')\n"
    twice = setup_cell.apply(once, "print('v2')\n")
    assert len(twice["cells"]) == 3, "the old set-up cell is replaced, not kept"
    assert setup_cell.has_current_cell(twice, "print('v2')\n")
    assert not setup_cell.has_current_cell(twice, "print('v1')\n")


def test_cell_installs_nothing_when_everything_is_present():
    # Run the cell as a script in this environment, with pip made unusable: nothing may be installed.
    source = setup_cell.setup_source()
    guard = "import subprocess\ndef refuse(*a, **k):\n    raise AssertionError(f'tried to run {a}')\nsubprocess.run = refuse\n"
    result = subprocess.run([sys.executable, "-c", guard + source], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("device: "), result.stdout
    assert "installing" not in result.stdout


def test_cell_installs_from_the_checkout_when_a_module_is_missing(tmp_path):
    # A fake module list with one missing name: the cell must call pip on this checkout.
    source = setup_cell.setup_source().replace(
        "REQUIRED = (", "REQUIRED = ('marlpg_module_that_does_not_exist', ")
    recorder = ("import subprocess, json\ncalls = []\n"
                "def record(command, **kwargs):\n    calls.append(command)\n"
                "subprocess.run = record\n")
    tail = "\nprint('CALLS=' + json.dumps(calls))\n"
    result = subprocess.run([sys.executable, "-c", recorder + source + tail], capture_output=True, text=True,
                            cwd=REPO / "notebooks", timeout=120)
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout.split("CALLS=")[1])
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", str(REPO)]]
    # Outside any checkout (Colab), it installs from the repository of _config.yml.
    result = subprocess.run([sys.executable, "-c", recorder + source + tail], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    calls = json.loads(result.stdout.split("CALLS=")[1])
    url, branch = setup_cell.repository()
    assert calls[0][-1] == f"marlpg @ git+{url}@{branch}"


def test_check_mode_reports_stale_notebooks(tmp_path):
    stale = tmp_path / "nb.ipynb"
    stale.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# T"]}],
                                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    script = REPO / "scripts" / "notebook_setup_cell.py"
    check = subprocess.run([sys.executable, str(script), "--check", str(stale)], capture_output=True, text=True)
    assert check.returncode == 1 and "nb.ipynb" in check.stderr
    subprocess.run([sys.executable, str(script), str(stale)], check=True, capture_output=True)
    assert subprocess.run([sys.executable, str(script), "--check", str(stale)]).returncode == 0
