"""nbgrader configuration of the autograder's bench course (a separate course root: `lepton --root autograder/bench`)."""
import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "lepton-bench"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
c.Execute.timeout = 30
c.Execute.kernel_name = "python3"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.OverwriteCells.add_missing_cells = True

# Short limits: the hostile corpus loops, sleeps and floods on purpose.
c.LeptonAutograde.cell_timeout = 10
c.LeptonAutograde.notebook_timeout = 40
c.LeptonAutograde.memory = 1 << 30
c.LeptonAutograde.processes = 64
c.LeptonAutograde.disk = 64 << 20
c.LeptonAutograde.output = 256 << 10
c.LeptonAutograde.cell_output = 64 << 10
c.LeptonAutograde.interrupt_grace = 3
