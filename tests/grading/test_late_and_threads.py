"""Late penalties through nbgrader's LateSubmissionPlugin; parsing that holds under threads; the CI rule."""
from __future__ import annotations

import json
import threading
from datetime import datetime

import nbformat
import pytest
import yaml

import corpus
from conftest import REPO, copy_course, sandbox_mode
from lepton_kit.course.grades import cell_scores
from lepton_kit.grading import execution, restore
from lepton_kit.grading.autograde import autograde
from lepton_kit.grading.cells import guarded, imports_of
from lepton_kit.grading.config import gradebook, load_config


def test_a_late_submission_gets_the_configured_penalty_and_an_on_time_one_none(bench, backend, tmp_path):
    with open(bench / "nbgrader_config.py", "a") as fh:
        fh.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    url = load_config(bench).CourseDirectory.db_url
    with gradebook(url) as gb:
        gb.update_or_create_assignment("bench", duedate=datetime(2024, 3, 1, 12, 0))
    corpus.build(tmp_path / "all", root=bench)
    for student, stamp in (("late", "2024-03-02 09:00:00 UTC"), ("on-time", "2024-03-01 11:00:00 UTC")):
        folder = tmp_path / "subs" / student / "bench"
        folder.mkdir(parents=True)
        (folder / "bench.ipynb").write_bytes((tmp_path / "all" / "honest" / "bench" / "bench.ipynb").read_bytes())
        (folder / "timestamp.txt").write_text(stamp)
    batch = autograde(bench, "bench", tmp_path / "subs", jobs=2, progress=False, sandbox=backend)
    assert not batch.failed, batch.summary()
    with gradebook(url) as gb:
        late = gb.find_submission_notebook("bench", "bench", "late")
        on_time = gb.find_submission_notebook("bench", "bench", "on-time")
        assert late.score == on_time.score == 4.0
        assert late.late_submission_penalty == 4.0 and on_time.late_submission_penalty is None


def _parse_everything(nb, raw, template):
    planned = execution.plan(nb)
    rebuilt, notes = restore.rebuild(restore.parse(raw), template)
    return (json.dumps(planned.cells), planned.imports, json.dumps(rebuilt, sort_keys=True), notes,
            guarded("x = 1\nx + 1"), imports_of(["import numpy as np\nnp.random.default_rng(0)"]))


def test_parsing_gives_the_same_results_from_eight_threads(bench):
    raw = (bench / "source" / "bench" / "bench.ipynb").read_bytes()
    nb = nbformat.reads(raw.decode(), as_version=4)
    with gradebook(load_config(bench).CourseDirectory.db_url) as gb:
        template = restore.templates(bench, "bench", gb)["bench"]
    expected = _parse_everything(nb, raw, template)
    results, errors = [], []

    def hammer():
        try:
            for _ in range(25):
                results.append(_parse_everything(nb, raw, template))
        except Exception as err:  # noqa: BLE001 (the point: none at all)
            errors.append(repr(err))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 200
    assert all(r == expected for r in results)


@pytest.mark.slow
def test_parallel_jobs_grade_the_01_mlp_samples_identically_every_round(tmp_path, backend):
    from lepton_kit.course.release import release

    root = copy_course(tmp_path / "course", assignments=["01_mlp"])
    release(root, ["01_mlp"])
    samples = REPO / "autograder" / "samples" / "01_mlp"
    expected = {s: info["expected_score"] for s, info in yaml.safe_load((samples / "expected.yml").read_text())[
        "students"].items()}
    for round_ in range(3):
        batch = autograde(root, "01_mlp", samples, jobs=4, progress=False, force=True, sandbox=backend)
        assert not batch.failed, f"round {round_}: {batch.summary()}"
        totals = {s: sum(v for v, _ in cells.values()) for s, cells in cell_scores(root, "01_mlp").items()}
        assert totals == pytest.approx(expected), f"round {round_}"


def test_without_bubblewrap_ci_fails_and_elsewhere_grading_goes_on_unsandboxed():
    assert sandbox_mode("", "true") == "bubblewrap"
    assert sandbox_mode("bwrap cannot create namespaces here", None) == "unsandboxed"
    assert sandbox_mode("bwrap cannot create namespaces here", "false") == "unsandboxed"
    with pytest.raises(pytest.fail.Exception, match="CI: bubblewrap cannot isolate"):
        sandbox_mode("bwrap cannot create namespaces here", "true")
