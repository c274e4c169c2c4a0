"""The instructor's formgrader in the browser: the gradebook after `lepton autograde`, a manual grade that
reaches `lepton grades`, Generate Feedback without hidden tests, Autograde refused."""
from __future__ import annotations

import csv
import html
import os
import subprocess
import sys

import nbformat
import pytest

from conftest import copy_course

from .conftest import KERNEL_TIMEOUT, REPO, shot

ASSIGNMENT = "01_mlp"
SAMPLES = REPO / "autograder/samples" / ASSIGNMENT
MANUAL = "softmax_max_answer"   # the hand-graded written question (2 points)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def lepton(root, *args, timeout=1200):
    out = subprocess.run([sys.executable, "-m", "lepton_kit.course.cli", "--root", str(root), *args],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"lepton {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def hidden_only_lines(root):
    """Lines between the hidden-test markers of source/01_mlp that the released notebook does not show."""
    lines = []
    for path in (root / "source" / ASSIGNMENT).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for block in cell.source.split("### BEGIN HIDDEN TESTS")[1:]:
                lines += [ln.strip() for ln in block.split("### END HIDDEN TESTS")[0].splitlines() if len(ln.strip()) > 12]
    visible = {ln.strip() for path in (root / "release" / ASSIGNMENT).glob("*.ipynb")
               for cell in nbformat.read(path, as_version=4).cells for ln in cell.source.splitlines()}
    return [ln for ln in lines if ln not in visible]


@pytest.fixture(scope="module")
def course(tmp_path_factory, mode):
    """A course with 01_mlp released and the samples autograded (in the sandbox unless it cannot run here)."""
    from lepton_kit.course.release import release

    root = copy_course(tmp_path_factory.mktemp("instructor") / "course", [ASSIGNMENT])
    release(root, [ASSIGNMENT])
    extra = ["--no-sandbox"] if mode != "bubblewrap" else []
    lepton(root, "autograde", ASSIGNMENT, "--submissions", str(SAMPLES), "--jobs", "2", "--quiet", *extra)
    return root


@pytest.fixture(scope="module")
def lab(course, start_lab):
    return start_lab(course, name="instructor",  # as `make lab` starts it
                     env={"JUPYTER_CONFIG_PATH": str(REPO / "jupyter-config"), "JUPYTER_PATH": str(REPO / "jupyter-data")})


def grades(root, tmp_path):
    lepton(root, "grades", "--csv", str(tmp_path / "grades.csv"), timeout=300)
    with open(tmp_path / "grades.csv", newline="") as f:
        return list(csv.DictReader(f))


def rows_of(page):
    rows = page.locator("table tbody tr")
    rows.filter(has_text="alice").first.wait_for()
    return rows


def test_manage_submissions_shows_the_autograded_scores(lab, course, page):
    """Regression: a submission without timestamp.txt once showed as 'needs autograding' (fixed in 19106d1)."""
    lab.authorize(page)
    page.goto(lab.url(f"formgrader/manage_submissions/{ASSIGNMENT}"))
    rows = rows_of(page)
    shot(page, "7a-formgrader-manage-submissions", "Formgrader's Manage Submissions after `lepton autograde` "
         "alice 24, bob 0, carol 16 autograded points.")
    scores = {s: rows.filter(has_text=s).first.locator(".score").inner_text().strip() for s in ("alice", "bob", "carol")}
    assert scores["alice"].startswith("24") and scores["bob"].startswith("0") and scores["carol"].startswith("16"), scores
    assert rows.filter(has_text="needs autograding").count() == 0


def test_gradebook_and_a_manual_grade_reach_lepton_grades(lab, course, page, tmp_path):
    lab.authorize(page)
    page.goto(lab.url("formgrader/gradebook"))
    page.get_by_role("link", name=ASSIGNMENT).first.click()              # Manual Grading: the assignment
    page.get_by_role("link", name="mlp_from_scratch").first.click()      # its notebook: one row per submission
    rows = page.locator("table tbody tr")
    alice = rows.filter(has=page.locator(".name-shown", has_text="alice")).first
    alice.wait_for()
    scores = {s: rows.filter(has=page.locator(".name-shown", has_text=s)).first.locator(".score").inner_text().strip()
              for s in ("alice", "bob", "carol")}
    assert scores["alice"].startswith("24") and scores["bob"].startswith("0") and scores["carol"].startswith("16"), scores
    shot(page, "7a-formgrader-gradebook", "Formgrader's Manual Grading view of 01_mlp after `lepton autograde`: "
         f"the autograded scores ({scores}), written answers still to grade.")
    before = next(r for r in grades(course, tmp_path) if "alice" in r.values())

    alice.locator("a:visible").first.click()                              # alice's submission: the grading view
    score = page.locator(f"input#{MANUAL}")
    score.wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")   # the grades are loaded by AJAX; a value typed before is reset
    score.scroll_into_view_if_needed()
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as saved:
        score.fill("1.5")
        score.press("Tab")                                                # change -> saved
    assert saved.value.ok, saved.value.status
    assert score.input_value() == "1.5"
    # formulas typeset offline, by the MathJax the server itself serves (jupyter_server_mathjax), not a CDN
    page.wait_for_function("() => window.MathJax && MathJax.isReady && document.querySelectorAll("
                           "'.MathJax, .MathJax_Display, .MathJax_CHTML').length > 5", timeout=60_000, polling=250)
    sources = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert any("/static/jupyter_server_mathjax/MathJax.js" in s for s in sources), sources
    assert not [s for s in sources if "cdnjs" in s or "cdn." in s], sources
    shot(page, "7b-formgrader-manual-grade", "Formgrader's grading view: 1.5 of 2 points entered for alice's "
         "written answer (saved); formulas typeset by the server's own MathJax (offline).")

    row = next(r for r in grades(course, tmp_path) if "alice" in r.values())
    changed = {k: (before.get(k), v) for k, v in row.items() if before.get(k) != v}
    assert changed, f"lepton grades did not change after the manual grade: {row}"
    assert any(v.strip() in ("25.5", "25.50") for v in row.values()), f"alice's 24 + 1.5 not in lepton grades: {row}"


def test_generate_feedback_leaks_nothing_and_autograde_is_refused(lab, course, page):
    hidden = hidden_only_lines(course)
    assert len(hidden) > 5
    lab.authorize(page)
    page.goto(lab.url(f"formgrader/manage_submissions/{ASSIGNMENT}"))
    rows = rows_of(page)
    carol = rows.filter(has_text="carol").first
    carol.locator(".generate-feedback a").click()
    modal = page.locator(".modal-dialog").filter(has_text="feedback")
    modal.wait_for(timeout=KERNEL_TIMEOUT)
    assert "Successfully generated feedback" in modal.inner_text(), modal.inner_text()[:3000]
    shot(page, "8a-formgrader-generate-feedback", "Formgrader's Generate Feedback for carol: success.")
    pages = list((course / "feedback" / "carol" / ASSIGNMENT).glob("*.html"))
    assert pages, "Generate Feedback wrote no HTML page"
    text = html.unescape(pages[0].read_text())
    leaked = [line for line in hidden if line in text]
    assert not leaked, f"carol's generated feedback shows hidden test lines: {leaked[:3]}"
    assert "hidden tests: not shown" in text

    modal.locator(".modal-footer button").filter(has_text="OK").first.click()
    modal.wait_for(state="detached")
    autograded = {p: p.read_bytes() for p in (course / "autograded" / "bob" / ASSIGNMENT).glob("*.ipynb")}
    assert autograded
    bob = rows.filter(has_text="bob").first
    bob.locator(".autograde a").click()
    refused = page.locator(".modal-dialog").filter(has_text="autograding")
    refused.wait_for(timeout=KERNEL_TIMEOUT)
    message = refused.inner_text()
    assert "error" in message.lower() and "lepton autograde" in message, message[:3000]
    shot(page, "8b-formgrader-autograde-refused", "Formgrader's Autograde button for bob: refused, naming "
         "`lepton autograde` (the sandboxed grader).")
    assert {p: p.read_bytes() for p in autograded} == autograded, "the sandboxed results were touched"
