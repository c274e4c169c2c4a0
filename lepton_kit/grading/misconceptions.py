"""Misconception analytics: which of an assignment's common mistakes a student's failures match.

Every entry of ``source/<assignment>/mistakes.yml`` names the tests that its mistake loses (the grading
validity tests prove it). A student whose *answered* exercise fails every test that a mistake loses is told
which mistake that looks like, and where to reread; the course report counts the students per mistake.
An exercise left as the release stub matches nothing (its tests fail for want of an answer).
When several mistakes of one exercise match, the most specific win: a mistake whose lost tests are a
strict subset of another match's is dropped.

>>> bank = [{"id": "no_max", "exercise": "softmax", "description": "no row max", "loses": ["test_stable"]},
...         {"id": "no_log", "exercise": "softmax", "description": "p, not log p", "loses": ["test_stable", "test_loss"]}]
>>> [m["id"] for m in match(bank, failed={"test_stable"}, answered={"softmax"})]
['no_max']
>>> [m["id"] for m in match(bank, failed={"test_stable", "test_loss"}, answered={"softmax"})]
['no_log']
>>> match(bank, failed={"test_stable", "test_loss"}, answered=set())
[]
"""
from __future__ import annotations

from pathlib import Path

#: What the release puts in every code solution cell (nbgrader_config.py's ``ClearSolutions.code_stub``).
STUB = "Replace this line with your code"
FIELDS = {"id", "exercise", "description", "code", "loses"}


def load_mistakes(path: Path) -> list[dict]:
    """Read a ``mistakes.yml`` (id, exercise, description, code, loses; optional reread) and check its fields."""
    import yaml

    entries = yaml.safe_load(Path(path).read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a list of mistakes expected, got {type(entries).__name__}")
    for entry in entries:
        missing = FIELDS - set(entry) if isinstance(entry, dict) else FIELDS
        if missing:
            name = entry.get("id", "?") if isinstance(entry, dict) else entry
            raise ValueError(f"{path}: mistake {name!r} lacks {', '.join(sorted(missing))}")
    return entries


def match(mistakes: list[dict], *, failed: set, answered: set) -> list[dict]:
    """The mistakes whose lost tests all failed, on an answered exercise; the most specific per exercise."""
    hits = [m for m in mistakes if m["exercise"] in answered and m["loses"] and set(m["loses"]) <= set(failed)]
    return [m for m in hits
            if not any(o["exercise"] == m["exercise"] and set(m["loses"]) < set(o["loses"]) for o in hits)]


def lesson_of(root: Path, assignment: str) -> str | None:
    """The lesson of the unit that holds ``assignment`` in course.yml (None without one)."""
    import yaml

    try:
        course = yaml.safe_load((Path(root) / "course.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    for unit in course.get("units") or []:
        if any(a.get("id") == assignment for a in unit.get("assignments") or []):
            return unit.get("lesson")
    return None


def answered_exercises(notebook: Path) -> set:
    """grade_ids of the solution cells of an autograded notebook that no longer hold the release stub."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return set()
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and "grade_id" in c.metadata["nbgrader"]
            and STUB not in c.source}


def student_matches(root: Path, assignment: str, gb, student: str, mistakes: list[dict]) -> list[dict]:
    """The mistakes that ``student``'s autograded submission of ``assignment`` matches (see :func:`match`)."""
    if not mistakes:
        return []
    failed, answered = set(), set()
    for notebook in gb.find_submission(assignment, student).notebooks:
        failed |= {g.name for g in notebook.grades
                   if g.auto_score is not None and g.max_score and g.auto_score < g.max_score}
        answered |= answered_exercises(Path(root) / "autograded" / student / assignment / f"{notebook.name}.ipynb")
    return match(mistakes, failed=failed, answered=answered)


def course_mistakes(root: Path, assignment: str) -> list[dict]:
    """The assignment's bank from ``source/<assignment>/mistakes.yml``; [] when it has none."""
    path = Path(root) / "source" / assignment / "mistakes.yml"
    return load_mistakes(path) if path.is_file() else []


def counts(root: Path, assignment: str, gb) -> list[tuple[dict, int]]:
    """Every mistake of the assignment with the number of its graded students whose failures match it."""
    mistakes = course_mistakes(root, assignment)
    tally = {m["id"]: 0 for m in mistakes}
    for submission in gb.assignment_submissions(assignment):
        for m in student_matches(root, assignment, gb, submission.student_id, mistakes):
            tally[m["id"]] += 1
    return [(m, tally[m["id"]]) for m in mistakes]
