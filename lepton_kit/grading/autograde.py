"""Autograde a folder of submissions in sandboxes, ``jobs`` at a time, into nbgrader's gradebook.

nbgrader keeps the gradebook and the markup; how submissions run is Lepton's (restore, sandbox,
executor, guard, execution, batch in this package; see autograder/README.md).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading.config import assignments, gradebook, load_config

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
    sandboxed: bool = True

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
                 + ("sandbox: bubblewrap" if self.sandboxed else "NO SANDBOX")]
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
        if not SAFE_ID.match(entry.name):
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
            shutil.copytree(folder, target, symlinks=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        students.append(entry.name)
    return students, skipped


def templates(root: Path, assignment_id: str, gb) -> dict:
    """The instructor's version of each notebook: release structure, gradebook sources and points."""
    import nbformat
    from nbgrader.api import MissingEntry

    from lepton_kit.grading.restore import Template, TemplateCell

    result = {}
    try:
        notebooks = gb.find_assignment(assignment_id).notebooks
    except MissingEntry:
        notebooks = []
    if not notebooks:
        raise RuntimeError(f"{assignment_id} is not in the gradebook: run `lepton release {assignment_id}`")
    for notebook in notebooks:
        path = Path(root) / "release" / assignment_id / f"{notebook.name}.ipynb"
        if not path.is_file():
            raise RuntimeError(f"{path} is missing: run `lepton release {assignment_id}`")
        release_nb = nbformat.read(path, as_version=4)
        cells = []
        for cell in release_nb.cells:
            meta = dict(cell.metadata.get("nbgrader", {}))
            grade_id = meta.get("grade_id")
            if not grade_id:
                continue
            try:
                source = gb.find_source_cell(grade_id, notebook.name, assignment_id)
            except MissingEntry:
                raise RuntimeError(f"cell {grade_id} of {path} is not in the gradebook: run "
                                   f"`lepton release {assignment_id}`") from None
            if meta.get("grade"):
                meta["points"] = float(gb.find_graded_cell(grade_id, notebook.name, assignment_id).max_score)
            meta["checksum"] = source.checksum
            meta["locked"] = bool(source.locked)
            role = ("manual" if meta.get("grade") else "solution") if meta.get("solution") else \
                "task" if meta.get("task") else ("test" if meta.get("grade") and source.cell_type == "code"
                                                 else "locked")
            other = {k: v for k, v in cell.metadata.items() if k != "nbgrader"}
            cells.append(TemplateCell(grade_id, role, source.cell_type, source.source, cell.source, meta, other,
                                      cell.get("id")))
        metadata = dict(release_nb.metadata)
        if notebook.kernelspec:
            metadata["kernelspec"] = json.loads(notebook.kernelspec)
        result[notebook.name] = Template(notebook.name, cells, metadata, release_nb.nbformat_minor)
    return result


def record(gb, assignment_id: str, result, late_plugin=None) -> None:
    """Write one student's scores and comments to the gradebook (idempotent: a re-run writes the same)."""
    from nbgrader.utils import parse_utc

    gb.update_or_create_student(result.student)
    submission = gb.update_or_create_submission(assignment_id, result.student, timestamp=parse_utc(
        result.timestamp)) if result.timestamp else gb.update_or_create_submission(assignment_id, result.student)
    for notebook, scores in result.scores.items():
        for grade_id, score in scores.items():
            grade = gb.find_grade(grade_id, notebook, assignment_id, result.student)
            grade.auto_score = score
            grade.needs_manual_grade = grade.manual_score is not None or score is None
        for grade_id, text in result.comments.get(notebook, {}).items():
            gb.find_comment(grade_id, notebook, assignment_id, result.student).auto_comment = text
    gb.db.flush()
    for notebook in result.scores:
        graded = gb.find_submission_notebook(notebook, assignment_id, result.student)
        graded.late_submission_penalty = None
        if late_plugin is not None and submission.total_seconds_late > 0:
            penalty = late_plugin.late_submission_penalty(result.student, graded.score,
                                                          submission.total_seconds_late)
            if penalty is not None:
                graded.late_submission_penalty = min(max(penalty, 0), graded.score)
    gb.db.commit()


