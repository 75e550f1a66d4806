"""The built book as a reader sees it: every page opened in headless Chromium.

Debian's ``chromium`` (installed by scripts/setup_env.sh) is driven by Playwright through
``executable_path``; Playwright downloads no browser. The book is served from 127.0.0.1, and any
request to another host is blocked and reported: the book must work with no network.

For every page of the built book: no JavaScript error, no console error, no request leaving the
machine, every formula typeset by MathJax without a TeX error, every image loaded. On every notebook
page the launch buttons point at the Colab, JupyterHub and Binder addresses that _config.yml implies.
In the variance chapter, the precomputed sweep redraws when its sliders move, with the numbers the
build computed, and the embedded ipywidgets render. Internal links (href and src) resolve to files and
anchors that exist.
"""
from __future__ import annotations

import functools
import html
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from book_build import REPO, instructor_build
import chromium  # tests/chromium.py
from test_book import toc_files

VARIANCE_PAGE = "notebooks/02_centralized_critic_variance.html"


@pytest.fixture(scope="module")
def site() -> Path:
    build = instructor_build()
    assert build.returncode == 0, build.failure()
    return build.site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with chromium.launch() as launched:
        yield launched


def book_pages(site: Path) -> list[str]:
    """Every HTML page of the book, relative to the site root."""
    skip = {"_static", "_sources", "_images", "jupyter_execute"}
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if not skip & set(p.relative_to(site).parts))


@dataclass
class PageReport:
    page: str
    errors: list = field(default_factory=list)  # uncaught JavaScript exceptions
    console: list = field(default_factory=list)  # console messages of type error
    offline: list = field(default_factory=list)  # requests to any host but the local server
    failed: list = field(default_factory=list)  # local requests that failed
    math: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    launch: list = field(default_factory=list)
    widgets: int = 0
    widget_images: int = 0  # figures inside embedded Output widgets


MATH_PROBE = """() => {
  const formulas = Array.from(document.querySelectorAll('.math'));
  return {
    formulas: formulas.length,
    typeset: formulas.filter(f => f.querySelector('mjx-container')).length,
    tex_errors: document.querySelectorAll('mjx-merror').length,
    mathjax: !!(window.MathJax && window.MathJax.version),
  };
}"""

IMAGE_PROBE = """() => {
  const images = Array.from(document.images);
  return {
    count: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
  };
}"""


def visit(browser, server: str, page_path: str) -> PageReport:
    report = PageReport(page_path)
    context = browser.new_context()
    local = urlsplit(server).netloc

    def route(r):
        if urlsplit(r.request.url).netloc == local or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            report.offline.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    context.set_default_timeout(120_000)  # the machine's two cores may be busy with the build
    page = context.new_page()
    page.on("pageerror", lambda error: report.errors.append(str(error)))
    page.on("console", lambda message: report.console.append(message.text) if message.type == "error" else None)
    page.on("requestfailed", lambda request: report.failed.append(request.url)
            if urlsplit(request.url).netloc == local else None)
    page.on("response", lambda response: report.failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    if page.evaluate("() => !!(window.MathJax && window.MathJax.startup)"):
        page.evaluate("() => window.MathJax.startup.promise")
    report.math = page.evaluate(MATH_PROBE)
    report.images = page.evaluate(IMAGE_PROBE)
    report.launch = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    report.widgets = page.evaluate("() => document.querySelectorAll('.jupyter-widgets').length")
    report.widget_images = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jupyter-widgets img')).filter(i => i.naturalWidth > 0).length")
    context.close()
    return report


@pytest.fixture(scope="module")
def reports(site, server, browser) -> dict:
    return {page: visit(browser, server, page) for page in book_pages(site)}


def test_every_toc_page_is_visited(site, reports):
    for entry in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text())):
        stem = re.sub(r"\.(md|ipynb)$", "", entry)
        page = "index.html" if entry == "book/intro" and stem + ".html" not in reports else f"{stem}.html"
        assert page in reports, f"{entry} has no page among {sorted(reports)}"
    assert len(reports) >= 10


