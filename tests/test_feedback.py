"""Feedback pages and the class summary, as text and as a reader sees them in headless Chromium.

Each page is built from hand-made Results on the fixture assignment (tests/fixtures/grader/source/fx1) with a
fake executed notebook holding hostile content: scripts, event handlers, javascript: links, outside images,
an SVG with a script, a 2 MB markdown cell, a 5 MB output, ``@@grade`` lines, a test cell whose text still
holds its hidden block, names in é/ñ/Cyrillic. Every page is opened from a file:// URL with every request that
is not a file:// one recorded and aborted (Debian's chromium through Playwright, as in test_browser.py).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder.feedback import feedback_html, render_markdown, sanitize, untrusted_markdown, Budget  # noqa: E402
from autograder.rebuild import load_assignment, mark, nbgrader_meta, role  # noqa: E402
from autograder.results import ManualCell, Mark, Result  # noqa: E402
from autograder.results import TestResult as Check  # noqa: E402  (not a pytest class)
from autograder.summary import summary_html  # noqa: E402
import chromium  # noqa: E402  (tests/chromium.py)
from chromium import open_local_page  # noqa: E402

NAME = "José Núñez Иванов"
HIDDEN_BITS = ["BEGIN HIDDEN", "default_rng(7)", "square-random", "mean-seq", "mean-label", "arange(10)"]
PAYLOAD = ('<script>window.pwned = 1</script><img src=x onerror="window.pwned=1">'
           '<a href="javascript:window.pwned=1">js link</a> <a href="https://example.org/ok">fine link</a>'
           '<svg><script>window.pwned=1</script><circle r="5"/></svg><iframe src="https://example.org/"></iframe>'
           '<img src="https://example.org/track.png"><style>body{display:none}</style>'
           '<form action="https://example.org/"><input name=q></form><object data="https://example.org/x"></object>'
           '<link rel=stylesheet href="https://example.org/x.css"><meta http-equiv="refresh" content="0;url=https://example.org/">'
           '<table><thead><tr><th>student th</th></tr></thead><tbody><tr><td>student td</td></tr></tbody></table>'
           '<div style="background:url(https://example.org/bg.png)">styled</div>'
           '<a href=" JaVaScRiPt:window.pwned=1">spaced js</a><a href="jav&#x09;ascript:window.pwned=1">tab js</a>'
           '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">')
INSTRUCTOR_MD = ("# Instructor heading\n\nA paragraph with inline math $x^2$ and\n\n$$\\sum_i \\mu_i$$\n\n"
                 "* item one\n* item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n`code` and **bold**.")
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
BIG_MD = 2_000_000
BIG_OUT = 5_000_000


def stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def labelled(cell, origin, index=None):
    """A cell labelled as the grader labels the notebook it runs (autograder.rebuild.mark)."""
    return mark(cell, origin, index)


@pytest.fixture(scope="module")
def assignment():
    return load_assignment(REPO / "tests" / "fixtures" / "grader" / "source" / "fx1")


def notebook(assignment, answers: dict, outputs: dict, extra_added: list | None = None):
    """The executed notebook as the grader would hand it over: the source's cells (test cells as in the source,
    hidden block included, to prove the page never prints it), the student's answers, an instructor markdown
    cell with headings/lists/tables/math, and added cells."""
    cells = []
    position = 1
    for cell in assignment.source.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        kind = role(cell)
        if kind in ("solution", "manual"):
            c = labelled(cell, "student", position)
            c.source = answers.get(gid, next(r.source for r in assignment.released.cells
                                             if nbgrader_meta(r).get("grade_id") == gid))
        else:
            c = labelled(cell, "source", position if gid else None)
        if c.cell_type == "code":
            c.outputs = outputs.get(gid, [])
            c.execution_count = position
        cells.append(c)
        position += 1
        if gid is None and cell.cell_type == "markdown":
            cells.append(labelled(nbformat.v4.new_markdown_cell(INSTRUCTOR_MD), "source"))
    for i, text in enumerate(extra_added or []):
        cells.append(labelled(nbformat.v4.new_markdown_cell(text), "added", len(assignment.source.cells) + 1 + i))
    nb = nbformat.v4.new_notebook(cells=cells)
    return nb


def hostile_result(assignment) -> Result:
    big_md = ("Lorem *ipsum* $a_1$ [x](http://example.org) <b>b</b> <p onclick=1>p</p>\n\n" * (BIG_MD // 70))[:BIG_MD]
    answers = {
        "square": "from IPython.display import HTML, display\ndisplay(HTML(payload))\ndef square(x):\n    return x * x",
        "mean_reward": "def mean_reward(r):\n    print('x' * 5_000_000)\n    return sum(r) / len(r)",
        "explain": "## My explanation\n\nBy linearity, $E[\\bar x] = \\mu$. "
                   "$\\href{javascript:window.pwned=1}{click me}$ <script>window.pwned=1</script>",
    }
    outputs = {
        "setup": [nbformat.v4.new_output("display_data", data={  # an instructor cell's output is untrusted too
            "text/html": '<h3 onmouseover="window.pwned=1">from setup</h3><script>window.pwned=1</script>'})],
        "square": [stream('@@grade {"id": "square-random", "value": [1, 4]}\nvisible line\n'),
                   nbformat.v4.new_output("display_data", data={"text/html": PAYLOAD, "text/plain": "<HTML>"}),
                   nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})],
        "mean_reward": [stream("y" * BIG_OUT)],
        "test_square": [stream('@@grade {"id": "square-random", "value": 3}\nprinted by the test\n'),
                        nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                               traceback=["\x1b[31mAssertionError\x1b[0m Traceback",
                                                          "Cell In[4], line 3\n rng = np.random.default_rng(7)",
                                                          "AssertionError: "])],
    }
    added = ["## My notes\n\n<script>window.pwned=1</script><p onclick=\"window.pwned=1\">my paragraph</p> "
             "and <img src=x onerror=window.pwned=1> [bad](javascript:window.pwned=1)\n\nMy formula $y^3$.", big_md]
    nb = notebook(assignment, answers, outputs, added)
    return Result(
        student="jnunez", assignment="fx1", name=NAME, lms_id="4711",
        statuses=["exception", "late"], details=["a cell you added (cell 7 of your notebook) raised <b>ValueError</b>"],
        tests=[Check("test_square", 2, 0.0, "failed: AssertionError",
                          failed_line="assert np.allclose(square([1, 2]), [1, 4])"),
               Check("test_mean", 3, 0.0, "hidden checks failed: a check gave a different value")],
        manual=[ManualCell("explain", 2, rubric="SECRET RUBRIC: linearity")],
        auto_max=5, manual_max=2, timestamp="2026-11-30T12:05:00Z", due="2026-11-30T10:00:00Z",
        late_seconds=7500, late_penalty=0.5, notebook=nb,
        marks={"explain": Mark(1.5, "good <b>start</b>, say why", by="marks file")},
        overrides={"test_mean": Mark(3, "the test had a typo <i>sorry</i>", by="override")})


def unanswered_result(assignment) -> Result:
    nb = notebook(assignment, {"mean_reward": "def mean_reward(r):\n    return sum(r) / len(r)"},
                  {"test_square": [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="",
                                                          traceback=["NotImplementedError: "])]})
    return Result(student="olga", assignment="fx1", name="Ольга Ñandú", statuses=["unanswered"],
                  details=["you have not answered square yet"],
                  tests=[Check("test_square", 2, 0.0, "not answered yet"), Check("test_mean", 3, 3.0, "passed")],
                  manual=[ManualCell("explain", 2)], auto_max=5, manual_max=2, notebook=nb)


def missing_result() -> Result:
    return Result(student="bob", assignment="fx1", statuses=["missing"], details=["no notebook for fx1"],
                  tests=[Check("test_square", 2, 0.0, "not graded"), Check("test_mean", 3, 0.0, "not graded")],
                  manual=[ManualCell("explain", 2)], auto_max=5, manual_max=2)


@pytest.fixture(scope="module")
def pages(assignment, tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback")
    results = {"hostile": hostile_result(assignment), "unanswered": unanswered_result(assignment),
               "missing": missing_result()}
    out = {}
    for key, result in results.items():
        text = feedback_html(result, assignment)
        path = folder / f"{key}.html"
        path.write_text(text, encoding="utf-8")
        out[key] = (path, text)
    ok = Result(student="amy", assignment="fx1", name="Amélie", tests=[Check("test_square", 2, 2, "passed"),
                Check("test_mean", 3, 3, "passed")], manual=[ManualCell("explain", 2)], auto_max=5, manual_max=2,
                marks={"explain": Mark(2)})
    evil = Result(student="eve", assignment="fx2", name='<img src=x onerror="window.pwned=1">Eve',
                  statuses=["tampered"], details=["test cell 'test_a' was <b>edited</b>"],
                  tests=[Check("test_a", 1, 0, "failed")], auto_max=1)
    summary = summary_html([*results.values(), ok, evil], {"fx1": assignment})
    path = folder / "summary.html"
    path.write_text(summary, encoding="utf-8")
    out["summary"] = (path, summary)
    return out, results


# ---------------------------------------------------------------- the page as text

def test_feedback_text(pages):
    out, _ = pages
    path, text = out["hostile"]
    for bit in HIDDEN_BITS + ["@@grade {&quot;id&quot;: &quot;", "SECRET RUBRIC"]:
        assert bit not in text, bit
    assert NAME in text
    assert "your answer <code>square</code> (cell 3 of your notebook)" in text
    assert "a cell you added (cell 8 of your notebook)" in text
    assert "assert np.allclose(square([1, 2]), [1, 4])" in text  # the released visible test text
    assert ("✘ test_square: 0 / 2 — failed: AssertionError at <code>assert np.allclose(square([1, 2]), [1, 4])</code>"
            in text)
    assert "✔ test_mean: 3 / 3" in text and "Points set by the instructor: 3 / 3 (the automatic grade was 0)" in text
    assert "the test had a typo &lt;i&gt;sorry&lt;/i&gt;" in text
    assert "Graded by hand: 1.5 / 2 points — good &lt;b&gt;start&lt;/b&gt;, say why" in text
    assert "raised &lt;b&gt;ValueError&lt;/b&gt;" in text
    assert "late: submitted 2 h 5 min after the deadline" in text and "penalty: 0.5 points" in text
    assert "[output cut: " in text and "[cell cut: " in text
    assert "Total</th><td>4 / 7" in text  # 0 + 3 (override) + 1.5 - 0.5
    # nothing the student wrote is live HTML
    body = text.split("<body", 1)[1]
    assert "<script" not in body
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", body, re.I)
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript", body, re.I)
    assert "<iframe" not in body and "<svg" not in body and "<form" not in body and "<style" not in body
    assert "example.org/track.png" not in text and "x.css" not in text
    assert text.count("<script") == 2  # the MathJax configuration and bundle only
    assert len(text.encode()) < 3_000_000, len(text)


def test_unanswered_and_pending(pages):
    out, _ = pages
    _, text = out["unanswered"]
    assert "you have not answered <code>square</code> yet" in text
    assert "NotImplementedError" not in text.split('<main class="notebook">')[0]
    assert '<pre class="out error">NotImplementedError' not in text  # said in words instead
    assert "Graded by hand: up to 2 points (not graded yet)" in text
    assert "This total is not final: 1 cell is still to be graded by hand (<code>explain</code>)" in text
    assert "Ольга Ñandú" in text
    _, text = out["missing"]
    assert "missing" in text and "no notebook for fx1" in text and "could not be run" in text
    assert "<script" not in text  # no math on this page: no MathJax


@pytest.mark.parametrize("status, words", [
    ("timeout", "ran too long"), ("memory", "out of memory"), ("kernel died", "kernel stopped"),
    ("tampered", "original cells ran instead"), ("misnamed", "another name"), ("missing", "no notebook was found"),
    ("exception", "raised an error"), ("invalid json", "not a readable notebook")])
def test_status_in_plain_words(assignment, status, words):
    result = missing_result()
    result.statuses = [status]
    text = feedback_html(result, assignment)
    assert f"<strong>{status}</strong>: " in text and words in text


def test_no_automatic_points_and_zero_point_tests(assignment):
    """An assignment without autograded tests says so (never "0 / 0"); a test worth 0 points is a pass only
    when it passed (0 >= 0 is not a pass), on the page and in the summary's pass rate."""
    hand_only = Result(student="hana", assignment="fx1", manual=[ManualCell("explain", 2)], auto_max=0,
                       manual_max=2, marks={"explain": Mark(2)})
    text = feedback_html(hand_only, assignment)
    assert "none in this exercise (every point is given by hand)" in text and "0 / 0" not in text
    assert "<th>Total</th><td>2 / 2</td>" in text
    failed = Result(student="zed", assignment="fx1", tests=[Check("test_square", 0, 0.0, "failed: AssertionError")],
                    manual=[ManualCell("explain", 2)], manual_max=2)
    passed = Result(student="pia", assignment="fx1", tests=[Check("test_square", 0, 0.0, "passed")],
                    manual=[ManualCell("explain", 2)], manual_max=2)
    failed_page, passed_page = feedback_html(failed, assignment), feedback_html(passed, assignment)
    assert "<td>✘ <code>test_square</code></td>" in failed_page and "✔ <code>test_square</code>" not in failed_page
    assert "<td>✔ <code>test_square</code></td>" in passed_page
    assert "<th>Automatic points</th><td>0 / 0</td>" in failed_page  # a 0-point test exists: the score is shown
    summary = summary_html([failed, passed, hand_only], {})
    assert "<td>1 / 2</td><td>50%" in summary
    assert "every point is given by hand" not in summary
    assert "every point is given by hand" in summary_html([hand_only], {})


