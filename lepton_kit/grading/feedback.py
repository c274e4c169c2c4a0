"""Feedback pages: each test's name, points, result and message, never the source of hidden tests; the
rubric of a cell graded by hand.

nbgrader's own feedback is the executed notebook, hidden tests included (nbgrader #917, #1363).
Here a student sees the visible part of each test (what the release already shows them), the
first line of its error or its printed output, with every line of a hidden test blanked out.

>>> scrub("AssertionError: check_close(out, secret)", ["check_close(out, secret)"])
'AssertionError: [hidden test]'
"""
from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

MESSAGE_CHARS = 600


def hidden_lines(full: str, visible: str) -> list[str]:
    """Lines of a test cell that the release does not show (markers excluded)."""
    shown = {line.strip() for line in visible.splitlines()}
    return sorted({line.strip() for line in full.splitlines()
                   if line.strip() not in shown and len(line.strip()) >= 6 and not line.strip().startswith("###")},
                  key=len, reverse=True)


def scrub(text: str, hidden: list[str]) -> str:
    """``text`` with any hidden line replaced by ``[hidden test]`` and cut to a readable length."""
    for line in hidden:
        text = text.replace(line, "[hidden test]")
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " ..."


def _message(outputs: list, passed: bool) -> str:
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors and not passed:
        return f"{errors[-1].get('ename', 'Error')}: {errors[-1].get('evalue', '')}".strip()
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return text.strip()


def _rows(root: Path, assignment: str, student: str, gb, templates: dict, rubric: dict) -> list[dict]:
    import nbformat

    rows = []
    for notebook in gb.find_submission(assignment, student).notebooks:
        path = root / "autograded" / student / assignment / f"{notebook.name}.ipynb"
        cells = {}
        if path.is_file():
            nb = nbformat.read(path, as_version=4)
            cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        template = templates.get(notebook.name)
        for grade in sorted(notebook.grades, key=lambda g: _order(template, g.name)):
            tpl = template.by_id.get(grade.name) if template else None
            manual = tpl is None or tpl.role != "test"
            pending = manual and grade.needs_manual_grade and grade.manual_score is None
            score = None if pending else grade.score
            cell = cells.get(grade.name)
            visible = tpl.release_source if tpl else ""
            hidden = hidden_lines(tpl.source, visible) if tpl and not manual else []
            passed = (not manual) and grade.auto_score is not None and grade.auto_score >= grade.max_score > 0
            if manual:
                result = "graded by hand" if grade.manual_score is not None else \
                    "awaiting grading" if grade.needs_manual_grade else "no answer"
                message = ""
            else:
                result = "passed" if passed else ("partial" if score else "failed")
                # a test with hidden parts shows no printed output: student code called by the test
                # could print what it found of the hidden part, encoded past the scrubber
                message = "" if hidden and passed else scrub(_message(cell.get("outputs", []) if cell else [], passed),
                                                              hidden)
            rows.append({"notebook": notebook.name, "test": grade.name, "score": score, "max": grade.max_score,
                         "result": result, "message": message, "visible": "" if manual else visible,
                         "has_hidden": bool(hidden),
                         "rubric": rubric.get(grade.name, []) if result == "graded by hand" else []})
    return rows


def _order(template, grade_id):
    if template is None:
        return (1, grade_id)
    ids = [c.grade_id for c in template.cells]
    return (0, ids.index(grade_id)) if grade_id in ids else (1, grade_id)


def _matches_html(matches: list[dict], lesson: str | None) -> str:
    if not matches:
        return ""
    esc = html.escape
    items = []
    for m in matches:
        reread = m.get("reread") or lesson
        where = f" Reread: {esc(reread)}." if reread else ""
        items.append(f"<li><b>{esc(m['description'])}</b> (failed: {esc(', '.join(m['loses']))}).{where}</li>")
    return ("<h2>Your failures match a common mistake</h2><p>Each mistake below makes the tests listed fail, as "
            f"yours do: compare it with your code.</p><ul>{''.join(items)}</ul>")


