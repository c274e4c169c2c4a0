"""Per-student variants (skills test S1): each student's own bugs, drawn from the id and the course secret,
graded by the tests those bugs lose."""
from __future__ import annotations

import csv

import nbformat
import pytest

from conftest import REPO
from lepton_kit.course import variants
from lepton_kit.course.cli import main
from lepton_kit.course.grades import cell_scores
from lepton_kit.grading.autograde import autograde
from lepton_kit.grading.misconceptions import load_mistakes

ASSIGNMENT = "s1_repair"
KEY = b"a course secret for the tests"


def test_the_draw_is_per_student_per_secret_and_reproducible():
    slots = variants.load(REPO, ASSIGNMENT)
    assert len(slots) == 5 and all(len(bugs) >= 2 for bugs in slots.values())
    drawn = {s: variants.draw(s, slots, key=KEY) for s in ("ada", "ben", "chen", "dara", "eli", "fay")}
    assert len({tuple(d.values()) for d in drawn.values()}) >= 5, drawn       # neighbours differ
    assert drawn["ada"] == variants.draw("ada", slots, key=KEY)
    assert any(variants.draw(s, slots, key=b"another secret") != drawn[s] for s in drawn)
    everything = {bug for d in drawn.values() for bug in d.values()}
    assert everything <= {bug for bugs in slots.values() for bug in bugs}


def test_a_bad_bank_is_refused_with_what_is_wrong(tmp_path):
    folder = tmp_path / "source" / "x"
    folder.mkdir(parents=True)
    (folder / "mistakes.yml").write_text("- {id: m1, exercise: a, description: d, code: 'x = 1', loses: [t]}\n")
    for text, why in [("draw: {}", "needs `draw:`"), ("draw: {a: []}", "non-empty"),
                      ("draw: {a: [nope]}", "does not define"), ("draw: {b: [m1]}", "not of 'b'")]:
        (folder / "bugs.yml").write_text(text)
        with pytest.raises(ValueError, match=why):
            variants.load(tmp_path, "x")


def test_the_secret_is_created_once_private_and_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.delenv(variants.SECRET_ENV, raising=False)
    key = variants.course_key(tmp_path)
    assert key == variants.course_key(tmp_path) and len(key) == 64
    assert (tmp_path / variants.SECRET_FILE).stat().st_mode & 0o077 == 0
    monkeypatch.setenv(variants.SECRET_ENV, "from the environment")
    assert variants.course_key(tmp_path) == b"from the environment"


