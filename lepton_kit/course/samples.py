"""Build submissions from the release: the solution, a mistake, or nothing done.

Used for the bundled sample submissions and by the tests that prove each common mistake loses
points.

>>> strip_markers("x = 1\\n### BEGIN SOLUTION\\ny = 2\\n### END SOLUTION\\n")
'x = 1\\ny = 2\\n'
"""
from __future__ import annotations

import copy
import re


MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)[ \t]*\n?", re.MULTILINE)


def strip_markers(text: str) -> str:
    """Remove nbgrader's solution / hidden-test marker lines."""
    return MARKERS.sub("", text)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solution_cells(nb) -> dict:
    return {_grade_id(c): c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def solved(release_nb: dict, source_nb: dict) -> dict:
    """The release notebook with every solution cell answered as in the source."""
    answers = _solution_cells(source_nb)
    nb = copy.deepcopy(release_nb)
    for grade_id, cell in _solution_cells(nb).items():
        if grade_id not in answers:
            raise KeyError(f"solution cell {grade_id!r} of the release is not in the source: re-run lepton release")
        cell["source"] = strip_markers("".join(answers[grade_id]["source"]))
    return nb


def replaced(nb: dict, answers: dict) -> dict:
    """A copy of ``nb`` whose solution cells named in ``answers`` ({grade_id: source}) get new sources."""
    nb = copy.deepcopy(nb)
    cells = _solution_cells(nb)
    for grade_id, source in answers.items():
        if grade_id not in cells:
            raise KeyError(f"no solution cell {grade_id!r}; solution cells: {', '.join(cells)}")
        cells[grade_id]["source"] = source
    return nb
