"""Kernels our tools start: encrypted transport (no "running over TCP without encryption" on stderr,
every other message kept) and LEPTON_PROGRESS=0 (no progress bars in executed copies)."""
from __future__ import annotations

import json
import os

import nbformat
import pytest

from lepton_kit.course.runner import run

TCP_WARNING = "Kernel is running over TCP without encryption"
CODE = """\
import os, sys
from ipykernel.kernelapp import IPKernelApp
os.write(2, b"another warning from the kernel\\n")   # what a kernel says on its stderr still shows
print(json.dumps({"encrypted": IPKernelApp.instance().curve_secretkey is not None,
                  "progress": os.environ.get("LEPTON_PROGRESS")}))
"""


@pytest.mark.slow
def test_lepton_run_starts_quiet_encrypted_kernels(tmp_path, capfd):
    zmq = pytest.importorskip("zmq")
    if not zmq.has("curve"):
        pytest.skip("this libzmq has no CurveZMQ: the kernel runs unencrypted and says so")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import json\n" + CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "k.ipynb")
    os.environ.pop("LEPTON_PROGRESS", None)  # run() sets it for its kernels
    summary = run([tmp_path / "k.ipynb"], tmp_path / "out", progress=False, root=tmp_path)
    assert summary["notebooks"][0]["status"] == "ok", summary
    err = capfd.readouterr().err  # the kernel's stderr is this process's
    assert TCP_WARNING not in err
    assert "another warning from the kernel" in err
    executed = nbformat.read(tmp_path / "out" / "k.ipynb", 4)
    said = json.loads(executed.cells[0].outputs[-1]["text"])
    assert said == {"encrypted": True, "progress": "0"}
