"""Sphinx extension: nbgrader's region markers shown as labelled blocks instead of headings and comments.

nbgrader marks a solution with ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` and a hidden test with
``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``. Rendered as written, a marker in a Markdown cell is a
third-level heading (two large headings around every model answer, listed in the page's contents) and in a
code cell a comment that looks like any other. This extension

* in Markdown cells (``source-read``, before MyST parses the notebook): replaces each marked region by a
  ``container`` block with the classes ``nbgrader-region nbgrader-solution`` (or ``nbgrader-hidden-tests``)
  whose first paragraph is its label;
* in code cells (``html-page-context``, on the highlighted HTML): wraps each marked region, markers included,
  in ``<span class="nbgrader-code-region ...">`` and gives the two marker comments the class
  ``nbgrader-marker``, so that book/_static/course.css draws the region as a block with labelled edges.

Only the display changes: code cells are executed as written, and the notebooks on disk are not touched.
"""
from __future__ import annotations

import re

import nbformat

KINDS = {"SOLUTION": ("nbgrader-solution", "Solution"), "HIDDEN TESTS": ("nbgrader-hidden-tests", "Hidden tests")}

MARKDOWN_REGION = re.compile(
    r"^[ \t]*#{1,6}[ \t]*BEGIN (?P<kind>SOLUTION|HIDDEN TESTS)[ \t]*\n(?P<body>.*?)^[ \t]*#{1,6}[ \t]*END (?P=kind)[ \t]*$\n?",
    re.M | re.S,
)

# Pygments' HTML: a marker is one comment token on its own line, after optional indentation that is either
# plain text or a whitespace token. ``start`` is the newline or <pre> before the line, kept in place.
CODE_REGION = re.compile(
    r'(?P<start>\n|<pre>)(?P<indent>(?:<span class="w">[ \t]*</span>)|[ \t]*)'
    r'<span class="c1">### BEGIN (?P<kind>SOLUTION|HIDDEN TESTS)</span>'
    r'(?P<body>(?:(?!<span class="c1">### BEGIN ).)*?)'
    r'(?P<end_indent>(?:<span class="w">[ \t]*</span>)|[ \t]*)<span class="c1">### END (?P=kind)</span>(?P<newline>\n?)',
    re.S,
)


def markdown_blocks(source: str) -> str:
    """A Markdown cell's source with every marked region as a labelled MyST container."""
    def block(match: re.Match) -> str:
        css, label = KINDS[match["kind"]]
        body = match["body"].rstrip("\n")
        return f"::::::{{container}} nbgrader-region {css}\n{label}\n\n{body}\n::::::\n"

    return MARKDOWN_REGION.sub(block, source)


def code_blocks(html: str) -> str:
    """Highlighted HTML with every marked region of a code cell wrapped and its markers labelled."""
    def block(match: re.Match) -> str:
        css, _ = KINDS[match["kind"]]
        kind = match["kind"]
        return (f'{match["start"]}<span class="nbgrader-code-region {css}">{match["indent"]}'
                f'<span class="c1 nbgrader-marker {css}">### BEGIN {kind}</span>{match["body"]}'
                f'{match["end_indent"]}<span class="c1 nbgrader-marker {css}">### END {kind}</span>'
                f'{match["newline"]}</span>')

    return CODE_REGION.sub(block, html)


def _notebook_markdown(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".ipynb") or "BEGIN " not in source[0]:
        return
    notebook = nbformat.reads(source[0], as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            new = markdown_blocks(cell.source)
            changed |= new != cell.source
            cell.source = new
    if changed:
        source[0] = nbformat.writes(notebook)


def _code_regions(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and "### BEGIN " in body:
        context["body"] = code_blocks(body)


def setup(app):
    app.connect("source-read", _notebook_markdown)
    app.connect("html-page-context", _code_regions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
