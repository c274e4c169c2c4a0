"""Grades: nbgrader's CSV export read in process, plus category, course grade, pass/fail, progress."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from lepton_kit.course.curriculum import category_shares, course_grade, load_course
from lepton_kit.grading.config import gradebook, load_config

EXPORT_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                  "raw_score", "late_submission_penalty", "score", "max_score"]


def export_rows(root: Path) -> list[dict]:
    """nbgrader's own CSV export of the course's gradebook, as a list of dicts (one per assignment and student)."""
    config = load_config(Path(root))
    with gradebook(config.CourseDirectory.db_url) as gb:
        return _export(gb, config)


def _export(gb, config) -> list[dict]:
    from nbgrader.plugins import CsvExportPlugin

    with tempfile.TemporaryDirectory() as tmp:
        plugin = CsvExportPlugin(config=config, to=str(Path(tmp) / "grades.csv"))
        plugin.export(gb)
        return list(csv.DictReader(io.StringIO(Path(plugin.to).read_text())))


def grades(root: Path) -> list[dict]:
    """Export rows plus category, each category's percent, the weighted course grade, whether it is
    provisional (a category with nothing graded yet), pass/fail (``not yet`` while provisional) and progress."""
    root = Path(root)
    course = load_course(root)
    config = load_config(root)
    with gradebook(config.CourseDirectory.db_url) as gb:
        rows = _export(gb, config)
        submitted = {(a.name, sub.student_id) for a in gb.assignments for sub in a.submissions}
    by_student: dict[str, dict] = {}
    for row in rows:
        score, max_score = float(row["score"] or 0), float(row["max_score"] or 0)
        by_student.setdefault(row["student_id"], {})[row["assignment"]] = (score, max_score)
    planned = set(course["assignments"]) | {row["assignment"] for row in rows}
    for row in rows:
        student = by_student[row["student_id"]]
        grade, shares = course_grade(student, course), category_shares(student, course)
        missing = [c for c, share in shares.items() if share is None]
        row["category"] = course["assignments"].get(row["assignment"], {}).get("category", "")
        for category, share in shares.items():
            row[f"{category}_percent"] = "" if share is None else f"{100 * share:.2f}"
        row["course_grade"] = f"{grade:.2f}"
        row["provisional"] = f"yes: nothing graded in {', '.join(missing)}" if missing else "no"
        row["passed"] = "not yet" if missing else ("yes" if grade >= course["pass_mark"] else "no")
        done = sum(1 for a in student if (a, row["student_id"]) in submitted)
        row["progress"] = f"{done}/{len(planned)}"
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    """``rows`` as CSV: nbgrader's export columns first, then Lepton's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = EXPORT_COLUMNS + [c for c in (rows[0] if rows else {}) if c not in EXPORT_COLUMNS]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: list[dict], columns=("assignment", "student_id", "score", "max_score", "course_grade",
                                            "provisional", "passed", "progress")) -> str:
    """A plain-text table for the terminal.

    >>> print(format_table([{"assignment": "01", "student_id": "ada", "score": "3.0"}], ("assignment", "score")))
    assignment  score
    ----------  -----
    01          3.0
    """
    if not rows:
        return "(the gradebook is empty)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns).rstrip()
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join([line, "  ".join("-" * widths[c] for c in columns), *body])


def cell_scores(root: Path, assignment_id: str) -> dict:
    """``{student: {grade_id: (auto_score, max_score)}}`` for the autograded cells of an assignment."""
    scores: dict[str, dict] = {}
    with gradebook(load_config(Path(root)).CourseDirectory.db_url) as gb:
        for submission in gb.assignment_submissions(assignment_id):
            cells = scores.setdefault(submission.student_id, {})
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.auto_score is not None:
                        cells[grade.name] = (float(grade.auto_score), float(grade.max_score))
    return scores
