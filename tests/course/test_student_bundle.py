"""`lepton student-bundle`: the student's copy holds no solution, no hidden test and no grading engine."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from conftest import REPO
from lepton_kit.course.bundle import student_bundle
from lepton_kit.course.cli import main

TRIVIAL = 12  # shorter stripped lines (`pass`, `return x`, `continue`) say nothing about an answer
TOP_LEVEL = {"notebooks", "release", "lepton_kit", "environment.yml", "requirements.lock", "pyproject.toml",
             "Makefile", "README.md", "nbgrader_config.py", "jupyter-config"}


def text_lines(path: Path) -> set[str]:
    """Stripped lines of a text file; of a notebook, its cells' sources and text outputs."""
    if path.suffix != ".ipynb":
        return {line.strip() for line in path.read_text().splitlines()}
    lines = []
    for cell in json.loads(path.read_text())["cells"]:
        lines += "".join(cell["source"]).splitlines()
        for out in cell.get("outputs", []):
            lines += "".join(out.get("text") or out.get("data", {}).get("text/plain", "")).splitlines()
    return {line.strip() for line in lines}


def secret_lines(root: Path = REPO, assignment: str = "*", kinds=("SOLUTION", "HIDDEN TESTS")) -> set[str]:
    """Every non-trivial line between nbgrader's solution / hidden-test markers that the release does not show."""
    released = set().union(*(text_lines(p) for p in (root / "release").glob(f"{assignment}/*.ipynb")))
    found = set()
    for path in (root / "source").glob(f"{assignment}/*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for kind in kinds:
                for block in re.findall(rf"### BEGIN {kind}\n(.*?)### END {kind}", cell.source, re.S):
                    found |= {line.strip() for line in block.splitlines()}
    return {line for line in found if len(line) >= TRIVIAL and line not in released}


def text_files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            try:
                yield path, text_lines(path)
            except (UnicodeDecodeError, ValueError):
                continue


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return student_bundle(REPO, tmp_path_factory.mktemp("bundle") / "student", exchange="/srv/lepton-exchange")


def test_bundle_holds_what_a_student_needs_and_nothing_else(bundle):
    assert {p.name for p in bundle.iterdir()} == TOP_LEVEL
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*")}
    assert not [n for n in names if re.search(r"(^|/)(source|autograder|tests|grading|course)(/|$)", n)]
    assert not [n for n in names if re.search(r"gradebook|mistakes\.yml|__pycache__|\.ipynb_checkpoints", n)]
    assert sorted(p.name for p in (bundle / "release").iterdir()) == \
        sorted(p.name for p in (REPO / "release").iterdir() if p.is_dir())
    assert sorted(p.name for p in (bundle / "notebooks").glob("*.ipynb")) == \
        sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


def test_no_solution_and_no_hidden_test_line_is_in_the_bundle(bundle):
    """No line of an answer or a hidden test anywhere the bundle adds: release/, config, README, Makefile.

    The lessons and the kit are the course's published teaching material: some of their lines are
    also lines of answers (lesson 01 derives the softmax cross-entropy that 01_mlp asks for). The
    bundle must copy them unchanged, adding nothing.
    """
    secrets = secret_lines()
    assert len(secrets) > 100, "the markers were not found: the check would prove nothing"
    assert secret_lines(kinds=("HIDDEN TESTS",)), "no hidden-test line found"
    published = ("notebooks", "lepton_kit")
    for path, lines in text_files(bundle):
        relative = path.relative_to(bundle)
        if relative.parts[0] in published:
            assert path.read_bytes() == (REPO / relative).read_bytes(), f"{relative} differs from the course's"
        else:
            assert not lines & secrets, f"{relative} leaks: {sorted(lines & secrets)[:3]}"
        text = path.read_text(errors="replace")
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, relative


def test_the_kit_imports_from_the_bundle_without_the_grading_engine(bundle):
    code = ("import importlib.util, lepton_kit; print(lepton_kit.__file__); "
            "print(importlib.util.find_spec('lepton_kit.grading'), importlib.util.find_spec('lepton_kit.course'))")
    # -S: no .pth files, so this environment's editable install of the course's own lepton_kit stays out
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle), sysconfig.get_paths()["purelib"]])}
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=bundle, env=env, capture_output=True, text=True,
                         check=True)
    where, specs = out.stdout.splitlines()
    assert Path(where).resolve().is_relative_to(bundle.resolve())
    assert specs == "None None"


def test_student_config_uses_the_exchange_and_turns_instructor_tools_off(bundle, monkeypatch):
    def load():
        return PyFileConfigLoader("nbgrader_config.py", path=str(bundle)).load_config()

    monkeypatch.delenv("LEPTON_EXCHANGE", raising=False)
    config = load()
    assert config.CourseDirectory.course_id == "lepton-kit"
    assert config.Exchange.root == "/srv/lepton-exchange"
    assert config.Exchange.assignment_dir == str(bundle)
    assert "db_url" not in config.CourseDirectory
    monkeypatch.setenv("LEPTON_EXCHANGE", "/elsewhere")
    assert load().Exchange.root == "/elsewhere"

    server = json.loads((bundle / "jupyter-config/jupyter_server_config.json").read_text())["ServerApp"]
    assert server["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is False
    assert server["jpserver_extensions"]["nbgrader.server_extensions.assignment_list"] is True
    lab = json.loads((bundle / "jupyter-config/labconfig/page_config.json").read_text())["disabledExtensions"]
    assert lab["@jupyter/nbgrader:formgrader"] and lab["@jupyter/nbgrader:create-assignment"]
    assert 'JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-config"' in (bundle / "Makefile").read_text()


def test_pyproject_names_nothing_the_bundle_lacks(bundle):
    project = tomllib.loads((bundle / "pyproject.toml").read_text())
    assert "scripts" not in project["project"] and "pytest" not in project.get("tool", {})
    assert project["project"]["name"] == "lepton-kit"
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["lepton_kit*"]


def test_the_readme_walks_through_fetch_validate_submit_and_feedback(bundle):
    readme = (bundle / "README.md").read_text()
    for step in ("make install", "make lab", "Fetch", "Validate", "Submit", "Fetch Feedback", "LEPTON_EXCHANGE",
                 "release/"):
        assert step in readme, step


def test_a_folder_that_is_not_empty_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["--root", str(REPO), "student-bundle", str(tmp_path)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    assert main(["--root", str(REPO), "student-bundle", str(REPO / "build" / "student")]) == 2
    assert "inside the course" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("sample, status", [("bob", 1), ("alice", 0)])
def test_make_validate_exits_1_when_a_test_fails(bundle, sample, status):
    """nbgrader validate exits 0 either way; the student copy's `make validate` does not."""
    work = bundle / f"validate_{sample}" / "01_mlp"
    work.mkdir(parents=True)
    for nb in (REPO / "autograder" / "samples" / "01_mlp" / sample / "01_mlp").glob("*.ipynb"):
        (work / nb.name).write_bytes(nb.read_bytes())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["make", "-o", ".venv/.installed", "validate", f"A={work.parent.name}/01_mlp",
                           f"BIN={Path(sys.executable).parent}"], cwd=bundle, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == (2 if status else 0), done.stdout + done.stderr  # make's own status on failure
    assert ("validation failed" in done.stdout) == bool(status), done.stdout
    assert ("Success! Your notebook passes all the tests." in done.stdout) == (not status), done.stdout
