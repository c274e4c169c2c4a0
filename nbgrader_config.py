"""nbgrader configuration of the Lepton Kit course (read by nbgrader, the lab extensions and `lepton`)."""
import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "lepton-kit"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# The gradebook: SQLite next to this file by default; any SQLAlchemy URL works (for example PostgreSQL).
c.CourseDirectory.db_url = os.environ.get(
    "LEPTON_DB_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mistakes.yml", "variants.yml", "rubric.yml", "bugs.yml"]

# --- the exchange: where Release, Fetch, Submit, Collect and Fetch Feedback meet ----------------------
# LEPTON_EXCHANGE (the same value for the instructor and every student), default: exchange/ in the course
# (git-ignored). nbgrader needs the folder to exist and be world-writable (mode 0777): loading this file
# creates a missing one so; `lepton exchange` (and `lepton release`) also fix the mode of an existing one.
c.Exchange.root = os.environ.get("LEPTON_EXCHANGE") or os.path.join(c.CourseDirectory.root, "exchange")
if not os.path.isdir(c.Exchange.root):  # before the Assignments panel asks for it (it cannot create it)
    try:
        os.makedirs(c.Exchange.root)
        os.chmod(c.Exchange.root, 0o777)
    except OSError:
        pass  # nbgrader reports the missing exchange; `lepton exchange` says why it cannot be made

# Training cells run longer than nbgrader's 30 s default. Execute.timeout is the knob that works
# (ExecutePreprocessor.timeout has been reported ignored, nbgrader #1463).
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError(\"Replace this line with your code\")"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A student who deleted a graded cell still gets it back (and its points counted) (nbgrader #1682).
c.OverwriteCells.add_missing_cells = True

# --- limits: `lepton autograde` (sandboxed, see autograder/README.md) ------------------------------
# Per submission. Execute.timeout above is the default of cell_timeout. A submission that exceeds a
# limit is stopped cleanly: it keeps the points of the cells that ran before, and the batch goes on.
c.LeptonAutograde.cell_timeout = 600          # seconds of wall time per cell (interrupted, then killed)
c.LeptonAutograde.notebook_timeout = 1800     # seconds of wall time per notebook
c.LeptonAutograde.interrupt_grace = 5         # seconds a cell gets to stop after the interrupt
c.LeptonAutograde.memory = 2 * 1024**3        # bytes of heap and anonymous memory per process, no swap
c.LeptonAutograde.processes = 256             # processes and threads
c.LeptonAutograde.disk = 512 * 1024**2        # bytes in the home folder, in /tmp and in /dev/shm (each)
c.LeptonAutograde.output = 2 * 1024**2        # bytes of output per notebook (more is cut)
c.LeptonAutograde.cell_output = 512 * 1024    # bytes of output per cell (more is cut)
c.LeptonAutograde.threads = 1                 # BLAS/OpenMP threads per submission (--jobs runs several)
c.LeptonAutograde.data = 64 * 1024**2         # bytes of one call's data between the checker and the kernel
# Tests run in a trusted checker process that calls into the student's kernel for data only (the verdict
# is computed where student code cannot reach). These assignments still run their tests inside the
# kernel under the in-process guard, whose verdicts can be forged (autograder/README.md): not yet ported.
c.LeptonAutograde.tests_in_kernel = ["07_transfer", "08_compression", "09_deployment", "p2_federated"]

# --- formgrader's buttons follow the course's rules (lepton_kit/grading/formgrader.py) ---------------
# Generate Feedback: test cells show their visible part only (nbgrader's own feedback shows hidden tests).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "lepton_kit.grading.formgrader.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# Autograde: refused (before it removes anything in autograded/) with a message naming `lepton autograde`,
# which grades in the sandbox.
c.Autograde.exporter_class = "lepton_kit.grading.formgrader.RefuseUnsandboxedAutograde"

# --- kernels: encrypted transport ---------------------------------------------------------------------
# jupyter_client provisions CurveZMQ keys for kernelspecs that declare support (ipykernel's does), so
# the kernels of nbgrader validate / the Validate button no longer log "Kernel is running over TCP
# without encryption". `lepton run` does the same (lepton_kit/course/runner.py: kernel_config).
import zmq as _zmq  # noqa: E402

if _zmq.has("curve"):
    c.KernelManager.transport_encryption = "auto"
