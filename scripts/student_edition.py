"""Build the student edition of the book: the same book without solutions/ and without hidden tests.

Steps:
1. copy the repository's files (tracked and untracked-but-not-ignored) into a staging folder, leaving
   out solutions/, autograder/, tests/ and benchmarks/ and the instructors' page book/solutions.md;
2. drop every table-of-contents entry under solutions/ (and the instructors' solutions page);
3. remove any ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block from every notebook that is
   left, and any ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block (the handed-out exercises have
   none; this is a second line of defence);
4. build with ``jupyter-book build -W -n --keep-going``, reusing an execution cache if given;
5. search the finished HTML for every line of every solution and hidden test in solutions/: one found
   fails the command, and no book is left at the output folder.

Usage (from the repository root, with the course environment):
    python scripts/student_edition.py [--out DIR] [--reuse-cache DIR]
Default output: _build/student/html; default cache: _build/.jupyter_cache when it exists (the default
build's), so that the notebooks are not executed twice.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = ("solutions/", "autograder/", "tests/", "benchmarks/", ".ci/", ".github/", "book/solutions.md")
INSTRUCTOR_TOC_FILES = ("book/solutions",)
BLOCKS = (("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"), ("### BEGIN SOLUTION", "### END SOLUTION"))
MIN_SECRET_LENGTH = 16  # shorter lines ("assert x", "return y") are too common to identify a solution


def repository_files(repo: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=repo,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sorted(path for path in listed if path and (repo / path).is_file())


def stage(repo: Path, staging: Path) -> int:
    copied = 0
    for path in repository_files(repo):
        if path.startswith(LEFT_OUT):
            continue
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / path, target)
        copied += 1
    return copied


def is_instructor_entry(entry: str) -> bool:
    stem = re.sub(r"\.(md|ipynb)$", "", entry)
    return stem.startswith("solutions/") or stem in INSTRUCTOR_TOC_FILES


def prune_toc(node):
    """The toc without instructor entries (with their sections); parts left empty are dropped."""
    if isinstance(node, list):
        kept = [prune_toc(item) for item in node]
        return [item for item in kept if item is not None]
    if isinstance(node, dict):
        if isinstance(node.get("file"), str) and is_instructor_entry(node["file"]):
            return None
        pruned = {key: prune_toc(value) for key, value in node.items()}
        for key in ("chapters", "sections", "parts"):
            if key in node and not pruned[key]:
                if key == "sections":
                    del pruned[key]
                else:
                    return None
        return pruned
    return node


def strip_blocks(text: str) -> tuple[str, int]:
    removed = 0
    for begin, end in BLOCKS:
        pattern = re.compile(rf"^[ \t]*{re.escape(begin)}.*?^[ \t]*{re.escape(end)}[^\n]*\n?", re.S | re.M)
        text, count = pattern.subn("", text)
        removed += count
    return text, removed


def strip_notebooks(staging: Path) -> int:
    removed = 0
    for path in staging.rglob("*.ipynb"):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        changed = 0
        for cell in notebook["cells"]:
            source, count = strip_blocks("".join(cell["source"]))
            if count:
                cell["source"] = source.splitlines(keepends=True)
                changed += count
        if changed:
            path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            removed += changed
    return removed


def secrets(solutions: Path) -> set[str]:
    """Every line of every solution and hidden-test block of the instructors' notebooks."""
    found = set()
    for path in solutions.rglob("*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            for begin, end in BLOCKS:
                for block in re.findall(rf"{re.escape(begin)}(.*?){re.escape(end)}", source, re.S):
                    found.update(line.strip() for line in block.splitlines())
    return {line for line in found if len(line) >= MIN_SECRET_LENGTH and not line.startswith("#")}


def public_text(staging: Path) -> str:
    """The text of every notebook and page that the student edition is built from."""
    texts = []
    for path in list(staging.rglob("*.ipynb")) + list(staging.rglob("*.md")):
        if path.suffix == ".ipynb":
            texts.append("\n".join("".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]))
        else:
            texts.append(path.read_text(encoding="utf-8"))
    return "\n".join(texts)


def visible_text(raw: str) -> str:
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", raw)))


def leaks(site: Path, lines: set[str]) -> list[str]:
    """'page: line' for each secret line, or block marker, found in the built HTML (text or raw)."""
    normalized = {line: re.sub(r"\s+", " ", line) for line in lines}
    markers = [marker for pair in BLOCKS for marker in pair]
    found = []
    for page in sorted(site.rglob("*")):
        if page.suffix not in (".html", ".js", ".ipynb", ".txt", ".md") or "_static" in page.parts:
            continue
        raw = page.read_text(encoding="utf-8", errors="replace")
        text = visible_text(raw) if page.suffix == ".html" else raw
        for marker in markers:
            if marker in raw:
                found.append(f"{page.relative_to(site)}: {marker}")
        for line, flat in normalized.items():
            if flat in text or line in raw:
                found.append(f"{page.relative_to(site)}: {line}")
    return found


def build(staging: Path, cache: Path | None) -> None:
    config_path = staging / "_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["title"] = f"{config['title']} (student edition)"
    if cache is not None:
        config.setdefault("execute", {})["cache"] = str(cache.resolve())
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(staging / "src"), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    subprocess.run([str(jupyter_book), "build", str(staging), "-W", "-n", "--keep-going"], cwd=staging, env=env,
                   check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "student" / "html",
                        help="where the student edition's HTML goes (replaced)")
    parser.add_argument("--reuse-cache", type=Path, default=None,
                        help="an execution cache to reuse (default: _build/.jupyter_cache if it exists)")
    parser.add_argument("--keep-staging", action="store_true", help="keep the staging folder and print it")
    args = parser.parse_args(argv)
    cache = args.reuse_cache
    if cache is None and (REPO / "_build" / ".jupyter_cache").is_dir():
        cache = REPO / "_build" / ".jupyter_cache"
    if cache is not None and not cache.is_dir():
        parser.error(f"--reuse-cache {cache}: no such folder (an execution cache is a _build/.jupyter_cache folder)")

    staging = Path(tempfile.mkdtemp(prefix="marlpg-student-"))
    try:
        copied = stage(REPO, staging)
        toc_path = staging / "_toc.yml"
        toc = prune_toc(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
        toc_path.write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
        removed = strip_notebooks(staging)
        print(f"[student] staged {copied} files without {', '.join(LEFT_OUT)}; "
              f"removed {removed} hidden-test or solution blocks from notebooks")
        print(f"[student] execution cache: {cache or 'none (every notebook is executed)'}")
        build(staging, cache)
        site = staging / "_build" / "html"
        # A line that the handed-out material shows anyway (an import, a signature, the protocol the
        # exercise spells out) is no secret.
        public = public_text(staging)
        found = leaks(site, {line for line in secrets(REPO / "solutions") if line not in public})
        if found:
            print("[student] REFUSED: the built student edition contains instructor material:", file=sys.stderr)
            for item in found[:40]:
                print(f"  {item}", file=sys.stderr)
            return 1
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(site, args.out)
        print(f"[student] no solution or hidden test in the HTML; student edition at {args.out}/index.html")
        return 0
    finally:
        if args.keep_staging:
            print(f"[student] staging folder kept: {staging}")
        else:
            shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
