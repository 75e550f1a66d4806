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
        # None when no hub is configured: then the page must offer no JupyterHub button at all.
        "hub": (buttons["jupyterhub_url"].rstrip("/"), url, f"lab/tree/{repo}/{notebook}", branch)
        if buttons.get("jupyterhub_url") else None,
    }


def test_launch_buttons_point_at_colab_binder_and_a_configured_jupyterhub(reports):
    notebooks = [e for e in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text()))
                 if (REPO / f"{e}.ipynb").is_file()]
    assert len(notebooks) >= 4
    for entry in notebooks:
        links = reports[f"{entry}.html"].launch
        expected = expected_launch_links(f"{entry}.ipynb")
        assert expected["colab"] in links, f"{entry}: no Colab button for {expected['colab']}"
        assert expected["binder"] in links, f"{entry}: no Binder button for {expected['binder']}"
        if expected["hub"] is None:
            hub_links = [link for link in links if "/hub/user-redirect/git-pull?" in link]
            assert not hub_links, f"{entry}: no hub is configured, yet the page offers {hub_links}"
            continue
        hub, repo_url, urlpath, branch = expected["hub"]
        hub_links = [link for link in links if link.startswith(f"{hub}/hub/user-redirect/git-pull?")]
        assert len(hub_links) == 1, f"{entry}: expected one JupyterHub button, found {hub_links}"
        query = parse_qs(urlsplit(hub_links[0]).query)
        assert query == {"repo": [repo_url], "urlpath": [urlpath], "branch": [branch]}, query


def test_embedded_widgets_render(reports):
    assert reports[VARIANCE_PAGE].widgets > 0, "the ipywidgets explorer did not render from its embedded state"
    assert reports[VARIANCE_PAGE].widget_images >= 1, "the explorer's embedded figure is not displayed"


# ----------------------------------------------------------------------------- what a reader sees, at two widths

# A desktop window and a phone's column: every check below must hold at both.
WIDTHS = (1280, 400)

# Lines that are a library's logging, a warning or a progress bar, not a result the chapter means to show.
NOISE = re.compile(r"WARNING|\(pid=|it/s\]|s/it\]|%\||UserWarning|DeprecationWarning|FutureWarning|RuntimeWarning")

