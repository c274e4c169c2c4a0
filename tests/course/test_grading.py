"""Grading validity: release in sync and clean, solutions full marks, releases zero, mistakes lose points.

Each assignment is released into a course of its own, and its tests share one xdist group, so
the assignments are graded in parallel while each is released once per worker.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO
from lepton_kit.course.grades import EXPORT_COLUMNS, cell_scores, grades, write_csv
from lepton_kit.course.release import release
from lepton_kit.grading.autograde import autograde
from lepton_kit.grading import misconceptions
from lepton_kit.grading.config import INSTRUCTOR_ONLY, assignments, gradebook, load_config, nbgrader
from lepton_kit.grading.feedback import write_feedback
from lepton_kit.course.samples import replaced, solved
from lepton_kit.grading.misconceptions import load_mistakes

ASSIGNMENTS = assignments(REPO)
WITH_SAMPLES = [a for a in ASSIGNMENTS if (REPO / "autograder/samples" / a).is_dir()]


def per_assignment(ids):
    """Parameters that keep one assignment's tests in one worker (its course is released once there)."""
    return [pytest.param(a, marks=pytest.mark.xdist_group(f"grading-{a}")) for a in ids]


def _nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def _signature(nb):
    return [(c.cell_type, c.source, _nbgrader(c).get("grade_id"), _nbgrader(c).get("points")) for c in nb.cells]


def test_there_is_at_least_one_assignment():
    assert "01_mlp" in ASSIGNMENTS


