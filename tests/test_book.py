"""The book builds with warnings as errors, and its pages carry the numbers the notebooks computed.

``jupyter-book build . -W -n --keep-going`` runs with ``--path-output`` pointing at a temporary
directory, so it starts from an empty execution cache (every notebook is executed) and never
touches the repository's own ``_build``. Training chapters run at ``MARLPG_BUDGET=smoke``: the
full budgets are the README's build command and the benchmark scripts.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def page_text(path: Path) -> str:
    """The visible text of a built page: scripts, styles and tags dropped, entities decoded, whitespace collapsed."""
    raw = path.read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S | re.I)
    raw = re.sub(r"<!--.*?-->", " ", raw, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


def toc_files(node) -> list[str]:
    """Every ``file:`` and ``root:`` entry of _toc.yml, in order."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(toc_files(item))
    return found


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["MARLPG_BUDGET"] = "smoke"  # training chapters at a tiny budget; the rendezvous numbers do not depend on it
    result = subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(REPO), "-W", "-n", "--keep-going", "--path-output", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=1500,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed (exit {result.returncode}):\n{log[-8000:]}"
    assert "build succeeded" in log, log[-4000:]
    return out / "_build" / "html", log


def test_config_and_toc():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["title"] == "Policy Gradient Methods in MARL"
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"]["timeout"] > 0
    assert {"dollarmath", "amsmath"} <= set(config["parse"]["myst_enable_extensions"])
    for pattern in ("README.md", "solutions", "autograder", "tests", "benchmarks", "src", ".venv", "_build", "scripts"):
        assert pattern in config["exclude_patterns"], pattern
    for entry in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text())):
        candidates = [REPO / entry, REPO / f"{entry}.md", REPO / f"{entry}.ipynb"]
        assert any(p.is_file() for p in candidates), f"_toc.yml names {entry}, which does not exist"


def test_every_page_is_built(built_book):
    site, _ = built_book
    assert (site / "index.html").is_file()
    for entry in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text())):
        stem = re.sub(r"\.(md|ipynb)$", "", entry)
        assert (site / f"{stem}.html").is_file(), f"no page for {entry}"


def test_notebook_pages_have_no_tracebacks(built_book):
    site, _ = built_book
    for page in sorted((site / "notebooks").glob("*.html")):
        text = page.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in text, f"{page.name} shows a traceback"


def test_glued_numbers_appear(built_book):
    site, _ = built_book
    page = (site / "notebooks" / "02_centralized_critic_variance.html").read_text(encoding="utf-8")
    # Output 30.7.1, as the notebook computes it and glues it into the prose.
    for number in ("18.8079", "29.3406", "-0.0127", "-0.0137", "0.0174", "0.0196", "1.56", "1.26", "12.3198"):
        assert number in page, f"{number} missing from the variance chapter"
    prose = page_text(site / "notebooks" / "02_centralized_critic_variance.html")
    assert re.search(r"gradient variance\s+18\.8079\s+for the source", prose), "Output 30.7.1 is not glued into the prose"
    assert re.search(r"speed-up of about\s+\d+\s+times", prose), "the measured speed-up is not glued"
    # The verdict: growth with n, shrinkage with coupling, each number taken from the executed grid.
    assert re.search(r"at\s+\S*c = 1\S*\s+from\s+1\.28\s+at two agents to\s+4\.44\s+at sixteen", prose)
    assert re.search(r"from\s+6\.60\s+at\s+\S*c = 0\.25\S*\s+to\s+3\.86", prose)

    first = page_text(site / "notebooks" / "01_multi_agent_policy_gradient.html")
    match = re.search(r"the largest of their (\d+) \S*z\S* ?-scores is ([0-9.]+) ?, below ([0-9.]+)", first)
    assert match, "the z-score check is not glued into the prose"
    assert float(match.group(2)) < float(match.group(3)), "an unbiased estimator's z-score exceeds the bound"


def test_widget_state_is_embedded(built_book):
    site, _ = built_book
    page = (site / "notebooks" / "02_centralized_critic_variance.html").read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in page
    assert "application/vnd.jupyter.widget-view+json" in page
