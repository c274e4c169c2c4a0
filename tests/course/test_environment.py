"""The install files agree: environment.yml pins the same versions as requirements.lock."""
from __future__ import annotations

import re

import yaml

from conftest import REPO


def _lock():
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_environment_yml_matches_the_lock():
    lock = _lock()
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"]
    pinned = [p for p in pip if "==" in p]
    assert len(pinned) >= 12
    for item in pinned:
        name, version = item.split("==")
        assert lock[re.sub(r"[-_.]+", "-", name).lower()] == version, item


def test_lock_pins_everything_exactly_and_torch_is_not_a_range():
    lock = _lock()
    assert lock["torch"] == "2.13.0"
    for name in ("nbgrader", "papermill", "nbval", "jupyterlab", "tensorflow-cpu", "ipywidgets", "mnist1d", "pooch"):
        assert name in lock, f"{name} missing from requirements.lock"
