"""Each step of the autograde pipeline on its own, on a fresh copy of the bench course."""
from __future__ import annotations

import json
import shutil

import nbformat
import pytest

import corpus
from lepton_kit.grading import pipeline as p
from lepton_kit.grading.cells import role
from lepton_kit.grading.config import gradebook, load_config
from lepton_kit.grading.execution import CellRun, NotebookRun
from lepton_kit.grading.sandbox import Unsandboxed


@pytest.fixture(scope="module")
def corpus_dir(bench_release, tmp_path_factory):
    """Every corpus case, written once (steps copy the ones they need)."""
    out = tmp_path_factory.mktemp("cases")
    corpus.build(out, root=bench_release)
    return out


@pytest.fixture
def batch(bench, backend):
    """An open Batch on a fresh bench course (its gradebook closed after the test)."""
    with gradebook(load_config(bench).CourseDirectory.db_url) as gb:
        yield p.Batch.open(bench, "bench", gb, load_config(bench), backend)


def submit(batch, corpus_dir, case, student=None, steps=()):
    """Copy a corpus case to submitted/ (as collect does) and run ``steps`` on it."""
    student = student or case
    shutil.copytree(corpus_dir / case / "bench", batch.root / "submitted" / student / "bench", symlinks=True)
    sub = batch.submission(student)
    for step in steps:
        step(sub, batch)
    return sub


PREPARED = p.PREPARE + p.PLAN


def test_one_signature_for_every_step_in_pipeline_order():
    names = [s.__name__ for s in p.STEPS]
    assert names == ["read", "parse", "restore_structure", "kernelspec", "ids", "draw_tasks", "fingerprint", "resume",
                     "plan",
                     "stage_files", "execute", "attach_outputs", "score", "attach_rubrics", "write_notebooks", "save",
                     "record",
                     "late_penalty", "commit"]
    assert all(s.__code__.co_varnames[:2] == ("sub", "batch") and s.__code__.co_argcount == 2 for s in p.STEPS)


def test_role_is_the_one_classification():
    def cell(kind="code", **meta):
        return {"cell_type": kind, "metadata": {"nbgrader": {"grade_id": "g", **meta}}}

    assert [role(cell(solution=True)), role(cell("markdown", solution=True, grade=True)), role(cell(grade=True)),
            role(cell(locked=True)), role(cell("markdown", task=True, grade=True)), role({"cell_type": "code"})] == \
        ["solution", "manual", "test", "locked", "task", None]


def test_templates_take_their_roles_from_role(batch):
    cells = batch.templates["bench"].cells
    assert {c.grade_id: c.role for c in cells if c.grade_id.startswith("test_")} == dict.fromkeys(corpus.TESTS, "test")
    assert {c.role for c in cells} <= {"solution", "test", "locked", "manual"}


def test_read(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=[p.read])
    assert sub.raw["bench"].startswith(b"{") and not sub.problems
    (sub.folder / "timestamp.txt").write_text("not a date")
    link = submit(batch, corpus_dir, "symlink-notebook", steps=[p.read])
    assert "symbolic link" in link.problems["bench"] and link.tokens["bench"] == "link"
    sub = batch.submission("honest")
    p.read(sub, batch)
    assert sub.timestamp == "" and "is not a date" in sub.notes[0]


def test_parse(batch, corpus_dir):
    bad = submit(batch, corpus_dir, "invalid-json", steps=[p.read, p.parse])
    assert "invalid JSON" in bad.problems["bench"] and bad.tokens["bench"].startswith("malformed ")
    good = submit(batch, corpus_dir, "honest", steps=[p.read, p.parse])
    assert good.data["bench"]["nbformat"] == 4 and not good.problems


