"""Per-student HTML feedback: one self-contained page per student and assignment.

What a student (or the instructor) reads: the score (automatic, by hand, late penalty, total), the status in
plain words, each test's result under the test, each hand-graded cell's mark under the cell, and the whole
notebook rendered (headings, lists, tables, code, math).

Protects the reader and the grade:

* Trust follows the cell's origin (``cell.metadata.autograder.origin``): the instructor's cells
  (``"source"``) are rendered as they are; everything the student wrote or produced (answer cells
  ``"student"``, added cells ``"added"``, any other or missing origin, and every cell OUTPUT, including the
  outputs of instructor cells) goes through :func:`sanitize`, an allow-list re-serializer (no script, style,
  iframe, form, SVG, event handler, ``javascript:`` URL, outside image). A Content-Security-Policy admits
  only this page's own two scripts, by hash, as a second wall.
* Nothing hidden is printed: test and locked cells show the RELEASED text (``assignment.released``, same
  grade id), and any ``### BEGIN HIDDEN TESTS`` block still found in an instructor cell is dropped;
  ``@@grade`` lines are removed from outputs; a test cell's traceback is reduced to its error line; a
  failing line is shown only if it is a line of the released test text.
* The page is bounded and linear-time in its input: each output's text is cut at ``OUTPUT_CAP`` characters
  and the page's untrusted content, as rendered, at ``OUTPUT_BUDGET`` / ``SOURCE_BUDGET`` ("[output cut:
  N kB more]", "[cell cut: ...]"). The sanitizer is a single scan (bleach/html5lib took 41 s on 100 kB of
  nested ``<div>``, html.parser 6 s on 20 kB of ``<a ``); untrusted markdown is rendered by markdown-it-py
  (with linear replacements of its two quadratic text-joining rules: 11 s on 100 kB of ``*a ``) in pieces
  of at most ``MARKDOWN_CHUNK`` characters, up to ``MARKDOWN_BUDGET`` per page, the rest as plain text.
  Measured: a page with a 2 MB markdown cell and a 5 MB output renders in about 1 s.
* The page needs nothing outside itself: MathJax 3.2.2 (``book/_static/vendor/mathjax/tex-chtml.js``,
  1.16 MB) and its 20 woff fonts (as data: URLs, 0.47 MB) are inlined, so it works from a file:// URL, an
  LMS upload or nbgrader's ``release_feedback``, with no network: a page with math weighs about 1.65 MB
  plus its content. Pages without math carry no MathJax. MathJax loads nothing (no autoload, no
  ``\\require``, no menu), so only the TeX of its core, AMS and newcommand packages is known; ``\\href``
  shows its text only, and MathJax typesets only the math elements of the page.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import math
import re
from pathlib import Path

from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin

from .rebuild import Assignment, nbgrader_meta, normalized, role
from .results import Result, TestResult

PREFIX = "@@grade"
MATHJAX_DIR = Path(__file__).resolve().parents[1] / "book" / "_static" / "vendor" / "mathjax"

OUTPUT_CAP = 32_000  # characters of one output's text (or HTML)
OUTPUT_BUDGET = 1_000_000  # characters of all outputs of a page (text, HTML and images, as rendered)
SOURCE_CAP = 100_000  # characters of one student cell's text
SOURCE_BUDGET = 500_000  # characters of all student cells of a page (their text as rendered)
CELL_COST = 200  # what each student cell costs that budget besides its text (a notebook of 10^6 empty cells)
MARKDOWN_BUDGET = 100_000  # characters of untrusted markdown rendered as markdown (the rest: plain text)
MARKDOWN_CHUNK = 20_000  # untrusted markdown is rendered in pieces of at most this many characters
IMAGE_CAP = 1_000_000  # characters of one base64 image
MAX_DEPTH = 48  # nesting of untrusted HTML elements kept

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]{0,200}(?:\x07|\x1b\\)?")
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?(?:^[ \t]*### END HIDDEN TESTS[^\n]*\n?|\Z)", re.S | re.M)

# --------------------------------------------------------------------------------------------------------
# Sanitizing untrusted HTML: a linear-time allow-list re-serializer.
#
# The input is scanned once; every '<' either starts a tag made of characters other than '<' and '>' up to
# the next '>' (so no scan ever passes the next '<': linear), a comment, or is text. Only allowed elements
# are written back, with validated, re-escaped attribute values; text is unescaped and re-escaped; open
# elements are closed at the end and nesting is capped. The output is therefore well-formed and holds
# nothing but the allow-list, whatever the browser's parser would have made of the input.
# --------------------------------------------------------------------------------------------------------

ALLOWED = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "div", "span", "ul", "ol", "li", "dl", "dt", "dd",
           "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "code", "pre", "em", "strong",
           "b", "i", "u", "s", "del", "ins", "sub", "sup", "small", "mark", "kbd", "samp", "var", "q", "abbr",
           "br", "hr", "blockquote", "a", "img", "details", "summary"}
VOID = {"br", "hr", "img"}
DROP_CONTENT = {"script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"}
TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)([^<>]*)>")
ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
SAFE_HREF = re.compile(r"(?i)^(?:https?://|mailto:)[^\s\x00-\x1f]*$")
DATA_IMAGE = re.compile(r"^data:image/(?:png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+$")
NUMBER = re.compile(r"^[0-9]{1,4}%?$")
MATH_CLASSES = {"math inline", "math block", "math amsmath"}


@functools.lru_cache(maxsize=None)
def _end_tag(name: str) -> re.Pattern:
    return re.compile(rf"</{name}[\s/>]", re.I)


def _attributes(tag: str, raw: str) -> str:
    found: dict[str, str] = {}
    for m in ATTR.finditer(raw):
        name = m.group(1).lower()
        value = html.unescape(next((g for g in m.groups()[1:] if g is not None), ""))
        if name in found:
            continue
        if tag == "a" and name == "href" and SAFE_HREF.match(value.strip()):
            found[name] = value.strip()
        elif tag == "img" and name == "src" and len(value) <= IMAGE_CAP and DATA_IMAGE.match(value):
            found[name] = value
        elif name == "title" or (tag == "img" and name == "alt"):
            found[name] = value[:500]
        elif (tag == "img" and name in ("width", "height")) or (tag in ("td", "th") and name in ("colspan", "rowspan")):
            if NUMBER.match(value.strip()):
                found[name] = value.strip()
        elif tag in ("td", "th") and name == "align" and value.lower() in ("left", "right", "center"):
            found[name] = value.lower()
        elif tag == "ol" and name == "start" and value.strip().isdigit() and len(value.strip()) < 7:
            found[name] = value.strip()
        elif tag in ("span", "div") and name == "class" and value in MATH_CLASSES:
            found[name] = value
    if tag == "img" and "src" not in found:
        return None
    if tag == "a" and "href" in found:
        found["rel"] = "noopener noreferrer nofollow"
    return "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in found.items())


def _text(raw: str) -> str:
    return html.escape(html.unescape(raw), quote=False)


def sanitize(text: str) -> str:
    """Untrusted HTML reduced to the allow-list (see above); linear in ``len(text)``."""
    out: list[str] = []
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("<", i)
        if j < 0:
            out.append(_text(text[i:]))
            break
        if j > i:
            out.append(_text(text[i:j]))
        if text.startswith("<!--", j):
            k = text.find("-->", j + 4)
            i = n if k < 0 else k + 3
            continue
        if text.startswith("<!", j) or text.startswith("<?", j):
            k = text.find(">", j)
            i = n if k < 0 else k + 1
            continue
        m = TAG.match(text, j)
        if m is None:
            out.append("&lt;")
            i = j + 1
            continue
        i = m.end()
        closing, name = m.group(1) == "/", m.group(2).lower()
        if name in DROP_CONTENT and not closing:
            found = _end_tag(name).search(text, i)
            if found is None:
                break
            k = text.find(">", found.end() - 1)
            i = n if k < 0 else k + 1
            continue
        if name not in ALLOWED:
            continue
        if closing:
            if name in stack:
                while stack:
                    top = stack.pop()
                    out.append(f"</{top}>")
                    if top == name:
                        break
            continue
        attrs = _attributes(name, m.group(3))
        if attrs is None or (name not in VOID and len(stack) >= MAX_DEPTH):
            continue
        out.append(f"<{name}{attrs}>")
        if name not in VOID:
            stack.append(name)
    out.extend(f"</{t}>" for t in reversed(stack))
    return "".join(out)


# --------------------------------------------------------------------------------------------------------
# Markdown (markdown-it-py, CommonMark + tables + strikethrough + $...$ / $$...$$ / amsmath environments)
# --------------------------------------------------------------------------------------------------------

def _fragments_join(state) -> None:
    """markdown-it-py's fragments_join, linear: its own joins adjacent text by repeated concatenation
    (quadratic: 11 s for 100 kB of '*a ')."""
    level = 0
    for tok in state.tokens:
        if tok.nesting < 0:
            level -= 1
        tok.level = level
        if tok.nesting > 0:
            level += 1
    state.tokens[:] = joined_text(state.tokens)


def _text_join(state) -> None:
    """markdown-it-py's core text_join, linear (same repeated concatenation)."""
    for inline in state.tokens:
        if inline.type != "inline":
            continue
        for child in inline.children or []:
            if child.type == "text_special":
                child.type = "text"
        inline.children = joined_text(inline.children or [])


