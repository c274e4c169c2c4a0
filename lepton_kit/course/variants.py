"""Per-student variants of an assignment: ``source/<assignment>/bugs.yml`` (instructor-only).

``bugs.yml`` maps the grade_id of solution cells to ids of the assignment's ``mistakes.yml`` (each one
proven by the grading-validity test to lose that exercise's tests). Every student gets one of them
per cell, drawn with HMAC-SHA256 of their id under the course secret: neighbours get different bugs,
nobody can predict anyone's without the secret, and the instructor can redraw anyone's at any time.
A student's notebook is the release with every solution cell answered by the source, then the drawn
bugs put in; the tests are the same for everyone, so nbgrader's gradebook and the autograder grade a
variant like any submission, each fix by the test its bug loses.

>>> draw("ada", {"fit": ["a", "b", "c"], "eval": ["x", "y"]}, key=b"k" * 32)
{'fit': 'a', 'eval': 'y'}
>>> draw("ada", {"fit": ["a", "b", "c"]}, key=b"k" * 32) == draw("ada", {"fit": ["a", "b", "c"]}, key=b"j" * 32)
False
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from pathlib import Path

FILE = "bugs.yml"
SECRET_ENV = "LEPTON_COURSE_SECRET"
SECRET_FILE = ".lepton-secret"      # in the course root, never committed (.gitignore)


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
    """The bug of each slot for ``student`` (deterministic under ``key``)."""
    chosen = {}
    for slot, bugs in slots.items():
        digest = hmac.new(key, f"{student}\n{slot}".encode(), hashlib.sha256).digest()
        chosen[slot] = bugs[int.from_bytes(digest[:8], "big") % len(bugs)]
    return chosen


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
    """Each student's notebooks under ``out/<student>/<assignment>/``, and ``out/drawn.csv`` (who got which bug)."""
    import nbformat

    from lepton_kit.grading.autograde import SAFE_ID

    root, out = Path(root), Path(out)
    slots = load(root, assignment)
    if not slots:
        raise ValueError(f"{assignment} declares no variants (source/{assignment}/{FILE})")
    bad = [s for s in students if not SAFE_ID.fullmatch(s)]
    if bad or not students:
        raise ValueError(f"student ids must be plain names (letters, digits, . _ -): {bad or 'none given'}")
    key = key or course_key(root)
    written, rows = [], []
    for student in students:
        bugs = draw(student, slots, key=key)
        rows += [{"student": student, "cell": slot, "bug": bug} for slot, bug in bugs.items()]
        for name, nb in notebooks(root, assignment, bugs).items():
            path = out / student / assignment / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, path)
            written.append(path)
    with open(out / "drawn.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["student", "cell", "bug"])
        writer.writeheader()
        writer.writerows(rows)
    return written
