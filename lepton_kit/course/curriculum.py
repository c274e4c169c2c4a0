"""The curriculum description (course.yml): units, assignments, categories, weights, pass mark.

>>> course = load_course(Path(__file__).resolve().parents[2])   # the course this package sits in
>>> round(sum(course["categories"].values()), 6), course["pass_mark"]
(1.0, 80.0)
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_CATEGORIES = {"tests": 0.30, "project": 0.40, "skills": 0.30}
DEFAULT_PASS_MARK = 80.0


def find_root(start: str | Path | None = None) -> Path:
    """The course root: the nearest folder upwards holding nbgrader_config.py."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    raise FileNotFoundError(f"no nbgrader_config.py in {here} or above: run lepton from the course folder "
                            "or pass --root")


def load_course(root: str | Path | None = None) -> dict:
    """Read course.yml, fill defaults and check that the weights make sense."""
    import yaml

    path = Path(find_root(root) if root is None else root) / "course.yml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data = data or {}
    categories = {str(k): float(v) for k, v in (data.get("categories") or DEFAULT_CATEGORIES).items()}
    total = sum(categories.values())
    if total <= 0 or any(v < 0 for v in categories.values()):
        raise ValueError(f"{path}: category weights must be non-negative and not all zero, got {categories}")
    categories = {k: v / total for k, v in categories.items()}
    assignments = {}
    for unit in data.get("units", []):
        for item in unit.get("assignments", []):
            category = item.get("category", "tests")
            if category not in categories:
                raise ValueError(f"{path}: assignment {item.get('id')!r} has unknown category {category!r}; "
                                 f"known: {', '.join(categories)}")
            assignments[item["id"]] = {"category": category, "weight": float(item.get("weight", 1.0)),
                                       "unit": unit.get("id")}
    return {"title": data.get("title", "Lepton Kit"), "categories": categories,
            "pass_mark": float(data.get("pass_mark", DEFAULT_PASS_MARK)), "assignments": assignments,
            "units": data.get("units", [])}


def category_shares(scores: dict, course: dict) -> dict:
    """Each category's share (0-1) from ``{assignment_id: (score, max_score)}``; None where nothing is graded.

    >>> course = {"categories": {"tests": 0.3, "project": 0.7},
    ...           "assignments": {"a": {"category": "tests", "weight": 1.0}}}
    >>> category_shares({"a": (5.0, 10.0)}, course)
    {'tests': 0.5, 'project': None}
    """
    by_category: dict[str, list] = {}
    for assignment_id, (score, max_score) in scores.items():
        info = course["assignments"].get(assignment_id, {"category": next(iter(course["categories"])),
                                                         "weight": 1.0})
        if max_score and max_score > 0:
            by_category.setdefault(info["category"], []).append((info["weight"], score / max_score))
    return {category: (sum(wt * s for wt, s in by_category[category]) / sum(wt for wt, _ in by_category[category])
                       if category in by_category else None) for category in course["categories"]}


def course_grade(scores: dict, course: dict) -> float:
    """Weighted course grade in percent from ``{assignment_id: (score, max_score)}``.

    Within a category, assignments count by their weight; categories count by theirs. A category
    with no graded assignment yet is left out and the others are rescaled: such a grade is
    provisional (``lepton grades`` says so and never calls it a pass).

    >>> course = {"categories": {"tests": 0.3, "project": 0.7},
    ...           "assignments": {"a": {"category": "tests", "weight": 1.0}}}
    >>> course_grade({"a": (5.0, 10.0)}, course)
    50.0
    """
    weighted, used = 0.0, 0.0
    for category, share in category_shares(scores, course).items():
        if share is not None:
            w = course["categories"][category]
            weighted, used = weighted + w * share, used + w
    return round(100.0 * weighted / used, 2) if used else 0.0