def test_restore_structure(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "delete-tests", steps=[p.read, p.parse, p.restore_structure])
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in sub.notebooks["bench"].cells]
    assert set(corpus.TESTS) <= set(ids)
    assert any("test_relu was deleted" in n for n in sub.notes)
    hidden = next(c for c in sub.notebooks["bench"].cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu")
    assert hidden.source == batch.templates["bench"].by_id["test_relu"].source  # the gradebook's, hidden tests included


def test_kernelspec(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "unknown-kernel", steps=[p.read, p.parse, p.restore_structure, p.kernelspec])
    assert sub.notebooks["bench"].metadata["kernelspec"]["name"] == "python3"
    assert sub.notes == ["kernelspec 'evil-kernel' replaced by 'python3'"]


def test_ids(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=[p.read, p.parse, p.restore_structure])
    for cell in sub.notebooks["bench"].cells:
        cell["id"] = "same id!"
    p.ids(sub, batch)
    ids = [c["id"] for c in sub.notebooks["bench"].cells]
    assert len(set(ids)) == len(ids) and all(" " not in i and "!" not in i for i in ids)
    nbformat.validate(sub.notebooks["bench"])


def test_fingerprint(batch, corpus_dir):
    one = submit(batch, corpus_dir, "honest", steps=p.PREPARE[:7])
    two = submit(batch, corpus_dir, "honest", "honest-2", steps=p.PREPARE[:7])
    other = submit(batch, corpus_dir, "mistake-relu", steps=p.PREPARE[:7])
    assert one.fingerprint == two.fingerprint != other.fingerprint
    (two.folder / "timestamp.txt").write_text("2024-03-01 10:00:00 UTC")
    late = batch.submission("honest-2")
    for step in p.PREPARE[:7]:
        step(late, batch)
    assert late.fingerprint != one.fingerprint


def test_the_grader_draws_the_tasks_and_a_new_task_means_grading_again(batch, corpus_dir):
    without = submit(batch, corpus_dir, "honest", steps=p.PREPARE[:7])
    assert without.tasks == {}
    batch.task_slots, batch.key = {"optimizer": ["adamw", "centred_rmsprop"]}, b"k" * 32
    for task in ("adamw", "centred_rmsprop"):
        batch.assigned = {"honest": {"optimizer": task}}
        sub = batch.submission("honest")
        for step in p.PREPARE[:7]:
            step(sub, batch)
        assert sub.tasks == {"optimizer": task} and sub.fingerprint != without.fingerprint
        without = sub


def test_resume(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=p.PREPARE)
    assert not sub.loaded and not sub.ended
    sub.scores = {"bench": {"test_relu": 1.0}}
    batch.state.save(sub)
    again = batch.submission("honest")
    p.advance(p.PREPARE, again, batch)
    assert again.loaded and again.cached and not again.ended and again.scores == sub.scores
    batch.state.mark_done(sub)
    done = batch.submission("honest")
    p.advance(p.PREPARE, done, batch)
    assert done.ended and done.cached
    batch.force = True
    forced = batch.submission("honest")
    p.advance(p.PREPARE, forced, batch)
    assert not forced.loaded and not (batch.state.folder / "honest.done").exists()


def test_plan(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)
    planned = sub.plans["bench"]
    ops = {planned.labels[i]: op for i, op, _, _ in planned.cells}
    assert {ops[f"cell {t}"] for t in corpus.TESTS} == {"check"} and ops["cell relu_solution"] == "run"
    assert ops["cell setup"] == "setup" and planned.checker  # the checker runs the setup cell too
    assert "mse" in planned.student_names  # a baseline the student replaces: the checker fetches it
    assert all(code.endswith("\n") for _, op, code, _ in planned.cells if op != "run")
    assert "numpy" in planned.imports and "lepton_kit.checks" in planned.imports


def test_plan_in_the_kernel_and_setup_that_uses_student_code():
    from lepton_kit.grading.execution import plan

    def cell(source, **meta):
        return {"cell_type": "code", "source": source, "metadata": {"nbgrader": meta}}

    nb = {"cells": [cell("import numpy as np", locked=True, grade_id="setup"),
                    cell("def fit(x):\n    return x", solution=True, grade_id="answer"),
                    cell("model = fit(np.zeros(2))", locked=True, grade_id="train"),
                    cell("assert model.shape == (2,)", grade=True, locked=True, grade_id="test", points=1)]}
    stubs = ["def fit(x):\n    raise NotImplementedError()"]
    checked = plan(nb, answer_stubs=stubs, checker=True)
    assert [op for _, op, _, _ in checked.cells] == ["setup", "run", "run", "check"]
    assert checked.student_names == ["fit", "model"]  # bound by a cell that ran the student's code
    in_kernel = plan(nb, answer_stubs=stubs)
    assert [op for _, op, _, _ in in_kernel.cells] == ["instr", "run", "instr", "test"]


def test_stage_files(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "shadow-modules", steps=PREPARED)
    (sub.folder / "data.csv").write_text("1,2\n")
    (sub.folder / "link.txt").symlink_to(batch.root / "gradebook.db")
    p.stage_files(sub, batch)
    names = {f.name for f in sub.files.iterdir()}
    assert "data.csv" in names and "numpy.py" in names
    assert not names & {"bench.ipynb", "link.txt", ".ipython", "timestamp.txt"}
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in sub.files.iterdir() if f.is_file())