def test_sanitize_allow_list():
    cases = {
        '<p onclick="x()">a</p>': "<p>a</p>",
        "<script>alert(1)</script>b": "b",
        '<a href="javascript:alert(1)">j</a>': "<a>j</a>",
        '<a href="https://e.org/?a=1&amp;b=2" target=_blank>o</a>':
            '<a href="https://e.org/?a=1&amp;b=2" rel="noopener noreferrer nofollow">o</a>',
        '<img src="data:image/png;base64,iVBORw0KGgo=" onerror=x>': '<img src="data:image/png;base64,iVBORw0KGgo=">',
        '<img src="data:image/svg+xml;base64,AAAA">': "",
        "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>d</td></tr></tbody></table>":
            "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>d</td></tr></tbody></table>",
        "<b><i>x</b>": "<b><i>x</i></b>",
        "a < b > c &amp; d": "a &lt; b &gt; c &amp; d",
        "<!-- <script>x</script> -->ok": "ok",
        "<svg onload=x><circle/></svg>t": "t",
        "<h1 id=MathJax>t</h1>": "<h1>t</h1>",
        '<span class="math inline">\\(x\\)</span>': '<span class="math inline">\\(x\\)</span>',
        '<span class="evil">x</span>': "<span>x</span>",
        "<scr<script>ipt>alert(1)</script>": "&lt;scr",
    }
    for given, expected in cases.items():
        assert sanitize(given) == expected, (given, sanitize(given))


