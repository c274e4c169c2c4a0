"""The student-only copy of the course (``lepton student-bundle DIR``).

What a student needs and nothing else: the lessons (notebooks/), the released assignments (release/),
the kit without the instructor's wings (lepton_kit/ minus course/ and grading/), the environment files,
and the student's nbgrader_config.py, jupyter-config/ (instructor extensions off), Makefile and README
from ``lepton_kit/course/student/``. Never source/, autograder/, a gradebook, mistakes.yml or tests.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from lepton_kit.grading.config import INSTRUCTOR_ONLY

TEMPLATES = Path(__file__).with_name("student")
FOLDERS = ("notebooks", "release")
ENVIRONMENT = ("environment.yml", "requirements.lock")
INSTRUCTOR_PACKAGES = ("course", "grading")       # wings of lepton_kit a student does not get
JUNK = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", "feedback", *INSTRUCTOR_ONLY)
# Sections of pyproject.toml naming what the student copy lacks: the `lepton` command, the test suite.
DROPPED_SECTIONS = ("project.scripts", "tool.pytest.ini_options")


def student_pyproject(text: str) -> str:
    """pyproject.toml without the sections in :data:`DROPPED_SECTIONS`."""
    kept, drop = [], False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\[([^\]]+)\]\s*$", line)
        if header:
            drop = header.group(1) in DROPPED_SECTIONS
        if not drop:
            kept.append(line)
    return "".join(kept).rstrip() + "\n"


def student_bundle(root: Path, dest: Path, exchange: str | None = None) -> Path:
    """Write the student copy of the course in ``root`` into ``dest`` (new or empty); return ``dest``.

    ``exchange``: the exchange the student's nbgrader_config.py uses when LEPTON_EXCHANGE is unset
    (default: the course's own ``Exchange.root``).
    """
    from lepton_kit.course.exchange import exchange_root

    root, dest = Path(root), Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty folder: choose a new folder for the student copy")
    if dest == root.resolve() or root.resolve() in dest.parents:
        raise ValueError(f"{dest} is inside the course: choose a folder outside {root.resolve()}")
    missing = [name for name in (*FOLDERS, *ENVIRONMENT, "pyproject.toml", "lepton_kit") if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(f"the course at {root} lacks {', '.join(missing)} (run `lepton release` first?)")
    exchange = str(Path(exchange).expanduser().resolve()) if exchange else str(exchange_root(root))

    dest.mkdir(parents=True, exist_ok=True)
    for name in FOLDERS:
        shutil.copytree(root / name, dest / name, ignore=JUNK)
    kit = root / "lepton_kit"
    shutil.copytree(kit, dest / "lepton_kit",
                    ignore=lambda folder, names: set(JUNK(folder, names))
                    | ({*INSTRUCTOR_PACKAGES} if Path(folder) == kit else set()))
    for name in ENVIRONMENT:
        shutil.copyfile(root / name, dest / name)
    (dest / "pyproject.toml").write_text(student_pyproject((root / "pyproject.toml").read_text()))
    shutil.copytree(TEMPLATES, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.in", "__pycache__"))
    config = (TEMPLATES / "nbgrader_config.py.in").read_text().replace("@EXCHANGE@", repr(exchange))
    (dest / "nbgrader_config.py").write_text(config)
    return dest
