"""nbgrader configuration of the Lepton Kit course (read by nbgrader, the lab extensions and `lepton`)."""
import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "lepton-kit"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# The gradebook: SQLite next to this file by default; any SQLAlchemy URL works (for example PostgreSQL).
c.CourseDirectory.db_url = os.environ.get(
    "LEPTON_DB_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mistakes.yml"]

# Training cells run longer than nbgrader's 30 s default. Execute.timeout is the knob that works
# (ExecutePreprocessor.timeout has been reported ignored, nbgrader #1463).
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A student who deleted a graded cell still gets it back (and its points counted) (nbgrader #1682).
c.OverwriteCells.add_missing_cells = True