def render(assignment: str, student: str, rows: list[dict], notes: list[str], matches: list[dict] = (),
           lesson: str | None = None) -> str:
    """The feedback page (self-contained HTML); ``matches``: the common mistakes the failures match."""
    esc = html.escape
    total = sum(r["score"] or 0 for r in rows)
    out_of = sum(r["max"] or 0 for r in rows)
    body = []
    for r in rows:
        points = "–" if r["score"] is None else f"{r['score']:g}"
        code = ""
        if r["visible"]:
            extra = " (and hidden tests, not shown)" if r["has_hidden"] else ""
            code = f"<details><summary>visible test{esc(extra)}</summary><pre>{esc(r['visible'])}</pre></details>"
        if r.get("rubric"):
            rows_html = "".join(f"<tr><td>{c['points']:g}</td><td>{esc(str(c['criterion']))}</td>"
                                f"<td>{esc(str(c['full_marks']))}</td></tr>" for c in r["rubric"])
            code += (f"<details><summary>rubric</summary><table><tr><th>points</th><th>criterion</th>"
                     f"<th>full marks</th></tr>{rows_html}</table></details>")
        body.append(f"<tr class='{esc(r['result'].split()[0])}'><td><code>{esc(r['test'])}</code>{code}</td>"
                    f"<td>{points} / {r['max']:g}</td><td>{esc(r['result'])}</td>"
                    f"<td><pre>{esc(r['message'])}</pre></td></tr>")
    note_list = "".join(f"<li>{esc(n)}</li>" for n in notes)
    notes_html = f"<h2>Autograder notes</h2><ul>{note_list}</ul>" if notes else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(assignment)}: feedback for {esc(student)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}}pre{{white-space:pre-wrap;margin:0}}
tr.passed td:nth-child(3){{color:#060}}tr.failed td:nth-child(3){{color:#a00}}</style></head>
<body><h1>{esc(assignment)}: feedback for {esc(student)}</h1>
<p>Score: <b>{total:g} / {out_of:g}</b></p>
<table><tr><th>test</th><th>points</th><th>result</th><th>message</th></tr>
{''.join(body)}
</table>{_matches_html(matches, lesson)}{notes_html}</body></html>
"""


def write_feedback(root: Path, assignment: str, output: Path | None = None, students=None) -> list[Path]:
    """Write ``<output>/<student>/<assignment>/<assignment>.html`` for every graded student."""
    from nbgrader.api import MissingEntry

    from lepton_kit.grading import misconceptions
    from lepton_kit.grading.config import gradebook, load_config
    from lepton_kit.grading.rubric import load as load_rubric
    from lepton_kit.grading.restore import templates as load_templates

    root = Path(root)
    output = Path(output) if output else root / "feedback"
    state = root / "autograded" / ".lepton-state" / assignment
    written = []
    try:
        mistakes = misconceptions.course_mistakes(root, assignment)
    except ValueError as err:      # a malformed bank costs the hints, never the feedback
        warnings.warn(f"feedback without mistake hints: {err}", stacklevel=2)
        mistakes = []
    lesson = misconceptions.lesson_of(root, assignment)
    try:
        rubric = load_rubric(root, assignment)
    except ValueError as err:      # a malformed rubric costs the rubric, never the feedback
        warnings.warn(f"feedback without the rubric: {err}", stacklevel=2)
        rubric = {}
    with gradebook(load_config(root).CourseDirectory.db_url) as gb:
        try:
            templates = load_templates(root, assignment, gb)
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return []
        for submission in sorted(submissions, key=lambda s: s.student_id):
            student = submission.student_id
            if students and student not in students:
                continue
            notes = []
            try:
                notes = json.loads((state / f"{student}.json").read_text()).get("notes", [])
                problems = json.loads((state / f"{student}.json").read_text()).get("problems", {})
                notes = list(problems.values()) + notes
            except (OSError, ValueError):
                pass
            matches = misconceptions.student_matches(root, assignment, gb, student, mistakes)
            page = render(assignment, student, _rows(root, assignment, student, gb, templates, rubric), notes, matches,
                          lesson)
            path = output / student / assignment / f"{assignment}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(page)
            written.append(path)
    return written
