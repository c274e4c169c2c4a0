"""Per-student variants of an assignment: ``source/<assignment>/bugs.yml`` (instructor-only).

``bugs.yml`` maps the grade_id of solution cells to ids of the assignment's ``mistakes.yml`` (each one
proven by the grading-validity test to lose that exercise's tests). Every student gets one of them
per cell, drawn with HMAC-SHA256 of their id under the course secret: neighbours get different bugs,
nobody can predict anyone's without the secret, and the instructor can redraw anyone's at any time.
A student's notebook is the release with every solution cell answered by the source, then the drawn
bugs put in; the tests are the same for everyone, so nbgrader's gradebook and the autograder grade a
variant like any submission, each fix by the test its bug loses.

An assignment may instead (or also) declare per-student *tasks* (``tasks.yml``, see
:mod:`lepton_kit.grading.draws`): each student's folder then holds ``variant.json`` with their tasks.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from lepton_kit.grading.draws import SECRET_ENV, SECRET_FILE, VARIANT_FILE, course_key, draw, load_tasks, tasks_for

FILE = "bugs.yml"
__all__ = ["FILE", "SECRET_ENV", "SECRET_FILE", "course_key", "draw", "load", "notebooks", "write"]


def load(root: str | Path, assignment: str) -> dict:
    """``{solution grade_id: [mistake id, ...]}`` from bugs.yml, checked against mistakes.yml; ``{}`` without one."""
    import yaml

    from lepton_kit.grading.misconceptions import load_mistakes

    path = Path(root) / "source" / assignment / FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    slots = data.get("draw") if isinstance(data, dict) else None
    if not isinstance(slots, dict) or not slots:
        raise ValueError(f"{path}: needs `draw:`, a map from solution grade_ids to lists of mistake ids")
    mistakes = {m["id"]: m for m in load_mistakes(Path(root) / "source" / assignment / "mistakes.yml")}
    for slot, ids in slots.items():
        if not isinstance(ids, list) or not ids:
            raise ValueError(f"{path}: {slot!r} needs a non-empty list of mistake ids")
        for bug in ids:
            if bug not in mistakes:
                raise ValueError(f"{path}: {slot!r} lists {bug!r}, which mistakes.yml does not define")
            if mistakes[bug]["exercise"] != slot:
                raise ValueError(f"{path}: {bug!r} is a mistake of {mistakes[bug]['exercise']!r}, not of {slot!r}")
    return {str(slot): [str(b) for b in ids] for slot, ids in slots.items()}


def notebooks(root: str | Path, assignment: str, bugs: dict) -> dict:
    """``{notebook name: notebook}``: the release, answered by the source, with ``bugs`` ({slot: mistake id}) put in."""
    import nbformat

    from lepton_kit.course.samples import replaced, solved
    from lepton_kit.grading.misconceptions import load_mistakes

    root = Path(root)
    code = {m["id"]: m["code"] for m in load_mistakes(root / "source" / assignment / "mistakes.yml")}
    out = {}
    for release_path in sorted((root / "release" / assignment).glob("*.ipynb")):
        release_nb = nbformat.read(release_path, as_version=4)
        source_nb = nbformat.read(root / "source" / assignment / release_path.name, as_version=4)
        nb = solved(release_nb, source_nb)
        present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
        nb = replaced(nb, {slot: code[bug] for slot, bug in bugs.items() if slot in present})
        out[release_path.stem] = nb
    return out


def write(root: str | Path, assignment: str, students, out: str | Path, *, key: bytes | None = None) -> list[Path]:
    """Each student's notebooks under ``out/<student>/<assignment>/`` (with ``variant.json`` when the
    assignment draws tasks), and ``out/drawn.csv`` (who got which bug or task)."""
    import nbformat

    from lepton_kit.grading.autograde import SAFE_ID

    root, out = Path(root), Path(out)
    slots = load(root, assignment)
    task_slots, assigned = load_tasks(root, assignment)
    if not slots and not task_slots:
        raise ValueError(f"{assignment} declares no variants (source/{assignment}/{FILE} or tasks.yml)")
    bad = [s for s in students if not SAFE_ID.fullmatch(s)]
    if bad or not students:
        raise ValueError(f"student ids must be plain names (letters, digits, . _ -): {bad or 'none given'}")
    key = key or course_key(root)
    written, rows = [], []
    for student in students:
        bugs = draw(student, slots, key=key)
        tasks = tasks_for(student, task_slots, assigned, key=key) if task_slots else {}
        rows += [{"student": student, "slot": slot, "drawn": got} for slot, got in {**bugs, **tasks}.items()]
        folder = out / student / assignment
        for name, nb in notebooks(root, assignment, bugs).items():
            path = folder / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb if slots else _release(root, assignment, name), path)
            written.append(path)
        if tasks:
            (folder / VARIANT_FILE).write_text(json.dumps({"student": student, "tasks": tasks}, indent=1) + "\n")
    with open(out / "drawn.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["student", "slot", "drawn"])
        writer.writeheader()
        writer.writerows(rows)
    return written


def _release(root: Path, assignment: str, name: str):
    import nbformat

    return nbformat.read(root / "release" / assignment / f"{name}.ipynb", as_version=4)