def joined_text(tokens: list) -> list:
    """The tokens with each run of consecutive text tokens joined into the first, in one join per run (a
    repeated ``+=`` is what made markdown-it's own rules quadratic)."""
    joined, parts = [], []
    for tok in tokens:
        if tok.type == "text" and joined and joined[-1].type == "text":
            parts.append(tok.content)
            continue
        if parts:
            joined[-1].content += "".join(parts)
            parts = []
        joined.append(tok)
    if parts:
        joined[-1].content += "".join(parts)
    return joined


def _math(content: str, opts: dict) -> str:
    left, right = ("\\[", "\\]") if opts.get("display_mode") else ("\\(", "\\)")
    return html.escape(f"{left}{content}{right}", quote=False)


@functools.lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.use(dollarmath_plugin, allow_labels=False, renderer=_math).use(amsmath_plugin)
    md.inline.ruler2.at("fragments_join", _fragments_join)
    md.core.ruler.at("text_join", _text_join)
    return md


@functools.lru_cache(maxsize=1024)
def _render_trusted(text: str) -> str:
    return markdown().render(text)  # the same instructor cells recur on every student's page


def render_markdown(text: str, attachments: dict | None = None) -> str:
    """Trusted markdown (the instructor's) to HTML; attachments become data: URLs."""
    rendered = _render_trusted(text)
    for name, bundle in (attachments or {}).items():
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if isinstance(bundle, dict) and isinstance(bundle.get(mime), str):
                data = "".join(bundle[mime].split())
                rendered = rendered.replace(f'src="attachment:{html.escape(name)}"', f'src="data:{mime};base64,{data}"')
    return rendered


