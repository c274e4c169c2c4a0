"""The resumable state of a batch: ``autograded/.lepton-state/<assignment>/``.

``<student>.json`` holds what a submission earned (written atomically after execution) and
``<student>.done`` its fingerprint once the gradebook holds it, so a batch killed at any moment
resumes where it stopped and never grades a finished student twice.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

VERSION = "lepton-autograde-1"  # part of every fingerprint: bump it when grading semantics change
FIELDS = ("student", "fingerprint", "scores", "comments", "notes", "problems", "failure", "seconds", "timestamp")


class State:
    """``<student>.json`` results and ``.done`` markers, plus the staging folder of running submissions."""

    def __init__(self, root: Path, assignment: str):
        self.folder = Path(root) / "autograded" / ".lepton-state" / assignment
        self.folder.mkdir(parents=True, exist_ok=True)
        self.staging = self.folder / "staging"  # each submission's files, read-only in its sandbox
        shutil.rmtree(self.staging, ignore_errors=True)  # left over by a killed run

    def result(self, student: str, fingerprint: str) -> dict | None:
        """The saved result of this very submission (same fingerprint), or None."""
        try:
            data = json.loads((self.folder / f"{student}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("fingerprint") == fingerprint else None

    def done(self, student: str, fingerprint: str) -> bool:
        path = self.folder / f"{student}.done"
        return path.is_file() and path.read_text().strip() == fingerprint

    def save(self, sub) -> None:
        atomic_write(self.folder / f"{sub.student}.json", json.dumps({k: getattr(sub, k) for k in FIELDS}, indent=1))

    def mark_done(self, sub) -> None:
        atomic_write(self.folder / f"{sub.student}.done", sub.fingerprint)

    def forget(self, student: str) -> None:
        for suffix in (".json", ".done"):
            (self.folder / f"{student}{suffix}").unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
