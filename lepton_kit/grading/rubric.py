"""Rubrics of hand-graded cells: ``source/<assignment>/rubric.yml``, for graders only.

A rubric maps the ``grade_id`` of a manually graded cell to its criteria, each with its points and
what earns them in full. Release, the student bundle and the sandbox never copy the file (it is in
nbgrader's ignore list); the autograder writes each rubric into the autograded notebook right under
its cell, where formgrader shows it to the grader, and the feedback page shows it to the student
once the cell has been graded by hand.

>>> rubric = parse({"report": [{"points": 2, "criterion": "a validation split", "full_marks": "sizes and seed"}]})
>>> print(markdown("report", rubric["report"]))
**Rubric for `report`** (2 points; for graders, shown to the student with the feedback)
<BLANKLINE>
| points | criterion | full marks |
|---:|---|---|
| 2 | a validation split | sizes and seed |
"""
from __future__ import annotations

from pathlib import Path

FILE = "rubric.yml"
FIELDS = ("points", "criterion", "full_marks")


def parse(data) -> dict:
    """Check a rubric's shape: ``{grade_id: [{points, criterion, full_marks}, ...]}``; ValueError says what is wrong."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{FILE} must map the grade_id of each hand-graded cell to a list of criteria")
    rubric = {}
    for grade_id, criteria in data.items():
        if not isinstance(criteria, list) or not criteria:
            raise ValueError(f"{FILE}: {grade_id!r} needs a non-empty list of criteria")
        for number, item in enumerate(criteria, 1):
            missing = [f for f in FIELDS if not isinstance(item, dict) or item.get(f) in (None, "")]
            if missing:
                raise ValueError(f"{FILE}: {grade_id!r}, criterion {number}: missing {', '.join(missing)}")
            points = item["points"]
            if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
                raise ValueError(f"{FILE}: {grade_id!r}, criterion {number}: points must be a positive number, "
                                 f"got {points!r}")
        rubric[str(grade_id)] = [{f: item[f] for f in FIELDS} for item in criteria]
    return rubric


def load(root: str | Path, assignment: str) -> dict:
    """The assignment's rubric, ``{}`` when it has none."""
    import yaml

    path = Path(root) / "source" / assignment / FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not YAML ({err})") from None
    return parse(data)


def problems(rubric: dict, manual_points: dict) -> list[str]:
    """What does not fit the notebook: ``manual_points`` maps each hand-graded cell's grade_id to its points.

    >>> problems({"a": [{"points": 1}], "b": [{"points": 2}]}, {"a": 2, "c": 1})
    ['a: the criteria give 1 points, the cell 2', 'b: no hand-graded cell has this grade_id']
    """
    found = []
    for grade_id, criteria in rubric.items():
        if grade_id not in manual_points:
            found.append(f"{grade_id}: no hand-graded cell has this grade_id")
            continue
        total = sum(item["points"] for item in criteria)
        if abs(total - float(manual_points[grade_id])) > 1e-9:
            found.append(f"{grade_id}: the criteria give {total:g} points, the cell {float(manual_points[grade_id]):g}")
    return found


def markdown(grade_id: str, criteria: list) -> str:
    """The rubric of one cell as a markdown table."""
    def cell(text):
        return " ".join(str(text).split()).replace("|", "\\|")

    total = sum(item["points"] for item in criteria)
    rows = [f"| {item['points']:g} | {cell(item['criterion'])} | {cell(item['full_marks'])} |" for item in criteria]
    return "\n".join([f"**Rubric for `{grade_id}`** ({total:g} points; for graders, shown to the student with the "
                      "feedback)", "", "| points | criterion | full marks |", "|---:|---|---|", *rows])


def attach(nb: dict, rubric: dict) -> int:
    """Put each rubric, as a markdown cell, right under its hand-graded cell of ``nb`` (once); how many were put."""
    cells, added = nb["cells"], 0
    present = {c.get("metadata", {}).get("lepton", {}).get("rubric") for c in cells}
    for index in range(len(cells) - 1, -1, -1):
        grade_id = cells[index].get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in rubric and grade_id not in present:
            cells.insert(index + 1, {"cell_type": "markdown", "id": f"rubric-{grade_id}"[:64],
                                     "metadata": {"lepton": {"rubric": grade_id}},
                                     "source": markdown(grade_id, rubric[grade_id])})
            added += 1
    return added
