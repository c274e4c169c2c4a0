"""Parallel and resumable: --jobs gives the serial grades; a batch killed with SIGKILL finishes on a re-run."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import corpus
from lepton_kit.course.grades import cell_scores, export_rows
from lepton_kit.grading.autograde import autograde
from lepton_kit.course.samples import replaced, solved

pytestmark = pytest.mark.slow
LEPTON = [sys.executable, "-m", "lepton_kit.course.cli"]


@pytest.fixture
def released(bench_release):
    return bench_release


def _submissions(course: Path, out: Path, count: int, slow: float = 0.0) -> Path:
    release_nb = nbformat.read(course / "release" / "bench" / "bench.ipynb", as_version=4)
    honest = solved(release_nb, nbformat.read(course / "source" / "bench" / "bench.ipynb", as_version=4))
    pause = f"import time\ntime.sleep({slow})\n" if slow else ""
    kinds = [honest, release_nb, replaced(honest, {"relu_solution": pause + corpus.WRONG_RELU}),
             replaced(honest, {"mse_solution": pause + corpus.WRONG_MSE}),
             replaced(honest, {"relu_solution": corpus.HONEST_STDERR + "\n" + pause})]
    for i in range(count):
        target = out / f"resume-s{i:02d}" / "bench" / "bench.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(kinds[i % len(kinds)], target)
    return out


def _rows(course):
    return sorted(export_rows(course), key=lambda r: (r["assignment"], r["student_id"]))


def _sandboxes_of(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_parallel_grades_equal_serial_grades(released, tmp_path, backend):
    subs = _submissions(released, tmp_path / "subs", 10)
    corpus.build(subs, root=released)  # plus the whole hostile corpus would be slow: keep a few cases
    keep = {"honest", "cheat-input-transformer", "cheat-patch-during-test", "os-exit", "delete-tests",
            "invalid-json", "giant-line"}
    for folder in subs.iterdir():
        if folder.is_dir() and not folder.name.startswith("resume-") and folder.name not in keep:
            import shutil

            shutil.rmtree(folder)
    serial = corpus.make_course(tmp_path / "serial", released=released)
    parallel = corpus.make_course(tmp_path / "parallel", released=released)
    one = autograde(serial, "bench", subs, jobs=1, progress=False, sandbox=backend)
    two = autograde(parallel, "bench", subs, jobs=2, progress=False, sandbox=backend)
    assert [(o.student, o.ok) for o in one.outcomes] == [(o.student, o.ok) for o in two.outcomes]
    assert cell_scores(serial, "bench") == cell_scores(parallel, "bench")
    assert _rows(serial) == _rows(parallel)


def test_a_batch_killed_with_sigkill_resumes_without_regrading(released, tmp_path, backend, mode):
    subs = _submissions(released, tmp_path / "subs", 12, slow=1.0)
    reference = corpus.make_course(tmp_path / "reference", released=released)
    autograde(reference, "bench", subs, jobs=2, progress=False, sandbox=backend)

    course = corpus.make_course(tmp_path / "course", released=released)
    command = [*LEPTON, "--root", str(course), "autograde", "bench", "--submissions", str(subs), "--jobs", "2",
               "--quiet", *([] if mode == "bubblewrap" else ["--no-sandbox"])]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = course / "autograded" / ".lepton-state" / "bench"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(state.glob("*.done"))) < 3:
        time.sleep(0.05)
    running = set(_sandboxes_of("staging/resume-s"))
    os.kill(proc.pid, signal.SIGKILL)  # mid-batch: sandboxes running, results being written
    proc.wait()
    finished = {p.stem: p.stat().st_mtime_ns for p in state.glob("*.done")}
    assert 3 <= len(finished) < 12, "the kill should land mid-batch"
    time.sleep(1.0)
    if mode == "bubblewrap":  # --die-with-parent; unsandboxed executors end on their own when stdin closes
        assert not running & set(_sandboxes_of("staging/resume-s")), "running sandboxes outlived the killed batch"
        # a sandbox forked in the instant of the kill (before bwrap's prctl) has no parent to die with:
        # its executor reads end-of-file as its first request and leaves before running anything
        deadline = time.monotonic() + 60
        while _sandboxes_of("staging/resume-s") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _sandboxes_of("staging/resume-s"), "a sandbox started at the kill never ended"

    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "graded 12, failed 0" in again.stdout
    kept = re.search(r"\((\d+) kept from an earlier run\)", again.stdout)
    assert kept and int(kept.group(1)) >= len(finished), again.stdout
    for student, mtime in finished.items():  # finished students were not graded again
        assert (state / f"{student}.done").stat().st_mtime_ns == mtime
    assert cell_scores(course, "bench") == cell_scores(reference, "bench")
    assert _rows(course) == _rows(reference)


def test_an_unchanged_rerun_grades_nobody_and_force_regrades(released, tmp_path, backend):
    subs = _submissions(released, tmp_path / "subs", 3)
    course = corpus.make_course(tmp_path / "course", released=released)
    autograde(course, "bench", subs, jobs=2, progress=False, sandbox=backend)
    again = autograde(course, "bench", subs, jobs=2, progress=False, sandbox=backend)
    assert all(o.cached for o in again.outcomes) and "3 kept from an earlier run" in again.summary()
    forced = autograde(course, "bench", subs, jobs=2, progress=False, force=True, sandbox=backend)
    assert not any(o.cached for o in forced.outcomes)


def test_timestamps_reach_the_gradebook_and_bad_ones_are_reported(released, tmp_path, backend):
    subs = _submissions(released, tmp_path / "subs", 2)
    (subs / "resume-s00" / "bench" / "timestamp.txt").write_text("2024-03-01 10:00:00.000000 UTC")
    (subs / "resume-s01" / "bench" / "timestamp.txt").write_text("yesterday, I promise")
    course = corpus.make_course(tmp_path / "course", released=released)
    batch = autograde(course, "bench", subs, jobs=2, progress=False, sandbox=backend)
    rows = {r["student_id"]: r for r in export_rows(course)}
    assert rows["resume-s00"]["timestamp"].startswith("2024-03-01 10:00:00")
    assert rows["resume-s01"]["timestamp"] == ""
    assert "is not a date" in batch.summary()
