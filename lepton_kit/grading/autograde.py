"""Autograde a folder of submissions in sandboxes, ``jobs`` at a time, into nbgrader's gradebook.

nbgrader keeps the gradebook and the markup; how submissions run is Lepton's: each goes through
the steps of :mod:`lepton_kit.grading.pipeline` (see autograder/README.md).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading.config import assignments, gradebook, load_config
from lepton_kit.grading.pipeline import EXECUTE, FINISH, PLAN, PREPARE, RECORD, Batch, advance
from lepton_kit.grading.restore import templates  # noqa: F401 (public: feedback and tools use it)
from lepton_kit.grading.sandbox import Unsandboxed, backend as choose_backend
from lepton_kit.grading.warm import WARM_FROM, warm_cache

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # used with fullmatch: "$" would allow a final newline


@dataclass
class Outcome:
    """How one student's submission went: ``ok`` is False when a notebook could not be graded."""

    student: str
    ok: bool
    seconds: float
    reason: str = ""
    notes: list = field(default_factory=list)   # tampering restored, limits hit, ...
    cached: bool = False                         # graded by an earlier, interrupted run


@dataclass
class BatchResult:
    assignment: str
    outcomes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 1
    sandbox: str = "bubblewrap"   # the backend's name

    @property
    def failed(self):
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        graded = [o for o in self.outcomes if o.ok]
        fresh = [o for o in self.outcomes if not o.cached]
        per = sum(o.seconds for o in fresh) / len(fresh) if fresh else 0.0
        cached = sum(o.cached for o in self.outcomes)
        lines = [f"{self.assignment}: graded {len(graded)}, failed {len(self.failed)}, "
                 f"skipped {len(self.skipped)} in {self.seconds:.1f} s"
                 + (f" ({cached} kept from an earlier run)" if cached else "")
                 + f"; {self.jobs} job(s), {per:.1f} s per notebook, "
                 + ("NO SANDBOX" if self.sandbox == "NO SANDBOX" else f"sandbox: {self.sandbox}")]
        lines += [f"  failed  {o.student}: {o.reason}" for o in self.failed]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        for o in self.outcomes:
            lines += [f"  note    {o.student}: {note}" for note in o.notes]
        return "\n".join(lines)


def collect(root: Path, assignment_id: str, submissions: Path) -> tuple[list[str], list]:
    """Copy ``submissions/<student>/<assignment>/`` into the course's submitted/ folder.

    Returns the student ids to grade and the (name, reason) of entries that were skipped.
    """
    root, submissions = Path(root), Path(submissions).resolve()
    target_root = (root / "submitted").resolve()
    students, skipped = [], []
    if not submissions.is_dir():
        raise FileNotFoundError(f"submissions folder {submissions} does not exist")
    for entry in sorted(submissions.iterdir()):
        if not entry.is_dir():
            continue
        if not SAFE_ID.fullmatch(entry.name):
            skipped.append((entry.name, "student id must match [A-Za-z0-9_.-]"))
            continue
        folder = entry / assignment_id
        if entry.is_symlink() or folder.is_symlink():
            skipped.append((entry.name, "a symbolic link, not a folder"))
            continue
        if not folder.is_dir():
            continue
        if not any(folder.glob("*.ipynb")):
            skipped.append((entry.name, f"no notebook in {folder}"))
            continue
        target = target_root / entry.name / assignment_id
        if folder.resolve() != target:
            if target.exists():
                shutil.rmtree(target)
            try:
                shutil.copytree(folder, target, symlinks=True, ignore=_left_out(folder, entry.name, skipped))
            except (OSError, shutil.Error) as exc:
                skipped.append((entry.name, f"could not copy the submission: {exc}"))
                shutil.rmtree(target, ignore_errors=True)
                continue
        students.append(entry.name)
    return students, skipped


def _left_out(top: Path, student: str, skipped: list):
    """copytree's ``ignore``: checkpoints, and anything that is not a file, folder or link (a FIFO would block)."""
    def ignore(folder, names):
        left = set()
        for name in names:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if name == ".ipynb_checkpoints":
                left.add(name)
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                left.add(name)
                skipped.append((student, f"{path.relative_to(top)} is not a regular file; left out"))
        return left
    return ignore


def outcome(sub) -> Outcome:
    return Outcome(sub.student, sub.ok, sub.seconds, sub.reason, sub.notes, cached=sub.cached)


