"""Before a sandboxed batch: the instructor's own cells run once, outside the sandbox, to fill the kit's cache.

The sandbox mounts the kit's disk cache (:mod:`lepton_kit.cache`) read-only, so no submission can change what
another one reads; but then a submission can read generated MNIST-1D or pretrained weights only when someone
stored them first, else every kernel computes them again (seconds each, times the class). :func:`warm_cache`
runs the cells of the assignment's source notebooks that are neither an exercise nor a test (imports,
settings, data, fixed pretraining: the instructor's code) in a throwaway kernel, in a temporary copy of the
assignment's folder. A cell that fails (it needs a student's function) is passed over; nothing here is graded.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
...     nbformat.v4.new_code_cell("y = x", metadata={"nbgrader": {"solution": True, "grade_id": "a"}})])
>>> [c.source for c in instructor_cells(nb).cells]
['x = 1']
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from lepton_kit.grading.config import INSTRUCTOR_ONLY

WARM_FROM = 4  # submissions to execute: with fewer, each computing for itself costs no more than warming


def instructor_cells(nb):
    """A copy of ``nb`` holding only its code cells that are neither an exercise (solution) nor a test (graded)."""
    kept = nbformat.from_dict(nb)
    kept.cells = [c for c in kept.cells if c.cell_type == "code"
                  and not c.metadata.get("nbgrader", {}).get("solution")
                  and not c.metadata.get("nbgrader", {}).get("grade")]
    return kept


def warm_cache(root: Path, assignment: str, *, cell_timeout: float = 300) -> float:
    """Run the instructor's cells of each source notebook of ``assignment`` once; return the seconds it took."""
    from nbclient import NotebookClient

    start = time.monotonic()
    source = Path(root) / "source" / assignment
    with tempfile.TemporaryDirectory(prefix=f"lepton-warm-{assignment}-") as scratch:
        folder = Path(scratch) / assignment
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", *INSTRUCTOR_ONLY))
        for path in sorted(folder.glob("*.ipynb")):
            nb = instructor_cells(nbformat.read(path, 4))
            client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(folder)}})
            try:
                client.execute()
            except Exception:  # a kernel that died or a cell past its time: the batch computes for itself
                pass
    return time.monotonic() - start
