"""One submission's life as an ordered list of small steps, each ``step(sub, batch) -> None``.

:data:`STEPS` is the whole pipeline: parse, restore the structure, the kernelspec and the cell ids,
draw the student's tasks, stage the files, execute, attach the outputs, score, put the rubrics under their cells, record,
apply the late penalty. The scheduler
(:mod:`lepton_kit.grading.autograde`) runs :data:`PREPARE` and :data:`PLAN` in the parent's main
thread (all parsing of Python happens there), :data:`EXECUTE` in a worker thread (it only drives
the sandbox), then :data:`FINISH` and :data:`RECORD` in the main thread again, the only one that
touches the gradebook. A step that ends the submission (a cached result, a failure) sets
``sub.ended``; :func:`advance` runs the steps until then and turns any exception into a failure.

>>> score_test(CellRun(verdict=True), 2.0), score_test(CellRun(verdict=False), 2.0)
(2.0, 0.0)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading import draws, execution, restore, rubric
from lepton_kit.grading.config import ignored
from lepton_kit.grading.cells import nbgrader, role
from lepton_kit.grading.execution import CellRun
from lepton_kit.grading.sandbox import Limits
from lepton_kit.grading.state import VERSION, State, atomic_write


@dataclass
class Submission:
    """Everything known about one student's submission, filled in step by step."""

    student: str
    folder: Path                                    # submitted/<student>/<assignment>
    slot: int = 0                                   # the job slot that runs it
    timestamp: str = ""
    fingerprint: str = ""
    raw: dict = field(default_factory=dict)         # name -> the submitted bytes
    data: dict = field(default_factory=dict)        # name -> the parsed JSON
    notebooks: dict = field(default_factory=dict)   # name -> the rebuilt notebook (then executed)
    plans: dict = field(default_factory=dict)       # name -> execution.Plan
    runs: dict = field(default_factory=dict)        # name -> execution.NotebookRun
    tokens: dict = field(default_factory=dict)      # name -> what the fingerprint holds for an unreadable file
    problems: dict = field(default_factory=dict)    # name -> why it could not be read
    notes: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)      # name -> {grade_id: score or None}
    comments: dict = field(default_factory=dict)    # name -> {grade_id: "No response." or None}
    failure: str = ""                               # the autograder (not the student) failed
    seconds: float = 0.0
    files: Path | None = None                       # the staged files, while it runs
    tasks: dict = field(default_factory=dict)       # slot -> the task drawn for this student (tasks.yml)
    loaded: bool = False                            # scores come from an interrupted run's result
    cached: bool = False                            # graded by an earlier run
    ended: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failure

    @property
    def reason(self) -> str:
        return "; ".join([*self.problems.values(), *([self.failure] if self.failure else [])])

    def fail(self, reason: str) -> None:
        self.failure, self.ended = reason, True

    def problem(self, name: str, why: str, token: str) -> None:
        self.problems[name], self.tokens[name] = why, token

    def note(self, name: str, notes: list, several: bool) -> None:
        self.notes += [f"{name}: {n}" for n in notes] if several else notes


@dataclass
class Batch:
    """What every step shares: the course, the templates, the open gradebook, the backend, the state."""

    root: Path
    assignment: str
    gb: object
    templates: dict
    limits: Limits
    backend: object
    state: State
    late: object                    # nbgrader's LateSubmissionPlugin, configured by the course
    ignore: list = field(default_factory=list)
    force: bool = False
    rubric: dict = field(default_factory=dict)     # grade_id -> criteria (source/<assignment>/rubric.yml)
    task_slots: dict = field(default_factory=dict)  # slot -> task ids (source/<assignment>/tasks.yml)
    assigned: dict = field(default_factory=dict)    # student -> {slot: task} set by hand
    key: bytes = b""                                # the course secret, when tasks are drawn
    checker: bool = True    # tests run in the trusted checker; False: in the kernel, under the guard

    @classmethod
    def open(cls, root: Path, assignment: str, gb, config, backend, timeout=None, force=False) -> "Batch":
        from nbgrader.plugins import LateSubmissionPlugin

        limits = Limits.from_config(config)
        if timeout:
            limits.notebook_timeout = float(timeout)
        ignore = ignored(config)  # the instructor-only files are never staged for the student
        task_slots, assigned = draws.load_tasks(root, assignment)
        return cls(Path(root), assignment, gb, restore.templates(root, assignment, gb), limits, backend,
                   State(root, assignment), LateSubmissionPlugin(config=config), ignore, force,
                   rubric.load(root, assignment), task_slots, assigned,
                   draws.course_key(root) if task_slots else b"",
                   assignment not in (config.get("LeptonAutograde", {}) or {}).get("tests_in_kernel", ()))

    def submission(self, student: str) -> Submission:
        return Submission(student, self.root / "submitted" / student / self.assignment)


