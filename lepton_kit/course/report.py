"""The course report: notebooks run (status, seconds, metrics), the gradebook, a grade histogram."""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from lepton_kit.course.targets import format_value

PER_STUDENT = ["course_grade", "provisional", "passed", "progress"]


class _Html(str):
    """Markup made here (escaped where it was built): a table cell shows it as is."""


def _cell(value) -> str:
    return value if isinstance(value, _Html) else html.escape(str(value))


def _table(rows, columns) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metric(value) -> str:
    """A recorded metric as HTML: a number, or a small nested table for a dict.

    >>> _metric({"adam": {"accuracy": 0.91234}})
    '<table class="metric"><tr><th>adam</th><td><table class="metric"><tr><th>accuracy</th><td>0.9123</td></tr></table></td></tr></table>'
    """
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_metric(v)}</td></tr>" for k, v in value.items())
        return f'<table class="metric">{rows}</table>'
    return html.escape(format_value(value))


def _metrics(metrics: dict) -> _Html:
    return _Html("<br>".join(f"{html.escape(k)} = {_metric(v)}" for k, v in metrics.items()))


def gradebook_by_student(rows) -> tuple[list[dict], list[str]]:
    """One row per student: the score of each assignment ("score / max"), then each category's
    percent, the course grade, provisional, passed and progress (the same on every export row of a
    student); and the columns.

    >>> table, columns = gradebook_by_student([
    ...     {"assignment": "01", "student_id": "ada", "score": "3.0", "max_score": "4.0", "course_grade": "75.00"},
    ...     {"assignment": "02", "student_id": "ada", "score": "1", "max_score": "2", "course_grade": "75.00"}])
    >>> columns[:3], table[0]["01"], table[0]["course_grade"]
    (['student_id', '01', '02'], '3 / 4', '75.00')
    """
    assignments = sorted({r["assignment"] for r in rows})
    shares = [k for k in (rows[0] if rows else {}) if k.endswith("_percent")]  # each category's percent
    students: dict[str, dict] = {}
    for r in rows:
        row = students.setdefault(r["student_id"], {"student_id": r["student_id"]})
        row[r["assignment"]] = f"{format_value(float(r['score'] or 0))} / {format_value(float(r['max_score'] or 0))}"
        row.update({c: r[c] for c in [*shares, *PER_STUDENT] if c in r})
    return [students[s] for s in sorted(students)], ["student_id", *assignments, *shares, *PER_STUDENT]


def graded_so_far(rows, categories=None) -> str:
    """Which categories have graded assignments, from the gradebook rows (categories: course.yml's).

    >>> graded_so_far([{"assignment": "01", "category": "tests"}], ["tests", "project", "skills"])
    'graded so far: tests (1 assignment); not yet: project, skills'
    """
    if categories is None:  # grades() gives every row a <category>_percent column, in course.yml's order
        categories = [k[: -len("_percent")] for k in (rows[0] if rows else {}) if k.endswith("_percent")]
    graded: dict[str, set] = {}
    for r in rows:
        graded.setdefault(r.get("category", ""), set()).add(r["assignment"])
    done = [f"{c} ({len(graded[c])} assignment{'s' if len(graded[c]) != 1 else ''})" for c in categories if c in graded]
    missing = [c for c in categories if c not in graded]
    return f"graded so far: {', '.join(done) or 'nothing'}; not yet: {', '.join(missing) or 'nothing'}"


