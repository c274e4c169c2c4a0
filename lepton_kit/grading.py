"""Instructor side, thin over nbgrader: release, autograde a submissions folder, export grades."""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EXPORT_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                  "raw_score", "late_submission_penalty", "score", "max_score"]


def nbgrader_env() -> dict:
    """Environment for nbgrader: the interpreter's bin first on PATH (nbgrader runs ``alembic``)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def nbgrader(root: Path, *args, timeout=None) -> subprocess.CompletedProcess:
    """Run one ``nbgrader`` command in the course root and capture its output."""
    cmd = [sys.executable, "-m", "nbgrader", *map(str, args)]
    return subprocess.run(cmd, cwd=root, env=nbgrader_env(), capture_output=True, text=True, timeout=timeout)


def assignments(root: Path) -> list[str]:
    """Assignment ids: the folders under source/ holding at least one notebook."""
    source = Path(root) / "source"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) \
        if source.is_dir() else []


def release(root: Path, ids=()) -> list[str]:
    """``nbgrader generate_assignment`` for each assignment (all of source/ by default)."""
    root = Path(root)
    ids = list(ids) or assignments(root)
    unknown = [a for a in ids if a not in assignments(root)]
    if unknown:
        raise ValueError(f"no such assignment under source/: {', '.join(unknown)}")
    for assignment_id in ids:
        result = nbgrader(root, "generate_assignment", assignment_id, "--force")
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {assignment_id} failed:\n{result.stdout}{result.stderr}")
    return ids


@dataclass
class Outcome:
    student: str
    ok: bool
    seconds: float
    reason: str = ""


@dataclass
class BatchResult:
    assignment: str
    outcomes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self):
        return [o for o in self.outcomes if not o.ok]

    def summary(self) -> str:
        lines = [f"{self.assignment}: graded {len(self.outcomes) - len(self.failed)}, failed {len(self.failed)}, "
                 f"skipped {len(self.skipped)} in {self.seconds:.1f} s"]
        lines += [f"  failed  {o.student}: {o.reason}" for o in self.failed]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _reason(result: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed nbgrader run: the last exception raised, else the last error line."""
    lines = ((result.stdout or "") + (result.stderr or "")).splitlines()
    exceptions = [ln.strip() for ln in lines if re.match(r"^\s*[\w.]+(Error|Exception|Exit)\b.*:", ln)]
    errors = [ln.strip() for ln in lines if "ERROR" in ln]
    return ((exceptions or errors or lines or ["unknown error"])[-1])[:300]


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
        if not folder.is_dir():
            continue
        if not any(folder.glob("*.ipynb")):
            skipped.append((entry.name, f"no notebook in {folder}"))
            continue
        target = target_root / entry.name / assignment_id
        if folder.resolve() != target:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder, target, symlinks=False, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        students.append(entry.name)
    return students, skipped


def autograde(root: Path, assignment_id: str, submissions: Path, jobs: int = 1, progress=True,
              timeout: float = 1800) -> BatchResult:
    """Grade every student's submission of one assignment; one failure never stops the batch."""
    from tqdm.auto import tqdm

    root = Path(root)
    if assignment_id not in assignments(root):
        raise ValueError(f"no such assignment under source/: {assignment_id}")
    if not (root / "release" / assignment_id).is_dir():
        release(root, [assignment_id])
    students, skipped = collect(root, assignment_id, submissions)
    batch, start = BatchResult(assignment_id, skipped=skipped), time.monotonic()

    def grade(student):
        began = time.monotonic()
        try:
            result = nbgrader(root, "autograde", assignment_id, "--student", student, "--force",
                              timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(student, False, time.monotonic() - began, f"timed out after {timeout:.0f} s")
        text = (result.stdout or "") + (result.stderr or "")
        ok = result.returncode == 0 and "There was an error" not in text
        if not ok and "database is locked" in text:
            return None  # retried serially below
        return Outcome(student, ok, time.monotonic() - began, "" if ok else _reason(result))

    bar = tqdm(total=len(students), desc=f"autograde {assignment_id}", unit="student", disable=not progress)
    retry = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for student, outcome in zip(students, pool.map(grade, students)):
            if outcome is None:
                retry.append(student)
            else:
                batch.outcomes.append(outcome)
            bar.update()
    batch.outcomes += [grade(s) or Outcome(s, False, 0.0, "gradebook locked") for s in retry]
    bar.close()
    batch.outcomes.sort(key=lambda o: o.student)
    batch.seconds = time.monotonic() - start
    return batch


def export_rows(root: Path) -> list[dict]:
    """nbgrader's own CSV export, read back as a list of dicts (one per assignment and student)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "grades.csv"
        result = nbgrader(Path(root), "export", "--to", str(target))
        if result.returncode != 0 or not target.is_file():
            raise RuntimeError(f"nbgrader export failed:\n{result.stdout}{result.stderr}")
        return list(csv.DictReader(io.StringIO(target.read_text())))


def grades(root: Path) -> list[dict]:
    """Export rows plus category, weighted course grade, pass/fail and progress per student."""
    from lepton_kit.course import course_grade, load_course

    root = Path(root)
    course = load_course(root)
    rows = export_rows(root)
    by_student: dict[str, dict] = {}
    for row in rows:
        score, max_score = float(row["score"] or 0), float(row["max_score"] or 0)
        by_student.setdefault(row["student_id"], {})[row["assignment"]] = (score, max_score, bool(row["timestamp"]))
    planned = set(course["assignments"]) | {row["assignment"] for row in rows}
    submitted = _submitted(root)
    for row in rows:
        student = by_student[row["student_id"]]
        grade = course_grade({a: (s, m) for a, (s, m, _) in student.items()}, course)
        row["category"] = course["assignments"].get(row["assignment"], {}).get("category", "")
        row["course_grade"] = f"{grade:.2f}"
        row["passed"] = "yes" if grade >= course["pass_mark"] else "no"
        done = sum(1 for a in student if (a, row["student_id"]) in submitted)
        row["progress"] = f"{done}/{len(planned)}"
    return rows


def _submitted(root: Path) -> set:
    """(assignment, student) pairs that have a graded submission in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(root)) as gb:
        return {(a.name, sub.student_id) for a in gb.assignments for sub in a.submissions}


def write_csv(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = EXPORT_COLUMNS + [c for c in (rows[0] if rows else {}) if c not in EXPORT_COLUMNS]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: list[dict], columns=("assignment", "student_id", "score", "max_score", "course_grade",
                                            "passed", "progress")) -> str:
    """A plain-text table for the terminal."""
    if not rows:
        return "(the gradebook is empty)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([line, "  ".join("-" * widths[c] for c in columns), *body])


def db_url(root: Path) -> str:
    """The gradebook URL that nbgrader_config.py configures for this course."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return config.CourseDirectory.db_url


def cell_scores(root: Path, assignment_id: str) -> dict:
    """``{student: {grade_id: (auto_score, max_score)}}`` for the autograded cells of an assignment."""
    from nbgrader.api import Gradebook

    scores: dict[str, dict] = {}
    with Gradebook(db_url(Path(root))) as gb:
        for submission in gb.assignment_submissions(assignment_id):
            cells = scores.setdefault(submission.student_id, {})
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.auto_score is not None:
                        cells[grade.name] = (float(grade.auto_score), float(grade.max_score))
    return scores
