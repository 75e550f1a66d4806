"""Debian's headless Chromium driven by Playwright, shared by the browser tests (no browser download).

``launch()`` yields a browser; ``open_local_page(browser, path)`` opens a file as a reader would and records
every request that tried to leave the machine (blocked) and every JavaScript error.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOCAL = ("file:", "data:", "blob:", "about:")


@contextlib.contextmanager
def launch():
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).is_file(), "Debian's chromium is missing: run scripts/setup_env.sh (apt-get install chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def open_local_page(browser, path: Path, wait_until: str = "load"):
    """(context, page, outside, errors): the page at ``path``, outside requests blocked and listed."""
    context = browser.new_context()
    outside, errors = [], []

    def route(r):
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda r: None if r.url.startswith(LOCAL) or r.url in outside else outside.append(r.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(Path(path).as_uri(), wait_until=wait_until)
    return context, page, outside, errors