def test_no_javascript_errors(reports):
    problems = {p: r.errors + r.console for p, r in reports.items() if r.errors or r.console}
    assert not problems, f"JavaScript errors: {json.dumps(problems, indent=1)[:4000]}"


def test_the_book_needs_no_network(reports):
    problems = {p: sorted(set(r.offline)) for p, r in reports.items() if r.offline}
    assert not problems, f"pages request other hosts: {json.dumps(problems, indent=1)[:4000]}"
    failed = {p: r.failed for p, r in reports.items() if r.failed}
    assert not failed, f"local requests failed: {json.dumps(failed, indent=1)[:4000]}"


def test_math_is_rendered(site, reports):
    with_math = {p: r.math for p, r in reports.items() if r.math["formulas"]}
    for required in ("notebooks/01_multi_agent_policy_gradient.html", VARIANCE_PAGE, "book/algorithms.html"):
        assert with_math.get(required, {}).get("formulas", 0) > 5, f"{required}: no formulas found"
    for page, math in with_math.items():
        assert math["mathjax"], f"{page}: MathJax did not load"
        assert math["typeset"] == math["formulas"], f"{page}: {math['formulas'] - math['typeset']} formulas left untypeset"
        assert math["tex_errors"] == 0, f"{page}: {math['tex_errors']} TeX errors"


def test_images_are_loaded(reports):
    for page, images in ((p, r.images) for p, r in reports.items()):
        assert not images["broken"], f"{page}: images that did not load: {images['broken']}"
    for page in ("notebooks/01_multi_agent_policy_gradient.html", VARIANCE_PAGE):
        assert reports[page].images["count"] >= 2, f"{page}: expected the chapter's figures"


