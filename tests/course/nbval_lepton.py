"""A pytest plugin for the nbval run of the lessons: recorded metrics are not compared digit for digit.

``record(name, value)`` publishes a metric as JSON; its exact value depends on the CPU's kernels
(another instruction set changed a 1e-16 into a 7e-21). nbval would compare it exactly, so its
MIME type joins nbval's own skip list; `lepton run` checks the same figures against course.yml's
targets instead.

The kernels nbval starts inherit ``LEPTON_PROGRESS=0``: no training progress bars, as when the
stored outputs were made (``make lessons``); and they run over encrypted transport, like those of
``lepton run`` (no "Kernel is running over TCP without encryption" on stderr).
"""
from __future__ import annotations

import os

import nbval.kernel
from jupyter_client.manager import KernelManager
from nbval.plugin import IPyNbFile

from lepton_kit.course.runner import kernel_config
from lepton_kit.utils import PROGRESS_ENV, RECORD_MIME

os.environ[PROGRESS_ENV] = "0"

_init = IPyNbFile.__init__


def _init_skipping_records(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.skip_compare = (*self.skip_compare, RECORD_MIME)


IPyNbFile.__init__ = _init_skipping_records


class _EncryptedKernelManager(KernelManager):
    def __init__(self, **kwargs):
        super().__init__(config=kernel_config(), **kwargs)


nbval.kernel.KernelManager = _EncryptedKernelManager  # what nbval.kernel.start_new_kernel instantiates


# After the last cell of a notebook that builds explorers (LEPTON_EXPLORER_REPORT names a file), one more
# item runs in the same kernel: every explorer's controls are moved (Explorer.exercise) and the redraws timed.
# It fails when a move leaves the picture unchanged. The redraw times (CPU of the kernel's thread and wall
# clock) go to the JSON file, and the test prints them: figures, not a timed assertion that flakes on a
# slower machine (CI once measured 0.27 s of CPU where this one takes 0.12 s).
EXERCISE = """\
import json as _json
from lepton_kit.widgets import explorers as _explorers
_report = [{{"explorer": _v.describe().split(" (showing")[0], "moves": _v.exercise()}} for _v in _explorers()]
with open({path!r}, "w") as _f:
    _json.dump(_report, _f, indent=1, default=str)
for _r in _report:
    _still = [(_m["control"], _m["value"]) for _m in _r["moves"] if not _m["changed"]]
    assert not _still, f"{{_r['explorer']}}: the picture did not change when moving {{_still}}"
"""

_collect = IPyNbFile.collect


def _collect_with_explorers(self):
    items = list(_collect(self))
    yield from items
    path = os.environ.get("LEPTON_EXPLORER_REPORT")
    if path and "explore(" in "".join(c.source for c in self.nb.cells if c.cell_type == "code"):
        from collections import defaultdict

        import nbformat
        from nbval.plugin import IPyNbCell

        cell = nbformat.v4.new_code_cell(EXERCISE.format(path=path))
        yield IPyNbCell.from_parent(self, name="explorers respond", cell_num=len(items), cell=cell,
                                    options=defaultdict(bool, check=False))


IPyNbFile.collect = _collect_with_explorers
