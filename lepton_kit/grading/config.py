"""The course as nbgrader sees it: its configuration, its gradebook and its assignments.

One loader for ``nbgrader_config.py`` and one way to open the gradebook, shared by the grading
engine and the course tools.

>>> from pathlib import Path
>>> root = Path(__file__).resolve().parents[2]
>>> load_config(root).CourseDirectory.db_url.startswith("sqlite:///")
True
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def load_config(root: Path):
    """The course's nbgrader configuration (``nbgrader_config.py``) as a traitlets Config."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def db_url(root: Path) -> str:
    """The gradebook URL that nbgrader_config.py configures for this course."""
    return load_config(Path(root)).CourseDirectory.db_url


def _bin_on_path(env: dict) -> dict:
    """``env`` with this interpreter's bin folder first on PATH (nbgrader runs ``alembic``)."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


def gradebook(url: str):
    """nbgrader's Gradebook in this process, used as a context manager."""
    import warnings

    from nbgrader.api import Gradebook

    _bin_on_path(os.environ)
    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's add_submission, SQLAlchemy 2
    return Gradebook(url)


def nbgrader_env() -> dict:
    """The environment for an ``nbgrader`` subprocess."""
    env = _bin_on_path(dict(os.environ))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def nbgrader(root: Path, *args, timeout=None) -> subprocess.CompletedProcess:
    """Run one ``nbgrader`` command in the course root and capture its output."""
    env = nbgrader_env()
    cmd = [sys.executable, "-m", "nbgrader", *map(str, args)]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def assignments(root: Path) -> list[str]:
    """Assignment ids: the folders under source/ holding at least one notebook."""
    source = Path(root) / "source"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) \
        if source.is_dir() else []