def autograde(root: Path, assignment_id: str, submissions: Path, jobs: int | None = None, progress=True,
              timeout: float | None = None, force: bool = False, sandbox=None, cluster=None) -> BatchResult:
    """Grade every student's submission of one assignment, ``jobs`` at a time (see :mod:`pipeline`).

    One broken or hostile submission never stops the batch. Finished students are kept from an
    earlier, interrupted run (``force`` regrades everyone). ``sandbox``: a backend of
    :mod:`lepton_kit.grading.sandbox`, or True / False / None (bubblewrap unless ``LEPTON_SANDBOX=off``);
    without bubblewrap it refuses (:class:`lepton_kit.grading.sandbox.SandboxUnavailable`).
    ``timeout`` overrides the per-notebook wall-time limit. ``cluster``: a Dask scheduler's address (or a
    ``distributed.Client``): submissions execute on its workers (:mod:`lepton_kit.grading.cluster`), each
    worker checking bubblewrap itself.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    if assignment_id not in assignments(root):
        raise ValueError(f"no such assignment under source/: {assignment_id}")
    if cluster is not None:
        return _on_cluster(root, assignment_id, submissions, cluster, progress, timeout, force, sandbox)
    backend = sandbox if hasattr(sandbox, "start") else choose_backend(sandbox)
    config = load_config(root)
    jobs = max(1, jobs or os.cpu_count() or 1)
    students, skipped = collect(root, assignment_id, submissions)
    result, start = BatchResult(assignment_id, skipped=skipped, jobs=jobs, sandbox=backend.name), time.monotonic()
    bar = tqdm(total=len(students), desc=f"autograde {assignment_id}", unit="student", disable=not progress)

    def done(sub):
        result.outcomes.append(outcome(sub))
        bar.update()
        bar.set_postfix(failed=len(result.failed))

    with gradebook(config.CourseDirectory.db_url) as gb:
        batch = Batch.open(root, assignment_id, gb, config, backend, timeout=timeout, force=force)
        _schedule(batch, students, jobs, done)
    bar.close()
    result.outcomes.sort(key=lambda o: o.student)
    result.seconds = time.monotonic() - start
    return result


def _on_cluster(root, assignment_id, submissions, cluster, progress, timeout, force, sandbox) -> BatchResult:
    """:func:`autograde` with EXECUTE on a Dask cluster (``cluster``: an address or a Client)."""
    from tqdm.auto import tqdm

    from lepton_kit.grading import cluster as dask_cluster
    from lepton_kit.grading.sandbox import Bubblewrap, Unsandboxed

    if hasattr(sandbox, "start"):
        backend = sandbox
    elif sandbox is None:
        backend = Unsandboxed() if os.environ.get("LEPTON_SANDBOX", "on").lower() in ("off", "0", "no") else Bubblewrap()
    else:
        backend = Bubblewrap() if sandbox else Unsandboxed()
    config = load_config(root)
    client = dask_cluster.connect(cluster) if isinstance(cluster, str) else cluster
    try:
        jobs = max(1, sum(client.nthreads().values()))
        students, skipped = collect(root, assignment_id, submissions)
        result, start = BatchResult(assignment_id, skipped=skipped, jobs=jobs, sandbox=backend.name), time.monotonic()
        bar = tqdm(total=len(students), desc=f"autograde {assignment_id}", unit="student", disable=not progress)

        def done(sub):
            result.outcomes.append(outcome(sub))
            bar.update()
            bar.set_postfix(failed=len(result.failed))

        with gradebook(config.CourseDirectory.db_url) as gb:
            batch = Batch.open(root, assignment_id, gb, config, backend, timeout=timeout, force=force)
            dask_cluster.schedule(batch, students, client, done)
        bar.close()
    finally:
        if isinstance(cluster, str):
            client.close()
    result.outcomes.sort(key=lambda o: o.student)
    result.seconds = time.monotonic() - start
    return result


def _schedule(batch: Batch, students: list, jobs: int, done) -> None:
    """Prepare and plan in this thread, execute ``jobs`` at a time in workers, finish and record here."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    todo = []
    for student in students:
        sub = batch.submission(student)
        advance(PREPARE, sub, batch)
        advance(RECORD if sub.loaded else PLAN, sub, batch)
        if sub.ended:
            done(sub)
        else:
            todo.append(sub)
    if len(todo) >= WARM_FROM and batch.backend.name != Unsandboxed.name:  # a sandbox cannot store in the cache
        warm_cache(batch.root, batch.assignment, cell_timeout=batch.limits.cell_timeout)
    slots = list(range(jobs))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {}
        while todo or running:
            while todo and slots:
                sub = todo.pop(0)
                sub.slot = slots.pop()
                running[pool.submit(advance, EXECUTE, sub, batch)] = sub
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                sub = running.pop(future)
                slots.append(sub.slot)
                advance(FINISH + RECORD, sub, batch)
                done(sub)
