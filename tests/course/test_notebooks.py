"""Assignment notebooks executed with papermill in the ci profile; lessons executed once, under nbval (stored
outputs, ci targets, explorers)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from lepton_kit.course.curriculum import load_course
from lepton_kit.course.runner import CI_BUDGET_SECONDS, find_notebooks, run
from lepton_kit.course.targets import check, targets_for
from lepton_kit.utils import PROGRESS_ENV, RECORD_FILE_ENV

NOTEBOOKS = find_notebooks([REPO / "notebooks", REPO / "source"])
ASSIGNMENT_NOTEBOOKS = find_notebooks([REPO / "source"])  # lessons run once, under nbval, which checks their targets
COURSE = load_course(REPO)
HERE = Path(__file__).resolve().parent


def _key(path):
    return str(path.relative_to(REPO))


def _assert_targets_met(notebook, targets):
    assert targets, f"course.yml sets no ci target for {_key(notebook)}"
    missed = [f"{t['metric']} = {t['measured']} (target {t['target']})" for t in targets if not t["met"]]
    assert not missed, f"{_key(notebook)} missed: {'; '.join(missed)}"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ASSIGNMENT_NOTEBOOKS, ids=_key)
def test_notebook_runs_top_to_bottom_in_ci_profile_and_meets_its_targets(notebook, tmp_path):
    result = run([notebook], tmp_path, profile="ci", progress=False, root=REPO)
    assert json.loads((tmp_path / "summary.json").read_text()) == result
    (entry,) = result["notebooks"]
    assert entry["status"] == "ok", entry.get("error")
    _assert_targets_met(notebook, entry["targets"])
    if entry["seconds"] > CI_BUDGET_SECONDS:  # reported, not failed: timing depends on the machine's load
        print(f"warning: {_key(notebook)} took {entry['seconds']} s, over the {CI_BUDGET_SECONDS} s ci budget")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_key)
def test_notebook_starts_with_a_parameters_cell(notebook):
    first_code = next(c for c in nbformat.read(notebook, 4).cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert 'profile = "ci"' in first_code.source


@pytest.mark.parametrize("profile", ["ci", "full"])
def test_every_notebook_has_targets_in_course_yml_and_every_target_a_notebook(profile):
    keys = {_key(n) for n in NOTEBOOKS}
    assert all(targets_for(COURSE, key, profile) for key in keys), "every notebook must publish a checked metric"
    named = {nb for unit in COURSE["units"] for nb in (unit.get("targets") or {})}
    assert named <= keys, f"course.yml names notebooks that do not exist: {sorted(named - keys)}"


def test_run_reports_a_failing_notebook_without_stopping(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    for path, code in ((bad, "raise ValueError('boom')"), (good, "from lepton_kit import record\nrecord('x', 1)")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('profile = "ci"', metadata={"tags": ["parameters"]}),
                                             nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
    result = run([tmp_path], tmp_path / "out", progress=False)
    by_name = {e["notebook"].rsplit("/", 1)[-1]: e for e in result["notebooks"]}
    assert by_name["bad.ipynb"]["status"] == "failed" and "boom" in by_name["bad.ipynb"]["error"]
    assert by_name["good.ipynb"]["status"] == "ok" and by_name["good.ipynb"]["metrics"] == {"x": 1}


@pytest.mark.slow
@pytest.mark.parametrize("lesson", sorted((REPO / "notebooks").glob("*.ipynb")), ids=_key)
def test_lesson_matches_its_stored_outputs_with_nbval(lesson, tmp_path):
    """nbval: every cell runs and prints what is stored; numbers training produces are sanitized; the metrics it
    records meet the lesson's ci targets (course.yml). Then, in the
    same kernel, every explorer's controls are moved: each move changes the picture (redraw times are printed)."""
    report, recorded = tmp_path / "explorers.json", tmp_path / "recorded.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "LEPTON_EXPLORER_REPORT": str(report), RECORD_FILE_ENV: str(recorded), PROGRESS_ENV: "0"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                             "-p", "nbval_lepton", "--nbval", "--nbval-sanitize-with", str(HERE / "nbval_sanitize.cfg"),
                             str(lesson)], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    metrics = {r["name"]: r["value"] for r in map(json.loads, recorded.read_text().splitlines())}
    _assert_targets_met(lesson, check(metrics, targets_for(COURSE, _key(lesson), "ci")))
    explorers = json.loads(report.read_text())
    assert explorers, f"{_key(lesson)} builds no explorer"
    for explorer in explorers:  # the figures, in the test's output
        wall = sorted(m["seconds"] for m in explorer["moves"])
        cpu = sorted(m["cpu_seconds"] for m in explorer["moves"])
        print(f"{_key(lesson)}: {explorer['explorer']}: {len(wall)} moves, redraw median {cpu[len(cpu) // 2]:.3f} s of "
              f"CPU, {wall[len(wall) // 2]:.3f} s wall clock (max {wall[-1]:.3f} s)")


