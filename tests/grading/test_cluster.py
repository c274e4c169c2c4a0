"""``lepton autograde --cluster``: EXECUTE on a real Dask LocalCluster of worker processes.

The grades must equal those of the local ``--jobs`` path (the 01_mlp samples, a subset of the hostile
corpus), a worker killed mid-batch must not lose or double a student, and a submission that kills its
workers every time must fail alone after ``allowed-failures`` while the batch goes on.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import corpus  # autograder/corpus.py (conftest puts autograder/ on sys.path)
from lepton_kit.course.grades import cell_scores
from lepton_kit.grading import cluster as dask_cluster
from lepton_kit.grading.autograde import autograde

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]
distributed = pytest.importorskip("distributed")
REPO = Path(__file__).resolve().parents[2]

# one case per class of the corpus: honest, files and links shipped to the worker, IPython and checker
# cheats, forged verdicts, reaching out (escapes), a dying kernel, a hang, limits, tampered structure,
# files that are not notebooks
SUBSET = ("honest", "blank", "mistake-relu", "shadow-modules", "symlink-data", "cheat-input-transformer",
          "cheat-patch-during-test", "cheat-forge-verdicts", "cheat-read-hidden", "cheat-network", "os-exit",
          "kill-group", "infinite-loop", "memory-bomb", "fork-bomb", "raw-flood", "delete-tests", "edit-points",
          "symlink-notebook", "invalid-json")


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each; a task dies with at most 2 workers (allowed-failures 1)."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def ready(client):
    client.wait_for_workers(2, timeout=120)
    return client


def _totals(root, assignment):
    return {s: sum(v for v, _ in cells.values()) for s, cells in cell_scores(root, assignment).items()}


def _copies(course: Path, tmp_path: Path):
    """Two copies of a released course, local and cluster (the session's course may already hold other
    students, graded by other tests on this worker: both copies hold the same)."""
    copies = tmp_path / "local", tmp_path / "cluster"
    for target in copies:
        shutil.copytree(course, target, ignore=shutil.ignore_patterns("submitted", "autograded", "feedback"))
    return copies


def test_the_01_mlp_samples_get_the_same_grades_as_local_jobs(released, backend, ready, tmp_path):
    samples = REPO / "autograder" / "samples" / "01_mlp"
    expected = {s: i["expected_score"] for s, i in yaml.safe_load((samples / "expected.yml").read_text())["students"].items()}
    here, there = _copies(released("01_mlp"), tmp_path)
    local = autograde(here, "01_mlp", samples, jobs=2, progress=False, sandbox=backend)
    remote = autograde(there, "01_mlp", samples, progress=False, sandbox=backend, cluster=ready)
    assert not remote.failed and not local.failed, remote.summary()
    assert cell_scores(there, "01_mlp") == cell_scores(here, "01_mlp")
    totals = _totals(there, "01_mlp")
    assert {s: totals.get(s) for s in expected} == pytest.approx(expected)
    assert remote.jobs == 2 and [o.student for o in remote.outcomes] == sorted(expected)


def test_a_corpus_subset_gets_the_same_grades_and_failures_as_local_jobs(bench, backend, mode, ready, tmp_path,
                                                                        monkeypatch):
    everything = corpus.cases
    monkeypatch.setattr(corpus, "cases", lambda root, sandbox=True: [
        c for c in everything(root, sandbox) if c.student in SUBSET])
    cases = corpus.build(tmp_path / "submissions", root=bench, sandbox=mode == "bubblewrap")
    here, there = _copies(bench, tmp_path)  # the gradebook of ``bench`` holds the release only
    local = autograde(here, corpus.ASSIGNMENT, tmp_path / "submissions", jobs=2, progress=False, sandbox=backend)
    remote = autograde(there, corpus.ASSIGNMENT, tmp_path / "submissions", progress=False, sandbox=backend,
                       cluster=ready)
    assert cell_scores(there, corpus.ASSIGNMENT) == cell_scores(here, corpus.ASSIGNMENT)
    assert {o.student for o in remote.failed} == {o.student for o in local.failed} == \
        {c.student for c in cases.values() if c.failed}
    scores = cell_scores(there, corpus.ASSIGNMENT)
    for student, case in cases.items():
        got = {cell: scores.get(student, {}).get(cell, (None, None))[0] for cell in corpus.TESTS}
        assert got == case.expected, (student, remote.summary())
    notes = {o.student: " ".join(o.notes) + o.reason for o in remote.outcomes}
    for case in cases.values():
        assert case.note in notes[case.student], (case.student, notes[case.student])


def _slow_submissions(course: Path, out: Path, names, seconds=4) -> dict:
    """Honest submissions of the bench assignment that sleep ``seconds`` in an answer cell (full marks)."""
    slow = corpus.Case("slow", "sleeps", corpus.answer("relu_solution", f"import time\ntime.sleep({seconds})",
                                                        keep=True), (1, 2, 1))
    everything = corpus.cases
    try:
        corpus.cases = lambda root, sandbox=True: [slow]
        corpus.build(out / "tmp", root=course)
    finally:
        corpus.cases = everything
    source = out / "tmp" / "slow" / corpus.ASSIGNMENT
    for name in names:
        (out / "subs" / name).mkdir(parents=True)
        source_copy = out / "subs" / name / corpus.ASSIGNMENT
        source_copy.mkdir()
        (source_copy / "bench.ipynb").write_bytes((source / "bench.ipynb").read_bytes())
    return out / "subs"


def test_a_worker_killed_mid_batch_loses_and_doubles_no_student(bench, backend, ready, tmp_path):
    students = [f"s{i}" for i in range(6)]
    subs = _slow_submissions(bench, tmp_path, students)
    result, errors = [], []

    def grade():
        try:
            result.append(autograde(bench, corpus.ASSIGNMENT, subs, progress=False, sandbox=backend, cluster=ready))
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    thread = threading.Thread(target=grade)
    thread.start()
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        busy = [w for w, keys in ready.processing().items() if any(str(k).startswith("lepton-") for k in keys)]
        victim = busy[0] if busy else None
        time.sleep(0.2)
    assert victim, "no task reached a worker"
    time.sleep(1.0)  # into the notebook's run
    pid = ready.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    thread.join(600)
    assert not errors and result, errors
    batch = result[0]
    assert sorted(o.student for o in batch.outcomes) == students, batch.summary()  # each exactly once
    assert not batch.failed, batch.summary()
    assert _totals(bench, corpus.ASSIGNMENT) == {s: 4.0 for s in students}
    state = bench / "autograded" / ".lepton-state" / corpus.ASSIGNMENT
    assert sorted(p.stem for p in state.glob("*.json")) == students


def _dies_for_killer(task):
    """Fault injection on the worker: the process dies as a crashing sandbox host would."""
    if task["student"] == "killer":
        os._exit(13)
    return dask_cluster.run_task(task)


def test_a_submission_that_kills_its_workers_fails_alone_after_allowed_failures(bench, backend, ready, tmp_path,
                                                                               monkeypatch):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker cannot import this test module
    students = ["honest-a", "honest-b", "killer"]
    subs = _slow_submissions(bench, tmp_path, students, seconds=0)
    original = dask_cluster.schedule
    monkeypatch.setattr(dask_cluster, "schedule", lambda *a, **k: original(*a, work=_dies_for_killer, **k))
    batch = autograde(bench, corpus.ASSIGNMENT, subs, progress=False, sandbox=backend, cluster=ready)
    assert sorted(o.student for o in batch.outcomes) == students, batch.summary()
    assert [o.student for o in batch.failed] == ["killer"], batch.summary()
    assert "KilledWorker" in batch.failed[0].reason
    assert _totals(bench, corpus.ASSIGNMENT) == {"honest-a": 4.0, "honest-b": 4.0}
    # the next run retries the failed student only (no result was saved for it)
    monkeypatch.setattr(dask_cluster, "schedule", original)
    again = autograde(bench, corpus.ASSIGNMENT, subs, progress=False, sandbox=backend, cluster=ready)
    assert {o.student: o.cached for o in again.outcomes} == {"honest-a": True, "honest-b": True, "killer": False}
    assert not again.failed and _totals(bench, corpus.ASSIGNMENT)["killer"] == 4.0


def test_an_unreachable_scheduler_is_named_in_a_clear_error():
    with pytest.raises(dask_cluster.ClusterUnavailable, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        dask_cluster.connect("tcp://127.0.0.1:9", timeout="1s")


def test_the_address_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv(dask_cluster.ENV, "tcp://from-env:8786")
    assert dask_cluster.address(None) == "tcp://from-env:8786"
    assert dask_cluster.address("tcp://option:8786") == "tcp://option:8786"
    monkeypatch.delenv(dask_cluster.ENV)
    assert dask_cluster.address(None) is None
