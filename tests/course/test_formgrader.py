"""Formgrader's buttons, through nbgrader's own API: Generate Feedback leaks no hidden test, Autograde is refused.

Formgrader calls ``NbGraderAPI.generate_feedback`` and ``NbGraderAPI.autograde``; the course's
nbgrader_config.py routes them through lepton_kit/grading/formgrader.py.
"""
from __future__ import annotations

import html
from pathlib import Path

import nbformat
import pytest

from lepton_kit.grading.autograde import autograde
from lepton_kit.grading.config import load_config

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "01_mlp"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(f"grading-{ASSIGNMENT}")]


def _api(root):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = load_config(root)
    return NbGraderAPI(CourseDirectory(config=config, root=str(root)), config=config)


def _hidden_only_lines(root):
    lines = []
    for path in (root / "source" / ASSIGNMENT).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if "### BEGIN HIDDEN TESTS" in cell.source:
                for block in cell.source.split("### BEGIN HIDDEN TESTS")[1:]:
                    lines += [ln.strip() for ln in block.split("### END HIDDEN TESTS")[0].splitlines()
                              if len(ln.strip()) > 12]
    visible = {ln.strip() for path in (root / "release" / ASSIGNMENT).glob("*.ipynb")
               for cell in nbformat.read(path, as_version=4).cells for ln in cell.source.splitlines()}
    return [ln for ln in lines if ln not in visible]


def test_generate_feedback_through_nbgrader_shows_no_hidden_test_line(released):
    root = released(ASSIGNMENT)
    autograde(root, ASSIGNMENT, REPO / "autograder/samples" / ASSIGNMENT, progress=False)  # kept if graded already
    hidden = _hidden_only_lines(root)
    assert len(hidden) > 5
    api = _api(root)
    for student in ("alice", "carol"):
        result = api.generate_feedback(ASSIGNMENT, student)
        assert result["success"], result.get("error", "") + result.get("log", "")
        pages = list((root / "feedback" / student / ASSIGNMENT).glob("*.html"))
        assert pages
        text = html.unescape(pages[0].read_text())
        assert "hidden tests: not shown" in text
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{student}'s feedback shows hidden test lines: {leaked[:3]}"
    carol = html.unescape(next((root / "feedback" / "carol" / ASSIGNMENT).glob("*.html")).read_text())
    assert "AssertionError" in carol or "Error" in carol  # her failures still say what went wrong


def test_autograde_through_nbgrader_is_refused_with_the_sandboxed_command(released):
    root = released(ASSIGNMENT)
    autograde(root, ASSIGNMENT, REPO / "autograder/samples" / ASSIGNMENT, progress=False)
    before = {p: p.read_bytes() for p in (root / "autograded" / "bob" / ASSIGNMENT).glob("*.ipynb")}
    assert before
    result = _api(root).autograde(ASSIGNMENT, "bob")
    assert not result["success"]
    assert "lepton autograde" in result.get("error", "") + result.get("log", "")
    assert {p: p.read_bytes() for p in before} == before  # the sandboxed results are untouched
