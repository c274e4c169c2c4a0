"""Student versions of the assignments: ``nbgrader generate_assignment`` from source/ into release/."""
from __future__ import annotations

from pathlib import Path

from lepton_kit.grading.config import assignments, gradebook, ignored, load_config, nbgrader


def release(root: Path, ids=()) -> list[str]:
    """``nbgrader generate_assignment`` for each assignment (all of source/ by default); the instructor-only
    files (mistakes.yml, variants.yml, rubric.yml) stay behind whatever the course's ignore list says."""
    root = Path(root)
    ids = list(ids) or assignments(root)
    unknown = [a for a in ids if a not in assignments(root)]
    if unknown:
        raise ValueError(f"no such assignment under source/: {', '.join(unknown)}")
    ignore = [f"--CourseDirectory.ignore={pattern}" for pattern in ignored(load_config(root))]
    for assignment_id in ids:
        result = nbgrader(root, "generate_assignment", assignment_id, "--force", *ignore)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {assignment_id} failed:\n{result.stdout}{result.stderr}")
    return ids


def ensure_released(root: Path, assignment_id: str) -> None:
    """Release ``assignment_id`` unless the gradebook and release/ already hold it."""
    from nbgrader.api import MissingEntry

    root = Path(root)
    with gradebook(load_config(root).CourseDirectory.db_url) as gb:
        try:
            known = bool(gb.find_assignment(assignment_id).notebooks)
        except MissingEntry:
            known = False
    if not known or not (root / "release" / assignment_id).is_dir():
        release(root, [assignment_id])