# --- prepare (main thread) ----------------------------------------------------------------------

def read(sub: Submission, batch: Batch) -> None:
    """timestamp.txt (a bad date is noted and ignored) and each notebook's bytes; links, missing files: problems."""
    stamp = sub.folder / "timestamp.txt"
    sub.timestamp = stamp.read_text(errors="replace").strip()[:64] \
        if stamp.is_file() and not stamp.is_symlink() else ""
    if sub.timestamp:
        from nbgrader.utils import parse_utc

        try:
            parse_utc(sub.timestamp)
        except (ValueError, OverflowError):
            sub.notes.append(f"timestamp.txt {sub.timestamp!r} is not a date: ignored")
            sub.timestamp = ""
    for name in sorted(batch.templates):
        path = sub.folder / f"{name}.ipynb"
        if path.is_symlink():
            sub.problem(name, f"{name}.ipynb is a symbolic link, not a notebook", "link")
        elif not path.is_file():
            sub.problem(name, f"{name}.ipynb was not submitted", "missing")
        else:
            sub.raw[name] = path.read_bytes()


def parse(sub: Submission, batch: Batch) -> None:
    """Each notebook's JSON; a file that is not a notebook is a problem."""
    for name, raw in sub.raw.items():
        try:
            sub.data[name] = restore.parse(raw)
        except restore.Malformed as err:
            sub.problem(name, f"{name}.ipynb: {err}", f"malformed {hashlib.sha256(raw).hexdigest()}")


def restore_structure(sub: Submission, batch: Batch) -> None:
    """Each notebook rebuilt on the instructor's cells, with a note per change."""
    for name, data in sub.data.items():
        sub.notebooks[name], notes = restore.rebuild(data, batch.templates[name])
        sub.note(name, notes, len(batch.templates) > 1)


def kernelspec(sub: Submission, batch: Batch) -> None:
    """The instructor's notebook metadata and kernelspec."""
    for name, nb in sub.notebooks.items():
        nb.metadata, notes = restore.kernelspec(sub.data[name], batch.templates[name])
        sub.note(name, notes, len(batch.templates) > 1)


def ids(sub: Submission, batch: Batch) -> None:
    """Valid, unique cell ids."""
    for nb in sub.notebooks.values():
        restore.unique_ids(nb)


def draw_tasks(sub: Submission, batch: Batch) -> None:
    """The student's tasks (tasks.yml), drawn here from their id and the course secret, never in the sandbox."""
    if batch.task_slots:
        sub.tasks = draws.tasks_for(sub.student, batch.task_slots, batch.assigned, key=batch.key)


def fingerprint(sub: Submission, batch: Batch) -> None:
    """A digest of what will run: a changed submission, timestamp, task or VERSION is graded again."""
    digest = hashlib.sha256(f"{VERSION}\n{sub.timestamp}\n{json.dumps(sub.tasks, sort_keys=True)}\n".encode())
    for name in sorted(batch.templates):
        if name in sub.tokens:
            digest.update(f"{name}: {sub.tokens[name]}\n".encode())
        elif name in sub.notebooks:
            digest.update(json.dumps(sub.notebooks[name], sort_keys=True).encode())
    sub.fingerprint = digest.hexdigest()


