"""The HTML report and the results table from run summaries."""
from __future__ import annotations

from lepton_kit.course import report


def _grade_rows():
    """What grades() gives: one row per (assignment, student), the course grade repeated on each."""
    scores = {"a": {"01_mlp": 10, "02_autograd": 8}, "b": {"01_mlp": 3, "02_autograd": 0}}
    return [{"assignment": assignment, "student_id": s, "raw_score": v, "score": v, "max_score": 10,
             "category": "tests", "tests_percent": "77.00", "project_percent": "", "skills_percent": "",
             "course_grade": f"{5 * sum(scores[s].values()):.2f}", "provisional": "yes: nothing graded in project, skills",
             "passed": "not yet", "progress": "2/7"}
            for s in scores for assignment, v in scores[s].items()]


def test_report_has_notebooks_gradebook_and_plot(tmp_path):
    summary = {"profile": "ci", "device": "CPU", "notebooks": [
        {"notebook": "notebooks/01.ipynb", "status": "ok", "seconds": 3.2,
         "metrics": {"acc": 0.95, "comparison": {"adam": {"accuracy": 0.91234, "loss": 0.5}}}}]}
    html = report.write(tmp_path / "r" / "index.html", summary, _grade_rows(), pass_mark=65).read_text()
    assert "notebooks/01.ipynb" in html and "acc = 0.95" in html and "data:image/png;base64," in html
    assert "{'adam'" not in html and "<th>accuracy</th><td>0.9123</td>" in html, "metrics as tables, not dicts"
    gradebook = html[html.index("<h2>Gradebook"):]
    assert gradebook.count("<tr>") == 1 + 2, "one row per student"
    assert gradebook.count("<td>not yet</td>") == 2 and gradebook.count("<td>77.00</td>") == 2
    assert "<th>01_mlp</th><th>02_autograd</th><th>tests_percent</th>" in gradebook and "<td>8 / 10</td>" in gradebook
    assert "Pass mark: 65 %" in html
    assert "graded so far: tests (2 assignments); not yet: project, skills" in html
    assert "build/e2e" not in html


def test_grade_histogram_counts_whole_students():
    import matplotlib.pyplot as plt

    fig = report.grade_histogram(_grade_rows(), pass_mark=65)
    ticks = fig.axes[0].get_yticks()
    plt.close(fig)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_report_links_the_browser_test_screenshots_when_there_are_some(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    (tmp_path / "build" / "e2e").mkdir(parents=True)
    (tmp_path / "build" / "e2e" / "index.html").write_text("<html></html>")
    html = report.write(tmp_path / "build" / "report" / "index.html", None, [], pass_mark=80).read_text()
    assert '<a href="../e2e/index.html">' in html


def test_report_without_runs_says_what_to_do(tmp_path):
    html = report.write(tmp_path / "index.html", None, [], pass_mark=80).read_text()
    assert "lepton run" in html and "lepton autograde" in html


def test_results_markdown_keeps_tiny_values_and_names_the_device(tmp_path):
    import json

    from lepton_kit.course import results

    summary = {"profile": "full", "device": "NVIDIA H100", "python": "3.11", "started": "now", "notebooks": [
        {"notebook": "source/03.ipynb", "status": "ok", "seconds": 1.0, "metrics": {"max_param_diff": 4.4e-16}}]}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    text = results.update(path, docs=tmp_path / "docs").read_text()
    assert "4.4e-16" in text and "NVIDIA H100" in text and "## Profile `full`" in text
    assert (tmp_path / "docs" / "results" / "full.json").is_file()


def _notebook(path, code):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('profile = "ci"', metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_run_honours_root_shows_targets_and_check_targets_fails_on_a_miss(tmp_path, monkeypatch):
    """`lepton --root C run`: C's notebooks/, C's course.yml targets, C/build/run; --check-targets fails a miss."""
    import json

    from lepton_kit.course.cli import main

    course = tmp_path / "course"
    (course / "nbgrader_config.py").parent.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()\n")
    (course / "course.yml").write_text(
        "pass_mark: 65\nunits:\n  - id: '01'\n    targets:\n      notebooks/a.ipynb:\n"
        "        acc: {ci: '>= 0.9', full: '>= 0.99'}\n        err: {any: '<= 0.1'}\n")
    _notebook(course / "notebooks" / "a.ipynb", "from lepton_kit import record\nrecord('acc', 0.95)\nrecord('err', 0.5)")
    monkeypatch.chdir(tmp_path)  # not the course: --root must decide
    assert main(["--root", str(course), "run"]) == 0
    assert main(["--root", str(course), "run", "--check-targets"]) == 1
    summary = json.loads((course / "build" / "run" / "summary.json").read_text())
    (entry,) = summary["notebooks"]
    assert (entry["notebook"], entry["output"]) == ("notebooks/a.ipynb", "build/run/notebooks/a.ipynb")
    assert {t["metric"]: (t["target"], t["measured"], t["met"]) for t in entry["targets"]} == {
        "acc": (">= 0.9", 0.95, True), "err": ("<= 0.1", 0.5, False)}
    assert summary["threads"] >= 1
    assert main(["--root", str(course), "report"]) == 0
    html = (course / "build" / "report" / "index.html").read_text()
    assert "err MISSED: 0.5 (target &lt;= 0.1)" in html
