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
