"""Sphinx extension: the ``repo`` role links a file of the course repository on GitHub.

``{repo}`autograder/README.md``` becomes a link to ``<repository url>/blob/<branch>/autograder/README.md``.
The address is the one _config.yml's ``repository:`` section gives (jupyter-book passes it to the
theme as ``repository_url`` and ``repository_branch``), so it is still written in one place only.
Files outside the book (the autograder, the scripts) are not pages of it; this is how the book points
at them.
"""
from __future__ import annotations

from docutils import nodes


def _address(app) -> tuple[str, str]:
    options = app.config.html_theme_options or {}
    url = str(options.get("repository_url", "")).rstrip("/")
    if not url:
        raise ValueError("the repo role needs repository.url in _config.yml")
    return url, str(options.get("repository_branch") or "main")


def repo_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    app = inliner.document.settings.env.app
    url, branch = _address(app)
    path = text.strip().lstrip("/")
    kind = "tree" if path.endswith("/") else "blob"
    node = nodes.reference(rawtext, "", nodes.literal(path, path), refuri=f"{url}/{kind}/{branch}/{path}",
                           classes=["course-repo-link"])
    return [node], []


def _deduplicate_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated <script> entries.

    sphinx-thebe adds its inline configuration (``const THEBE_JS_URL = ...``) once per read of the
    environment, so an incremental build can list it twice, and the second copy is a JavaScript error
    ("Identifier 'THEBE_JS_URL' has already been declared").
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # An inline script's filename is None or "" depending on who added it.
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # in place: the builder renders this very list


def _add_widget_mathjax_shim(app, pagename, templatename, context, doctree):
    """On pages that load MathJax, load book/_static/mathjax-widgets-shim.js right after its configuration."""
    scripts = context.get("script_files") or []
    if any(str((getattr(s, "attributes", {}) or {}).get("body", "")).startswith("window.MathJax") for s in scripts):
        app.add_js_file("mathjax-widgets-shim.js", priority=500)


def setup(app):
    app.add_role("repo", repo_role)
    # Late (priority 900), after every extension that adds scripts to the page.
    app.connect("html-page-context", _deduplicate_scripts, priority=900)
    app.connect("html-page-context", _add_widget_mathjax_shim, priority=901)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
