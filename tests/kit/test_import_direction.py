"""The three wings import one way: course -> grading -> kit; the kit never needs the instructor's tools."""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

import pytest

from conftest import REPO

PACKAGE = REPO / "lepton_kit"
INSTRUCTOR_ONLY = ("nbgrader", "papermill", "nbclient", "lepton_kit.course", "lepton_kit.grading")


def imported_names(path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def offending(paths, forbidden) -> dict:
    found = {}
    for path in paths:
        bad = sorted(n for n in imported_names(path) if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[str(path.relative_to(REPO))] = bad
    return found


KIT = sorted(PACKAGE.glob("*.py"))
GRADING = sorted((PACKAGE / "grading").glob("*.py"))


def test_the_kit_never_imports_course_or_grading_tools():
    assert KIT and offending(KIT, INSTRUCTOR_ONLY) == {}


def test_the_grading_engine_never_imports_the_course_tools():
    assert GRADING and offending(GRADING, ("lepton_kit.course",)) == {}


def test_the_scan_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from lepton_kit.grading import sandbox\n    import papermill\n")
    assert imported_names(sample) >= {"lepton_kit.grading", "lepton_kit.grading.sandbox", "papermill"}


@pytest.mark.parametrize("module", [p.stem for p in KIT if p.stem != "__init__"])
def test_importing_a_kit_module_loads_no_instructor_tool(module):
    code = (f"import sys, lepton_kit.{module}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('nbgrader', 'papermill', 'nbclient') "
            f"or m.startswith(('lepton_kit.course', 'lepton_kit.grading'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_pyproject_installs_every_subpackage_and_keeps_nbgrader_out_of_the_kit():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]
    assert isinstance(packages, dict), "a packages = [...] list silently drops new subpackages"
    assert packages["find"]["include"] == ["lepton_kit*"]
    base = " ".join(project["project"]["dependencies"])
    assert not any(tool in base for tool in ("nbgrader", "papermill")), "instructor tools belong in an extra"
    assert any("nbgrader" in d for d in project["project"]["optional-dependencies"]["course"])
