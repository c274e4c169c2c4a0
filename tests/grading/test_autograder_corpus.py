"""The hostile corpus: one `lepton autograde` batch, every submission graded exactly as expected.

The corpus (autograder/corpus.py) holds honest students next to cheats, kernels that die, hang or
flood, tampered structure and files that are not notebooks. The batch must finish, give each
student exactly the expected score per test cell, report what it found, leave nothing outside the
course's own folders, and write feedback without the source of any hidden test. The attacks aim at
the real paths of the course they are graded in (corpus.targets). Without bubblewrap (and not on CI)
the cases that only the sandbox stops are left out, and the sandbox's own assertions are skipped.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest


import corpus  # autograder/corpus.py (conftest puts autograder/ on sys.path)
from conftest import needs_sandbox
from lepton_kit.course.grades import cell_scores

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("corpus")]  # one batch, graded once per worker
LEPTON = [sys.executable, "-m", "lepton_kit.course.cli"]


@pytest.fixture(scope="session")  # session: a module fixture is set up again whenever xdist interleaves other modules
def graded(bench_release, mode):
    """The corpus, graded once: (course, cases, batch stdout, files before).

    The course lies in a world-readable folder, as a checkout does: behind pytest's private
    temporary folder the submission's own uid alone would hide it, and a sandbox that showed the
    course would go unnoticed.
    """
    base = Path(tempfile.mkdtemp(prefix="lepton-corpus-")).resolve()
    base.chmod(0o755)
    course = corpus.make_course(base / "course", released=bench_release)
    cases = corpus.build(base / "submissions", root=course, sandbox=mode == "bubblewrap")
    before = {p for p in base.rglob("*")}
    result = subprocess.run([*LEPTON, "--root", str(course), "autograde", corpus.ASSIGNMENT, "--submissions",
                             str(base / "submissions"), "--jobs", "2", "--quiet",
                             *([] if mode == "bubblewrap" else ["--no-sandbox"])], capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    yield course, cases, result.stdout, before
    shutil.rmtree(base, ignore_errors=True)


def test_the_corpus_is_large_and_varied():
    cases = corpus.cases(corpus.BENCH)
    hostile = [c for c in cases if not c.student.startswith(("honest", "blank", "mistake"))]
    assert len(hostile) >= 30
    assert len({c.student for c in cases}) == len(cases)
    assert sum(c.failed for c in cases) >= 4


def test_every_submission_gets_exactly_its_expected_grade(graded):
    course, cases, stdout, _ = graded
    scores = cell_scores(course, corpus.ASSIGNMENT)
    wrong = {}
    for student, case in cases.items():
        got = {cell: scores.get(student, {}).get(cell, (None, None))[0] for cell in corpus.TESTS}
        if got != case.expected:
            wrong[student] = {"expected": case.expected, "got": got, "what": case.what}
    assert not wrong, json.dumps(wrong, indent=1) + "\n" + stdout


def test_the_batch_reports_each_problem_per_student(graded):
    course, cases, stdout, _ = graded
    failed = {line.split()[1].rstrip(":") for line in stdout.splitlines() if line.strip().startswith("failed ")}
    assert failed == {c.student for c in cases.values() if c.failed}, stdout
    state = course / "autograded" / ".lepton-state" / corpus.ASSIGNMENT
    unsaid = {}
    for case in cases.values():
        if case.note:
            record = json.loads((state / f"{case.student}.json").read_text())
            said = " ".join(record["notes"] + list(record["problems"].values()))
            if case.note not in said:
                unsaid[case.student] = f"{case.note!r} not in {said!r}"
    assert not unsaid, json.dumps(unsaid, indent=1)
    assert f"graded {len(cases) - sum(c.failed for c in cases.values())}, failed" in stdout


def test_honest_students_keep_every_point_and_get_no_notes(graded):
    course, cases, _, _ = graded
    scores = cell_scores(course, corpus.ASSIGNMENT)
    state = course / "autograded" / ".lepton-state" / corpus.ASSIGNMENT
    for student in ("honest", "honest-stderr", "honest-alt"):
        assert {c: s for c, (s, _) in scores[student].items() if c in corpus.TESTS} == corpus.FULL
        assert json.loads((state / f"{student}.json").read_text())["notes"] == []
    nb = nbformat.read(course / "autograded" / "honest-stderr" / corpus.ASSIGNMENT / "bench.ipynb", as_version=4)
    test_relu = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu")
    assert any(o.get("name") == "stderr" for o in test_relu.outputs), "the stderr output should be kept"


def _outputs(course, student, grade_id):
    nb = nbformat.read(course / "autograded" / student / corpus.ASSIGNMENT / "bench.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.get("outputs", []))


def test_links_and_shadow_modules_reach_nothing(graded):
    course, _, _, _ = graded
    assert "found the linked file: False" in _outputs(course, "symlink-data", "relu_solution")
    nb = (course / "autograded" / "shadow-modules" / corpus.ASSIGNMENT / "bench.ipynb").read_text()
    assert "FAKE MODULE LOADED" not in nb


def test_student_code_saw_no_course_files_no_network_and_wrote_nothing_outside(graded, mode):
    needs_sandbox(mode)
    course, _, _, before = graded
    text = _outputs(course, "cheat-read-hidden", "relu_solution")
    assert f"looked for {course / 'source' / 'bench' / 'bench.ipynb'} and in" in text, "aimed at the wrong course"
    assert "found: []" in text
    assert "no connection to ('1.1.1.1', 80)" in _outputs(course, "cheat-network", "relu_solution")
    text = _outputs(course, "cheat-write-grades", "relu_solution")
    assert f"no gradebook at {course / 'gradebook.db'}" in text
    assert "wrote" not in text and f"a folder in {course}" in text  # aimed at it; what it reached is checked here:
    base = course.parent  # the course, the submissions and anything a cheat could add next to them
    allowed = [course / name for name in ("autograded", "submitted", "gradebook.db", "feedback")]
    new = [p for p in base.rglob("*") if p not in before and not any(p == a or a in p.parents for a in allowed)]
    assert not new, new
    assert not [p for p in base.rglob("victim")], "a submission created another student's folder"


def test_feedback_shows_results_but_never_hidden_tests(graded):
    course, cases, _, _ = graded
    result = subprocess.run([*LEPTON, "--root", str(course), "feedback", corpus.ASSIGNMENT], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    source = nbformat.read(course / "source" / corpus.ASSIGNMENT / "bench.ipynb", as_version=4)
    hidden = []
    for cell in source.cells:
        if "BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            hidden += [line.strip() for line in block.splitlines() if len(line.strip()) > 12]
    pages = sorted((course / "feedback").glob(f"*/{corpus.ASSIGNMENT}/{corpus.ASSIGNMENT}.html"))
    assert len(pages) == len(cases)
    import html

    for page in pages:
        text = html.unescape(page.read_text())
        for line in hidden:
            assert line not in text, f"{page} shows a hidden test line: {line}"
        for test in corpus.TESTS:
            assert test in text
    honest = html.unescape((course / "feedback" / "honest" / corpus.ASSIGNMENT / "bench.html").read_text())
    assert "Score: <b>4 / 5</b>" in honest and honest.count(">passed<") == 3
    mistake = html.unescape((course / "feedback" / "mistake-relu" / corpus.ASSIGNMENT / "bench.html").read_text())
    assert ">failed<" in mistake and "AssertionError" in mistake
    # a passed test with hidden parts shows no printed output: it could carry the hidden part, encoded
    leak = html.unescape((course / "feedback" / "leak-base64" / corpus.ASSIGNMENT / "bench.html").read_text())
    assert "LEAKED" not in leak and leak.count(">passed<") == 3