def _nbval(tmp_path, stored: str, printed: str) -> int:
    """nbval's verdict on a notebook executed printing ``stored`` whose code now prints ``printed``."""
    from nbclient import NotebookClient

    code = "from lepton_kit import record\nprint({!r})\nrecord('acc', {})"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code.format(stored, len(stored) / 97))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, kernel_name="python3").execute()
    nb.cells[0].source = code.format(printed, len(printed) / 89)
    path = tmp_path / f"probe_{abs(hash((stored, printed)))}.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                           "-p", "nbval_lepton", "--nbval", "--nbval-sanitize-with", str(HERE / "nbval_sanitize.cfg"),
                           str(path)], cwd=tmp_path, capture_output=True, text=True, env=env).returncode


@pytest.mark.slow
def test_nbval_forgives_training_digits_but_not_changed_text(tmp_path):
    assert _nbval(tmp_path, "test accuracy 0.894 after 8 epochs", "test accuracy 0.905 after 8 epochs") == 0
    assert _nbval(tmp_path, "test accuracy 0.894", "train accuracy 0.894") != 0
    assert _nbval(tmp_path, "stopped after 30 epochs, best epoch 20", "stopped after 27 epochs, best epoch 17") == 0
    assert _nbval(tmp_path, "dropout   0.912   -0.004   30", "dropout   0.915   +0.001   27") == 0
    assert _nbval(tmp_path, "stopped after 30 epochs", "stopped before 30 epochs") != 0
    assert _nbval(tmp_path, "GRU      1.2 s  0.912", "GRU     10.4 s  0.905") == 0


LESSONS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _shown(cell) -> list[str]:
    return [o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []) if o.get("output_type") in
            ("execute_result", "display_data")]


@pytest.mark.parametrize("lesson", LESSONS, ids=_key)
def test_lesson_outputs_were_stored_by_the_kit_code_of_today(lesson):
    """nbval compares text, not figures: a lesson whose kit code changed since `make lessons` stamped it
    may show figures that the code no longer draws."""
    from lepton_kit.course.staleness import describe, stale_modules

    changed = stale_modules(lesson)
    assert not changed, f"{lesson.relative_to(REPO)}: {describe(changed)}"


@pytest.mark.parametrize("lesson", LESSONS, ids=_key)
def test_every_lesson_has_an_explorer_and_ends_with_a_self_check_quiz(lesson):
    """Stored as a reader without a kernel sees it: each explorer's figure and sentence, the quiz's questions."""
    nb = nbformat.read(lesson, 4)
    assert "widgets" not in nb.metadata, "widget state stored (make lessons does not store it): 100 KB of noise"
    code = [c for c in nb.cells if c.cell_type == "code"]
    explorers = [c for c in code if re.search(r"^explore\(", c.source, re.M)]
    assert explorers, "no explorer: a lesson needs one where moving a control teaches something"
    for cell in explorers:
        (out,) = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
        assert out.data["text/plain"].startswith("explorer of ") and out.data.get("image/png"), cell.source[-200:]
        assert "application/vnd.jupyter.widget-view+json" not in out.data, "stored without its static view only"
    assert re.search(r"^quiz\(", code[-1].source, re.M), "the last code cell must be the self-check quiz"
    (text,) = _shown(code[-1])
    assert re.match(r"Self-check \(\d+ questions?\): run the notebook to answer them\.", text)