@pytest.mark.slow
@pytest.mark.parametrize("assignment", per_assignment(ASSIGNMENTS))
def test_release_is_in_sync_with_source(released, assignment):
    course = released(assignment)
    committed = sorted((REPO / "release" / assignment).glob("*.ipynb"))
    fresh = sorted((course / "release" / assignment).glob("*.ipynb"))
    assert [p.name for p in committed] == [p.name for p in fresh], "run `lepton release` and commit release/"
    for old, new in zip(committed, fresh):
        assert _signature(nbformat.read(old, 4)) == _signature(nbformat.read(new, 4)), \
            f"{old} is stale: run `lepton release {assignment}` and commit it"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_and_no_hidden_tests(assignment):
    for source_path in (REPO / "source" / assignment).glob("*.ipynb"):
        release_path = REPO / "release" / assignment / source_path.name
        assert not re.search(r"BEGIN (SOLUTION|HIDDEN TESTS)", release_path.read_text())
        released = "\n".join(c.source for c in nbformat.read(release_path, 4).cells)
        for cell in nbformat.read(source_path, 4).cells:
            for block in re.findall(r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", cell.source, re.S):
                if block.strip():
                    assert block.strip() not in released, f"release leaks: {block.strip()[:200]}"
    for name in INSTRUCTOR_ONLY:
        assert not list((REPO / "release" / assignment).glob(name)), f"{name} must not be released"


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS if (REPO / "source" / a / "rubric.yml").is_file()])
def test_the_rubric_fits_the_hand_graded_cells(assignment):
    from lepton_kit.grading import rubric

    manual = {_nbgrader(c)["grade_id"]: _nbgrader(c).get("points", 0)
              for path in (REPO / "source" / assignment).glob("*.ipynb") for c in nbformat.read(path, 4).cells
              if _nbgrader(c).get("grade") and c.cell_type == "markdown"}
    loaded = rubric.load(REPO, assignment)
    assert rubric.problems(loaded, manual) == []
    assert set(loaded) == set(manual), "every hand-graded cell of a project has a rubric"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_intro_gives_points_and_an_expected_time_per_exercise_that_add_up(assignment):
    for path in (REPO / "source" / assignment).glob("*.ipynb"):
        intro = nbformat.read(path, 4).cells[0].source
        rows = re.findall(r"^\| (\d+) \|.*\| (\d+) \| (\d+) min \|$", intro, re.M)
        total = re.search(r"^\| \| \*\*total\*\* \| \*\*(\d+)\*\* \| \*\*about (?:(\d+) h )?(\d+) min\*\* \|$",
                          intro, re.M)
        assert rows and total, f"{path.name}: the intro's table needs a row per exercise with points and minutes"
        assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
        assert sum(int(r[1]) for r in rows) == int(total[1]), "the points do not add up to the total"
        assert sum(int(r[2]) for r in rows) == 60 * int(total[2] or 0) + int(total[3]), "the minutes do not add up"
        graded = sum(float(_nbgrader(c).get("points", 0)) for c in nbformat.read(path, 4).cells if _nbgrader(c).get("grade"))
        assert graded == int(total[1]), f"the table says {total[1]} points, the notebook's cells {graded:g}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_tests_hold_no_reference_implementation(assignment):
    """A reference the tests compare with (``_reference_epoch``, ``_mse_gradient_by_autograd``) is the
    exercise's answer: it lives in hidden cells, and visible tests compare with values computed once."""
    for path in (REPO / "release" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            if cell.cell_type == "code" and _nbgrader(cell).get("grade") and not _nbgrader(cell).get("solution"):
                found = re.findall(r"^\s*def (_reference\w*|\w*_by_autograd)\b", cell.source, re.M)
                assert not found, f"{path.name}, {_nbgrader(cell)['grade_id']}: visible reference {found}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebooks_have_no_outputs_and_a_parameters_cell(assignment):
    for path in (REPO / "source" / assignment).glob("*.ipynb"):
        nb = nbformat.read(path, 4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path} has outputs"
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []) and 'profile = "ci"' in first_code.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_exercise_lists_its_common_mistakes(assignment):
    mistakes = load_mistakes(REPO / "source" / assignment / "mistakes.yml")
    covered = {m["exercise"] for m in mistakes}
    for path in (REPO / "source" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            meta = _nbgrader(cell)
            if meta.get("solution") and cell.cell_type == "code":
                assert meta["grade_id"] in covered, f"exercise {meta['grade_id']} has no mistake in mistakes.yml"


def _autograded_totals(root, assignment):
    return {student: (sum(s for s, _ in cells.values()), sum(m for _, m in cells.values()))
            for student, cells in cell_scores(root, assignment).items()}


@pytest.mark.parametrize("assignment", WITH_SAMPLES)
def test_committed_samples_are_what_make_samples_builds(assignment, tmp_path):
    import make_samples

    spec = yaml.safe_load((REPO / "autograder/samples" / assignment / "expected.yml").read_text())
    make_samples.build(assignment, root=REPO, out=tmp_path / "fresh")
    for student in spec["students"]:
        for fresh in (tmp_path / "fresh" / student / assignment).glob("*.ipynb"):
            committed = REPO / "autograder/samples" / assignment / student / assignment / fresh.name
            assert _signature(nbformat.read(committed, 4)) == _signature(nbformat.read(fresh, 4)), \
                f"{committed} is stale: run python autograder/make_samples.py"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", per_assignment(ASSIGNMENTS))
def test_samples_get_their_expected_scores_and_each_common_mistake_loses_points(released, assignment, tmp_path):
    """One batch per assignment: the samples (alice solved it, bob handed in the release, carol is
    partial), one student per common mistake, each the solution with that one mistake in it, and one per
    correct variant (variants.yml), which must get full marks."""
    course = released(assignment)
    submissions = tmp_path / "submissions"
    samples = REPO / "autograder/samples" / assignment
    spec = yaml.safe_load((samples / "expected.yml").read_text()) if samples.is_dir() else {"students": {}}
    for student in spec["students"]:
        shutil.copytree(samples / student, submissions / student)
    mistakes = load_mistakes(REPO / "source" / assignment / "mistakes.yml")
    variants_file = REPO / "source" / assignment / "variants.yml"      # correct answers written differently
    variants = yaml.safe_load(variants_file.read_text()) if variants_file.exists() else []
    honest_id = next((s for s, info in spec["students"].items() if info["kind"] == "solution"), "honest")
    for path in (course / "release" / assignment).glob("*.ipynb"):
        honest = solved(nbformat.read(path, 4), nbformat.read(course / "source" / assignment / path.name, 4))
        students = {} if honest_id in spec["students"] else {honest_id: honest}
        students.update({f"mistake-{m['id']}": replaced(honest, {m["exercise"]: m["code"]}) for m in mistakes})
        students.update({f"variant-{v['id']}": replaced(honest, {v["exercise"]: v["code"]}) for v in variants})
        for student, nb in students.items():
            target = submissions / student / assignment / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
    _assign_the_tasks_of_the_mistakes(course, assignment, mistakes)
    batch = autograde(course, assignment, submissions, jobs=2, progress=False)
    assert not batch.failed, batch.summary()
    scores = cell_scores(course, assignment)
    totals = _autograded_totals(course, assignment)
    for student, info in spec["students"].items():
        score, max_score = totals[student]
        assert score == pytest.approx(info["expected_score"]), f"{student}: {score} / {max_score}"
        if info["kind"] == "release":
            assert score == 0
    assert all(score == max_score for score, max_score in scores[honest_id].values()), scores[honest_id]
    for m in mistakes:
        got = scores[f"mistake-{m['id']}"]
        kept = [cell for cell in m["loses"] if got[cell][0] > 0]
        assert not kept, f"mistake {m['id']} ({m['description']}) still earns points in {kept}"
    for v in variants:
        got = scores[f"variant-{v['id']}"]
        lost = {cell: score for cell, score in got.items() if score[0] < score[1]}
        assert not lost, f"the correct variant {v['id']} ({v['description']}) loses points in {lost}"
    _check_misconception_analytics(course, assignment, spec, mistakes)


def _assign_the_tasks_of_the_mistakes(course, assignment, mistakes):
    """An assignment with per-student tasks (tasks.yml): each mistake's student gets the task of that mistake."""
    path = course / "source" / assignment / "tasks.yml"
    if not path.exists():
        return
    spec = yaml.safe_load(path.read_text())
    slot_of = {task: slot for slot, tasks in spec["draw"].items() for task in tasks}
    spec["assigned"] = {f"mistake-{m['id']}": {slot_of[m["task"]]: m["task"]} for m in mistakes}
    path.write_text(yaml.safe_dump(spec))


def _check_misconception_analytics(course, assignment, spec, mistakes):
    """Each mistake's student is told that mistake (or a more specific one of the same exercise that their
    failures also match); the solution and the release match nothing; a partial sample is told exactly its own
    mistakes (none for what it left unanswered), on its feedback page too; the report counts them."""
    with gradebook(load_config(course).CourseDirectory.db_url) as gb:
        told = {s.student_id: misconceptions.student_matches(course, assignment, gb, s.student_id, mistakes)
                for s in gb.assignment_submissions(assignment)}
        tally = dict((m["id"], n) for m, n in misconceptions.counts(course, assignment, gb))
    for m in mistakes:
        got = told[f"mistake-{m['id']}"]
        assert m in got or any(o["exercise"] == m["exercise"] and set(m["loses"]) < set(o["loses"]) for o in got), \
            f"mistake {m['id']}: its student is told {[o['id'] for o in got]}"
        assert tally[m["id"]] >= 1
    for student, info in spec["students"].items():
        ids = {m["id"] for m in told[student]}
        if info["kind"] in ("solution", "release"):
            assert not ids, f"{student} ({info['kind']}) is told of mistakes {ids}"
        elif info.get("mistakes"):
            assert set(info["mistakes"]) <= ids, f"{student} made {info['mistakes']}, is told {ids}"
            assert not {m["exercise"] for m in told[student]} & set(info.get("unanswered", [])), \
                f"{student}: an unanswered exercise matched a mistake"
            (page,) = write_feedback(course, assignment, students=[student])
            text = page.read_text()
            assert "Your failures match a common mistake" in text
            for m in told[student]:
                assert html.escape(m["description"]) in text


@pytest.mark.slow
@pytest.mark.xdist_group("grading-01_mlp")
def test_a_broken_submission_never_stops_the_batch(released, tmp_path):
    assignment = "01_mlp"
    course = released(assignment)
    release_nb = next((course / "release" / assignment).glob("*.ipynb"))
    for student, content in {"broken-json": "{ not json", "binary-junk": "\x00\x01\x02 junk",
                             "empty": "", "untouched": release_nb.read_text()}.items():
        target = tmp_path / student / assignment / release_nb.name
        target.parent.mkdir(parents=True)
        target.write_text(content)
    (tmp_path / "bad name!" / assignment).mkdir(parents=True)
    batch = autograde(course, assignment, tmp_path, jobs=2, progress=False)
    outcomes = {o.student: o for o in batch.outcomes}
    assert outcomes["untouched"].ok
    assert {"broken-json", "binary-junk", "empty"} <= {o.student for o in batch.failed}
    assert all(o.reason for o in batch.failed)
    assert batch.skipped and batch.skipped[0][0] == "bad name!"
    assert "failed 3" in batch.summary()


@pytest.mark.slow
@pytest.mark.xdist_group("grading-01_mlp")
def test_grades_csv_has_nbgrader_columns_and_course_grade(released, tmp_path, capsys):
    root = released("01_mlp")  # one assignment: the course grade is its share
    autograde(root, "01_mlp", REPO / "autograder/samples/01_mlp", progress=False)  # kept if graded already
    rows = grades(root)
    path = write_csv(rows, tmp_path / "grades.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:11] == EXPORT_COLUMNS
    assert {"category", "course_grade", "passed", "progress"} <= set(header)
    by_student = {r["student_id"]: r for r in rows}
    alice = by_student["alice"]
    assert float(alice["course_grade"]) == pytest.approx(100 * float(alice["score"]) / float(alice["max_score"]), abs=0.01)
    from lepton_kit.course.curriculum import load_course

    planned = len(load_course(root)["assignments"])  # progress counts every assignment the curriculum plans
    # only the tests category has a graded assignment: a grade of 100 is provisional, not a pass
    assert alice["progress"] == f"1/{planned}" and alice["passed"] == "not yet"
    assert alice["provisional"] == "yes: nothing graded in project, skills"
    assert alice["tests_percent"] == alice["course_grade"] and alice["project_percent"] == ""
    assert by_student["bob"]["course_grade"] == "0.00" and by_student["bob"]["passed"] == "not yet"
    from lepton_kit.course.cli import main

    assert main(["--root", str(root), "grades"]) == 0            # the terminal table shows each category's share
    header, _, first = capsys.readouterr().out.splitlines()[:3]
    assert header.split() == ["assignment", "student_id", "score", "max_score", "tests_percent", "project_percent",
                              "skills_percent", "course_grade", "provisional", "passed", "progress"]
    assert main(["--root", str(root), "report"]) == 0            # the common-mistakes table: carol's two at least
    report = (root / "build" / "report" / "index.html").read_text()
    assert "<h2>Common mistakes</h2>" in report
    bank = {m["id"]: m for m in load_mistakes(root / "source" / "01_mlp" / "mistakes.yml")}
    carol = yaml.safe_load((REPO / "autograder/samples/01_mlp/expected.yml").read_text())["students"]["carol"]
    for mistake in carol["mistakes"]:
        assert html.escape(bank[mistake]["description"]) in report


@pytest.mark.xdist_group("grading-01_mlp")
def test_cli_reports_an_unknown_assignment_clearly(released):
    course = released("01_mlp")
    result = subprocess.run([sys.executable, "-m", "lepton_kit.course.cli", "--root", str(course), "autograde", "99_nope",
                             "--submissions", str(course)], capture_output=True, text=True)
    assert result.returncode == 2 and "no such assignment under source/: 99_nope" in result.stderr


VALIDATED = ["01_mlp", "02_autograd"]  # one NumPy and one PyTorch assignment: papermill runs every solution


@pytest.mark.slow
@pytest.mark.parametrize("assignment", per_assignment(VALIDATED))
def test_validate_passes_the_solution_and_fails_the_release(released, assignment):
    """What a student sees on pressing Validate (nbgrader validate, as the lab extension runs it).

    Two assignments: that every solution passes its own tests in a plain kernel is what the papermill
    run of each source notebook proves, and that every release scores zero is the grading test's."""
    course = released(assignment)
    samples = REPO / "autograder/samples" / assignment
    for student, passes in (("alice", True), ("bob", False)):
        for notebook in (samples / student / assignment).glob("*.ipynb"):
            result = nbgrader(course, "validate", notebook, timeout=600)
            text = result.stdout + result.stderr
            assert ("Success! Your notebook passes all the tests." in text) is passes, f"{student}: {text[-2000:]}"


@pytest.mark.slow
@pytest.mark.xdist_group("grading-01_mlp")
def test_lepton_validate_exits_non_zero_when_a_test_fails(released):
    """`nbgrader validate` exits 0 either way; `lepton validate` says it with its exit status too."""
    course = released("01_mlp")
    samples = REPO / "autograder/samples/01_mlp"
    for student, code in (("alice", 0), ("bob", 1)):
        notebook = next((samples / student / "01_mlp").glob("*.ipynb"))
        result = subprocess.run([sys.executable, "-m", "lepton_kit.course.cli", "--root", str(course), "validate",
                                 str(notebook)], capture_output=True, text=True, timeout=600)
        assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
        assert ("Success! Your notebook passes all the tests." in result.stdout + result.stderr) is (code == 0)
