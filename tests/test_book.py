"""The book builds with warnings as errors, and its pages carry the numbers the notebooks computed.

The build (tests/book_build.py) runs ``jupyter-book build . -W -n --keep-going`` once per session
with ``--path-output`` pointing at a temporary directory, so it starts from an empty execution cache
(every notebook is executed) and never touches the repository's own ``_build``. Training chapters run
at ``MARLPG_BUDGET=smoke``: the full budgets are the README's build command and the benchmark scripts.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml

from book_build import REPO, instructor_build


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
def built_book():
    build = instructor_build()  # one build per session, shared with test_browser and test_student_edition
    assert build.returncode == 0, build.failure()
    assert "build succeeded" in build.log, build.log[-4000:]
    return build.site, build.log


def test_config_and_toc():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["title"] == "Policy Gradient Methods in MARL"
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"]["timeout"] > 0
    assert {"dollarmath", "amsmath"} <= set(config["parse"]["myst_enable_extensions"])
    for pattern in ("README.md", "autograder", "tests", "benchmarks", "src", ".venv", "_build", "scripts"):
        assert pattern in config["exclude_patterns"], pattern
    # The handed-out exercises are shown as written, never executed; the instructors' solutions are executed.
    assert "notebooks/exercises/*/*.ipynb" in config["execute"]["exclude_patterns"]
    assert "solutions/*/*.ipynb" not in config["execute"]["exclude_patterns"]
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


def test_every_part_of_the_section_has_a_page(built_book):
    site, _ = built_book
    pages = {
        "notebooks/01_multi_agent_policy_gradient": "The multi-agent policy gradient",
        "notebooks/02_centralized_critic_variance": "How much variance does a centralized critic remove?",
        "book/algorithms": "MADDPG, COMA and MAPPO",
        "book/parameter_sharing": "Parameter sharing across homogeneous agents",
        "book/scaling": "Scaling across a cluster",
        "book/frontier": "The research frontier",
        "book/exercises": "Exercises",
        "book/student_guide": "Student guide",
        "book/instructor_guide": "Instructor guide",
        "book/bibliography": "Bibliography",
    }
    for stem, title in pages.items():
        assert title in page_text(site / f"{stem}.html"), f"{stem}: title {title!r} missing"


def test_table_30_7_1_is_a_table_linking_to_the_notebooks(built_book):
    site, _ = built_book
    raw = (site / "book" / "algorithms.html").read_text(encoding="utf-8")
    table = re.search(r"<table.*?</table>", raw, re.S)
    assert table, "Table 30.7.1 is not an HTML table"
    rows = re.findall(r"<tr.*?</tr>", table.group(0), re.S)
    assert len(rows) == 4, "a header and one row per method"
    text = page_text_of(table.group(0))
    for method in ("MADDPG", "COMA", "MAPPO"):
        assert method in text
    assert 'href="../notebooks/05_mappo.html"' in table.group(0)
    in_toc = toc_files(yaml.safe_load((REPO / "_toc.yml").read_text()))
    for notebook in ("03_maddpg", "04_coma"):
        if f"notebooks/{notebook}" in in_toc:  # a chapter of the book: the table must link it
            assert f'href="../notebooks/{notebook}.html"' in table.group(0), f"Table 30.7.1 does not link {notebook}"


def page_text_of(raw: str) -> str:
    raw = re.sub(r"<[^>]+>", " ", raw)
    return re.sub(r"\s+", " ", html.unescape(raw))


def test_bibliography_has_the_papers_and_citations_link_to_it(built_book):
    site, _ = built_book
    bibliography = page_text(site / "book" / "bibliography.html").lower()  # the style sets titles in sentence case
    for needle in (
        "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments",  # MADDPG
        "Counterfactual Multi-Agent Policy Gradients",  # COMA
        "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games",  # MAPPO
        "Benchmarking Multi-Agent Deep Reinforcement Learning Algorithms in Cooperative Tasks",  # EPyMARL
        "VMAS: A Vectorized Multi-Agent Simulator for Collective Robot Learning",
        "RLlib: Abstractions for Distributed Reinforcement Learning",
        "MARLlib: A Scalable and Efficient Multi-agent Reinforcement Learning Library",
    ):
        assert needle.lower() in bibliography, f"{needle!r} missing from the bibliography"
    algorithms = (site / "book" / "algorithms.html").read_text(encoding="utf-8")
    assert re.search(r'href="bibliography\.html#id\d+"', algorithms), "citations do not link to the bibliography"
    assert "Lowe" in page_text(site / "book" / "algorithms.html")


def test_prose_pages_glue_numbers_from_the_notebooks(built_book):
    site, _ = built_book
    frontier = page_text(site / "book" / "frontier.html")
    assert re.search(r"was\s+4\.44\s*, and to the joint-action critic", frontier), "frontier: ratio not glued"
    scaling = page_text(site / "book" / "scaling.html")
    assert re.search(r"rollout took\s+\d+\.\d\s+s", scaling), "scaling: timing not glued from chapter 06"


def test_repository_address_is_written_once(built_book):
    import yaml as _yaml

    repository = _yaml.safe_load((REPO / "_config.yml").read_text())["repository"]
    url, branch = repository["url"], repository["branch"]
    for page in (REPO / "book").rglob("*.md"):
        assert url not in page.read_text(encoding="utf-8"), f"{page} repeats the repository address"
    site, _ = built_book
    guide = (site / "book" / "instructor_guide.html").read_text(encoding="utf-8")
    assert f'href="{url}/blob/{branch}/autograder/README.md"' in guide, "the instructor guide does not link autograder/README.md"


def notebook_seconds(log: str) -> dict:
    """Each executed notebook's time, from myst-nb's 'Executed notebook in X seconds' lines."""
    times = {}
    for path, seconds in re.findall(r"(\S+\.ipynb): Executed notebook in ([0-9.]+) seconds", log):
        times[Path(path).name] = float(seconds)
    return times


def test_each_notebook_is_timed_and_reported(built_book):
    # How long they take is measured by the build (scripts/build_book.sh), not asserted here.
    site, log = built_book
    times = notebook_seconds(log)
    in_toc = toc_files(yaml.safe_load((REPO / "_toc.yml").read_text()))
    chapters = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb") if f"notebooks/{p.stem}" in in_toc)
    assert len(chapters) >= 4
    assert set(chapters) <= set(times), f"not executed: {set(chapters) - set(times)}"
    report = page_text(site / "book" / "build_report.html")
    for name in chapters:
        assert Path(name).stem in report, f"{name} missing from the build report"


def test_static_sweep_is_embedded(built_book):
    site, _ = built_book
    raw = (site / "notebooks" / "02_centralized_critic_variance.html").read_text(encoding="utf-8")
    assert raw.count('class="marlpg-sweep"') == 1
    assert 'class="marlpg-sweep-data"' in raw and "input.marlpg-sweep-agents" in raw


# ----------------------------------------------------------------------------- the build report and its limit

def _extension(name: str):
    import importlib
    import sys
    sys.path.insert(0, str(REPO / "book" / "_ext"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "book" / "_ext"))


def test_build_report_marks_a_notebook_over_the_limit():
    report = _extension("build_report")
    assert report.status({"succeeded": True, "runtime": 179.9}, 180) == ("✓ within 180 s", "course-within-limit")
    assert report.status({"succeeded": True, "runtime": 180.0}, 180) == ("✓ within 180 s", "course-within-limit")
    assert report.status({"succeeded": True, "runtime": 250.4}, 180) == ("⚠ over the 180 s limit", "course-over-limit")
    assert report.status({"succeeded": False, "runtime": 3.0, "error": "boom"}, 180)[1] == "course-failed"
    assert report.status({"succeeded": True, "runtime": None}, 180)[1] == "course-not-timed"
    metadata = {
        "notebooks/a": {"exec_data": {"succeeded": True, "runtime": 12.0, "mtime": 0, "method": "cache"}},
        "notebooks/b": {"exec_data": {"succeeded": True, "runtime": 312.5, "mtime": 0, "method": "cache"}},
        "book/intro": {},  # not a notebook: no row
    }
    rows = list(report.table("book/build_report", metadata, 180).findall(lambda n: n.tagname == "row"))[1:]
    assert [r["classes"] for r in rows] == [["course-within-limit"], ["course-over-limit"]]
    assert "312.5" in rows[1].astext() and "over the 180 s limit" in rows[1].astext()


def test_the_limit_is_the_same_in_the_report_the_script_and_the_docs():
    report_page = (REPO / "book" / "build_report.md").read_text(encoding="utf-8")
    limits = set(re.findall(r":limit: (\d+)", report_page))
    script = (REPO / "scripts" / "build_book.sh").read_text(encoding="utf-8")
    assert limits == set(re.findall(r"notebook_times.py .*--limit (\d+)", script)) == {"180"}
    # The build warns over the limit; MARLPG_STRICT_TIMES=1 makes it fatal. Every page that describes it says so.
    assert 'MARLPG_STRICT_TIMES:-0}" = 1' in script
    for path in ("README.md", "book/instructor_guide.md", "book/build_report.md"):
        text = re.sub(r"\s+", " ", (REPO / path).read_text(encoding="utf-8"))
        assert "MARLPG_STRICT_TIMES=1" in text, f"{path} does not say how to make the limit fatal"
        assert "warn" in text, f"{path} does not say that the build only warns"
        assert not re.search(r"build(?: \w+)? fails (?:when|if) (?:one|a notebook) takes longer", text), path


def test_build_report_page_shows_each_status(built_book):
    site, _ = built_book
    raw = (site / "book" / "build_report.html").read_text(encoding="utf-8")
    assert "course-exec-table" in raw
    statuses = re.findall(r'<tr class="[^"]*\b(course-[a-z-]+)', raw)
    assert statuses and set(statuses) <= {"course-within-limit", "course-over-limit"}, statuses


# ----------------------------------------------------------------------------- nbgrader's markers

def test_markdown_markers_become_labelled_blocks():
    markers = _extension("nbgrader_markers")
    source = "Intro.\n\n### BEGIN SOLUTION\n**Model answer.** It grows.\n\n- a\n### END SOLUTION\nAfter."
    assert markers.markdown_blocks(source) == (
        "Intro.\n\n::::::{container} nbgrader-region nbgrader-solution\nSolution\n\n"
        "**Model answer.** It grows.\n\n- a\n::::::\nAfter."
    )
    hidden = "### BEGIN HIDDEN TESTS\nsecret\n### END HIDDEN TESTS"
    assert markers.markdown_blocks(hidden).startswith("::::::{container} nbgrader-region nbgrader-hidden-tests\nHidden tests")
    assert markers.markdown_blocks("### BEGIN SOLUTION\nno end") == "### BEGIN SOLUTION\nno end"  # unclosed: left alone


def test_code_markers_become_a_wrapped_region():
    markers = _extension("nbgrader_markers")
    html_in = ('<pre><span></span><span class="k">def</span> <span class="nf">f</span>():\n'
               '    <span class="c1">### BEGIN SOLUTION</span>\n'
               '    <span class="k">return</span> <span class="mi">1</span>\n'
               '    <span class="c1">### END SOLUTION</span>\n'
               '<span class="n">x</span>\n</pre>')
    out = markers.code_blocks(html_in)
    assert out == ('<pre><span></span><span class="k">def</span> <span class="nf">f</span>():\n'
                   '<span class="nbgrader-code-region nbgrader-solution">    '
                   '<span class="c1 nbgrader-marker nbgrader-solution">### BEGIN SOLUTION</span>\n'
                   '    <span class="k">return</span> <span class="mi">1</span>\n'
                   '    <span class="c1 nbgrader-marker nbgrader-solution">### END SOLUTION</span>\n</span>'
                   '<span class="n">x</span>\n</pre>')
    # Text other than the marker on the line (a comment that mentions it) is not a marker.
    mention = '<pre><span class="c1"># see ### BEGIN SOLUTION</span>\n</pre>'
    assert markers.code_blocks(mention) == mention


def test_solution_pages_show_markers_as_blocks_and_are_executed(built_book):
    site, _ = built_book
    for assignment in ("ex30_7_1", "ex30_7_2", "ex30_7_3"):
        page = site / "solutions" / assignment / f"{assignment}.html"
        raw = page.read_text(encoding="utf-8")
        # No marker is a heading (or an entry of the page's contents) any more.
        assert not re.search(r"<h\d[^>]*>\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)", raw), assignment
        assert 'href="#begin-solution"' not in raw
        assert "nbgrader-region nbgrader-solution" in raw or 'class="nbgrader-code-region nbgrader-solution"' in raw
        # Executed: the reference solution's reports (30.7.1, without autograded tests: its recorded predictions)
        # are on the page.
        printed = "recorded prediction for (a): grows" if assignment == "ex30_7_1" else "@@grade"
        assert printed in page_text(page), f"{assignment}: the solution page has no outputs"
    raw = (site / "solutions" / "ex30_7_2" / "ex30_7_2.html").read_text(encoding="utf-8")
    assert 'class="nbgrader-code-region nbgrader-hidden-tests"' in raw
