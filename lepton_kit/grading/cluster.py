"""EXECUTE on a Dask ``distributed`` cluster: ``lepton autograde A --cluster tcp://HOST:8786``.

The parent prepares, plans and stages each submission as for a local job, then ships a self-contained
task (the plans, the limits, the staged files as a tar archive, the backend's name) to a worker. The
worker unpacks the files in a temporary folder of its own, runs :func:`pipeline.execute` there in its
own bubblewrap sandbox, and returns what FINISH needs (the runs, notes, seconds, failure). FINISH and
RECORD stay in the parent, the gradebook's only writer, so resuming works as for ``--jobs``.

A worker that dies is Dask's business: its tasks are rescheduled; a task that has been on
``distributed.scheduler.allowed-failures`` + 1 dying workers ends in ``KilledWorker``. Dask counts
every task assigned to a dying worker, so an honest submission queued beside one that kills its
workers can get there too: each such task runs once more, alone, after the others; a student is
failed only when that run dies as well, and the batch goes on. ``distributed`` is imported only
here, only when used.

    python -m lepton_kit.grading.cluster --bench   # submissions per minute: LocalCluster(2) vs --jobs 2
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

from lepton_kit.grading.pipeline import FINISH, PLAN, PREPARE, RECORD, Batch, Submission, advance, execute, stage_files

ENV = "LEPTON_DASK_SCHEDULER"
CONNECT_TIMEOUT = "10s"


class ClusterUnavailable(RuntimeError):
    pass


def connect(address: str, timeout: str = CONNECT_TIMEOUT):
    """A ``distributed.Client`` on the scheduler at ``address``; a clear error when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError as err:
        raise ClusterUnavailable(f"--cluster needs the `distributed` package ({err}): pip install distributed") from err
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterUnavailable(f"cannot reach the Dask scheduler at {address}: {err}") from None


# --- the task (parent side) ---------------------------------------------------------------------

def pack(folder: Path | None) -> bytes:
    """The staged files as an uncompressed tar archive (b"" for none)."""
    if folder is None:
        return b""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def task(sub: Submission, batch: Batch) -> dict:
    """Everything a worker needs to execute ``sub``: no path of this machine in it."""
    stage_files(sub, batch)
    try:
        files = pack(sub.files)
    finally:
        if sub.files is not None:
            shutil.rmtree(sub.files, ignore_errors=True)
            sub.files = None
    return {"student": sub.student, "plans": sub.plans, "limits": batch.limits, "files": files,
            "staged": bool(sub.plans), "sandbox": batch.backend.name}


def apply(sub: Submission, result: dict) -> None:
    """What the worker's :func:`pipeline.execute` produced, onto the parent's submission."""
    sub.runs.update(result["runs"])
    sub.notes += result["notes"]
    sub.seconds += result["seconds"]
    if result["failure"]:
        sub.fail(result["failure"])


# --- the worker side ----------------------------------------------------------------------------

_slots, _slots_lock = set(), threading.Lock()


def _take_slot() -> int:
    """A job slot unused by this worker process's other threads (the sandbox's uid, as root)."""
    with _slots_lock:
        slot = next(i for i in range(len(_slots) + 1) if i not in _slots)
        _slots.add(slot)
        return slot


def _backend(name: str):
    from lepton_kit.grading.sandbox import backend

    return backend(name != "NO SANDBOX")  # refuses where bubblewrap cannot isolate: never silently unsandboxed


def run_task(task: dict) -> dict:
    """On a worker: unpack the files in a temporary folder, execute as a local job does, return the results."""
    sub = Submission(task["student"], Path("."), plans=task["plans"])
    work = Path(tempfile.mkdtemp(prefix="lepton-worker-"))
    slot = _take_slot()
    try:
        batch = SimpleNamespace(limits=task["limits"], backend=_backend(task["sandbox"]))
        if task["staged"]:
            files = work / "files"
            files.mkdir()
            with tarfile.open(fileobj=io.BytesIO(task["files"])) as tar:
                tar.extractall(files, filter="data")
            for path in [work, files, *files.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            sub.files, sub.slot = files, slot
        execute(sub, batch)
    finally:
        with _slots_lock:
            _slots.discard(slot)
        shutil.rmtree(work, ignore_errors=True)
    return {"runs": sub.runs, "notes": sub.notes, "seconds": sub.seconds, "failure": sub.failure}


# --- the scheduler (parent's main thread) -------------------------------------------------------

def schedule(batch: Batch, students: list, client, done, work=None, ahead: int | None = None) -> None:
    """Prepare and plan here, execute ``work(task)`` on the cluster, finish and record here as results come.

    At most ``ahead`` tasks (default: twice the cluster's threads) are staged and in flight at once.
    ``work`` (default :func:`run_task`) runs on the worker.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    todo = []
    for student in students:
        sub = batch.submission(student)
        advance(PREPARE, sub, batch)
        advance(RECORD if sub.loaded else PLAN, sub, batch)
        if sub.ended:
            done(sub)
        else:
            todo.append(sub)
    work = work or run_task
    ahead = ahead or max(2, 2 * sum(client.nthreads().values()))
    running, pending, payloads, alone = {}, as_completed(), {}, []

    def submit():
        while todo and len(running) < ahead:
            sub = todo.pop(0)
            try:
                payload = task(sub, batch)
            except Exception as err:  # staging failed: as advance() reports it
                sub.fail(f"autograder error: {type(err).__name__}: {err}"[:300])
                done(sub)
                continue
            future = client.submit(work, payload, key=f"lepton-{batch.assignment}-{sub.student}-{sub.fingerprint[:12]}",
                                   pure=False, retries=0)
            running[future.key], payloads[future.key] = sub, payload
            pending.add(future)

    def outcome(sub, future, *, last_try):
        """Apply the result; False when the workers died and the task should run again, alone."""
        try:
            apply(sub, future.result())
        except KilledWorker as err:
            if not last_try:
                return False
            sub.fail(f"its workers died while grading it, too often, also alone ({type(err).__name__}): not graded")
        except Exception as err:  # the cluster or the worker function failed: the student is reported
            sub.fail(f"cluster error: {type(err).__name__}: {err}"[:300])
        return True

    submit()
    for future in pending:
        sub, payload = running.pop(future.key), payloads.pop(future.key)
        finished = outcome(sub, future, last_try=False)
        future.release()
        if not finished:
            alone.append((sub, payload))
        else:
            advance(FINISH + RECORD, sub, batch)
            done(sub)
        submit()
    for sub, payload in alone:  # nothing else in flight: only its own code can kill its worker now
        future = client.submit(work, payload, key=f"lepton-{batch.assignment}-{sub.student}-{sub.fingerprint[:12]}-alone",
                               pure=False, retries=0)
        outcome(sub, future, last_try=True)
        future.release()
        advance(FINISH + RECORD, sub, batch)
        done(sub)


def address(cluster: str | None) -> str | None:
    """The scheduler's address: ``--cluster``, else ``$LEPTON_DASK_SCHEDULER``, else None (local jobs)."""
    return cluster or os.environ.get(ENV) or None
