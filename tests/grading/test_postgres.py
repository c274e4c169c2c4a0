"""The gradebook on a real PostgreSQL server (``LEPTON_DB_URL=postgresql://...``, psycopg 3).

A server is started per module from Debian's ``postgresql`` package (tests/grading/pg_server.py):
skipped when absent, a failure on CI. Batches run through the ``lepton`` command, as an instructor
runs them, against scratch copies of the course.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, copy_course
from lepton_kit.grading.config import gradebook
from pg_server import bindir_or_skip, started

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]
SAMPLES = REPO / "autograder/samples"


@pytest.fixture(scope="module")
def pg(request):
    """A PostgreSQL server for this module, stopped at its end (even after a failure)."""
    return started(bindir_or_skip(), request)


@pytest.fixture
def flags(mode):
    """``lepton autograde`` flags: without bubblewrap here (never on CI), grade without the sandbox."""
    return ["--jobs", "1", "--quiet"] + (["--no-sandbox"] if mode == "unsandboxed" else [])


def lepton(root, *args, url=None, wait=True):
    """``lepton --root ROOT ARGS`` with the gradebook at ``url`` (None: the course's SQLite file)."""
    env = {k: v for k, v in os.environ.items() if k != "LEPTON_DB_URL"}
    if url:
        env["LEPTON_DB_URL"] = url
    cmd = [sys.executable, "-m", "lepton_kit.course.cli", "--root", str(root), *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)


def ok(result):
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def course_with(tmp_path, name, assignment, url):
    """A scratch course holding ``assignment``, released with ``lepton release`` into ``url``'s gradebook."""
    root = copy_course(tmp_path / name, [assignment])
    ok(lepton(root, "release", assignment, url=url))
    return root


def snapshot(url, assignment) -> dict:
    """Every grade of ``assignment``: (student, notebook, cell) -> scores, needs_manual_grade, comment."""
    out = {}
    with gradebook(url) as gb:
        for sub in gb.find_assignment(assignment).submissions:
            for nb in sub.notebooks:
                out[(sub.student_id, nb.name, "late penalty")] = nb.late_submission_penalty
                for g in nb.grades:
                    out[(sub.student_id, nb.name, g.name)] = (g.auto_score, g.manual_score, g.needs_manual_grade,
                                                             g.max_score)
                for c in nb.comments:
                    out[(sub.student_id, nb.name, c.name, "comment")] = c.auto_comment
    return out


def totals(snap) -> dict:
    """Each student's autograded points."""
    result = {}
    for key, value in snap.items():
        if isinstance(value, tuple):
            result[key[0]] = result.get(key[0], 0) + (value[0] or 0)
    return result


def expected(assignment) -> dict:
    spec = yaml.safe_load((SAMPLES / assignment / "expected.yml").read_text())
    return {student: info["expected_score"] for student, info in spec["students"].items()}


def grade_rows(root, url, monkeypatch):
    """``lepton grades`` rows of ``root`` with the gradebook at ``url`` (None: SQLite)."""
    from lepton_kit.course.grades import grades

    if url:
        monkeypatch.setenv("LEPTON_DB_URL", url)
    else:
        monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    return grades(root)


def formgrader_view(root, url, monkeypatch, assignment):
    """What formgrader shows (nbgrader's NbGraderAPI, on the same nbgrader_config.py)."""
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from lepton_kit.grading.config import load_config

    monkeypatch.setenv("LEPTON_DB_URL", url) if url else monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    config = load_config(root)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    subs = api.get_submissions(assignment)
    return sorted((s["student"], s["score"], s["max_score"], s["autograded"], s["needs_manual_grade"]) for s in subs)


def test_sample_batch_on_postgres_equals_sqlite(pg, flags, tmp_path, monkeypatch):
    """01_mlp's samples graded by ``lepton autograde`` into PostgreSQL and into SQLite: the same
    grades, cell by cell, the same ``lepton grades`` rows and formgrader view; feedback works."""
    url = pg.createdb("samples")
    lite = course_with(tmp_path, "sqlite", "01_mlp", None)
    post = course_with(tmp_path, "postgres", "01_mlp", url)
    for root, db in ((lite, None), (post, url)):
        assert "failed 0" in ok(lepton(root, "autograde", "01_mlp", "--submissions", SAMPLES / "01_mlp",
                                       *flags, url=db)).stdout
    lite_url = f"sqlite:///{lite / 'gradebook.db'}"
    assert snapshot(url, "01_mlp") == snapshot(lite_url, "01_mlp")
    assert totals(snapshot(url, "01_mlp")) == expected("01_mlp")
    assert grade_rows(post, url, monkeypatch) == grade_rows(lite, None, monkeypatch)
    view = formgrader_view(post, url, monkeypatch, "01_mlp")
    assert view == formgrader_view(lite, None, monkeypatch, "01_mlp") and len(view) == 3
    feedback = ok(lepton(post, "feedback", "01_mlp", url=url))
    assert feedback.stdout.count("wrote ") >= 3
    assert ok(lepton(post, "grades", url=url)).stdout == ok(lepton(lite, "grades")).stdout


def test_two_batches_write_at_once(pg, flags, tmp_path):
    """Two assignments graded by two processes started together into one database: nothing lost."""
    url = pg.createdb("together")
    roots = {a: course_with(tmp_path, a, a, url) for a in ("01_mlp", "03_optimizers")}
    procs = {a: lepton(root, "autograde", a, "--submissions", SAMPLES / a, *flags, url=url, wait=False)
             for a, root in roots.items()}
    for assignment, proc in procs.items():
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0 and "failed 0" in out, f"{assignment}: {out[-3000:]}\n{err[-3000:]}"
    for assignment in roots:
        assert totals(snapshot(url, assignment)) == expected(assignment), assignment


def _stop_when_recorded(pg, db, count=1):
    """A thread that stops the server once ``count`` submissions are committed in ``db``."""
    import psycopg

    def watch():
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(dbname=db, user="postgres", host=str(pg.socket)) as conn:
                    done = conn.execute("SELECT count(*) FROM submitted_assignment").fetchone()[0]
            except psycopg.Error:
                done = 0
            if done >= count:
                pg.stop()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_database_lost_mid_batch_is_reported_clearly_and_the_batch_resumes(flags, tmp_path, request):
    """The server stops once the first student is recorded: the rest fail with one line naming the
    database and what to do; no student is half-written; after a restart, a re-run records the rest
    without grading them again."""
    pg = started(bindir_or_skip(), request)  # its own server: this test stops it
    url = pg.createdb("outage")
    root = course_with(tmp_path, "course", "01_mlp", url)
    watcher = _stop_when_recorded(pg, "outage")
    first = lepton(root, "autograde", "01_mlp", "--submissions", SAMPLES / "01_mlp", *flags, url=url)
    watcher.join(timeout=5)
    output = first.stdout + first.stderr
    lost = [line for line in output.splitlines() if "unreachable" in line]
    assert lost, f"no student met the stopped server: {output[-3000:]}"
    assert all(f"gradebook database postgresql://postgres@/outage?host={pg.socket} unreachable: start the database "
               "server (or fix LEPTON_DB_URL) and run the command again, graded submissions are kept" in line
               for line in lost), lost
    assert "Traceback" not in output and "sqlalche.me" not in output, output[-3000:]
    assert first.returncode == 2 and "lepton autograde: error: gradebook database" in first.stderr, first.stderr

    down = lepton(root, "grades", url=url)  # opening the gradebook while the server is down
    assert down.returncode == 2 and down.stderr.count("\n") == 1, down.stderr
    assert down.stderr.startswith("lepton grades: error: gradebook database postgresql://postgres@/outage")

    pg.start()
    recorded = totals(snapshot(url, "01_mlp"))
    assert recorded and len(recorded) < 3, recorded
    assert all(score == expected("01_mlp")[s] for s, score in recorded.items()), recorded  # whole, never partial
    again = ok(lepton(root, "autograde", "01_mlp", "--submissions", SAMPLES / "01_mlp", *flags, url=url))
    assert "failed 0" in again.stdout and "kept from an earlier run" in again.stdout, again.stdout
    assert totals(snapshot(url, "01_mlp")) == expected("01_mlp")
    shutil.rmtree(root / "submitted", ignore_errors=True)


def _record_job(gb, student, scores):
    """A RECORD-ready submission and batch of 01_mlp on ``gb`` (``done`` lists committed students)."""
    done = []
    sub = SimpleNamespace(student=student, timestamp=None, scores=scores, comments={}, ended=False)
    return sub, SimpleNamespace(gb=gb, assignment="01_mlp", state=SimpleNamespace(mark_done=done.append)), done


def _zero_scores(gb) -> dict:
    nb = gb.find_assignment("01_mlp").notebooks[0]
    return {nb.name: {cell.name: 0.0 for cell in nb.grade_cells if cell.cell_type == "code"}}


def test_a_students_record_is_one_transaction(pg, tmp_path):
    """The connection dies between RECORD's ``record`` and ``commit``: nothing of the student stays
    (nbgrader's own commits of a new student and submission only flushed)."""
    import psycopg
    from nbgrader.api import MissingEntry

    from lepton_kit.grading.config import GradebookUnavailable
    from lepton_kit.grading.pipeline import commit, late_penalty, record

    url = pg.createdb("atomic")
    course_with(tmp_path, "course", "01_mlp", url)
    with gradebook(url) as gb:
        sub, batch, done = _record_job(gb, "dave", _zero_scores(gb))
        record(sub, batch)
        late_penalty(sub, batch)
        with psycopg.connect(dbname="postgres", user="postgres", host=str(pg.socket), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'atomic'")
        with pytest.raises(GradebookUnavailable, match="run the command again"):
            commit(sub, batch)
        assert not done
    with gradebook(url) as gb:
        with pytest.raises(MissingEntry):
            gb.find_student("dave")
        assert not gb.find_assignment("01_mlp").submissions


def test_a_student_added_by_a_concurrent_batch_is_retried(pg, tmp_path):
    """Two batches record a new student at once: the second waits for the first's commit, meets
    the unique student id, and records again (nbgrader alone would fail it with InvalidEntry)."""
    from lepton_kit.grading.pipeline import commit, record

    url = pg.createdb("race")
    course_with(tmp_path, "course", "01_mlp", url)
    with gradebook(url) as first, gradebook(url) as second:
        sub1, batch1, done1 = _record_job(first, "erin", _zero_scores(first))
        sub2, batch2, done2 = _record_job(second, "erin", _zero_scores(second))
        record(sub1, batch1)                     # erin inserted, not committed
        errors = []

        def other():
            try:
                record(sub2, batch2)             # waits on erin's row until the first commits
                commit(sub2, batch2)
            except Exception as err:  # reported below
                errors.append(err)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), f"the second batch did not wait for the first: {errors}"
        commit(sub1, batch1)
        thread.join(timeout=60)
        assert not errors, errors
        assert done1 == [sub1] and done2 == [sub2]
    with gradebook(url) as gb:
        assert [s.student_id for s in gb.find_assignment("01_mlp").submissions] == ["erin"]
