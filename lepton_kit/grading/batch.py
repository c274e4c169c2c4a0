"""One student's submission from files to scores, and the resumable state of a batch.

:func:`prepare` rebuilds each notebook on the instructor's structure (cheap, in the parent),
:func:`execute` runs it in the sandbox and scores it (in a worker thread), :class:`State` keeps
per-student result files written atomically and a marker once the gradebook holds them, so a batch
killed at any moment resumes where it stopped and never grades a finished student twice.

>>> score_test(CellRun(verdict=True), 2.0), score_test(CellRun(verdict=False), 2.0)
(2.0, 0.0)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lepton_kit.grading.execution import CellRun, run_notebook
from lepton_kit.grading.restore import Malformed, canonical

VERSION = "lepton-autograde-1"  # part of every fingerprint: bump it when grading semantics change


@dataclass
class Submission:
    student: str
    folder: Path
    notebooks: dict = field(default_factory=dict)   # name -> canonical nb, or None
    problems: dict = field(default_factory=dict)    # name -> why it could not be read
    notes: list = field(default_factory=list)
    timestamp: str = ""
    fingerprint: str = ""


@dataclass
class Result:
    """What a submission earned; JSON-serialisable (it is the resumable state)."""

    student: str
    fingerprint: str
    scores: dict = field(default_factory=dict)      # notebook -> {grade_id: score or None}
    comments: dict = field(default_factory=dict)    # notebook -> {grade_id: "No response." or None}
    notes: list = field(default_factory=list)
    problems: dict = field(default_factory=dict)
    failure: str = ""
    seconds: float = 0.0
    timestamp: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failure


def prepare(student: str, folder: Path, templates: dict) -> Submission:
    """Read and rebuild every notebook of one submission (reports, never raises, for bad files)."""
    sub = Submission(student, folder)
    stamp = folder / "timestamp.txt"
    sub.timestamp = stamp.read_text(errors="replace").strip()[:64] \
        if stamp.is_file() and not stamp.is_symlink() else ""
    if sub.timestamp:
        from nbgrader.utils import parse_utc

        try:
            parse_utc(sub.timestamp)
        except (ValueError, OverflowError):
            sub.notes.append(f"timestamp.txt {sub.timestamp!r} is not a date: ignored")
            sub.timestamp = ""
    digest = hashlib.sha256(f"{VERSION}\n{sub.timestamp}\n".encode())
    for name, template in sorted(templates.items()):
        path = folder / f"{name}.ipynb"
        if path.is_symlink():
            sub.problems[name] = f"{name}.ipynb is a symbolic link, not a notebook"
            digest.update(f"{name}: link\n".encode())
            continue
        if not path.is_file():
            sub.problems[name] = f"{name}.ipynb was not submitted"
            digest.update(f"{name}: missing\n".encode())
            continue
        raw = path.read_bytes()
        try:
            nb, notes = canonical(raw, template)
        except Malformed as err:
            sub.problems[name] = f"{name}.ipynb: {err}"
            digest.update(f"{name}: malformed {hashlib.sha256(raw).hexdigest()}\n".encode())
            continue
        sub.notebooks[name] = nb
        sub.notes += [f"{name}: {note}" for note in notes] if len(templates) > 1 else notes
        digest.update(json.dumps(nb, sort_keys=True).encode())
    sub.fingerprint = digest.hexdigest()
    return sub


def score_test(run: CellRun, points: float) -> float:
    """Points of a test cell: all of them for a signed pass (or its partial value), else none."""
    if not run.verdict:
        return 0.0
    if run.value is None:
        return float(points)
    return float(points) if run.value < 0 else min(float(points), run.value)


def _scores(nb, run) -> tuple[dict, dict]:
    from nbgrader.utils import compute_checksum

    scores, comments = {}, {}
    for index, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        unchanged = meta.get("checksum") == compute_checksum(cell)
        if meta.get("solution") or meta.get("task"):
            comments[grade_id] = "No response." if unchanged and not meta.get("task") else None
        if not meta.get("grade"):
            continue
        if meta.get("solution") or meta.get("task") or cell["cell_type"] != "code":
            scores[grade_id] = 0.0 if unchanged and not meta.get("task") else None
        else:
            scores[grade_id] = score_test(run.cells.get(index, CellRun()) if run else CellRun(),
                                          float(meta.get("points", 0)))
    return scores, comments


def _attach_outputs(nb, run) -> None:
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        cell_run = run.cells.get(index)
        cell["outputs"] = list(cell_run.outputs) if cell_run else []
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell_run and meta.get("grade") and not meta.get("solution") and not cell_run.verdict:
            if not any(o.get("output_type") == "error" for o in cell["outputs"]):
                why = cell_run.why or ("the cell did not run" if not cell_run.ran else "no verdict from the guard")
                cell["outputs"].append({"output_type": "error", "ename": "AutograderVerdict", "evalue": why,
                                        "traceback": [f"AutograderVerdict: {why}"]})


def stage_files(root: Path, assignment: str, sub: Submission, ignore, target: Path) -> Path:
    """``target``: the assignment's data files and the student's own files (notebooks excluded)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    target.parent.chmod(0o755)
    patterns = shutil.ignore_patterns("*.ipynb", "timestamp.txt", *ignore)

    def skip(folder, names):  # never follow a link: it could point at source/ or the grader's files
        return set(patterns(folder, names)) | {n for n in names if os.path.islink(os.path.join(folder, n))}

    source = root / "source" / assignment
    for base in (sub.folder, source):  # the instructor's files win, as in nbgrader
        for item in base.iterdir():
            if skip(str(base), [item.name]) or (base == sub.folder and item.name.startswith(".")):
                continue  # a student's dotfiles (.ipython/, ...) could configure the tools
            dest = target / item.name
            if item.is_dir():
                shutil.copytree(item, dest, symlinks=True, dirs_exist_ok=True, ignore=skip)
            else:
                shutil.copyfile(item, dest)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def execute(sub: Submission, root: Path, assignment: str, limits, slot: int, sandboxed: bool,
            ignore=(), staging: Path | None = None) -> tuple[Result, dict]:
    """Run and score every notebook of a prepared submission; returns the result and executed notebooks."""
    result = Result(sub.student, sub.fingerprint, notes=list(sub.notes), problems=dict(sub.problems),
                    timestamp=sub.timestamp)
    executed = {}
    files = stage_files(root, assignment, sub, ignore,
                        (staging or Path(tempfile.mkdtemp(prefix="lepton-"))) / sub.student)
    try:
        for name, nb in sub.notebooks.items():
            run = run_notebook(nb, limits, files, slot=slot, sandboxed=sandboxed)
            if run.failure:
                result.failure = run.failure
                return result, {}
            _attach_outputs(nb, run)
            result.scores[name], result.comments[name] = _scores(nb, run)
            result.notes += run.notes
            result.seconds += run.seconds
            executed[name] = nb
    finally:
        shutil.rmtree(files, ignore_errors=True)
    return result, executed