def resume(sub: Submission, batch: Batch) -> None:
    """An earlier run's result: kept when recorded (ends here), else recorded again without running."""
    if batch.force:
        batch.state.forget(sub.student)
    result = batch.state.result(sub.student, sub.fingerprint)
    if result is None:
        return
    for key in ("scores", "comments", "notes", "problems", "failure", "seconds", "timestamp"):
        setattr(sub, key, result.get(key, getattr(sub, key)))
    sub.cached = sub.loaded = True
    sub.ended = batch.state.done(sub.student, sub.fingerprint)


def plan(sub: Submission, batch: Batch) -> None:
    """What to send the executor, cell by cell: every Python parse of the batch happens here."""
    for name, nb in sub.notebooks.items():
        stubs = [c.release_source for c in batch.templates[name].cells if c.role == "solution"]
        sub.plans[name] = execution.plan(nb, answer_stubs=stubs, checker=batch.checker)


# --- execute (a worker thread: no parsing, no gradebook) ----------------------------------------

def stage_files(sub: Submission, batch: Batch) -> None:
    """The assignment's data files and the student's own (notebooks excluded), read-only in the sandbox."""
    if not sub.plans:
        return
    target = batch.state.staging / sub.student
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    target.parent.chmod(0o755)
    patterns = shutil.ignore_patterns("*.ipynb", "timestamp.txt", *batch.ignore)

    def skip(folder, names):  # never follow a link: it could point at source/ or the grader's files
        return set(patterns(folder, names)) | {n for n in names if os.path.islink(os.path.join(folder, n))}

    source = batch.root / "source" / batch.assignment
    for base in (sub.folder, source):  # the instructor's files win, as in nbgrader
        for item in base.iterdir():
            if skip(str(base), [item.name]) or (base == sub.folder and item.name.startswith(".")):
                continue  # a student's dotfiles (.ipython/, ...) could configure the tools
            dest = target / item.name
            if item.is_dir():
                shutil.copytree(item, dest, symlinks=True, dirs_exist_ok=True, ignore=skip)
            else:
                shutil.copyfile(item, dest)
    if sub.tasks:  # the grader's draw replaces any variant.json the student handed in
        (target / draws.VARIANT_FILE).write_text(json.dumps({"student": sub.student, "tasks": sub.tasks}) + "\n")
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    sub.files = target


def execute(sub: Submission, batch: Batch) -> None:
    """Run each planned notebook through the batch's backend; the staged files go afterwards."""
    try:
        for name, planned in sub.plans.items():
            drawn = [sub.files / draws.VARIANT_FILE] if sub.tasks else []  # the grader's draw, for the checker too
            run = execution.run(planned, batch.limits, sub.files, batch.backend, slot=sub.slot, checker_files=drawn)
            if run.failure:
                sub.fail(run.failure)
                return
            sub.runs[name] = run
            sub.notes += run.notes
            sub.seconds += run.seconds
    finally:
        if sub.files is not None:
            shutil.rmtree(sub.files, ignore_errors=True)


# --- finish (main thread) -----------------------------------------------------------------------

def attach_outputs(sub: Submission, batch: Batch) -> None:
    """Each code cell's outputs; a test without a signed pass gets an error saying why."""
    for name, run in sub.runs.items():
        for index, cell in enumerate(sub.notebooks[name]["cells"]):
            if cell["cell_type"] != "code":
                continue
            cell_run = run.cells.get(index)
            cell["outputs"] = list(cell_run.outputs) if cell_run else []
            if cell_run and role(cell) == "test" and not cell_run.verdict \
                    and not any(o.get("output_type") == "error" for o in cell["outputs"]):
                why = cell_run.why or ("the cell did not run" if not cell_run.ran else "no verdict from the guard")
                cell["outputs"].append({"output_type": "error", "ename": "AutograderVerdict", "evalue": why,
                                        "traceback": [f"AutograderVerdict: {why}"]})


