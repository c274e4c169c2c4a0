"""Metric targets: what each notebook must record, per profile, as course.yml states it.

A target is a bound written as text, ``">= 0.97"`` or ``"<= 1e-6"``, given per profile (``ci``,
``full``) or for every profile (``any``).

>>> t = Target.parse("digits_mlp_test_accuracy", ">= 0.97")
>>> t.met(0.98), t.met(0.96), str(t)
(True, False, '>= 0.97')
>>> check({"acc": 0.91}, [Target.parse("acc", ">= 0.9"), Target.parse("f1", ">= 0.5")])[1]["measured"] is None
True
>>> format_value(0.123456), format_value(4.4e-16), format_value(3)
('0.1235', '4.4e-16', '3')
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

_BOUND = re.compile(r"^\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le}


def format_value(value) -> str:
    """One way to print a recorded metric: four significant digits for floats."""
    return format(value, ".4g") if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Target:
    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, metric: str, text) -> "Target":
        match = _BOUND.match(str(text))
        if not match:
            raise ValueError(f"target for {metric!r} must look like '>= 0.97' or '<= 1e-6', got {text!r}")
        return cls(metric, match.group(1), float(match.group(2)))

    def met(self, value) -> bool:
        """Whether a measured value reaches the bound (a missing or non-numeric value does not)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.op} {format_value(self.bound)}"


def targets_for(course: dict, notebook: str, profile: str) -> list[Target]:
    """The targets course.yml sets for one notebook (path relative to the course root) in a profile."""
    found = []
    for unit in course.get("units", []):
        for metric, bounds in ((unit.get("targets") or {}).get(notebook) or {}).items():
            bounds = bounds if isinstance(bounds, dict) else {"any": bounds}
            unknown = set(bounds) - {"ci", "full", "any"}
            if unknown:
                raise ValueError(f"course.yml: target {metric!r} of {notebook}: unknown profile(s) {sorted(unknown)}")
            text = bounds.get(profile, bounds.get("any"))
            if text is not None:
                found.append(Target.parse(metric, text))
    return found


def check(metrics: dict, targets: list[Target]) -> list[dict]:
    """Target against measured, one row per target: ``metric``, ``target``, ``measured``, ``met``."""
    return [{"metric": t.metric, "target": str(t), "measured": metrics.get(t.metric),
             "met": t.met(metrics.get(t.metric))} for t in targets]