@pytest.mark.slow
@pytest.mark.xdist_group(f"grading-{ASSIGNMENT}")
def test_two_students_get_their_own_bugs_and_each_fix_earns_its_test(released, tmp_path, monkeypatch):
    course = released(ASSIGNMENT)
    monkeypatch.setenv(variants.SECRET_ENV, KEY.decode())
    out = tmp_path / "variants"
    assert main(["--root", str(course), "variants", ASSIGNMENT, "--student", "ada", "--student", "ben",
                 "--output", str(out)]) == 0
    drawn = {}
    for row in csv.DictReader(open(out / "drawn.csv")):
        drawn.setdefault(row["student"], {})[row["slot"]] = row["drawn"]
    assert drawn["ada"] != drawn["ben"]
    assert drawn["ada"] == variants.draw("ada", variants.load(REPO, ASSIGNMENT), key=KEY)
    ada = nbformat.read(out / "ada" / ASSIGNMENT / "repair.ipynb", 4)
    mistakes = {m["id"]: m for m in load_mistakes(REPO / "source" / ASSIGNMENT / "mistakes.yml")}
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in ada.cells}
    for slot, bug in drawn["ada"].items():
        assert cells[slot].source == mistakes[bug]["code"]
    assert "BEGIN HIDDEN" not in (out / "ada" / ASSIGNMENT / "repair.ipynb").read_text()
    # ben hands in his variant untouched; ada fixes the training loop only (she writes the correct function)
    source = nbformat.read(REPO / "source" / ASSIGNMENT / "repair.ipynb", 4)
    correct = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    cells["train_epoch_solution"].source = correct["train_epoch_solution"]
    submissions = tmp_path / "submitted"
    (submissions / "ben").mkdir(parents=True)
    (out / "ben" / ASSIGNMENT).rename(submissions / "ben" / ASSIGNMENT)
    (submissions / "ada" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(ada, submissions / "ada" / ASSIGNMENT / "repair.ipynb")
    batch = autograde(course, ASSIGNMENT, submissions, jobs=2, progress=False, force=True)
    assert not batch.failed, batch.summary()
    scores = cell_scores(course, ASSIGNMENT)
    tests = [m["loses"][0] for m in mistakes.values()]
    assert all(scores["ben"][t][0] == 0 for t in tests), scores["ben"]
    assert scores["ada"]["test_train_one_epoch"][0] == scores["ada"]["test_train_one_epoch"][1] == 3
    assert all(scores["ada"][t][0] == 0 for t in set(tests) - {"test_train_one_epoch"}), scores["ada"]


@pytest.mark.slow
@pytest.mark.xdist_group("grading-s2_equation")
def test_each_student_is_graded_on_the_tasks_the_grader_draws_not_on_their_copy(released, tmp_path, monkeypatch):
    """S2: `lepton variants` writes each student's variant.json; the grader draws again outside the sandbox,
    so a student who edits their copy (or the notebook's TASKS) to an easier task is graded on their own."""
    import json

    from lepton_kit.grading.draws import load_tasks, tasks_for

    assignment = "s2_equation"
    course = released(assignment)
    monkeypatch.setenv(variants.SECRET_ENV, KEY.decode())
    slots, _ = load_tasks(REPO, assignment)
    ids = [f"student{i}" for i in range(40)]
    adamw = next(s for s in ids if tasks_for(s, slots, {}, key=KEY)["optimizer"] == "adamw")
    other = next(s for s in ids if tasks_for(s, slots, {}, key=KEY)["optimizer"] != "adamw")
    out = tmp_path / "variants"
    assert main(["--root", str(course), "variants", assignment, "--student", adamw, "--student", other,
                 "--output", str(out)]) == 0
    for student in (adamw, other):
        copy = json.loads((out / student / assignment / "variant.json").read_text())
        assert copy["tasks"] == tasks_for(student, slots, {}, key=KEY)
    assert "BEGIN HIDDEN" not in (out / other / assignment / "equation.ipynb").read_text()
    # both hand in an AdamW-only optimizer_step; the other one also claims AdamW in their copy and their TASKS
    mistakes = {m["id"]: m for m in load_mistakes(REPO / "source" / assignment / "mistakes.yml")}
    source = nbformat.read(REPO / "source" / assignment / "equation.ipynb", 4)
    adamw_only = mistakes["adamw_decay_without_lr"]["code"].replace('p -= hp["weight_decay"] * p',
                                                                    'p -= hp["lr"] * hp["weight_decay"] * p')
    submissions = tmp_path / "submitted"
    for student in (adamw, other):
        nb = nbformat.read(out / student / assignment / "equation.ipynb", 4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "optimizer_solution":
                cell.source = adamw_only + ('\nTASKS["optimizer"] = "adamw"\n' if student == other else "")
        folder = submissions / student / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "equation.ipynb")
        (folder / "variant.json").write_text(json.dumps({"student": student, "tasks": {**tasks_for(
            student, slots, {}, key=KEY), "optimizer": "adamw"}}))
    assert any(c.metadata.get("nbgrader", {}).get("grade_id") == "optimizer_solution" for c in source.cells)
    batch = autograde(course, assignment, submissions, jobs=2, progress=False, force=True)
    assert not batch.failed, batch.summary()
    scores = cell_scores(course, assignment)
    assert scores[adamw]["test_optimizer_first_steps"] == (2, 2) and scores[adamw]["test_optimizer_parity"] == (6, 6)
    assert scores[other]["test_optimizer_parity"][0] == 0, scores[other]
    assert scores[other]["test_optimizer_first_steps"][0] == 0, scores[other]
