"""Units of the autograder: structure restore, limits, the guard's protocol, feedback scrubbing, refusal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from conftest import REPO
from lepton_kit.grading import feedback
from lepton_kit.grading.cells import done_signal, guarded, imports_of
from lepton_kit.grading.restore import Malformed, Template, TemplateCell, kernelspec, parse, rebuild, unique_ids
from lepton_kit.grading.sandbox import Limits


def _template():
    def cell(grade_id, role, source, cell_type="code", points=None):
        meta = {"grade_id": grade_id, "schema_version": 3, "grade": role in ("test", "manual"),
                "solution": role in ("solution", "manual"), "locked": role in ("test", "locked")}
        if points is not None:
            meta["points"] = points
        full = source + ("\n### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS" if role == "test" else "")
        return TemplateCell(grade_id, role, cell_type, full, source, meta, {})

    return Template("nb", [cell("setup", "locked", "import math"), cell("answer", "solution", "x = None"),
                           cell("test", "test", "assert x == 1", points=2.0)],
                    {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _student(*cells, kernel="python3"):
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": kernel}},
                       "cells": list(cells)}).encode()


def _c(source, grade_id=None, cell_type="code", **meta):
    nbgrader = {"grade_id": grade_id, "schema_version": 3, **meta} if grade_id else {}
    return {"cell_type": cell_type, "source": source, "metadata": {"nbgrader": nbgrader} if nbgrader else {},
            **({"outputs": [], "execution_count": None} if cell_type == "code" else {})}


def canonical(raw, template):
    """What the pipeline's parse, restore_structure, kernelspec and ids steps make of one file."""
    data = parse(raw)
    nb, notes = rebuild(data, template)
    nb.metadata, more = kernelspec(data, template)
    unique_ids(nb)
    return nb, notes + more


def _shape(nb):
    return [(c["cell_type"], c["metadata"].get("nbgrader", {}).get("grade_id"), c["source"]) for c in nb["cells"]]


@pytest.mark.parametrize("raw, why", [(b"", "empty"), (b"   \n", "empty"), (b"\x00\xff\xfe junk", "binary"),
                                      (b'{"cells": [', "invalid JSON"), (b"[1, 2]", "no cells"),
                                      (b'{"nbformat": 3, "worksheets": []}', "nbformat 3"),
                                      (b'{"nbformat": 4, "cells": {}}', "not a list")])
def test_files_that_are_not_notebooks_are_named_as_such(raw, why):
    with pytest.raises(Malformed, match=why):
        parse(raw)


def test_an_honest_notebook_keeps_its_answer_and_gets_the_hidden_tests_back():
    nb, notes = canonical(_student(_c("import math", "setup", locked=True), _c("x = 1", "answer", solution=True),
                                   _c("my scratch work"), _c("assert x == 1", "test", grade=True, points=2, locked=True)),
                          _template())
    assert notes == []
    assert _shape(nb) == [("code", "setup", "import math"), ("code", "answer", "x = 1"), ("code", None, "my scratch work"),
                          ("code", "test", "assert x == 1\n### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS")]
    nbformat.validate(nbformat.from_dict(nb))


def test_tampered_structure_is_restored_and_reported():
    nb, notes = canonical(_student(
        _c("x = 1", "answer", solution=True),
        _c("pass", "test", "markdown", grade=False, points=99, schema_version=99),  # retyped, ungraded, emptied
        _c("pass", "test", grade=True, points=2),                                   # a copy
        _c("x = 2", "answer", solution=True),                                       # a second answer
        _c("print('mine')", "made-up-id"), kernel="evil"), _template())
    assert _shape(nb) == [("code", None, "x = 1"), ("code", "setup", "import math"), ("code", "answer", "x = 2"),
                          ("code", None, "print('mine')"), ("code", "test", _template().cells[2].source)]
    assert nb["cells"][4]["metadata"]["nbgrader"]["points"] == 2.0
    said = " | ".join(notes)
    for phrase in ("setup was deleted", "type markdown", "points=99", "schema_version=99", "grade=False",
                   "test appears 2 times", "answer appears 2 times", "unknown grade_id 'made-up-id'", "'evil'"):
        assert phrase in said, (phrase, notes)


def test_limits_come_from_the_config_and_reject_typos():
    limits = Limits.from_config({"Execute": {"timeout": 42}, "LeptonAutograde": {"memory": 123, "output": 456}})
    assert (limits.cell_timeout, limits.memory, limits.output, limits.processes) == (42.0, 123, 456, 256)
    assert Limits().memory == 2 << 30
    with pytest.raises(ValueError, match="memroy"):
        Limits.from_config({"LeptonAutograde": {"memroy": 1}})