def autograde(root: Path, assignment_id: str, submissions: Path, jobs: int | None = None, progress=True,
              timeout: float | None = None, force: bool = False, sandbox: bool | None = None) -> BatchResult:
    """Grade every student's submission of one assignment in sandboxes, ``jobs`` at a time.

    One broken or hostile submission never stops the batch. Finished students are kept from an
    earlier, interrupted run (``force`` regrades everyone). ``sandbox=None`` means bubblewrap unless
    ``LEPTON_SANDBOX=off``; without bubblewrap it refuses (:class:`lepton_kit.grading.sandbox.SandboxUnavailable`).
    ``timeout`` overrides the per-notebook wall-time limit.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from nbgrader.plugins import LateSubmissionPlugin
    from tqdm.auto import tqdm

    from lepton_kit.grading import batch as batches
    from lepton_kit.grading.sandbox import Limits, require_sandbox

    root = Path(root)
    if assignment_id not in assignments(root):
        raise ValueError(f"no such assignment under source/: {assignment_id}")
    if sandbox is None:
        sandbox = os.environ.get("LEPTON_SANDBOX", "on").lower() not in ("off", "0", "no")
    if sandbox:
        require_sandbox()
    config = load_config(root)
    limits = Limits.from_config(config)
    if timeout:
        limits.notebook_timeout = float(timeout)
    jobs = max(1, jobs or os.cpu_count() or 1)
    url = config.CourseDirectory.db_url
    students, skipped = collect(root, assignment_id, submissions)
    batch, start = BatchResult(assignment_id, skipped=skipped), time.monotonic()
    batch.jobs, batch.sandboxed = jobs, sandbox
    state = batches.State(root, assignment_id)
    ignore = list(config.CourseDirectory.get("ignore", [])) if "ignore" in config.CourseDirectory else []
    bar = tqdm(total=len(students), desc=f"autograde {assignment_id}", unit="student", disable=not progress)
    with gradebook(url) as gb:
        tpl = templates(root, assignment_id, gb)
        context = (gb, root, assignment_id, tpl, LateSubmissionPlugin(config=config), state)
        todo = []
        for student in students:
            outcome = _resume(context, student, force)
            if isinstance(outcome, Outcome):
                batch.outcomes.append(outcome)
                bar.update()
            else:
                todo.append(outcome)
        slots = list(range(jobs))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            running = {}
            while todo or running:
                while todo and slots:
                    sub, slot = todo.pop(0), slots.pop()
                    running[pool.submit(batches.execute, sub, root, assignment_id, limits, slot, sandbox,
                                        ignore, state.staging)] = (sub, slot)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    sub, slot = running.pop(future)
                    slots.append(slot)
                    batch.outcomes.append(_finish(context, sub, future))
                    bar.update()
                    bar.set_postfix(failed=len(batch.failed))
    bar.close()
    batch.outcomes.sort(key=lambda o: o.student)
    batch.seconds = time.monotonic() - start
    return batch


def _resume(context, student: str, force: bool):
    """A finished student's Outcome (kept or recorded from an earlier run), or the Submission to run."""
    from lepton_kit.grading import batch as batches

    gb, root, assignment_id, tpl, _, state = context
    try:
        sub = batches.prepare(student, root / "submitted" / student / assignment_id, tpl)
    except Exception as err:  # never stop the batch: report, and try again on the next run
        return Outcome(student, False, 0.0, f"autograder error: {type(err).__name__}: {err}"[:300])
    if force:
        state.forget(student)
    result = state.result(student, sub.fingerprint)
    if result is not None and state.done(student, sub.fingerprint):
        return Outcome(student, result.ok, 0.0, _reason(result), result.notes, cached=True)
    if result is not None:  # executed before an interruption, not yet in the gradebook
        return _record(context, result, cached=True)
    if not sub.notebooks:  # nothing to run: every notebook unreadable
        result = batches.Result(student, sub.fingerprint, notes=sub.notes, problems=sub.problems,
                                timestamp=sub.timestamp)
        batches.unreadable_scores(tpl, result)
        state.save(result)
        return _record(context, result)
    return sub


def _finish(context, sub, future) -> Outcome:
    from lepton_kit.grading import batch as batches

    gb, root, assignment_id, tpl, _, state = context
    try:
        result, executed = future.result()
    except Exception as err:  # a bug or an OS failure: report it, keep the batch going, retry next run
        return Outcome(sub.student, False, 0.0, f"autograder error: {type(err).__name__}: {err}"[:300])
    if result.failure:
        return Outcome(sub.student, False, result.seconds, result.failure, result.notes)
    batches.unreadable_scores(tpl, result)
    folder = root / "autograded" / sub.student / assignment_id
    for name, nb in executed.items():
        batches.write_notebook(folder / f"{name}.ipynb", nb)
    if sub.timestamp:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "timestamp.txt").write_text(sub.timestamp)
    state.save(result)
    return _record(context, result)


def _record(context, result, cached=False) -> Outcome:
    gb, _, assignment_id, _, late, state = context
    try:
        record(gb, assignment_id, result, late)
    except Exception as err:  # e.g. a locked or unreachable database: retried on the next run
        gb.db.rollback()
        return Outcome(result.student, False, result.seconds, f"gradebook error: {type(err).__name__}: {err}"[:300],
                       result.notes)
    state.mark_done(result)
    return Outcome(result.student, result.ok, result.seconds, _reason(result), result.notes, cached=cached)


def _reason(result) -> str:
    return "; ".join([*result.problems.values(), *([result.failure] if result.failure else [])])


