"""A student's assignment in JupyterLab: the released notebook fails helpfully; the solved one validates."""
from __future__ import annotations

import shutil

import nbformat
import pytest

from conftest import copy_course

from .conftest import KERNEL_TIMEOUT, REPO, open_notebook, restart_and_run_all, shot

ASSIGNMENT, NOTEBOOK = "01_mlp", "mlp_from_scratch.ipynb"
PATH = f"release/{ASSIGNMENT}/{NOTEBOOK}"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def full_marks_sample() -> str:
    import yaml

    expected = yaml.safe_load((REPO / "autograder/samples" / ASSIGNMENT / "expected.yml").read_text())["students"]
    return next(s for s, e in expected.items() if e.get("kind") == "solution")


def fill_in_solutions(release_nb, solved_nb) -> int:
    """Copy the answer cells (nbgrader ``solution``) of ``solved_nb`` into ``release_nb``, by grade id."""
    solved = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(solved_nb, as_version=4).cells
              if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(release_nb, as_version=4)
    n = 0
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solved:
            cell.source = solved[grade_id]
            n += 1
    nbformat.write(nb, release_nb)
    return n


@pytest.fixture(scope="module")
def lab(tmp_path_factory, start_lab):
    root = copy_course(tmp_path_factory.mktemp("student") / "course", [ASSIGNMENT])
    shutil.copytree(REPO / "release" / ASSIGNMENT, root / "release" / ASSIGNMENT)
    return start_lab(root, name="student")


def test_released_notebook_fails_with_helpful_messages(lab, page):
    nb = open_notebook(page, lab, PATH)
    restart_and_run_all(page)
    error = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').first
    error.wait_for(timeout=KERNEL_TIMEOUT)
    error.scroll_into_view_if_needed()
    text = error.inner_text()
    assert "NotImplementedError" in text, text[:2000]
    assert "Replace this line with your code" in text, text[:2000]
    shot(page, "1-released-notebook-run-all",
         "The released 01_mlp notebook, run untouched (Restart Kernel and Run All): the first test cell fails "
         "with NotImplementedError and its message.")


def test_solved_notebook_runs_and_validates(lab, page):
    sample = REPO / "autograder/samples" / ASSIGNMENT / full_marks_sample() / ASSIGNMENT / NOTEBOOK
    assert fill_in_solutions(lab.root / PATH, sample) >= 6
    nb = open_notebook(page, lab, PATH)
    restart_and_run_all(page)
    errors = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    prompts = nb.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert prompts and all(p.strip() not in ("[ ]:", "") for p in prompts), " ".join(prompts)  # every code cell ran
    shot(page, "2a-solved-notebook-run-all", "The notebook with the solutions filled in, after Restart Kernel and "
         "Run All: every cell ran, no error.")
    page.locator(".validate-button").get_by_text("Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("#validation-message").wait_for(timeout=KERNEL_TIMEOUT)
    text = dialog.inner_text()
    assert "Success! Your notebook passes all the tests." in text, text[:2000]
    shot(page, "2b-validate-success", "nbgrader's Validate button on the solved notebook: the dialog says success.")