def test_the_course_config_has_a_limits_section():
    from lepton_kit.grading.config import load_config

    limits = Limits.from_config(load_config(REPO))
    assert limits.memory == 2 << 30 and limits.cell_timeout > 0 and limits.output > 0


def test_guarded_source_keeps_the_last_value_and_ends_with_the_done_signal():
    source, value = guarded("x = 1\nx + 1")
    assert source + done_signal("abc", value) == \
        "x = 1\n__lepton_value__ = (x + 1)\n__lepton_audit__('lepton.done', 'abc', __lepton_value__)\n"
    assert "get_ipython().run_line_magic('time', 'y = 1')" in guarded("%time y = 1")[0]
    assert guarded("f(1);") == ("f(1);\n", "None")
    assert imports_of(["import numpy as np\nfrom lepton_kit.checks import check_close\nnp.random.default_rng(0)"]) \
        == ["lepton_kit.checks", "lepton_kit.checks.check_close", "numpy", "numpy.random"]


GUARD_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import lepton_kit.checks
    from lepton_kit.grading import guard
    read, write = os.pipe()
    ns, box = {"__name__": "__main__"}, [None]
    guard.install(write, ns, box, ["numpy"])
    key = bytes.fromhex(os.read(read, 200).decode().split()[1])
    os.set_blocking(read, False)

    def cell(nonce, code, tag=None, kind="test"):
        code = code + f"\\n__lepton_audit__('lepton.done', {nonce!r}, None)\\n"
        sys.audit("lepton.begin", nonce, kind, code, tag or guard.mac(key, f"B|{nonce}|{kind}|{code}"))
        try:
            exec(box[0], ns)
        except BaseException as err:
            pass
        try:
            lines = os.read(read, 65536).decode().splitlines()
        except BlockingIOError:
            lines = []
        return [l.split(" ")[:3] for l in lines]

    out = {}
    out["setup"] = cell("n0", "import numpy as np\\nfrom lepton_kit.checks import check_close", kind="instr")
    exec("def f(x): return 2 * x", ns)
    out["honest"] = cell("n1", "check_close(f(np.ones(2)), [2, 2])")
    exec("def f(x): return 3 * x\\nnp.allclose = lambda *a, **k: True\\ncheck_close = lambda *a, **k: None", ns)
    out["patched_before"] = cell("n2", "check_close(f(np.ones(2)), [2, 2])")
    exec("def f(x):\\n    np.allclose = lambda *a, **k: True\\n    return 3 * x", ns)
    out["patched_during"] = cell("n3", "check_close(f(np.ones(2)), [2, 2])")
    out["forged_tag"] = cell("n4", "pass", tag="0" * 64)
    out["replayed"] = cell("n1", "pass")
    print(json.dumps(out))
''')


def test_the_guard_signs_honest_passes_only():
    result = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["honest"] == [["LV", "n1", "1"]]
    assert out["patched_before"] == []          # restored checkers: the test fails, no verdict
    assert out["patched_during"][0][:3] == ["LV", "n3", "0"]
    assert out["forged_tag"][0][0] == "LF" and out["replayed"][0][0] == "LF"


def test_feedback_blanks_hidden_lines():
    hidden = feedback.hidden_lines("a = 1\n### BEGIN HIDDEN TESTS\nassert secret_value == 42\n### END HIDDEN TESTS",
                                   "a = 1")
    assert hidden == ["assert secret_value == 42"]
    assert feedback.scrub("AssertionError: assert secret_value == 42 failed", hidden) == \
        "AssertionError: [hidden test] failed"


def test_autograde_refuses_without_bubblewrap_unless_told(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no /usr/bin: no bwrap
    script = ("from lepton_kit.grading import sandbox; import sys\n"
              "try:\n    sandbox.require_sandbox()\nexcept sandbox.SandboxUnavailable as e:\n"
              "    print(e); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 3 and "not installed" in result.stdout and "--no-sandbox" in result.stdout
    cli = subprocess.run([sys.executable, "-m", "lepton_kit.course.cli", "--root", str(REPO / "autograder" / "bench"),
                          "autograde", "bench", "--submissions", str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=REPO)
    assert cli.returncode == 2 and "bubblewrap" in cli.stderr and "--no-sandbox" in cli.stderr


def test_the_grading_engine_never_imports_the_course_tools():
    script = ("import sys, lepton_kit.grading.autograde, lepton_kit.grading.feedback, lepton_kit.grading.pipeline\n"
              "print([m for m in sys.modules if m.startswith('lepton_kit.course')])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
