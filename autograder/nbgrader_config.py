"""nbgrader configuration of the course's exercises (Exercises 30.7.1-30.7.3).

Layout, relative to the repository root:

* ``solutions/<assignment>/<assignment>.ipynb``: the instructor (source) notebooks, with solutions,
  hidden tests, points and rubrics;
* ``notebooks/exercises/<assignment>/<assignment>.ipynb``: the student versions, written by
  ``python -m autograder.generate`` (or ``python autograder/generate.py``) and committed.

This configuration only writes the student versions kept in the repository; it is not a course. To teach,
make a course folder outside the repository with ``marlpg-autograder init COURSE --course-id ID`` (its own
nbgrader_config.py, course id, exchange and gradebook) and release from there.

No gradebook is needed to write them: ``generate.py`` runs ``nbgrader generate_assignment --no-db``.
Should an nbgrader command want a database anyway, it gets a throwaway one in the temporary folder,
never a file in the repository.
"""
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = str(REPO)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = os.path.join("notebooks", "exercises")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(tempfile.gettempdir(), "marlpg-nbgrader-gradebook.db")

# The student versions: solution regions become stubs, hidden tests are removed, and a cell
# is stored without outputs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.enforce_metadata = True