# --------------------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------------------

class Budget:
    """How much untrusted content a page may still hold."""

    def __init__(self, outputs: int = OUTPUT_BUDGET, sources: int = SOURCE_BUDGET, markdown: int = MARKDOWN_BUDGET):
        self.outputs, self.sources, self.markdown = outputs, sources, markdown

    def take(self, text: str, cap: int, pool: str) -> tuple[str, int]:
        """The part of ``text`` that fits (at most ``cap`` and what is left of ``pool``), and how many
        characters were cut."""
        allowed = max(0, min(cap, getattr(self, pool)))
        kept = text[:allowed]
        setattr(self, pool, getattr(self, pool) - len(kept))
        return kept, len(text) - len(kept)


def kb(characters: int) -> str:
    return f"{max(1, math.ceil(characters / 1000))} kB"


def cut_note(cut: int, what: str = "output") -> str:
    return f'<div class="cut">[{what} cut: {kb(cut)} more]</div>' if cut > 0 else ""


def as_text(value) -> str:
    return "".join(str(v) for v in value) if isinstance(value, list) else ("" if value is None else str(value))


def clean_stream(text: str) -> str:
    """ANSI colours removed, carriage-return overwrites applied, ``@@grade`` lines removed."""
    if "\x1b" in text:
        text = ANSI.sub("", text)
    lines = []
    for line in text.splitlines(True):
        if "\r" in line.rstrip("\r\n"):
            end = "\n" if line.endswith("\n") else ""
            line = line.rstrip("\r\n").rsplit("\r", 1)[-1] + end
        if line.lstrip().startswith(PREFIX):
            continue
        lines.append(line)
    return "".join(lines)


def e(value) -> str:
    return html.escape(str(value), quote=True)


