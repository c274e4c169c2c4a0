"""The exchange round trip in two browsers' worth of JupyterLab: instructor Release (formgrader), student Fetch,
edit, Validate, Submit (Assignments panel), instructor Collect (formgrader), `lepton autograde`, `lepton feedback`,
`nbgrader release_feedback`, student Fetch Feedback."""
from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import copy_course

from .conftest import KERNEL_TIMEOUT, REPO, open_notebook, shot
from .test_assignment import fill_in_solutions, full_marks_sample
from .test_formgrader_browser import hidden_only_lines, lepton

ASSIGNMENT, NOTEBOOK = "01_mlp", "mlp_from_scratch.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def nbgrader(root, env, *args):
    out = subprocess.run([str(Path(sys.executable).with_name("nbgrader")), *args], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def sources(path):
    return [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]


@pytest.fixture(scope="module")
def exchange(tmp_path_factory, start_lab, mode):
    """An instructor's course and lab, a student's copy (`lepton student-bundle`) and lab, one exchange."""
    from lepton_kit.course.release import release

    tmp = tmp_path_factory.mktemp("exchange")
    env = {"LEPTON_EXCHANGE": str(tmp / "exchange")}
    saved = os.environ.get("LEPTON_EXCHANGE")
    os.environ.update(env)          # lepton and nbgrader run from this process see the same exchange
    try:
        course = copy_course(tmp / "course", [ASSIGNMENT])
        release(course, [ASSIGNMENT])
        lepton(course, "exchange")
        student = tmp / "student"
        lepton(REPO, "student-bundle", str(student), "--exchange", env["LEPTON_EXCHANGE"])
        yield {"course": course, "student": student, "env": {**os.environ},
               "instructor_lab": start_lab(course, env=env, name="instructor"),
               "student_lab": start_lab(student, env=env, name="student"), "mode": mode}
    finally:
        if saved is None:
            os.environ.pop("LEPTON_EXCHANGE", None)
        else:
            os.environ["LEPTON_EXCHANGE"] = saved


def assignments_panel(page, lab):
    page.goto(lab.url("lab?reset"))
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    page.get_by_role("menuitem", name="Assignment List").click()
    page.locator("#released_assignments_list").wait_for()
    return page


def test_exchange_round_trip(exchange, browser):
    course, student, env = exchange["course"], exchange["student"], exchange["env"]
    instructor_lab, student_lab = exchange["instructor_lab"], exchange["student_lab"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        # instructor: Release in formgrader's Manage Assignments
        instructor_lab.authorize(page)
        page.goto(instructor_lab.url("formgrader/manage_assignments"))
        row = page.locator("table tbody tr").filter(has_text=ASSIGNMENT).first
        row.wait_for()
        row.locator(".release a").click()
        page.locator(".modal-dialog").filter(has_text="Success").wait_for(timeout=KERNEL_TIMEOUT)
        shot(page, "6a-instructor-release", "Formgrader's Release of 01_mlp to the exchange (LEPTON_EXCHANGE).")
        page.locator(".modal-dialog .modal-footer button").first.click()

        # student: Fetch in the Assignments panel of the student's JupyterLab
        student_page = context.new_page()
        student_lab.authorize(student_page)
        assignments_panel(student_page, student_lab)
        released = student_page.locator("#released_assignments_list")
        released.get_by_text(ASSIGNMENT).wait_for(timeout=60_000)
        released.get_by_role("button", name="Fetch").first.click()
        fetched_nb = student / ASSIGNMENT / NOTEBOOK
        student_page.locator("#fetched_assignments_list").get_by_text(ASSIGNMENT).first.wait_for(timeout=60_000)
        assert fetched_nb.exists(), sorted(p.name for p in student.iterdir())
        shot(student_page, "6b-student-fetch", "The student's Assignments panel after Fetch: 01_mlp in the "
             "student's folder.")

        # student: edit (the answer cells, on disk), then Validate in the notebook
        sample = REPO / "autograder/samples" / ASSIGNMENT / full_marks_sample() / ASSIGNMENT / NOTEBOOK
        assert fill_in_solutions(fetched_nb, sample) >= 6
        edited = sources(fetched_nb)
        open_notebook(student_page, student_lab, f"{ASSIGNMENT}/{NOTEBOOK}")
        student_page.locator(".validate-button").get_by_text("Validate").click()
        dialog = student_page.locator(".jp-Dialog")
        dialog.locator("#validation-message").wait_for(timeout=KERNEL_TIMEOUT)
        assert "Success! Your notebook passes all the tests." in dialog.inner_text(), dialog.inner_text()[:2000]
        shot(student_page, "6c-student-validate", "The fetched notebook, edited: Validate says success.")
        dialog.locator(".jp-mod-accept").click()

        # student: Submit
        assignments_panel(student_page, student_lab)
        fetched = student_page.locator("#fetched_assignments_list")
        fetched.get_by_role("button", name="Submit").first.click()
        student_page.locator("#submitted_assignments_list").get_by_text(ASSIGNMENT).first.wait_for(timeout=60_000)
        shot(student_page, "6d-student-submit", "The Assignments panel after Submit: the submission is listed.")

        # instructor: Collect in formgrader
        page.goto(instructor_lab.url("formgrader/manage_assignments"))
        row = page.locator("table tbody tr").filter(has_text=ASSIGNMENT).first
        row.locator(".collect a").click()
        page.locator(".modal-dialog").filter(has_text="Success").wait_for(timeout=KERNEL_TIMEOUT)
        shot(page, "6e-instructor-collect", "Formgrader's Collect: the submission is in the course's submitted/.")
        collected = list((course / "submitted").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}"))
        assert len(collected) == 1, collected
        assert sources(collected[0]) == edited, "the collected notebook differs from the one the student edited"
        student_id = collected[0].parents[1].name

        # instructor: lepton autograde (sandboxed), lepton feedback, nbgrader release_feedback
        extra = ["--no-sandbox"] if exchange["mode"] != "bubblewrap" else []
        lepton(course, "autograde", ASSIGNMENT, "--submissions", str(course / "submitted"), "--quiet", *extra)
        lepton(course, "feedback", ASSIGNMENT)
        nbgrader(course, env, "release_feedback", ASSIGNMENT)

        # student: Fetch Feedback
        assignments_panel(student_page, student_lab)
        submitted = student_page.locator("#submitted_assignments_list")
        submitted.get_by_role("button", name="Fetch Feedback").first.click()
        pages = []
        for _ in range(200):
            pages = list((student / ASSIGNMENT / "feedback").rglob("*.html"))
            if pages:
                break
            student_page.wait_for_timeout(250)
        assert pages, f"no feedback fetched into {student / ASSIGNMENT}"
        shot(student_page, "6f-student-fetch-feedback", f"The Assignments panel after Fetch Feedback "
             f"(student {student_id}): the feedback page is in the assignment's feedback/ folder.")
        text = html.unescape(pages[0].read_text())
        hidden = hidden_only_lines(course)
        assert len(hidden) > 5
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"the feedback the student fetched shows hidden test lines: {leaked[:3]}"
        student_page.goto(student_lab.url(f"files/{pages[0].relative_to(student).as_posix()}"))
        shot(student_page, "6g-student-feedback-page", "The fetched feedback page as the student sees it.")
    finally:
        context.close()