def expected_launch_links(notebook: str) -> dict:
    """The launch addresses _config.yml implies for a notebook path relative to the repository."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url, branch = config["repository"]["url"].rstrip("/"), config["repository"]["branch"]
    org, repo = urlsplit(url).path.strip("/").split("/")[:2]
    buttons = config["launch_buttons"]
    return {
        "colab": f"{buttons['colab_url'].rstrip('/')}/github/{org}/{repo}/blob/{branch}/{notebook}",
        "binder": f"{buttons['binderhub_url'].rstrip('/')}/v2/gh/{org}/{repo}/{branch}?urlpath=lab/tree/{notebook}",
        "hub": (buttons["jupyterhub_url"].rstrip("/"), url, f"lab/tree/{repo}/{notebook}", branch),
    }


def test_launch_buttons_point_at_colab_jupyterhub_and_binder(reports):
    notebooks = [e for e in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text()))
                 if (REPO / f"{e}.ipynb").is_file()]
    assert len(notebooks) >= 4
    for entry in notebooks:
        links = reports[f"{entry}.html"].launch
        expected = expected_launch_links(f"{entry}.ipynb")
        assert expected["colab"] in links, f"{entry}: no Colab button for {expected['colab']}"
        assert expected["binder"] in links, f"{entry}: no Binder button for {expected['binder']}"
        hub, repo_url, urlpath, branch = expected["hub"]
        hub_links = [link for link in links if link.startswith(f"{hub}/hub/user-redirect/git-pull?")]
        assert len(hub_links) == 1, f"{entry}: expected one JupyterHub button, found {hub_links}"
        query = parse_qs(urlsplit(hub_links[0]).query)
        assert query == {"repo": [repo_url], "urlpath": [urlpath], "branch": [branch]}, query


def test_embedded_widgets_render(reports):
    assert reports[VARIANCE_PAGE].widgets > 0, "the ipywidgets explorer did not render from its embedded state"
    assert reports[VARIANCE_PAGE].widget_images >= 1, "the explorer's embedded figure is not displayed"


def test_static_sweep_responds_to_its_sliders(site, server, browser):
    page_html = (site / VARIANCE_PAGE).read_text(encoding="utf-8")
    payload = re.search(r'<script type="application/json" class="marlpg-sweep-data">(.*?)</script>', page_html, re.S)
    assert payload, "the precomputed sweep is not on the variance page"
    data = json.loads(payload.group(1).replace("<\\/", "</"))

    def expected_ratio(n, c):
        i, j = data["agents"].index(n), data["couplings"].index(c)
        mean = data["mean"][i][j]
        return mean[0] / mean[1]

    context = browser.new_context()
    context.set_default_timeout(120_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/{VARIANCE_PAGE}", wait_until="load")
    sweep = page.locator(".marlpg-sweep")
    readout = sweep.locator(".marlpg-sweep-readout")
    traces = sweep.locator("path.marlpg-sweep-trace")

    def state():
        return (readout.get_attribute("data-agents"), readout.get_attribute("data-coupling"),
                float(readout.get_attribute("data-ratio-sv")), traces.first.get_attribute("d"))

    n0, c0, ratio0, path0 = state()
    assert (n0, c0) == ("4", "1")  # Code 30.7.1's setting
    assert traces.count() == 3
    assert ratio0 == pytest.approx(expected_ratio(4, 1.0), abs=1e-4)
    # Output 30.7.1's gradient-variance ratio, as glued into the prose of the same page.
    assert f"{ratio0:.2f}" == "1.56"

    # A reader drags the agents slider to its end with the keyboard: the browser fires real input events.
    sweep.locator("input.marlpg-sweep-agents").focus()
    page.keyboard.press("End")
    n1, c1, ratio1, path1 = state()
    assert (n1, c1) == (str(max(data["agents"])), "1")
    assert ratio1 == pytest.approx(expected_ratio(max(data["agents"]), 1.0), abs=1e-4)
    assert path1 != path0, "the traces were not redrawn"
    assert sweep.locator(".marlpg-sweep-agents-value").inner_text() == str(max(data["agents"]))

    # Then one step up the coupling: c = 1.5 on the grid.
    sweep.locator("input.marlpg-sweep-coupling").focus()
    page.keyboard.press("ArrowRight")
    n2, c2, ratio2, _ = state()
    assert (n2, c2) == (str(max(data["agents"])), "1.5")
    assert ratio2 == pytest.approx(expected_ratio(max(data["agents"]), 1.5), abs=1e-4)
    assert not errors, errors
    context.close()


def broken_internal_links(site: Path) -> list[str]:
    """'page: attribute=target (why)' for every relative href or src that leads nowhere."""
    ids_of = {}

    def ids(path: Path) -> set:
        if path not in ids_of:
            text = path.read_text(encoding="utf-8", errors="replace")
            ids_of[path] = {html.unescape(v) for v in re.findall(r'\sid="([^"]+)"', text)}
        return ids_of[path]

    broken = []
    for page_path in book_pages(site):
        page = site / page_path
        text = page.read_text(encoding="utf-8", errors="replace")
        for attribute, target in re.findall(r'\s(href|src)="([^"]*)"', text):
            target = html.unescape(target)
            parts = urlsplit(target)
            if parts.scheme or target.startswith(("//", "mailto:", "javascript:")) or not target:
                continue
            resolved = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if resolved.is_dir():
                resolved = resolved / "index.html"
            if not resolved.is_file():
                broken.append(f"{page_path}: {attribute}={target} (no such file)")
            elif parts.fragment and resolved.suffix == ".html" and unquote(parts.fragment) not in ids(resolved):
                broken.append(f"{page_path}: {attribute}={target} (no such anchor)")
    return broken


def test_internal_links_resolve(site):
    broken = broken_internal_links(site)
    assert not broken, "broken internal links:\n" + "\n".join(broken[:50])