def score_test(run: CellRun, points: float) -> float:
    """Points of a test cell: all of them for a signed pass (or its partial value), else none."""
    if not run.verdict:
        return 0.0
    if run.value is None:
        return float(points)
    if not math.isfinite(run.value):  # NaN would compare false everywhere and score full points
        return 0.0
    return float(points) if run.value < 0 else min(float(points), run.value)


def score(sub: Submission, batch: Batch) -> None:
    """Scores and comments of every graded cell, as nbgrader would give them; unreadable notebooks score zero."""
    from nbgrader.utils import compute_checksum

    for name, run in sub.runs.items():
        scores, comments = sub.scores.setdefault(name, {}), sub.comments.setdefault(name, {})
        for index, cell in enumerate(sub.notebooks[name]["cells"]):
            meta, kind = nbgrader(cell), role(cell)
            grade_id = meta.get("grade_id")
            if not grade_id:
                continue
            unchanged = meta.get("checksum") == compute_checksum(cell)
            if kind in ("solution", "manual", "task"):
                comments[grade_id] = "No response." if unchanged and kind != "task" else None
            if not meta.get("grade"):
                continue
            if kind == "test":
                scores[grade_id] = score_test(run.cells.get(index, CellRun()), float(meta.get("points", 0)))
            else:
                scores[grade_id] = 0.0 if unchanged and kind != "task" else None
    for name in sub.problems:
        cells = batch.templates[name].cells
        sub.scores[name] = {c.grade_id: (0.0 if c.role in ("test", "manual") else None)
                            for c in cells if c.nbgrader.get("grade")}
        sub.comments[name] = {c.grade_id: None for c in cells if c.role in ("solution", "manual")}


def attach_rubrics(sub: Submission, batch: Batch) -> None:
    """Each hand-graded cell's rubric right under it, for formgrader (and the feedback, once graded)."""
    for nb in sub.notebooks.values():
        rubric.attach(nb, batch.rubric)


def write_notebooks(sub: Submission, batch: Batch) -> None:
    """The executed notebooks (and timestamp.txt) under autograded/, as nbgrader keeps them."""
    import nbformat

    folder = batch.root / "autograded" / sub.student / batch.assignment
    for name in sub.runs:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{name}.ipynb", nbformat.writes(nbformat.from_dict(sub.notebooks[name])))
    if sub.timestamp:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "timestamp.txt").write_text(sub.timestamp)


def save(sub: Submission, batch: Batch) -> None:
    """The result, atomically: from here a killed batch records it without running it again."""
    batch.state.save(sub)


# --- record (main thread, the gradebook's only writer) ------------------------------------------

def submitted_at(sub: Submission):
    """When the student handed it in (naive UTC, as nbgrader stores it): timestamp.txt (nbgrader's
    Submit and collect write it), else None, as nbgrader's own autograde records it. A file's time is
    no submission time (a copy or a checkout sets it), and formgrader counts a submission as autograded
    only while the gradebook's time equals the one in submitted/.../timestamp.txt."""
    from nbgrader.utils import parse_utc

    return parse_utc(sub.timestamp) if sub.timestamp else None


def record(sub: Submission, batch: Batch) -> None:
    """Scores and comments into the gradebook (idempotent: a re-run writes the same).

    One transaction per student, committed by :func:`commit`: nbgrader's own commits (a new student,
    a new submission) only flush here, so a lost database leaves none of the student's grades. A
    concurrent batch adding the same student first is retried once; a lost database is reported in
    one line (:class:`lepton_kit.grading.config.GradebookUnavailable`).
    """
    from lepton_kit.grading.config import unreachable

    for attempt in (1, 2):
        try:
            with _one_transaction(batch.gb):
                _record(sub, batch)
            return
        except Exception as err:
            batch.gb.db.rollback()
            if unreachable(str(batch.gb.engine.url), err) is not None:
                with _clear_db_errors(batch.gb):
                    raise
            if attempt == 2 or not _integrity(err):
                raise


def _integrity(err: BaseException) -> bool:
    """Whether ``err`` came from a unique constraint (another writer added the row first)."""
    from sqlalchemy.exc import IntegrityError

    while err is not None and not isinstance(err, IntegrityError):
        err = err.__cause__ or err.__context__
    return err is not None


