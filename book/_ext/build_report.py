"""Sphinx extension: the build report's table of execution times, with the course's time limit.

``{course-exec-table}`` with the option ``:limit: 180`` is MyST-NB's ``{nb-exec-table}`` with one change: a
notebook that ran longer than the limit is marked as such (status "over the limit", the row classed
``course-over-limit``) instead of getting the same green tick as one that ran in time. A notebook that failed
is marked failed, with its error. The limit is the one scripts/build_book.sh passes to
scripts/notebook_times.py (tests/test_book.py checks that the two agree).
"""
from __future__ import annotations

import posixpath
from datetime import datetime

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.addnodes import pending_xref
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from myst_nb.ext.execution_tables import METADATA_KEY
from myst_nb.sphinx_ import NbMetadataCollector

HEADERS = ("Document", "Modified", "Method", "Run time (s)", "Status")


class CourseExecTableNode(nodes.General, nodes.Element):
    """Placeholder, replaced once every notebook has been executed."""


class CourseExecTable(SphinxDirective):
    option_spec = {"limit": directives.positive_int}

    def run(self):
        if "limit" not in self.options:
            raise self.error("course-exec-table needs :limit: SECONDS (the course's limit per notebook)")
        # Marked like MyST-NB's own table, so that the page is rewritten whenever a notebook is re-executed.
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, METADATA_KEY, True)
        return [CourseExecTableNode(limit=self.options["limit"])]


def status(data: dict, limit: float) -> tuple[str, str]:
    """(text, css class) for one notebook's execution record."""
    if data.get("succeeded") is not True:
        return "✗ failed", "course-failed"
    runtime = data.get("runtime")
    if runtime is None:
        return "- not timed", "course-not-timed"
    if runtime > limit:
        return f"⚠ over the {limit:g} s limit", "course-over-limit"
    return f"✓ within {limit:g} s", "course-within-limit"


def _text_entry(text: str) -> nodes.entry:
    return nodes.entry("", nodes.paragraph(text=text))


def table(parent_docname: str, metadata: dict, limit: float) -> nodes.table:
    rows = [(docname, metadata[docname]["exec_data"]) for docname in sorted(metadata)
            if metadata[docname].get("exec_data")]
    table_node = nodes.table(classes=["colwidths-auto", "course-exec-table"])
    group = nodes.tgroup(cols=len(HEADERS))
    table_node += group
    for _ in HEADERS:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += nodes.row("", *[_text_entry(h) for h in HEADERS])
    body = nodes.tbody()
    group += body
    for docname, data in rows:
        text, css = status(data, limit)
        link = pending_xref(refdoc=parent_docname, refdomain="std", reftype="doc", refexplicit=True, refwarn=True,
                            reftarget=posixpath.relpath(docname, posixpath.dirname(parent_docname)),
                            classes=["xref", "doc"])
        link += nodes.inline(text=docname)
        mtime = data.get("mtime")
        runtime = data.get("runtime")
        status_paragraph = nodes.paragraph()
        if css == "course-failed" and data.get("error"):
            status_paragraph += nodes.abbreviation(text=text, explanation=str(data["error"]))
        else:
            status_paragraph += nodes.Text(text)
        body += nodes.row(
            "",
            nodes.entry("", nodes.paragraph("", "", link)),
            _text_entry(datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M") if mtime else ""),
            _text_entry(str(data.get("method", ""))),
            _text_entry("-" if runtime is None else f"{runtime:.1f}"),
            nodes.entry("", status_paragraph),
            classes=[css],
        )
    return table_node


class CourseExecTableTransform(SphinxPostTransform):
    default_priority = 8  # before the references are resolved, as MyST-NB's own table

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(CourseExecTableNode)):
            node.replace_self(table(self.env.docname, NbMetadataCollector.get_doc_data(self.env), node["limit"]))


def setup(app):
    app.add_node(CourseExecTableNode)
    app.add_directive("course-exec-table", CourseExecTable)
    app.add_post_transform(CourseExecTableTransform)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