def num(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------------------

def label(cell) -> dict:
    meta = cell.get("metadata", {}).get("autograder", {})
    return meta if isinstance(meta, dict) else {}


def cell_title(cell, gid: str | None, kind: str | None) -> str:
    """The cell named as the student sees it (never by its position in the rebuilt notebook)."""
    meta = label(cell)
    index = meta.get("student_index")
    where = f" (cell {int(index)} of your notebook)" if isinstance(index, int) and not isinstance(index, bool) else ""
    origin = meta.get("origin")
    gid = gid or meta.get("grade_id")
    if origin == "added":
        return f"a cell you added{where}"
    if origin == "student":
        return f"your answer <code>{e(gid)}</code>{where}" if gid else f"your answer{where}"
    if origin != "source":
        return f"a cell of your notebook{where}"
    if kind == "test":
        return f"test <code>{e(gid)}</code>{where}"
    if kind == "manual":
        return f"task <code>{e(gid)}</code>, graded by hand{where}"
    if kind == "locked" and cell.get("cell_type") == "code":
        return f"given code <code>{e(gid)}</code>{where}"
    return ""


def render_output(out: dict, is_test: bool, budget: Budget) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        raw = as_text(out.get("text"))
        text = clean_stream(raw[:4 * OUTPUT_CAP])  # never more than a bounded part is cleaned
        if not text and len(raw) <= 4 * OUTPUT_CAP:
            return ""
        kept, cut = budget.take(text, OUTPUT_CAP, "outputs")
        cut += len(raw) - min(len(raw), 4 * OUTPUT_CAP)
        css = "stderr" if out.get("name") == "stderr" else "stdout"
        return f'<pre class="out {css}">{e(kept)}</pre>{cut_note(cut)}' if kept or cut else ""
    if kind == "error":
        ename, evalue = str(out.get("ename", "Error")), str(out.get("evalue", ""))
        if is_test:
            raw = f"{ename}: {evalue}"
        else:
            raw = "\n".join(as_text(t) for t in out.get("traceback", [])) or f"{ename}: {evalue}"
        kept, cut = budget.take(clean_stream(raw[:4 * OUTPUT_CAP]), OUTPUT_CAP, "outputs")
        cut += len(raw) - min(len(raw), 4 * OUTPUT_CAP)
        return f'<pre class="out error">{e(kept)}</pre>{cut_note(cut)}'
    if kind not in ("execute_result", "display_data"):
        return ""
    data = out.get("data", {}) or {}
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data:
            raw = "".join(as_text(data[mime]).split())
            if not re.fullmatch(r"[A-Za-z0-9+/=]*", raw):
                continue
            if len(raw) > min(IMAGE_CAP, budget.outputs):
                return f'<div class="cut">[image not shown: {kb(len(raw) * 3 // 4)}, too large for this page]</div>'
            budget.outputs -= len(raw)
            return f'<div class="out image"><img alt="output image" src="data:{mime};base64,{raw}"></div>'
    if "text/html" in data:
        kept, cut = budget.take(as_text(data["text/html"]), OUTPUT_CAP, "outputs")
        return f'<div class="out html">{sanitize(kept)}</div>{cut_note(cut)}'
    if "text/markdown" in data:
        kept, cut = budget.take(as_text(data["text/markdown"]), OUTPUT_CAP, "outputs")
        return f'<div class="out markdown">{untrusted_markdown(kept, budget)}</div>{cut_note(cut)}'
    if "text/latex" in data:
        kept, cut = budget.take(as_text(data["text/latex"]), OUTPUT_CAP, "outputs")
        tex = kept.strip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
            if len(tex) > len(left) + len(right) and tex.startswith(left) and tex.endswith(right):
                tex = tex[len(left):-len(right)]
                break
        return f'<div class="out latex"><div class="math block">{e(chr(92) + "[" + tex + chr(92) + "]")}</div></div>{cut_note(cut)}'
    for mime in ("text/plain",):
        if mime in data:
            raw = as_text(data[mime])
            kept, cut = budget.take(clean_stream(raw[:4 * OUTPUT_CAP]), OUTPUT_CAP, "outputs")
            cut += len(raw) - min(len(raw), 4 * OUTPUT_CAP)
            return f'<pre class="out result">{e(kept)}</pre>{cut_note(cut)}'
    if data:
        kinds = ", ".join(sorted(str(k) for k in data))[:200]
        return f'<div class="cut">[an output of type {e(kinds)} is not shown here]</div>'
    return ""


FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_chunks(text: str, size: int = MARKDOWN_CHUNK) -> list[str]:
    """``text`` cut at blank lines outside code fences into pieces of at most ``size`` characters where it can
    be (a longer paragraph stays one piece)."""
    chunks, current, length, fenced = [], [], 0, False
    for line in text.splitlines(True):
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and not line.strip() and length >= size // 2:
            chunks.append("".join(current))
            current, length = [], 0
        elif current and length + len(line) > size and not fenced and not current[-1].strip():
            chunks.append("".join(current))
            current, length = [], 0
        current.append(line)
        length += len(line)
    if current:
        chunks.append("".join(current))
    return chunks


def untrusted_markdown(text: str, budget: Budget) -> str:
    """Student markdown: rendered piece by piece and sanitized while the markdown budget lasts; a piece
    longer than ``MARKDOWN_CHUNK`` (one huge paragraph) or past the budget is shown as plain text.
    markdown-it-py is not linear on every input ('[' repeated takes ~n^1.3), so no piece is large."""
    parts = []
    for chunk in markdown_chunks(text):
        if len(chunk) <= MARKDOWN_CHUNK and len(chunk) <= budget.markdown:
            budget.markdown -= len(chunk)
            parts.append(sanitize(markdown().render(chunk)))
        else:
            parts.append(f'<pre class="plain">{e(chunk)}</pre>')
    return "".join(parts)


def released_cells(assignment: Assignment) -> dict:
    return {nbgrader_meta(c).get("grade_id"): c for c in assignment.released.cells if role(c)}


def released_source(cell, gid: str | None, released: dict) -> str | None:
    """What the student was given for an instructor cell: the released text, or the cell's own text with any
    hidden-test block removed; None when a test cell's released text is unknown (it is then not shown)."""
    if gid and gid in released:
        return HIDDEN.sub("", as_text(released[gid].get("source")))
    if role(cell) == "test":
        return None
    return HIDDEN.sub("", as_text(cell.get("source")))


def test_line(result: Result, test: TestResult, released_text: str | None) -> str:
    earned = result.test_points(test)
    passed = earned_in_full(result, test)
    mark = "✔" if passed else ("✘" if earned <= 0 else "◐")
    css = "pass" if passed else "fail"
    words = e(test.reason)
    visible = {line.strip() for line in (released_text or "").splitlines() if line.strip()}
    if test.failed_line and test.failed_line.strip() in visible and test.reason != "passed":
        words += f" at <code>{e(test.failed_line.strip())}</code>"
    text = f"{mark} {e(test.grade_id)}: {num(earned)} / {num(test.points)} — {words}"
    override = result.overrides.get(test.grade_id)
    if override is not None:
        if override.points is not None:
            text += (f'<div class="override">Points set by the instructor: {num(override.points)} / '
                     f'{num(test.points)} (the automatic grade was {num(test.earned)})'
                     + (f" — {e(override.comment)}" if override.comment else "") + "</div>")
        elif override.comment:
            text += f'<div class="override">Instructor’s note: {e(override.comment)}</div>'
    return f'<div class="test {css}">{text}</div>'


def manual_line(result: Result, gid: str, points: float) -> str:
    mark = result.marks.get(gid)
    if mark is not None and mark.points is not None:
        text = f"Graded by hand: {num(mark.points)} / {num(points)} points"
        css = "pass"
    else:
        text = f"Graded by hand: up to {num(points)} points (not graded yet)"
        css = "pending"
    if mark is not None and mark.comment:
        text += f" — {e(mark.comment)}"
    return f'<div class="manual {css}">{text}</div>'


def is_unanswered(cell, gid: str | None, released: dict) -> bool:
    """An answer cell left exactly as the released template."""
    if label(cell).get("origin") != "student" or not gid or gid not in released:
        return False
    template = normalized(as_text(released[gid].get("source")))
    return bool(template) and normalized(as_text(cell.get("source"))) == template


def render_cell(cell, result: Result, released: dict, budget: Budget, tests: dict, manual: dict,
                any_unanswered: bool = False) -> str:
    meta = label(cell)
    origin = meta.get("origin")
    trusted = origin == "source"
    gid = nbgrader_meta(cell).get("grade_id") or meta.get("grade_id")
    kind = role(cell) if trusted else None
    ctype = cell.get("cell_type")
    parts = []
    title = cell_title(cell, gid, kind)
    if title:
        parts.append(f'<div class="where">{title}</div>')
    unanswered = is_unanswered(cell, gid, released)
    if trusted:
        text = released_source(cell, gid, released)
        if text is None:
            parts.append('<pre class="code">(the text of this test is not shown)</pre>')
        elif ctype == "markdown":
            parts.append(f'<div class="md">{render_markdown(text, cell.get("attachments"))}</div>')
        elif text.strip():
            parts.append(f'<pre class="code"><code>{e(text)}</code></pre>')
    else:
        kept, cut = budget.take(as_text(cell.get("source")), SOURCE_CAP, "sources")
        budget.sources -= CELL_COST
        if ctype == "markdown":
            body = untrusted_markdown(kept, budget)
            parts.append(f'<div class="md">{body}</div>')
        elif kept.strip() or not cut:
            parts.append(f'<pre class="code"><code>{e(kept)}</code></pre>')
        parts.append(cut_note(cut, "cell"))
    if unanswered:
        parts.append(f'<div class="unanswered">you have not answered <code>{e(gid)}</code> yet</div>')
    if ctype == "code":
        outs = []
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error" and (unanswered or (
                    kind == "test" and any_unanswered and out.get("ename") in ("NotImplementedError", "NameError"))):
                continue  # "you have not answered ... yet" says it
            if budget.outputs <= 0:
                outs.append('<div class="cut">[further output not shown: this page holds at most '
                            f'{kb(OUTPUT_BUDGET)} of output]</div>')
                break
            before = budget.outputs
            rendered = render_output(out, kind == "test", budget)
            budget.outputs -= max(0, len(rendered) - (before - budget.outputs))  # markup and escaping count too
            outs.append(rendered)
        if any(outs):
            parts.append(f'<div class="outputs">{"".join(outs)}</div>')
    if kind == "test" and gid in tests:
        parts.append(test_line(result, tests[gid], released_source(cell, gid, released)))
    if gid in manual:
        parts.append(manual_line(result, gid, manual[gid]))
    css = f"cell {e(ctype or 'raw')} {'trusted' if trusted else 'yours'}"
    return f'<section class="{css}">{"".join(parts)}</section>'