def test_execute(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "mistake-relu", steps=PREPARED + p.EXECUTE)
    assert not sub.ended, sub.failure
    verdicts = {sub.plans["bench"].labels[i]: c.verdict for i, c in sub.runs["bench"].cells.items()}
    assert not verdicts["cell test_relu"] and verdicts["cell test_softmax"] is True
    assert not sub.files.exists(), "the staged files go once the notebook ran"


def test_execute_reports_an_executor_that_cannot_start(batch, corpus_dir):
    class Broken(Unsandboxed):
        def start(self, *args, **kwargs):
            raise OSError("no such sandbox")

    batch.backend = Broken()
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED + p.EXECUTE)
    assert sub.ended and "could not start the executor: no such sandbox" in sub.failure


def _fake_runs(sub, passed: set):
    """A NotebookRun where the tests in ``passed`` got a signed pass and every other test ran and failed."""
    run = NotebookRun()
    for index, op, _, _ in sub.plans["bench"].cells:
        ok = sub.plans["bench"].labels[index][5:] in passed
        run.cells[index] = CellRun(outputs=[{"output_type": "stream", "name": "stdout", "text": "hi\n"}],
                                   verdict=ok if op != "run" else None, ran=True)
    sub.runs["bench"] = run


def test_attach_outputs(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)
    _fake_runs(sub, {"test_relu", "test_softmax"})
    p.attach_outputs(sub, batch)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in sub.notebooks["bench"].cells}
    assert cells["test_relu"].outputs == [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
    assert cells["test_mse"].outputs[-1]["ename"] == "AutograderVerdict"


def test_score(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)
    _fake_runs(sub, {"test_relu", "test_softmax"})
    p.score(sub, batch)
    assert {t: sub.scores["bench"][t] for t in corpus.TESTS} == {"test_relu": 1.0, "test_softmax": 2.0, "test_mse": 0.0}
    assert set(sub.comments["bench"].values()) == {None}  # every answer changed
    blank = submit(batch, corpus_dir, "blank", steps=PREPARED)
    _fake_runs(blank, set())
    p.score(blank, batch)
    assert set(blank.comments["bench"].values()) == {"No response."}
    bad = submit(batch, corpus_dir, "empty-file", steps=PREPARED)
    p.score(bad, batch)
    assert {t: bad.scores["bench"][t] for t in corpus.TESTS} == dict.fromkeys(corpus.TESTS, 0.0)


def test_write_notebooks_and_save(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)
    sub.timestamp = "2024-03-01 10:00:00 UTC"
    _fake_runs(sub, set(corpus.TESTS))
    for step in (p.attach_outputs, p.score, p.write_notebooks, p.save):
        step(sub, batch)
    folder = batch.root / "autograded" / "honest" / "bench"
    nbformat.validate(nbformat.read(folder / "bench.ipynb", as_version=4))
    assert (folder / "timestamp.txt").read_text() == sub.timestamp
    saved = json.loads((batch.state.folder / "honest.json").read_text())
    assert saved["fingerprint"] == sub.fingerprint and saved["scores"] == sub.scores
    assert batch.state.result("honest", sub.fingerprint) == saved


def test_record_and_commit(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)
    _fake_runs(sub, {"test_softmax"})
    p.advance(p.FINISH + p.RECORD, sub, batch)
    assert sub.ended and sub.ok and batch.state.done("honest", sub.fingerprint)
    grade = batch.gb.find_grade("test_softmax", "bench", "bench", "honest")
    assert grade.auto_score == 2.0 and batch.gb.find_grade("test_relu", "bench", "bench", "honest").auto_score == 0.0
    assert batch.gb.find_submission_notebook("bench", "bench", "honest").late_submission_penalty is None


RUBRIC = """why_shift:
  - points: 0.5
    criterion: "names the shift by the row maximum"
    full_marks: "says that exp overflows without it | and that the result is unchanged"
  - points: 0.5
    criterion: "explains why the result is the same"
    full_marks: "a factor exp(-max) cancels in the ratio"
"""


def test_the_rubric_goes_under_its_cell_for_graders_and_never_to_students(bench, backend, corpus_dir):
    from lepton_kit.course.release import release
    from lepton_kit.grading import rubric

    (bench / "source" / "bench" / "rubric.yml").write_text(RUBRIC)
    release(bench, ["bench"])
    assert not list((bench / "release").rglob("rubric.yml"))          # nbgrader's ignore list
    with gradebook(load_config(bench).CourseDirectory.db_url) as gb:
        batch = p.Batch.open(bench, "bench", gb, load_config(bench), backend)
        assert rubric.problems(batch.rubric, {"why_shift": 1}) == []
        sub = submit(batch, corpus_dir, "honest", steps=PREPARED + p.EXECUTE)
        assert not any(f.name == "rubric.yml" for f in (batch.state.staging).rglob("*"))
        p.advance(p.FINISH + p.RECORD, sub, batch)
        assert sub.ok, sub.reason
    nb = nbformat.read(bench / "autograded" / "honest" / "bench" / "bench.ipynb", 4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") or c.get("id") for c in nb.cells]
    assert ids[ids.index("why_shift") + 1] == "rubric-why_shift"
    text = nb.cells[ids.index("why_shift") + 1].source
    assert "| 0.5 | names the shift by the row maximum | says that exp overflows without it \\| and" in text
    assert rubric.attach(nbformat.from_dict(nb), batch.rubric) == 0          # a re-run does not add it twice

    from lepton_kit.grading.feedback import write_feedback

    def page():
        (path,) = write_feedback(bench, "bench", students=["honest"])
        return path.read_text()

    assert "names the shift by the row maximum" not in page()       # not before the cell is graded by hand
    with gradebook(load_config(bench).CourseDirectory.db_url) as gb:
        gb.find_grade("why_shift", "bench", "bench", "honest").manual_score = 1.0
        gb.db.commit()
    assert "<summary>rubric</summary>" in page() and "names the shift by the row maximum" in page()


@pytest.mark.parametrize("bad, why", [("[]", "must map"), ("a: []", "non-empty"),
                                       ("a: [{points: 1, criterion: x}]", "missing full_marks"),
                                       ("a: [{points: -1, criterion: x, full_marks: y}]", "positive"),
                                       ("a: [{points: true, criterion: x, full_marks: y}]", "positive"),
                                       ("a: [unclosed", "not YAML")])
def test_a_malformed_rubric_is_refused_with_what_is_wrong(tmp_path, bad, why):
    from lepton_kit.grading import rubric

    (tmp_path / "source" / "x").mkdir(parents=True)
    (tmp_path / "source" / "x" / "rubric.yml").write_text(bad)
    with pytest.raises(ValueError, match=why):
        rubric.load(tmp_path, "x")
    assert rubric.load(tmp_path, "none") == {}


def test_advance_turns_exceptions_into_failures(batch, corpus_dir):
    sub = submit(batch, corpus_dir, "honest", steps=PREPARED)

    def broken(sub, batch):
        raise RuntimeError("boom")

    p.advance((broken, p.plan), sub, batch)
    assert sub.ended and sub.failure == "autograder error: RuntimeError: boom"
    sub = batch.submission("honest")
    sub.scores = {"bench": {"no_such_cell": 1.0}}
    p.advance(p.RECORD, sub, batch)
    assert sub.failure.startswith("gradebook error: ") and not batch.state.done("honest", sub.fingerprint)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_partial_credit_value_scores_zero(value):
    assert p.score_test(CellRun(verdict=True, value=value), 2.0) == 0.0
    assert p.score_test(CellRun(verdict=True, value=1.5), 2.0) == 1.5


def test_a_student_id_with_a_trailing_newline_is_refused(tmp_path):
    from lepton_kit.grading.autograde import SAFE_ID

    assert SAFE_ID.fullmatch("alice") and not SAFE_ID.fullmatch("alice\n")
    assert not SAFE_ID.fullmatch("../alice") and not SAFE_ID.fullmatch("-alice")
