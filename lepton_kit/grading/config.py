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


class GradebookUnavailable(RuntimeError):
    """The gradebook's database cannot be reached (a server down, a wrong URL): one line, what to do."""


def safe_url(url: str) -> str:
    """``url`` without its password, to name the database in messages."""
    try:
        from sqlalchemy.engine import make_url

        from urllib.parse import unquote

        return unquote(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a URL SQLAlchemy can parse: name it as given
        return url


def unreachable(url: str, err: BaseException) -> GradebookUnavailable | None:
    """A :class:`GradebookUnavailable` when ``err`` (or what caused it) is a lost or refused database
    connection, else None."""
    from sqlalchemy.exc import OperationalError

    seen = err
    while seen is not None and not isinstance(seen, OperationalError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    why = (str(getattr(seen, "orig", None) or seen).strip().splitlines() or ["connection failed"])[0]
    return GradebookUnavailable(
        f"gradebook database {safe_url(url)} unreachable: start the database server (or fix LEPTON_DB_URL) "
        f"and run the command again, graded submissions are kept; {why}")


def gradebook(url: str):
    """nbgrader's Gradebook in this process, used as a context manager; :class:`GradebookUnavailable`
    when its database cannot be reached."""
    import warnings

    from nbgrader.api import Gradebook

    _bin_on_path(os.environ)
    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's add_submission, SQLAlchemy 2
    try:
        return Gradebook(url)
    except Exception as err:
        clear = unreachable(url, err)
        if clear is None:
            raise
        raise clear from None


def nbgrader_env() -> dict:
    """The environment for an ``nbgrader`` subprocess."""
    env = _bin_on_path(dict(os.environ))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# Files of source/<assignment>/ for the instructor only: never released, bundled or staged for a student.
INSTRUCTOR_ONLY = ("mistakes.yml", "variants.yml", "rubric.yml", "bugs.yml", "tasks.yml")
NBGRADER_IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]  # nbgrader's default


def ignored(config) -> list:
    """The course's ``CourseDirectory.ignore`` patterns (nbgrader's default when unset) plus :data:`INSTRUCTOR_ONLY`.

    >>> from traitlets.config import Config
    >>> ignored(Config())[-3:]
    ['rubric.yml', 'bugs.yml', 'tasks.yml']
    """
    course = config.CourseDirectory
    patterns = list(course["ignore"]) if "ignore" in course else list(NBGRADER_IGNORE)
    return patterns + [name for name in INSTRUCTOR_ONLY if name not in patterns]


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
