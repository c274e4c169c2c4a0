"""The course report: notebooks run (status, seconds, metrics), the gradebook, a grade histogram."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from lepton_kit.course.targets import format_value


def _table(rows, columns) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def grade_histogram_png(rows, pass_mark: float) -> str:
    """Base64 PNG of the distribution of course grades (one value per student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grades = {r["student_id"]: float(r["course_grade"]) for r in rows if r.get("course_grade") not in (None, "")}
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    ax.hist(list(grades.values()), bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.0001], color="#4c72b0",
            edgecolor="white")
    ax.axvline(pass_mark, color="#c44e52", ls="--", label=f"pass mark ({format_value(pass_mark)})")
    ax.set_xlabel("course grade (%)")
    ax.set_ylabel("students")
    ax.set_title(f"Grade distribution ({len(grades)} students)")
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _targets(entry) -> str:
    return ", ".join(f"{t['metric']} {'met' if t['met'] else 'MISSED'}: "
                     f"{'not recorded' if t['measured'] is None else format_value(t['measured'])} (target {t['target']})"
                     for t in entry.get("targets", []))


def write(path: Path, summary: dict | None, grade_rows: list[dict] | None, title="Lepton Kit report", *,
          pass_mark: float) -> Path:
    """Write the HTML report; either part may be missing (it says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if summary:
        rows = [{"notebook": e["notebook"], "status": e["status"] + (" (over budget)" if e.get("over_budget") else ""),
                 "seconds": f"{e['seconds']:.1f}",
                 "metrics": ", ".join(f"{k} = {format_value(v)}" for k, v in e.get("metrics", {}).items()),
                 "targets": _targets(e), "error": e.get("error", "")} for e in summary["notebooks"]]
        parts.append(f"<h2>Notebooks ({html.escape(summary['profile'])} profile on "
                     f"{html.escape(summary['device'])})</h2>")
        parts.append(_table(rows, ["notebook", "status", "seconds", "metrics", "targets", "error"]))
    else:
        parts.append("<p>No notebook run yet: <code>lepton run</code> writes build/run/summary.json.</p>")
    if grade_rows:
        parts.append(f"<h2>Gradebook</h2><p>Pass mark: {format_value(float(pass_mark))} % (course.yml)</p>")
        parts.append(_table(grade_rows, ["assignment", "student_id", "raw_score", "score", "max_score",
                                         "category", "course_grade", "provisional", "passed", "progress"]))
        parts.append(f'<img alt="grade distribution" src="data:image/png;base64,{grade_histogram_png(grade_rows, pass_mark)}">')
    else:
        parts.append("<p>The gradebook is empty: <code>lepton autograde</code> fills it.</p>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eef}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    return path


def load_summary(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None
