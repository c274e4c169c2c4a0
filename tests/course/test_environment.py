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


def test_xdist_loadgroup_keeps_a_group_in_one_worker(tmp_path):
    """make test relies on --dist loadgroup (one release per assignment, one corpus batch); pytest 9.2
    with pytest-xdist 3.8 silently ignores the groups, so the lock pins a pair that honours them."""
    import subprocess
    import sys

    (tmp_path / "test_groups.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.xdist_group('g')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_in_group(i):\n"
        "    print('WORKER', os.environ['PYTEST_XDIST_WORKER'])\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                          str(tmp_path / "test_groups.py")], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    workers = {line.split("]")[0].strip("[") for line in out.stdout.splitlines() if "PASSED" in line}
    assert len(workers) == 1, f"one group ran on several workers: {sorted(workers)}"
