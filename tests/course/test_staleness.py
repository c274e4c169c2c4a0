"""The staleness guard: a stamped lesson is fresh until the code of a kit module it runs changes."""
from __future__ import annotations

import nbformat

from lepton_kit.course import staleness


def _lesson(path, code):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbformat.write(nb, path)
    return path


def test_a_stamp_holds_until_the_code_of_an_imported_module_changes(tmp_path, monkeypatch):
    path = _lesson(tmp_path / "lesson.ipynb", "%matplotlib inline\nfrom lepton_kit.plot import learning_curves\n")
    assert staleness.stale_modules(path) == [staleness.UNSTAMPED]
    stamped = staleness.stamp(path)
    assert {"lepton_kit", "lepton_kit.plot"} <= set(stamped)       # the package and what it imported
    assert staleness.stale_modules(path) == []
    real = staleness.code_hash
    monkeypatch.setattr(staleness, "code_hash", lambda name: "changed" if name == "lepton_kit.plot" else real(name))
    assert staleness.stale_modules(path) == ["lepton_kit.plot"]
    assert staleness.main([str(path)]) == 1
    assert "lepton_kit.plot" in staleness.describe(staleness.stale_modules(path))


def test_a_module_imported_by_an_imported_module_counts(tmp_path):
    path = _lesson(tmp_path / "lesson.ipynb", "import lepton_kit.federated\n")
    modules = set(staleness.stamp(path))
    assert "lepton_kit.federated.simulate" in modules                 # imported by the package's __init__
    assert not any(m.startswith(("lepton_kit.course", "lepton_kit.grading")) for m in modules)