def unreadable_scores(templates: dict, result: Result) -> None:
    """Zero for every autograded cell of the notebooks that could not be read."""
    for name in result.problems:
        template = templates[name]
        result.scores[name] = {c.grade_id: (0.0 if c.role in ("test", "manual") else None)
                               for c in template.cells if c.nbgrader.get("grade")}
        result.comments[name] = {c.grade_id: None for c in template.cells if c.role in ("solution", "manual")}


class State:
    """``autograded/.lepton-state/<assignment>/``: ``<student>.json`` results and ``.done`` markers."""

    def __init__(self, root: Path, assignment: str):
        self.folder = Path(root) / "autograded" / ".lepton-state" / assignment
        self.folder.mkdir(parents=True, exist_ok=True)
        self.staging = self.folder / "staging"  # each submission's files, read-only in its sandbox
        shutil.rmtree(self.staging, ignore_errors=True)  # left over by a killed run

    def result(self, student: str, fingerprint: str) -> Result | None:
        path = self.folder / f"{student}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return Result(**data) if data.get("fingerprint") == fingerprint else None

    def done(self, student: str, fingerprint: str) -> bool:
        path = self.folder / f"{student}.done"
        return path.is_file() and path.read_text().strip() == fingerprint

    def save(self, result: Result) -> None:
        _atomic_write(self.folder / f"{result.student}.json", json.dumps(asdict(result), indent=1))

    def mark_done(self, result: Result) -> None:
        _atomic_write(self.folder / f"{result.student}.done", result.fingerprint)

    def forget(self, student: str) -> None:
        for suffix in (".json", ".done"):
            (self.folder / f"{student}{suffix}").unlink(missing_ok=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_notebook(path: Path, nb) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, nbformat.writes(nbformat.from_dict(nb)))