LAYOUT_PROBE = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const column = article.getBoundingClientRect();
  const describe = el => {
    const section = el.closest('section[id]');
    return `${el.tagName.toLowerCase()}${section ? ' in #' + section.id : ''}: ` +
      (el.textContent || el.getAttribute('src') || '').replace(/\\s+/g, ' ').trim().slice(0, 70);
  };
  const clipper = el => {  // the nearest ancestor that cuts off what overflows it
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return a;
    }
    return null;
  };
  // 1. Output areas: their text, line by line.
  const outputs = Array.from(article.querySelectorAll('div.cell_output')).map(o => o.innerText);
  // 2. Wide formulas and code: either they fit, or they scroll themselves and show the course's scroll cue
  //    (course.css: shadows drawn with background-attachment: local), and nothing around them cuts them off.
  const clipped = [];
  const blocks = article.querySelectorAll('div.math, mjx-container[display="true"], div.highlight pre, div.cell_output pre');
  for (const el of blocks) {
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;  // folded away (a hidden cell's input)
    const style = getComputedStyle(el);
    const scrolls = style.overflowX === 'auto' || style.overflowX === 'scroll';
    const overflowing = el.scrollWidth > el.clientWidth + 1;
    if (overflowing && !scrolls && !el.querySelector('mjx-container[display="true"]')) {
      clipped.push(`${describe(el)} (${el.scrollWidth} px in ${el.clientWidth} px, cut off)`);
    } else if (overflowing && scrolls && !style.backgroundAttachment.includes('local')) {
      clipped.push(`${describe(el)} (${el.scrollWidth} px in ${el.clientWidth} px, scrolls with no visible cue)`);
    }
    const cut = clipper(el);
    if (cut && box.right > cut.getBoundingClientRect().right + 1) {
      clipped.push(`${describe(el)} (runs ${Math.round(box.right - cut.getBoundingClientRect().right)} px under the edge of ${cut.className})`);
    }
    if (box.right > column.right + 1) {
      clipped.push(`${describe(el)} (runs ${Math.round(box.right - column.right)} px past the column)`);
    }
  }
  // 3. Images: shown at most as wide as the column; one shown smaller than it was drawn can be enlarged.
  const images = [];
  for (const img of article.querySelectorAll('img')) {
    if (!img.naturalWidth || img.getBoundingClientRect().width === 0) continue;
    const box = img.getBoundingClientRect();
    const enlargeable = !!img.closest('a[href]') || img.classList.contains('course-zoomable');
    if (box.right > column.right + 1) images.push(`${describe(img)} (${Math.round(box.width)} px, past the column)`);
    else if (img.naturalWidth > img.clientWidth + 1 && !enlargeable) {
      images.push(`${describe(img)} (drawn ${img.naturalWidth} px, shown ${img.clientWidth} px, no way to enlarge)`);
    }
  }
  // 4. Every slider shows its value: the readout has text and is on top where it is drawn.
  const sliders = [];
  for (const slider of article.querySelectorAll('.widget-slider')) {
    const label = (slider.querySelector('.widget-label') || {}).textContent || '?';
    const readout = slider.querySelector('.widget-readout');
    if (!readout || !readout.textContent.trim()) { sliders.push(`${label}: no value shown`); continue; }
    // Scroll the page, not the output area: a value that only scrolling sideways inside it would reveal is hidden.
    window.scrollTo(0, window.scrollY + readout.getBoundingClientRect().top - window.innerHeight / 2);
    const text = document.createRange();
    text.selectNodeContents(readout);
    const r = text.getBoundingClientRect();  // the value's own glyphs, not the readout's padded box
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (r.width === 0 || !(hit === readout || readout.contains(hit))) {
      sliders.push(`${label}: its value ${readout.textContent.trim()} is hidden (under ${hit ? hit.className : 'nothing'})`);
    }
    const cut = clipper(readout);
    if (cut && r.right > cut.getBoundingClientRect().right + 1) sliders.push(`${label}: its value is cut off`);
  }
  window.scrollTo(0, 0);
  return {outputs, clipped, images, sliders,
          slider_count: article.querySelectorAll('.widget-slider').length,
          zoomable: article.querySelectorAll('img.course-zoomable').length};
}"""


def layout_of(browser, server: str, page_path: str, width: int) -> dict:
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(120_000)
    page = context.new_page()
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    if page.evaluate("() => !!(window.MathJax && window.MathJax.startup)"):
        page.evaluate("() => window.MathJax.startup.promise")
    page.wait_for_timeout(300)  # the widget manager and course.js finish drawing after load
    result = page.evaluate(LAYOUT_PROBE)
    context.close()
    return result


@pytest.fixture(scope="module")
def layouts(site, server, browser) -> dict:
    """{(page, width): what LAYOUT_PROBE found}, for every page at both widths."""
    return {(page, width): layout_of(browser, server, page, width) for page in book_pages(site) for width in WIDTHS}


def noise_lines(outputs: list[str]) -> list[str]:
    return [line.strip()[:120] for text in outputs for line in text.splitlines() if NOISE.search(line)]


def test_noise_lines_are_recognised():
    assert noise_lines(["epoch 1\n[2026-12-01 10:00:00] WARNING worker.py:12 -- lost", "(pid=4242) started"]) == [
        "[2026-12-01 10:00:00] WARNING worker.py:12 -- lost", "(pid=4242) started"]
    assert noise_lines([" 40%|####      | 4/10 [00:01<00:02, 3.10it/s]"]) != []
    assert noise_lines(["/x.py:3: UserWarning: foo", "DeprecationWarning: bar"]) != []
    assert noise_lines(["gradient variance 18.8079 vs 29.3406 (ratio 1.56x)", "@@grade {\"id\": \"a\"}"]) == []


def test_outputs_hold_no_log_lines_warnings_or_progress_bars(layouts):
    found = {page: noise_lines(found["outputs"]) for (page, width), found in layouts.items() if width == WIDTHS[0]}
    found = {page: lines for page, lines in found.items() if lines}
    assert not found, "outputs with log lines, warnings or progress bars:\n" + json.dumps(found, indent=1)[:6000]


def test_no_formula_or_code_block_is_cut_off(layouts):
    found = {f"{page} at {width} px": r["clipped"] for (page, width), r in layouts.items() if r["clipped"]}
    assert not found, "cut off without a scroll cue:\n" + json.dumps(found, indent=1)[:6000]


def test_no_image_is_wider_than_its_column_without_a_way_to_enlarge_it(layouts):
    found = {f"{page} at {width} px": r["images"] for (page, width), r in layouts.items() if r["images"]}
    assert not found, json.dumps(found, indent=1)[:6000]


def test_a_reduced_figure_opens_at_full_size(server, browser):
    context = browser.new_context(viewport={"width": 400, "height": 900})
    context.set_default_timeout(120_000)
    page = context.new_page()
    page.goto(f"{server}/notebooks/01_multi_agent_policy_gradient.html", wait_until="load")
    page.wait_for_load_state("networkidle")
    figure = page.locator("div.cell_output img.course-zoomable").first
    natural = figure.evaluate("img => img.naturalWidth")
    assert natural > figure.evaluate("img => img.clientWidth")
    figure.click()
    large = page.locator(".course-zoom-overlay img.course-zoom-image")
    large.wait_for()
    assert large.evaluate("img => img.complete ? img.clientWidth : -1") == natural
    page.keyboard.press("Escape")
    assert page.locator(".course-zoom-overlay").count() == 0
    context.close()


def test_widget_sliders_show_their_values(layouts):
    for width in WIDTHS:
        found = layouts[(VARIANCE_PAGE, width)]
        assert found["slider_count"] >= 4, f"at {width} px: {found['slider_count']} sliders on the variance page"
    problems = {f"{page} at {width} px": r["sliders"] for (page, width), r in layouts.items() if r["sliders"]}
    assert not problems, json.dumps(problems, indent=1)


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


# ----------------------------------------------------------------------------- episodes a reader can watch

ANIMATED_PAGES = ("notebooks/03_maddpg.html", "notebooks/04_coma.html", "notebooks/05_mappo.html",
                  "notebooks/06_parameter_sharing.html", "notebooks/08_partial_observability.html",
                  "notebooks/09_warehouse_fleet.html")

PLAYER_PROBE = """() => Array.from(document.querySelectorAll('div.course-animation')).map(player => {
  const img = player.querySelector('img');
  const play = player.querySelector('button[title="Play"]');
  const icon = play && play.querySelector('svg, i');  // the theme's Font Awesome turns each <i> into an <svg>
  return {frames: Number(player.dataset.frames), src: img ? img.src : '', loaded: !!(img && img.naturalWidth > 0),
          width: img ? img.getBoundingClientRect().width : 0,
          icon: icon ? icon.getBoundingClientRect().width : 0, has_play: !!play};
})"""


@pytest.mark.parametrize("page_path", ANIMATED_PAGES)
def test_every_training_chapter_plays_an_episode(server, browser, page_path):
    """Each training chapter holds an animation whose first frame loads; pressing Play moves it on, with no
    kernel and no network (the icons are drawn by the theme's own Font Awesome script, as inline SVG)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(120_000)
    outside = []
    local = urlsplit(server).netloc
    context.route("**/*", lambda r: r.continue_() if urlsplit(r.request.url).netloc == local
                  or r.request.url.startswith(("data:", "blob:")) else (outside.append(r.request.url), r.abort()))
    page = context.new_page()
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    players = page.evaluate(PLAYER_PROBE)
    assert players, f"{page_path}: no episode animation on the page"
    for index, player in enumerate(players):
        assert player["loaded"] and player["width"] > 100, f"{page_path}: animation {index} shows no picture: {player}"
        assert player["has_play"] and player["icon"] > 0, f"{page_path}: animation {index}'s buttons have no icons"
        assert player["frames"] > 1
    first = page.locator("div.course-animation").first
    first.scroll_into_view_if_needed()
    first.locator('button[title="Play"]').click()
    page.wait_for_timeout(1500)
    moved = page.evaluate(PLAYER_PROBE)[0]["src"]
    first.locator('button[title="Pause"]').click()
    assert moved != players[0]["src"], f"{page_path}: pressing Play did not move the animation"
    assert not outside, f"{page_path}: requests left the machine: {outside[:3]}"
    context.close()
