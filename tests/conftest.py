"""Shared fixtures: a scratch copy of the course, so tests never touch the real gradebook.

Thread budget: each pytest worker, and every kernel it starts, uses its share of the cores
(``cores // workers``), so two workers do not oversubscribe the cores (tests/benchmarks/threads.py).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lepton_kit.utils import thread_budget, thread_env

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "autograder"))  # make_samples.py

os.environ.setdefault("LEPTON_PARALLEL", os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.update(thread_env(thread_budget()))  # before torch or TensorFlow is imported


def copy_course(target: Path, assignments=None) -> Path:
    """Copy what a course needs (config, curriculum, source/) into ``target``; optionally only some assignments."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("nbgrader_config.py", "course.yml"):
        shutil.copy(REPO / name, target / name)
    for folder in sorted((REPO / "source").iterdir()):
        if folder.is_dir() and (assignments is None or folder.name in assignments):
            shutil.copytree(folder, target / "source" / folder.name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return target


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """``released(assignment)``: a scratch course holding that assignment alone, released once per worker
    (tests of one assignment share an ``xdist_group`` so that they share the course)."""
    from lepton_kit.course.release import release

    courses = {}

    def get(assignment):
        if assignment not in courses:
            root = copy_course(tmp_path_factory.mktemp(f"course-{assignment}"), [assignment])
            release(root, [assignment])
            courses[assignment] = root
        return courses[assignment]

    return get


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """A released scratch course (release/ regenerated from source/ there)."""
    from lepton_kit.course.release import release

    root = copy_course(tmp_path_factory.mktemp("course"))
    release(root)
    return root


@pytest.fixture(autouse=True)
def _no_db_override(monkeypatch):
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)


# --- grading: the sandbox mode and the bench course ------------------------------------------------
# Where bubblewrap cannot isolate submissions, grading tests run without the sandbox (checking what
# holds without it) and skip only the sandbox's own assertions; on CI (``CI`` set) they fail.

def sandbox_mode(problem: str, ci: str | None) -> str:
    """``bubblewrap`` when it works; else ``unsandboxed``, or a loud failure on CI."""
    if not problem:
        return "bubblewrap"
    if ci and ci.strip().lower() not in ("0", "false", "no"):
        pytest.fail(f"CI: bubblewrap cannot isolate submissions here ({problem}); the hostile cases would not "
                    "be tested. Install bubblewrap and allow user namespaces.", pytrace=False)
    return "unsandboxed"


@pytest.fixture(scope="session")
def mode() -> str:
    from lepton_kit.grading.sandbox import bwrap_problem

    return sandbox_mode(bwrap_problem(), os.environ.get("CI"))


@pytest.fixture(scope="session")
def backend(mode):
    from lepton_kit.grading.sandbox import Bubblewrap, Unsandboxed

    return Bubblewrap() if mode == "bubblewrap" else Unsandboxed()


def needs_sandbox(mode: str) -> None:
    """Skip a sandbox-specific assertion where bubblewrap cannot run (never on CI: ``mode`` failed there)."""
    from lepton_kit.grading.sandbox import bwrap_problem

    if mode != "bubblewrap":
        pytest.skip(f"sandbox-specific: {bwrap_problem()}")


@pytest.fixture(scope="session")
def bench_release(tmp_path_factory):
    """The bench course, released once (copied by :func:`bench`)."""
    import corpus  # autograder/corpus.py

    return corpus.make_course(tmp_path_factory.mktemp("bench-release") / "course")


@pytest.fixture
def bench(bench_release, tmp_path):
    """A fresh copy of the released bench course for one test."""
    import corpus

    return corpus.make_course(tmp_path / "course", released=bench_release)
