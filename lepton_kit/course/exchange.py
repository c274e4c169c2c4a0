"""nbgrader's exchange for the course: the folder Release, Fetch, Submit, Collect and Feedback share.

Its path is ``Exchange.root`` of nbgrader_config.py (``LEPTON_EXCHANGE``, default ``exchange/`` in the
course). nbgrader's own apps need it to exist and be writable by everyone (``ExchangeReleaseAssignment``
sets mode 0777 on its root; students' Fetch and Submit check write access), so :func:`ensure_exchange`
creates it so before a lab extension asks for it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

MODE = 0o777  # what nbgrader's ExchangeReleaseAssignment.ensure_root sets (groupshared off)
# What nbgrader release_feedback reads next to each page (nbgrader's generate_feedback copies them there).
FEEDBACK_FILES = ("timestamp.txt", "submission_secret.txt")


def exchange_root(root: Path) -> Path:
    """The exchange folder configured for the course in ``root``."""
    from lepton_kit.grading.config import load_config

    return Path(load_config(Path(root)).Exchange.root).expanduser().resolve()


def ensure_exchange(root: Path) -> Path:
    """Create the course's exchange folder with mode 0777 (or fix the mode of one we own); return it."""
    path = exchange_root(root)
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"the exchange {path} is a file, not a folder (set LEPTON_EXCHANGE)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        if path.stat().st_mode & 0o7777 != MODE:
            path.chmod(MODE)  # mkdir applies the umask; nbgrader wants exactly 0777
    except PermissionError as err:
        raise RuntimeError(f"cannot create the exchange {path} with mode 0777 ({err.strerror}): "
                           "ask its owner, or set LEPTON_EXCHANGE to another folder") from err
    return path


def feedback_for_exchange(root: Path, assignment: str, pages: list[Path]) -> list[Path]:
    """Lay lepton's feedback pages out as ``nbgrader release_feedback`` expects them.

    release_feedback publishes ``feedback/<student>/<assignment>/<notebook>.html`` under a hash of the
    notebook's name and the submission's ``submission_secret.txt``; a student's Fetch Feedback looks up
    that hash for each notebook it submitted. Lepton writes one page per assignment, so each submitted
    notebook gets a copy of it, and the submission's ``timestamp.txt`` and ``submission_secret.txt``
    (written by Submit, kept by ``nbgrader collect``) go next to it. Returns the pages added.
    """
    root, added = Path(root), []
    for page in pages:
        student = page.parent.parent.name
        submitted = root / "submitted" / student / assignment
        for name in FEEDBACK_FILES:
            found = submitted / name
            if found.is_file() and not found.is_symlink():  # a student's link could point at the grader's files
                shutil.copyfile(found, page.parent / name)
        for notebook in sorted(submitted.glob("*.ipynb")):
            copy = page.parent / f"{notebook.stem}.html"
            if copy != page:
                shutil.copyfile(page, copy)
                added.append(copy)
    return added