class _clear_db_errors:
    """Within: a lost database raises :class:`lepton_kit.grading.config.GradebookUnavailable` (one line)."""

    def __init__(self, gb):
        self.url = str(gb.engine.url)

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        from lepton_kit.grading.config import unreachable

        clear = unreachable(self.url, err) if err is not None else None
        if clear is not None:
            raise clear from None
        return False


class _one_transaction:
    """Within: the gradebook's ``commit`` only flushes, and nbgrader's "Rolling back" log is quiet
    (the error is raised, and reported, anyway)."""

    def __init__(self, gb):
        import logging

        self.session, self.log = gb.db(), logging.getLogger("tornado.application")

    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Rolling back session")

    def __enter__(self):
        self.session.commit = self.session.flush
        self.log.addFilter(self)

    def __exit__(self, *exc):
        del self.session.commit
        self.log.removeFilter(self)


def _record(sub: Submission, batch: Batch) -> None:
    """A student listed without a name (not in a roster imported with ``nbgrader db student import``)
    gets the id as last name, so formgrader shows a name, not "None"."""
    gb, assignment = batch.gb, batch.assignment
    student = gb.update_or_create_student(sub.student)
    if not student.first_name and not student.last_name:
        student.last_name = sub.student
    stamp = submitted_at(sub)
    if stamp is not None:
        gb.update_or_create_submission(assignment, sub.student, timestamp=stamp)
    else:
        gb.update_or_create_submission(assignment, sub.student)
    for name, scores in sub.scores.items():
        for grade_id, value in scores.items():
            grade = gb.find_grade(grade_id, name, assignment, sub.student)
            grade.auto_score = value
            grade.needs_manual_grade = grade.manual_score is not None or value is None
        for grade_id, text in sub.comments.get(name, {}).items():
            gb.find_comment(grade_id, name, assignment, sub.student).auto_comment = text
    gb.db.flush()


def late_penalty(sub: Submission, batch: Batch) -> None:
    """nbgrader's LateSubmissionPlugin on each notebook's score, when the submission is late.

    Only timestamp.txt counts: a file's time (copied, touched) never makes a submission late.
    """
    with _clear_db_errors(batch.gb):
        _late_penalty(sub, batch)


def _late_penalty(sub: Submission, batch: Batch) -> None:
    gb, assignment = batch.gb, batch.assignment
    late = gb.find_submission(assignment, sub.student).total_seconds_late if sub.timestamp else 0
    for name in sub.scores:
        graded = gb.find_submission_notebook(name, assignment, sub.student)
        graded.late_submission_penalty = None
        if late > 0:
            penalty = batch.late.late_submission_penalty(sub.student, graded.score, late)
            if penalty is not None:
                graded.late_submission_penalty = min(max(penalty, 0), graded.score)


def commit(sub: Submission, batch: Batch) -> None:
    """Commit the student's transaction (all its grades, or none), then mark the student done."""
    with _clear_db_errors(batch.gb):
        batch.gb.db.commit()
    batch.state.mark_done(sub)
    sub.ended = True


PREPARE = (read, parse, restore_structure, kernelspec, ids, draw_tasks, fingerprint, resume)
PLAN = (plan,)
EXECUTE = (stage_files, execute)
FINISH = (attach_outputs, score, attach_rubrics, write_notebooks, save)
RECORD = (record, late_penalty, commit)
STEPS = PREPARE + PLAN + EXECUTE + FINISH + RECORD


def advance(steps, sub: Submission, batch: Batch) -> None:
    """Run ``steps`` until the submission ends; an exception fails the submission, never the batch."""
    for step in steps:
        if sub.ended:
            return
        try:
            step(sub, batch)
        except Exception as err:  # a bug, an OS or database failure: reported, retried on the next run
            kind = "gradebook" if step in RECORD else "autograder"
            if step in RECORD:
                batch.gb.db.rollback()
            sub.fail(f"{kind} error: {type(err).__name__}: {err}"[:300])