# --------------------------------------------------------------------------------------------------------
# Top of the page
# --------------------------------------------------------------------------------------------------------

STATUS_WORDS = {
    "ok": "graded normally",
    "missing": "no notebook was found for this assignment",
    "invalid file": "the file could not be read (a link, not a regular file, or too large)",
    "invalid json": "the file is not a readable notebook (invalid JSON or not a notebook)",
    "empty": "the notebook is empty",
    "misnamed": "your notebook had another name; it was graded anyway",
    "tampered": "test or locked cells were changed; the original cells ran instead",
    "exception": "a cell raised an error (its message is shown under the cell)",
    "timeout": "your notebook ran too long and was stopped; the cells after that point did not run",
    "memory": "your notebook ran out of memory",
    "output limit": "your notebook printed more output than the grader keeps (16 MB in all, or one message "
                    "over 8 MB); the cells after that point did not run",
    "kernel died": "the Python kernel stopped (an exit, a crash or the CPU-time limit); the cells after that "
                   "point did not run",
    "unanswered": "some answers are still the template you were given",
    "late": "submitted after the deadline",
}


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes)
    return " ".join(parts) or f"{secs} s"


def status_items(result: Result, unanswered: list[str]) -> list[str]:
    items = []
    statuses = list(result.statuses)
    if unanswered and "unanswered" not in statuses:
        statuses.append("unanswered")
    if (result.late_seconds > 0 or getattr(result, "late_marker", False)) and "late" not in statuses:
        statuses.append("late")
    for status in statuses or ["ok"]:
        if status == "unanswered" and unanswered:
            items += [f'<li class="status unanswered">unanswered: you have not answered <code>{e(g)}</code> yet</li>'
                      for g in unanswered]
        elif status == "late":
            words = f"late: submitted {duration(result.late_seconds)} after the deadline" if result.late_seconds \
                else "late: submitted after the deadline"
            if result.due:
                words += f" (due {result.due}"
                words += f", submitted {result.timestamp})" if result.timestamp else ")"
            words += f"; penalty: {num(result.late_penalty)} points" if result.late_penalty else "; no penalty"
            items.append(f'<li class="status late">{e(words)}</li>')
        else:
            words = STATUS_WORDS.get(status, "")
            items.append(f'<li class="status {"ok" if status == "ok" else "problem"}"><strong>{e(status)}</strong>'
                         + (f": {e(words)}" if words else "") + "</li>")
    return items


