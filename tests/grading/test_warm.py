"""Warming a sandboxed batch: the instructor's cells run once outside the sandbox and fill the kit's cache;
exercises and tests do not run there, and a failing cell does not stop the rest."""
from __future__ import annotations

import nbformat
import numpy as np

from lepton_kit.cache import cache_path
from lepton_kit.grading.warm import warm_cache


def _course(root, marks):
    folder = root / "source" / "a1"
    folder.mkdir(parents=True)
    meta = {"solution": True, "grade": False, "grade_id": "ex", "locked": False}
    test = {"solution": False, "grade": True, "grade_id": "test_ex", "points": 1, "locked": True}
    cells = [
        nbformat.v4.new_code_cell('profile = "ci"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("undefined_name  # an instructor cell that fails"),
        nbformat.v4.new_code_cell("import numpy as np\nfrom lepton_kit.cache import cached\n"
                                  "cached('warm-test', {'profile': profile}, lambda: {'x': np.arange(3)})"),
        nbformat.v4.new_code_cell(f"open({str(marks / 'exercise-ran')!r}, 'w').write('x')", metadata={"nbgrader": meta}),
        nbformat.v4.new_code_cell(f"open({str(marks / 'test-ran')!r}, 'w').write('x')", metadata={"nbgrader": test}),
        nbformat.v4.new_code_cell(f"open({str(marks / 'after')!r}, 'w').write(str(profile))"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "a1.ipynb")
    return folder


def test_warming_runs_the_instructor_cells_only_and_fills_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "cache"))
    folder = _course(tmp_path / "course", tmp_path)
    seconds = warm_cache(tmp_path / "course", "a1")
    assert seconds > 0
    stored = cache_path("warm-test", {"profile": "ci"}, folder=tmp_path / "cache")
    assert np.load(stored)["x"].tolist() == [0, 1, 2], "the instructor's cell stored its arrays"
    assert sorted(p.name for p in folder.iterdir()) == ["a1.ipynb"], "it runs in a copy, never in source/"
    assert (tmp_path / "after").read_text() == "ci", "a failing cell does not stop the cells after it"
    assert not (tmp_path / "exercise-ran").exists() and not (tmp_path / "test-ran").exists()
