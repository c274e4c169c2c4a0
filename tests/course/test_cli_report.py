"""The HTML report and the results table from run summaries."""
from __future__ import annotations

from lepton_kit.course import report


def test_report_has_notebooks_gradebook_and_plot(tmp_path):
    summary = {"profile": "ci", "device": "CPU", "notebooks": [
        {"notebook": "notebooks/01.ipynb", "status": "ok", "seconds": 3.2, "metrics": {"acc": 0.95}}]}
    rows = [{"assignment": "01_mlp", "student_id": s, "raw_score": v, "score": v, "max_score": 10,
             "category": "tests", "course_grade": f"{10 * v:.2f}", "passed": "no", "progress": "1/1"}
            for s, v in (("a", 10), ("b", 3))]
    html = report.write(tmp_path / "r" / "index.html", summary, rows).read_text()
    assert "notebooks/01.ipynb" in html and "acc = 0.95" in html and "data:image/png;base64," in html
    assert html.count("<tr>") == 1 + 1 + 1 + 2


def test_report_without_runs_says_what_to_do(tmp_path):
    html = report.write(tmp_path / "index.html", None, []).read_text()
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