def automatic_points(result: Result) -> str:
    """The automatic score as shown; an exercise without autograded tests says so instead of '0 / 0'."""
    if not result.tests and not result.auto_max:
        return "none in this exercise (every point is given by hand)"
    return f"{num(result.score)} / {num(result.auto_max)}"


def earned_in_full(result: Result, test: TestResult) -> bool:
    """Whether a test earned all its points; a test worth 0 points only when it passed (0 >= 0 is no pass)."""
    return result.test_points(test) >= test.points and (test.points > 0 or test.reason == "passed")


def score_box(result: Result, manual: dict) -> str:
    rows = [("Automatic points", automatic_points(result))]
    if result.manual_max or result.manual:
        rows.append(("Graded by hand", f"{num(result.manual_score)} / {num(result.manual_max)}"))
    if result.late_penalty:
        rows.append(("Late penalty", f"−{num(result.late_penalty)}"))
    rows.append(("Total", f"{num(result.total)} / {num(result.max_score)}"))
    body = "".join(f"<tr><th>{e(a)}</th><td>{e(b)}</td></tr>" for a, b in rows)
    note = ""
    if result.ungraded:
        names = ", ".join(f"<code>{e(g)}</code>" for g in result.ungraded)
        note = (f'<p class="notfinal">This total is not final: {len(result.ungraded)} cell'
                f'{"s are" if len(result.ungraded) != 1 else " is"} still to be graded by hand ({names}).</p>')
    return f'<div class="score"><table>{body}</table>{note}</div>'


