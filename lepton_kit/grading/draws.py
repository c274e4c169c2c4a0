"""Per-student draws: which variant of an assignment each student gets, from their id and the course secret.

An assignment may declare two kinds of variants, both instructor-only files in ``source/<assignment>/``:

- ``bugs.yml`` (a repair test): ``draw: {solution grade_id: [mistake ids]}``, the bugs put into the
  student's notebook (:mod:`lepton_kit.course.variants` writes the notebooks);
- ``tasks.yml`` (a test "from the equation"): ``draw: {slot: [task ids]}``, the tasks the student must
  do, plus an optional ``assigned: {student: {slot: task}}`` that sets a student's task by hand (a
  retake, an accommodation). The student's copy holds ``variant.json``; when grading, the pipeline
  writes the grader's own draw where the sandbox mounts the assignment's files read-only, and the
  hidden tests read it there (:func:`lepton_kit.tasks.drawn`).

Each draw is HMAC-SHA256 of the student id and the slot under the course secret: neighbours get
different variants, nobody can predict anyone's without the secret, the instructor can redraw anyone's.

>>> draw("ada", {"fit": ["a", "b", "c"], "eval": ["x", "y"]}, key=b"k" * 32)
{'fit': 'a', 'eval': 'y'}
>>> draw("ada", {"fit": ["a", "b", "c"]}, key=b"k" * 32) == draw("ada", {"fit": ["a", "b", "c"]}, key=b"j" * 32)
False
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lepton_kit.tasks import FILE as VARIANT_FILE  # noqa: F401  (the file the student and the grader share)

TASKS_FILE = "tasks.yml"
SECRET_ENV = "LEPTON_COURSE_SECRET"
SECRET_FILE = ".lepton-secret"      # in the course root, never committed (.gitignore)


def course_key(root: str | Path) -> bytes:
    """The course secret: ``$LEPTON_COURSE_SECRET``, else ``<root>/.lepton-secret`` (created on first use)."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].encode()
    path = Path(root) / SECRET_FILE
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def draw(student: str, slots: dict, *, key: bytes) -> dict:
    """The variant of each slot for ``student`` (deterministic under ``key``)."""
    chosen = {}
    for slot, options in slots.items():
        digest = hmac.new(key, f"{student}\n{slot}".encode(), hashlib.sha256).digest()
        chosen[slot] = options[int.from_bytes(digest[:8], "big") % len(options)]
    return chosen


def load_tasks(root: str | Path, assignment: str) -> tuple[dict, dict]:
    """``({slot: [task ids]}, {student: {slot: task}})`` from ``tasks.yml``; two empty maps without one."""
    import yaml

    path = Path(root) / "source" / assignment / TASKS_FILE
    if not path.is_file():
        return {}, {}
    data = yaml.safe_load(path.read_text()) or {}
    slots = data.get("draw") if isinstance(data, dict) else None
    if not isinstance(slots, dict) or not slots or not all(isinstance(v, list) and v for v in slots.values()):
        raise ValueError(f"{path}: needs `draw:`, a map from slot names to non-empty lists of task ids")
    assigned = data.get("assigned") or {}
    for student, tasks in assigned.items():
        for slot, task in (tasks or {}).items():
            if task not in slots.get(slot, []):
                raise ValueError(f"{path}: `assigned` gives {student!r} the task {task!r} for {slot!r}, "
                                 f"which is not one of {slots.get(slot, 'the slots')}")
    slots = {str(s): [str(t) for t in v] for s, v in slots.items()}
    return slots, {str(s): {str(k): str(v) for k, v in (t or {}).items()} for s, t in assigned.items()}


def tasks_for(student: str, slots: dict, assigned: dict, *, key: bytes) -> dict:
    """``student``'s task of each slot: set by hand in ``assigned``, else drawn."""
    return {**draw(student, slots, key=key), **assigned.get(student, {})}
