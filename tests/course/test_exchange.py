"""The exchange round trip through nbgrader's own apps, with lepton grading in the middle.

Instructor: release_assignment; student (a folder from `lepton student-bundle`): fetch_assignment,
edit, validate, submit; instructor: collect, `lepton autograde --submissions submitted`,
`lepton feedback`, release_feedback; student: fetch_feedback.
"""
from __future__ import annotations

import html
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO, copy_course
from lepton_kit.course.bundle import student_bundle
from lepton_kit.course.cli import main
from lepton_kit.course.exchange import ensure_exchange
from lepton_kit.course.samples import replaced
from lepton_kit.grading.autograde import autograde
from lepton_kit.grading.config import gradebook, load_config, nbgrader_env
from test_student_bundle import secret_lines

A, NOTEBOOK, STUDENT = "01_mlp", "mlp_from_scratch.ipynb", "alice"


def nbgrader(cwd: Path, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=nbgrader_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_ensure_exchange_makes_the_folder_nbgrader_wants(tmp_path, monkeypatch):
    course = copy_course(tmp_path / "course", [A])
    monkeypatch.delenv("LEPTON_EXCHANGE", raising=False)
    load_config(course)  # what the lab extensions do first: a missing exchange is created, world-writable
    assert stat.S_IMODE((course / "exchange").stat().st_mode) == 0o777
    assert ensure_exchange(course) == (course / "exchange").resolve()  # the default: in the course, git-ignored
    monkeypatch.setenv("LEPTON_EXCHANGE", str(tmp_path / "shared" / "exchange"))
    path = ensure_exchange(course)
    assert path == tmp_path / "shared" / "exchange" and stat.S_IMODE(path.stat().st_mode) == 0o777
    path.chmod(0o755)
    assert stat.S_IMODE(ensure_exchange(course).stat().st_mode) == 0o777
    assert main(["--root", str(course), "exchange"]) == 0
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LEPTON_EXCHANGE", str(tmp_path / "file"))
    assert main(["--root", str(course), "exchange"]) == 2


@pytest.mark.slow
@pytest.mark.xdist_group("exchange")
def test_release_fetch_submit_collect_grade_and_fetch_feedback(tmp_path, monkeypatch, backend):
    exchange = tmp_path / "exchange"
    monkeypatch.setenv("LEPTON_EXCHANGE", str(exchange))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))                 # the student's nbgrader cache
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "home" / "data"))
    course = copy_course(tmp_path / "course", [A])
    student = student_bundle(REPO, tmp_path / "student")

    # instructor: release (lepton creates the exchange), then nbgrader publishes it
    assert main(["--root", str(course), "release", A]) == 0
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o777
    nbgrader(course, "release_assignment", A)

    # student: fetch into <student folder>/<A>/, answer as the sample solution does, validate, submit
    assert f"lepton-kit {A}" in nbgrader(student, "list")
    nbgrader(student, "fetch_assignment", A)
    fetched = student / A / NOTEBOOK
    sample = nbformat.read(REPO / "autograder/samples" / A / "alice" / A / NOTEBOOK, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in sample.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    nbformat.write(nbformat.from_dict(replaced(nbformat.read(fetched, as_version=4), answers)), fetched)
    edited = fetched.read_bytes()
    assert "Success! Your notebook passes all the tests." in nbgrader(student, "validate", f"{A}/{NOTEBOOK}")
    nbgrader(student, "submit", A, "--student", STUDENT)

    # instructor: collect, grade in the sandbox, lepton's feedback, release it
    nbgrader(course, "collect", A)
    collected = course / "submitted" / STUDENT / A
    assert (collected / NOTEBOOK).read_bytes() == edited
    assert (collected / "timestamp.txt").is_file()
    batch = autograde(course, A, course / "submitted", jobs=1, progress=False, sandbox=backend)
    assert not batch.failed and not batch.skipped, batch.summary()
    expected = yaml.safe_load((REPO / "autograder/samples" / A / "expected.yml").read_text())
    with gradebook(load_config(course).CourseDirectory.db_url) as gb:
        score = gb.find_submission(A, STUDENT).score
    assert score == expected["students"]["alice"]["expected_score"]
    assert main(["--root", str(course), "feedback", A]) == 0
    nbgrader(course, "release_feedback", A)

    # student: fetch the feedback, lepton's page, with no hidden test in it
    nbgrader(student, "fetch_feedback", A, "--student", STUDENT)
    pages = list((student / A / "feedback").glob(f"*/{Path(NOTEBOOK).stem}.html"))
    assert len(pages) == 1, list((student / A).rglob("*"))
    page = html.unescape(pages[0].read_text())
    assert f"{A}: feedback for {STUDENT}" in page and f"Score: <b>{score:g} / " in page
    assert not [line for line in secret_lines(REPO, A, kinds=("HIDDEN TESTS",)) if line in page]
    assert "BEGIN HIDDEN TESTS" not in page


def test_feedback_layout_follows_no_link_of_a_submission(tmp_path):
    from lepton_kit.course.exchange import feedback_for_exchange

    submitted = tmp_path / "submitted" / "mallory" / A
    submitted.mkdir(parents=True)
    (submitted / NOTEBOOK).write_text("{}")
    (tmp_path / "secret-of-the-grader").write_text("gradebook password")
    (submitted / "submission_secret.txt").symlink_to(tmp_path / "secret-of-the-grader")
    (submitted / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")
    page = tmp_path / "feedback" / "mallory" / A / f"{A}.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>lepton</p>")
    assert feedback_for_exchange(tmp_path, A, [page]) == [page.parent / "mlp_from_scratch.html"]
    assert (page.parent / "mlp_from_scratch.html").read_text() == "<p>lepton</p>"
    assert (page.parent / "timestamp.txt").is_file() and not (page.parent / "submission_secret.txt").exists()
