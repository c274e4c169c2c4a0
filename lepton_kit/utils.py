"""Seeding, device choice, thread budgets and metric recording."""
from __future__ import annotations

import json
import math
import os
import random
import sys

RECORD_MIME = "application/vnd.lepton-kit.record+json"
RECORD_FILE_ENV = "LEPTON_RECORD_FILE"  # set: record() also appends {"name", "value"} lines to that file


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and, when they are imported, PyTorch and TensorFlow.

    >>> seed_everything(0)
    0
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import tensorflow as tf

        tf.random.set_seed(seed)
    return seed


def device(prefer: str | None = None) -> str:
    """The best torch device available: ``cuda``, then ``mps``, then ``cpu``.

    >>> device("cpu")
    'cpu'
    """
    if prefer:
        return prefer
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _plain(value):
    """Turn NumPy / torch scalars into JSON-friendly Python numbers."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def record(name: str, value):
    """Publish a metric from a notebook; ``lepton run`` collects it into summary.json.

    The value is shown in the notebook and stored in the cell output, where the runner finds it;
    with ``$LEPTON_RECORD_FILE`` set, it is also appended to that file as a JSON line (how the nbval
    run of a lesson checks its targets without executing the lesson a second time).

    >>> record("demo_accuracy", 0.5)
    demo_accuracy = 0.5
    0.5
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"record name must be an identifier like 'digits_accuracy', got {name!r}")
    plain = _plain(value)
    text = f"{name} = {round(plain, 4) if isinstance(plain, float) else plain}"
    try:
        from IPython import get_ipython
        from IPython.display import display

        in_kernel = get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        in_kernel = False
    if in_kernel:
        display({"text/plain": text, RECORD_MIME: {"name": name, "value": plain}}, raw=True)
    else:
        print(text)
    if os.environ.get(RECORD_FILE_ENV):
        with open(os.environ[RECORD_FILE_ENV], "a", encoding="utf-8") as log:
            log.write(json.dumps({"name": name, "value": plain}) + "\n")
    return value


def recorded_metrics(notebook: dict) -> dict:
    """Collect the metrics that ``record`` stored in an executed notebook (nbformat dict).

    >>> recorded_metrics({"cells": []})
    {}
    """
    metrics = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data", {}) if isinstance(output, dict) else {}
            payload = data.get(RECORD_MIME)
            if isinstance(payload, str):
                payload = json.loads(payload)
            if isinstance(payload, dict) and "name" in payload:
                metrics[payload["name"]] = payload.get("value")
    return metrics


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_budget() -> int:
    """Threads for one kernel: ``LEPTON_THREADS``, else the available cores / ``LEPTON_PARALLEL``."""
    if os.environ.get("LEPTON_THREADS"):
        return max(1, int(os.environ["LEPTON_THREADS"]))
    return max(1, available_cores() // max(1, int(os.environ.get("LEPTON_PARALLEL", "1"))))


def thread_env(threads: int) -> dict:
    """Environment variables that fix the intra-op threads of torch, TensorFlow and BLAS.

    Set them before the framework starts (a kernel, a worker, a sandboxed executor inherits them).

    >>> thread_env(2)["OMP_NUM_THREADS"], thread_env(2)["TF_NUM_INTEROP_THREADS"]
    ('2', '1')
    """
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1"}


PROGRESS_ENV = "LEPTON_PROGRESS"
_OFF, _ON = {"0", "false", "no", "off"}, {"1", "true", "yes", "on"}


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether training shows a progress bar: ``progress`` when given, else ``LEPTON_PROGRESS``, else yes.

    The course's headless runners (``lepton run``, ``make lessons``, nbval, the autograder) start
    their kernels with ``LEPTON_PROGRESS=0``: no bars flood their logs or change stored outputs,
    while a student running a lesson in JupyterLab sees them.

    >>> progress_enabled(False), progress_enabled(True)
    (False, True)
    >>> os.environ[PROGRESS_ENV] = "0"; progress_enabled()
    False
    >>> del os.environ[PROGRESS_ENV]
    """
    if progress is not None:
        return bool(progress)
    value = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON or value == "":
        return True
    raise ValueError(f"{PROGRESS_ENV}={os.environ[PROGRESS_ENV]!r}: use 0 (no progress bars) or 1")