def grade_histogram(rows, pass_mark: float):
    """The distribution of course grades (one value per student), whole numbers of students on y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    grades = {r["student_id"]: float(r["course_grade"]) for r in rows if r.get("course_grade") not in (None, "")}
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    ax.hist(list(grades.values()), bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.0001], color="#4c72b0",
            edgecolor="white")
    ax.axvline(pass_mark, color="#c44e52", ls="--", label=f"pass mark ({format_value(pass_mark)})")
    ax.set_xlabel("course grade (%)")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole students
    ax.set_title(f"Grade distribution ({len(grades)} students)")
    ax.legend()
    return fig


def grade_histogram_png(rows, pass_mark: float) -> str:
    """Base64 PNG of :func:`grade_histogram`."""
    import matplotlib.pyplot as plt

    fig = grade_histogram(rows, pass_mark)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _targets(entry) -> str:
    return ", ".join(f"{t['metric']} {'met' if t['met'] else 'MISSED'}: "
                     f"{'not recorded' if t['measured'] is None else format_value(t['measured'])} (target {t['target']})"
                     for t in entry.get("targets", []))


def _course_root(path: Path, root):
    if root is not None:
        return Path(root)
    from lepton_kit.course.curriculum import find_root

    try:
        return find_root(path.parent)
    except FileNotFoundError:
        return None


def mistakes_table(mistake_counts: dict) -> str:
    """HTML: per assignment, the common mistakes that students' failures match and how many students each.

    >>> bank = [({"id": "a", "exercise": "ex1", "description": "no row max"}, 2),
    ...         ({"id": "b", "exercise": "ex1", "description": "mean, not sum"}, 0)]
    >>> "no row max" in mistakes_table({"01_mlp": bank}), "mean, not sum" in mistakes_table({"01_mlp": bank})
    (True, False)
    """
    rows = [{"assignment": assignment, "exercise": m["exercise"], "mistake": m["description"], "students": n}
            for assignment, bank in mistake_counts.items()
            for m, n in sorted(bank, key=lambda pair: -pair[1]) if n]
    if not rows:
        return ("<h2>Common mistakes</h2><p>No graded student's failures match a mistake in the assignments' "
                "mistakes.yml.</p>")
    return ("<h2>Common mistakes</h2><p>Students whose failures match each known mistake of the assignment "
            "(source/&lt;assignment&gt;/mistakes.yml): what to go over again in class.</p>"
            + _table(rows, ["assignment", "exercise", "mistake", "students"]))


def write(path: Path, summary: dict | None, grade_rows: list[dict] | None, title="Lepton Kit report", *,
          pass_mark: float, categories=None, root=None, mistake_counts: dict | None = None) -> Path:
    """Write the HTML report; either part may be missing (it says so).

    ``mistake_counts`` ({assignment: [(mistake, students)]}, see
    :func:`lepton_kit.grading.misconceptions.counts`) adds the common-mistakes table. ``categories`` (course.yml's, in order) name the categories not graded yet; by default they come
    from the gradebook rows. ``root`` is the course (by default the one around ``path``): when its
    ``build/e2e/index.html`` exists (the browser tests' screenshots), the report links to it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    root = _course_root(path, root)
    e2e = root / "build" / "e2e" / "index.html" if root else None
    if e2e is not None and e2e.is_file():
        href = Path(os.path.relpath(e2e, path.parent)).as_posix()
        parts.append(f'<p>Browser tests: <a href="{html.escape(href)}">screenshots of JupyterLab</a></p>')
    if summary:
        rows = [{"notebook": e["notebook"], "status": e["status"] + (" (over budget)" if e.get("over_budget") else ""),
                 "seconds": f"{e['seconds']:.1f}",
                 "metrics": _metrics(e.get("metrics", {})),
                 "targets": _targets(e), "error": e.get("error", "")} for e in summary["notebooks"]]
        parts.append(f"<h2>Notebooks ({html.escape(summary['profile'])} profile on "
                     f"{html.escape(summary['device'])})</h2>")
        parts.append(_table(rows, ["notebook", "status", "seconds", "metrics", "targets", "error"]))
    else:
        parts.append("<p>No notebook run yet: <code>lepton run</code> writes build/run/summary.json.</p>")
    if grade_rows:
        table, columns = gradebook_by_student(grade_rows)
        parts.append(f"<h2>Gradebook</h2><p>Pass mark: {format_value(float(pass_mark))} % (course.yml); "
                     f"{html.escape(graded_so_far(grade_rows, categories))}. Each assignment: score / max score.</p>")
        parts.append(_table(table, columns))
        parts.append(f'<img alt="grade distribution" src="data:image/png;base64,{grade_histogram_png(grade_rows, pass_mark)}">')
        if mistake_counts is not None:
            parts.append(mistakes_table(mistake_counts))
    else:
        parts.append("<p>The gradebook is empty: <code>lepton autograde</code> fills it.</p>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eef}"
             "table.metric{margin:0}table.metric th{background:none;font-weight:normal}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return path


def load_summary(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