def tests_table(result: Result, manual: dict) -> str:
    rows = []
    for t in result.tests:
        earned = result.test_points(t)
        mark = "✔" if earned_in_full(result, t) else "✘"
        why = t.reason + ("; points set by the instructor" if t.grade_id in result.overrides
                          and result.overrides[t.grade_id].points is not None else "")
        rows.append(f"<tr><td>{mark} <code>{e(t.grade_id)}</code></td><td>{num(earned)} / {num(t.points)}</td>"
                    f"<td>{e(why)}</td></tr>")
    for c in result.manual:
        mark = result.marks.get(c.grade_id)
        got = f"{num(mark.points)} / {num(c.points)}" if mark and mark.points is not None else f"– / {num(c.points)}"
        why = "graded by hand" if mark and mark.points is not None else "to be graded by hand"
        rows.append(f"<tr><td>✍ <code>{e(c.grade_id)}</code></td><td>{got}</td><td>{e(why)}</td></tr>")
    if not rows:
        return ""
    return ('<table class="tests"><thead><tr><th>cell</th><th>points</th><th>result</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------

CSS = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 60rem;
       margin: 1.5rem auto; padding: 0 1rem; color: #1b1b1b; background: #fff; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.4rem 0; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
thead th { background: #f2f2f2; }
.head { border-bottom: 2px solid #444; margin-bottom: 1rem; }
.score table th { background: #f7f7f7; }
.notfinal, .pending { color: #8a5300; }
.status.problem, .status.unanswered, .status.late { color: #a00000; }
.cell { border-left: 3px solid #ddd; padding: 0.2rem 0 0.2rem 0.8rem; margin: 0.8rem 0; }
.cell.yours { border-left-color: #3b6fc4; }
.where { font-size: 0.85em; color: #555; }
pre.code { background: #f6f8fa; padding: 0.5rem; border-radius: 4px; }
.outputs { margin-left: 0.5rem; }
pre.out { padding: 0.3rem 0.5rem; border-left: 2px solid #eee; }
pre.out.error, pre.out.stderr { background: #fff3f3; }
.out img { max-width: 100%; }
.test, .manual, .unanswered, .override { font-weight: 600; margin: 0.3rem 0; }
.test.pass, .manual.pass { color: #136c13; }
.test.fail, .unanswered { color: #a00000; }
.override { font-weight: 400; color: #333; }
.cut { color: #8a5300; font-style: italic; }
.histogram rect { fill: #3b6fc4; }
.histogram text { font-size: 11px; fill: #333; }
"""


def mathjax_available() -> bool:
    """The vendored MathJax is found beside this package when it runs from the repository (or an editable
    install); elsewhere pages show formulas as their TeX text."""
    return (MATHJAX_DIR / "tex-chtml.js").is_file()


@functools.lru_cache(maxsize=1)
def mathjax_parts() -> tuple[str, str]:
    """The MathJax configuration script and the bundle (tex-chtml.js, its fonts as data: URLs): inline,
    no outside requests (no autoload, no \\require, no menu, links in TeX shown as text)."""
    fonts_dir = MATHJAX_DIR / "output" / "chtml" / "fonts" / "woff-v2"
    fonts = {p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in sorted(fonts_dir.glob("*.woff"))}
    config = """
window.MathJax = {
  loader: {load: [], paths: {mathjax: 'mathjax-is-inlined'}},
  tex: {inlineMath: [['\\\\(', '\\\\)']], displayMath: [['\\\\[', '\\\\]']], processEscapes: false,
        processEnvironments: true, packages: {'[-]': ['autoload', 'require']},
        macros: {href: ['{#2}', 2], mmlToken: '\\\\text{[mmlToken is not allowed here]}'}},
  options: {ignoreHtmlClass: 'mj-ignore', processHtmlClass: 'math', enableMenu: false},
  chtml: {fontURL: 'mathjax-fonts'},
  startup: {
    typeset: true,
    ready: function () {
      var FONTS = %s;
      var FD = MathJax._.output.chtml.FontData.CHTMLFontData;
      var add = FD.prototype.addFontURLs;
      FD.prototype.addFontURLs = function (styles, fonts, url) {
        add.call(this, styles, fonts, url);
        Object.keys(fonts).forEach(function (name) {
          var m = /([A-Za-z0-9_-]+\\.woff)/.exec(styles[name].src || '');
          styles[name].src = m && FONTS[m[1]] ? 'url(data:font/woff;base64,' + FONTS[m[1]] + ') format("woff")' : 'local("none")';
        });
      };
      MathJax.startup.defaultReady();
      MathJax.startup.promise.then(function () {
        document.querySelectorAll('mjx-container [href]').forEach(function (el) { el.removeAttribute('href'); });
        document.documentElement.setAttribute('data-mathjax', 'done');
      });
    }
  }
};
""" % json.dumps(fonts)
    bundle = (MATHJAX_DIR / "tex-chtml.js").read_text(encoding="utf-8")
    bundle = bundle.replace("</script", "<\\/script").replace("<!--", "<\\!--")
    return config, bundle


@functools.lru_cache(maxsize=None)
def script_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def page(title: str, body: str, with_math: bool = True) -> str:
    """A whole, self-contained HTML page; MathJax inlined when the body holds math."""
    scripts, hashes = "", []
    if with_math and 'class="math' in body and mathjax_available():
        config, bundle = mathjax_parts()
        scripts = f"<script>{config}</script>\n<script>{bundle}</script>"
        hashes = [script_hash(config), script_hash(bundle)]
    csp = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
           f"script-src {' '.join(hashes) or chr(39) + 'none' + chr(39)}; base-uri 'none'; form-action 'none'")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>{e(title)}</title>\n<style>{CSS}</style>\n{scripts}\n</head>\n"
            f'<body class="mj-ignore">\n{body}\n</body>\n</html>\n')


def feedback_html(result: Result, assignment: Assignment) -> str:
    """The feedback page of one student for one assignment (see the module's docstring).

    Reads ``result``: student, name, lms_id, assignment, statuses, details, tests (grade_id, points, earned,
    reason, failed_line), manual (grade_id, points; never the rubric), marks, overrides, score, auto_max,
    manual_score, manual_max, late_seconds, late_marker, late_penalty, due, timestamp, total, max_score,
    ungraded, notebook (never graded_notebook or instructor_notes); and of each
    cell of ``result.notebook``: cell_type, source, outputs, attachments, metadata.nbgrader (role and
    grade_id) and metadata.autograder (origin, student_index, grade_id). From ``assignment``: the released
    notebook (the text of test and locked cells, the answer templates)."""
    budget = Budget()
    tests = {t.grade_id: t for t in result.tests}
    manual = {c.grade_id: c.points for c in result.manual}
    if not manual:
        manual = {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0) or 0)
                  for c in assignment.source.cells if role(c) == "manual"}
    cells = list(result.notebook.cells) if result.notebook is not None else []
    released = released_cells(assignment)
    unanswered = []
    for cell in cells:
        gid = nbgrader_meta(cell).get("grade_id") or label(cell).get("grade_id")
        if is_unanswered(cell, gid, released) and gid not in unanswered:
            unanswered.append(gid)
    rendered, skipped = [], 0
    for cell in cells:
        if label(cell).get("origin") != "source" and budget.sources <= 0:
            skipped += 1
            continue
        before = budget.sources + budget.outputs
        html_cell = render_cell(cell, result, released, budget, tests, manual, bool(unanswered))
        if label(cell).get("origin") != "source":  # markup, escaping and rendering count too
            budget.sources -= max(0, len(html_cell) - (before - budget.sources - budget.outputs))
        rendered.append(html_cell)
    if skipped:
        rendered.append(f'<div class="cut">[{skipped} more of your cells not shown: this page holds at most '
                        f'{kb(SOURCE_BUDGET)} of your cells]</div>')

    who = result.name or result.student
    ids = [result.student] if result.name and result.name != result.student else []
    ids += [f"LMS id {result.lms_id}"] if result.lms_id else []
    head = [f'<header class="head"><h1>Feedback: {e(result.assignment)}</h1>',
            f'<p class="student">Student: <strong>{e(who)}</strong>'
            + (f" ({e(', '.join(ids))})" if ids else "") + "</p>"]
    if result.timestamp:
        head.append(f"<p>Submitted: {e(result.timestamp)}" + (f"; due: {e(result.due)}" if result.due else "") + "</p>")
    head.append("</header>")
    head.append(score_box(result, manual))
    head.append('<h2>Status</h2><ul class="statuses">' + "".join(status_items(result, unanswered)) + "</ul>")
    said = {f"you have not answered {g} yet" for g in unanswered}
    details = [d for d in result.details if d not in said]
    if details:
        head.append('<h3>Details</h3><ul class="details">' + "".join(f"<li>{e(d)}</li>" for d in details) + "</ul>")
    table = tests_table(result, manual)
    if table:
        head.append(f"<h2>Tests and graded cells</h2>{table}")
    head.append("<h2>Your notebook</h2>")
    if not cells:
        head.append("<p>Your notebook could not be run, so no cells are shown.</p>")
    body = "\n".join(head) + '\n<main class="notebook">\n' + "\n".join(rendered) + "\n</main>"
    return page(f"Feedback: {result.assignment} — {who}", body)
