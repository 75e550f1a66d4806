"""Keeps nbgrader's own ``autograde`` and ``generate_feedback`` from running in a course made by ``init``.

``nbgrader autograde`` executes each student's notebook in the instructor's own, unsandboxed kernel and gives
a test cell its points when it does not raise; this course's hidden checks only report values (the sandboxed
grader compares them outside the kernel), so nbgrader would both run untrusted code and over-score.
``nbgrader generate_feedback`` would render the autograded notebooks, which hold the hidden checks.
The course's ``nbgrader_config.py`` puts :class:`RefuseUnsandboxed` first in both pipelines, so the command
stops before any student code runs, with a message saying what to run instead.
"""
from __future__ import annotations

from nbconvert.preprocessors import Preprocessor

MESSAGE = ("This course is autograded by the sandboxed grader, not by 'nbgrader autograde' (which would run "
           "student code outside the sandbox and give points the hidden checks did not award). Run "
           "'marlpg-autograder grade --course {root}' instead; it writes the scores into this gradebook, so "
           "formgrader shows them. For feedback: 'marlpg-autograder feedback --course {root}'.")


REFUSED = ("autograde", "generate_feedback")


def refuse_command(argv: list[str], root: str) -> None:
    """Called from the course's nbgrader_config.py: ``nbgrader autograde`` and ``nbgrader generate_feedback``
    exit with the message before nbgrader creates, changes or removes anything."""
    if len(argv) > 1 and argv[1] in REFUSED:
        raise SystemExit(f"nbgrader {argv[1]} is refused in this course. " + MESSAGE.format(root=root))


class RefuseUnsandboxed(Preprocessor):
    """The same refusal inside nbgrader's pipelines (formgrader's autograde button runs them in-process). There
    nbgrader removes the submission's autograded/ folder after the refusal; the grader writes it back from its
    stored results on its next run (grade, marks, override or feedback)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.enabled = True  # nbconvert skips a preprocessor that is not enabled

    def preprocess(self, nb, resources):
        root = resources.get("nbgrader", {}).get("course_root") or "COURSE_DIR"
        raise RuntimeError(MESSAGE.format(root=root))
