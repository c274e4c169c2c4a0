"""The HTML report and the results table from run summaries."""
from __future__ import annotations

from lepton_kit.course import report


def test_report_has_notebooks_gradebook_and_plot(tmp_path):
    summary = {"profile": "ci", "device": "CPU", "notebooks": [
        {"notebook": "notebooks/01.ipynb", "status": "ok", "seconds": 3.2, "metrics": {"acc": 0.95}}]}
    rows = [{"assignment": "01_mlp", "student_id": s, "raw_score": v, "score": v, "max_score": 10,
             "category": "tests", "course_grade": f"{10 * v:.2f}", "passed": "no", "progress": "1/1"}
            for s, v in (("a", 10), ("b", 3))]
    html = report.write(tmp_path / "r" / "index.html", summary, rows, pass_mark=65).read_text()
    assert "notebooks/01.ipynb" in html and "acc = 0.95" in html and "data:image/png;base64," in html
    assert html.count("<tr>") == 1 + 1 + 1 + 2
    assert "Pass mark: 65 %" in html


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