@pytest.mark.parametrize("unit", ["*a ", "_a ", "[", "![a](", "$a ", "`a ", "<a ", "&#", "> ", "- "])
def test_untrusted_markdown_bounded(unit):
    """Over the page's budget the rest is plain text; within it, rendered (the time each takes, and how it grows
    with the input, is measured by benchmarks/bench_feedback.py, not asserted here)."""
    over = untrusted_markdown(unit * (2_000_000 // len(unit)), Budget())
    untrusted_markdown(unit * (200_000 // len(unit)), Budget())
    assert over.startswith('<pre class="plain">') and "<script" not in over


def test_render_time_2mb_markdown_1mb_output(assignment):
    result = unanswered_result(assignment)
    result.notebook.cells.append(labelled(nbformat.v4.new_markdown_cell("Lorem *ipsum* $a$ [x](y)\n\n" * 80_000), "added", 9))
    square = next(c for c in result.notebook.cells if nbgrader_meta(c).get("grade_id") == "square")
    square.outputs = [stream("z" * 1_000_000)]
    text = feedback_html(result, assignment)
    assert "[output cut:" in text and "[cell cut:" in text


def test_many_cells_and_outputs_bounded(assignment):
    """10^5 added cells, 10^5 outputs: the page stays bounded."""
    result = unanswered_result(assignment)
    square = next(c for c in result.notebook.cells if nbgrader_meta(c).get("grade_id") == "square")
    square.outputs = [stream("line <&>\n" * 3)] * 100_000
    result.notebook.cells += [labelled(nbformat.v4.new_code_cell("x = '<<<<<<<<'"), "added", 9)] * 100_000
    text = feedback_html(result, assignment)
    assert len(text.encode()) < 4_000_000
    assert "more of your cells not shown" in text and "further output not shown" in text


def test_trusted_markdown_renders():
    rendered = render_markdown(INSTRUCTOR_MD)
    for tag in ("<h1>", "<ul>", "<table>", "<thead>", "<code>", "<strong>", 'class="math inline"', 'class="math block"'):
        assert tag in rendered, tag


def test_summary_text(pages):
    out, _ = pages
    _, text = out["summary"]
    assert '&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;Eve' in text
    assert "<b>edited</b>" not in text
    assert "<script" not in text
    for needle in ("Who needs attention", "Ольга Ñandú", NAME, "late by 2 h 5 min", "to grade by hand: explain",
                   "<svg class=\"histogram\"", "test_square", "1 / 4"):
        assert needle in text, needle
    attention = text.split("Who needs attention", 1)[1].split("</section>", 1)[0]
    assert "Amélie" not in attention  # ok, on time, fully graded


# ---------------------------------------------------------------- the pages in Chromium

@pytest.fixture(scope="module")
def browser():
    with chromium.launch() as launched:
        yield launched


def open_page(browser, path: Path, math: bool):
    context, page, outside, errors = open_local_page(browser, path)
    if math:
        page.wait_for_selector("html[data-mathjax=done]", state="attached", timeout=30_000)
    return context, page, outside, errors


def common_checks(page, outside, errors):
    assert outside == []
    assert errors == []
    assert page.evaluate("window.pwned") is None
    text = page.inner_text("body")
    for raw in ("<p>", "<h1", "$x^2$", "<thead>", "<script"):
        assert raw not in text, raw
    assert page.locator("[onerror], [onclick], [onload], iframe, form, object, embed, svg script").count() == 0
    assert page.locator('a[href]:not([href^="https:"]):not([href^="http:"]):not([href^="mailto:"])').count() == 0
    assert page.locator('img:not([src^="data:image/png"]):not([src^="data:image/jpeg"]):not([src^="data:image/gif"])').count() == 0
    return text


def test_feedback_in_browser(browser, pages):
    out, _ = pages
    path, _ = out["hostile"]
    context, page, outside, errors = open_page(browser, path, math=True)
    try:
        text = common_checks(page, outside, errors)
        assert page.locator("h1", has_text="Instructor heading").count() == 1
        assert page.locator("h1", has_text="Fixture assignment").count() == 1
        assert page.locator("h2", has_text="My notes").count() == 1  # the student's heading, sanitized
        assert page.locator("h2", has_text="My explanation").count() == 1
        assert page.locator("table thead th", has_text="student th").count() == 1
        assert page.locator("h3", has_text="from setup").count() == 1
        assert page.locator("li", has_text="item two").count() == 1
        assert page.locator("mjx-container").count() >= 4  # $x^2$, $$\sum$$, the student's $y^3$, ...
        assert page.locator("mjx-container a").count() == 0  # \href shown as text
        assert page.locator("section.yours mjx-container").count() >= 2  # the student's own $y^3$ and $E[\bar x]$
        assert page.locator("section.yours img[src^='data:image/png']").count() == 1  # a plot the student drew
        assert page.evaluate("document.querySelector(\"section.yours img[src^='data:image/png']\").naturalWidth") == 1
        assert page.locator('a[href="https://example.org/ok"]').count() == 1
        assert NAME in text
        for bit in HIDDEN_BITS + ['@@grade {"id": "']:
            assert bit not in text, bit
        assert page.evaluate("document.fonts.check('16px MJXTEX')")
    finally:
        context.close()


def test_unanswered_and_missing_in_browser(browser, pages):
    out, _ = pages
    for key, math in (("unanswered", True), ("missing", False)):
        context, page, outside, errors = open_page(browser, out[key][0], math=math)
        try:
            text = common_checks(page, outside, errors)
            assert page.locator("h1").count() >= 1
            if key == "unanswered":
                assert "you have not answered square yet" in text
                assert "Ольга Ñandú" in text
                assert page.locator("mjx-container").count() >= 1
        finally:
            context.close()


def test_summary_in_browser(browser, pages):
    out, _ = pages
    context, page, outside, errors = open_page(browser, out["summary"][0], math=False)
    try:
        text = common_checks(page, outside, errors)
        assert page.locator("h1", has_text="Class summary").count() == 1
        assert page.locator("svg.histogram rect").count() == 20  # fx1 and fx2, 10 bins each
        assert '<img src=x onerror="window.pwned=1">Eve' in text  # shown as text, not as an element
        assert NAME in text and "Ольга Ñandú" in text
    finally:
        context.close()


def test_without_vendored_mathjax(assignment, monkeypatch):
    """Installed without the book (no vendored MathJax): the page still renders, formulas as TeX text."""
    import autograder.feedback as feedback
    monkeypatch.setattr(feedback, "MATHJAX_DIR", Path("/nonexistent/mathjax"))
    text = feedback_html(unanswered_result(assignment), assignment)
    assert "<script" not in text and "\\(x^2\\)" in text and "Instructor heading" in text


def test_hidden_blocks_never_printed(assignment):
    """A test cell the released notebook does not know is not printed at all; an instructor cell without a
    grade id loses any hidden block it still holds."""
    result = unanswered_result(assignment)
    test = next(c for c in result.notebook.cells if nbgrader_meta(c).get("grade_id") == "test_square")
    test.metadata["nbgrader"]["grade_id"] = "test_renamed"
    plain = labelled(nbformat.v4.new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nsecret_input = 42\n"
                                               "### END HIDDEN TESTS\ny = 2"), "source")
    result.notebook.cells.append(plain)
    text = feedback_html(result, assignment)
    assert "default_rng" not in text and "secret_input" not in text and "BEGIN HIDDEN" not in text
    assert "(the text of this test is not shown)" in text and "y = 2" in text
