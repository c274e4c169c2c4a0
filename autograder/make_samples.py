"""Regenerate the bundled sample submissions of every assignment from release/ and source/.

    python autograder/make_samples.py            # all assignments that have samples/<id>/expected.yml

Each ``autograder/samples/<assignment>/expected.yml`` says who the students are:
``kind: solution`` (the source's answers), ``kind: release`` (untouched) or ``kind: partial``
(the solution with some common mistakes from source/<id>/mistakes.yml and some cells left
unanswered), and the autograded score each must get. ``tests/test_grading.py`` checks those scores.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

from lepton_kit.course.samples import replaced, solved
from lepton_kit.grading.misconceptions import load_mistakes

ROOT = Path(__file__).resolve().parents[1]


def build(assignment: str, root: Path = ROOT, out: Path | None = None) -> list[Path]:
    spec = yaml.safe_load((root / "autograder" / "samples" / assignment / "expected.yml").read_text())
    out = out or root / "autograder" / "samples" / assignment
    mistakes_file = root / "source" / assignment / "mistakes.yml"
    mistakes = {m["id"]: m for m in load_mistakes(mistakes_file)} if mistakes_file.exists() else {}
    written = []
    for release_path in sorted((root / "release" / assignment).glob("*.ipynb")):
        release_nb = nbformat.read(release_path, as_version=4)
        source_nb = nbformat.read(root / "source" / assignment / release_path.name, as_version=4)
        for student, info in spec["students"].items():
            if info["kind"] == "release":
                nb = release_nb
            else:
                nb = solved(release_nb, source_nb)
            if info["kind"] == "partial":
                answers = {mistakes[m]["exercise"]: mistakes[m]["code"] for m in info.get("mistakes", [])}
                blank = {r["grade_id"]: r["source"] for r in _release_cells(release_nb, info.get("unanswered", []))}
                nb = replaced(nb, {**answers, **blank})
            target = out / student / assignment / release_path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            written.append(target)
    return written


def _release_cells(nb, grade_ids):
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    return [{"grade_id": g, "source": cells[g].source} for g in grade_ids]


if __name__ == "__main__":
    ids = sys.argv[1:] or sorted(p.name for p in (ROOT / "autograder" / "samples").iterdir()
                                 if (p / "expected.yml").is_file())
    for assignment_id in ids:
        for path in build(assignment_id):
            print(f"wrote {path.relative_to(ROOT)}")
