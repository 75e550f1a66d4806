"""The student edition (scripts/student_edition.py): the same book without solutions/ and without hidden tests.

Built once per session from the instructor build's execution cache (tests/book_build.py), so the
notebooks are not executed twice. The leak check is shown to work on the instructor edition, which
does contain the solutions and hidden tests.
"""
from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from book_build import REPO, instructor_build, student_build, student_site
from test_book import toc_files

spec = importlib.util.spec_from_file_location("student_edition", REPO / "scripts" / "student_edition.py")
edition = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edition)


@pytest.fixture(scope="module")
def student():
    build = student_build()
    assert build.returncode == 0, f"student edition failed (exit {build.returncode}):\n{build.log[-8000:]}"
    return student_site(build)


@pytest.fixture(scope="module")
def instructor():
    build = instructor_build()
    assert build.returncode == 0, build.failure()
    return build.site


def secret_lines():
    """Lines of the solutions and hidden tests that the handed-out material does not show."""
    public = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "notebooks").rglob("*.ipynb"))
    public += "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "book").rglob("*.md"))
    return {line for line in edition.secrets(REPO / "solutions") if line not in public and line.replace('"', '\\"') not in public}


def test_there_is_something_to_hide():
    assert len(secret_lines()) >= 50, "the solutions should hold many lines the students never see"


def test_student_edition_has_no_solutions_and_no_hidden_tests(student):
    assert not (student / "solutions").exists(), "solutions/ pages in the student edition"
    assert not (student / "book" / "solutions.html").exists()
    assert not (student / "_sources" / "solutions").exists()
    found = edition.leaks(student, secret_lines())
    assert not found, "instructor material in the student edition:\n" + "\n".join(found[:20])
    for page in student.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, page


def test_the_leak_check_finds_them_in_the_instructor_edition(instructor):
    found = edition.leaks(instructor, secret_lines())
    assert any(item.startswith("solutions/") for item in found), "the check would not notice a leak"
    assert (instructor / "solutions" / "ex30_7_2" / "ex30_7_2.html").is_file()


def test_student_edition_is_otherwise_the_same_book(student):
    for entry in toc_files(yaml.safe_load((REPO / "_toc.yml").read_text())):
        stem = re.sub(r"\.(md|ipynb)$", "", entry)
        if edition.is_instructor_entry(stem):
            continue
        assert (student / f"{stem}.html").is_file(), f"the student edition lacks {entry}"
    sidebar = (student / "book" / "exercises.html").read_text(encoding="utf-8")
    assert "Solutions (instructors only)" not in sidebar
    assert "(student edition)" in sidebar
    # The executed chapters carry their outputs and glued numbers, as in the default build.
    page = (student / "notebooks" / "02_centralized_critic_variance.html").read_text(encoding="utf-8")
    assert "18.8079" in page and 'class="marlpg-sweep"' in page


def test_student_edition_links_resolve(student):
    from test_browser import broken_internal_links

    broken = broken_internal_links(student)
    assert not broken, "broken internal links in the student edition:\n" + "\n".join(broken[:50])


def test_strip_blocks_removes_hidden_tests_and_solutions():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
              "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(3) == 6\n### END HIDDEN TESTS\nprint('done')\n")
    stripped, removed = edition.strip_blocks(source)
    assert removed == 2
    assert stripped == "def f(x):\nassert f(1) == 2\nprint('done')\n"


def test_prune_toc_drops_instructor_entries_and_empty_parts():
    toc = {"format": "jb-book", "root": "book/intro", "parts": [
        {"caption": "A", "chapters": [{"file": "book/a"}]},
        {"caption": "Instructors", "chapters": [
            {"file": "book/instructor_guide"},
            {"file": "book/solutions", "sections": [{"file": "solutions/ex1/ex1"}]}]},
        {"caption": "Only solutions", "chapters": [{"file": "solutions/ex2/ex2"}]},
    ]}
    pruned = edition.prune_toc(toc)
    assert pruned["parts"] == [
        {"caption": "A", "chapters": [{"file": "book/a"}]},
        {"caption": "Instructors", "chapters": [{"file": "book/instructor_guide"}]},
    ]
