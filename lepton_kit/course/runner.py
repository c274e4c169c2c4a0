"""Execute notebooks headlessly with papermill and write ``summary.json`` (status, seconds, metrics, targets).

Each kernel gets an explicit thread budget (torch, TensorFlow, BLAS): by default the cores this
process may use, divided by ``LEPTON_PARALLEL`` when several runs share the machine
(:func:`lepton_kit.utils.thread_budget`; ``tests/benchmarks/threads.py`` measures the difference).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from lepton_kit.course.curriculum import load_course
from lepton_kit.course.targets import check, targets_for
from lepton_kit.utils import PROGRESS_ENV, available_cores, recorded_metrics, thread_budget, thread_env

CI_BUDGET_SECONDS = 45.0


def find_notebooks(paths) -> list[Path]:
    """Notebooks named directly or found under folders (checkpoints skipped), in a stable order."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a notebook nor a folder")
    return found


def has_parameters_cell(path: Path) -> bool:
    nb = json.loads(Path(path).read_text())
    return any("parameters" in (c.get("metadata", {}).get("tags") or []) for c in nb.get("cells", []))


def device_name() -> str:
    """The device the notebooks will choose (:func:`lepton_kit.utils.device`), in words."""
    from lepton_kit.utils import device

    try:
        chosen = device()
    except ImportError:  # no torch: the notebooks run on the CPU
        chosen = "cpu"
    if chosen == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    if chosen == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({platform.processor() or platform.machine()}, {available_cores()} cores)"


def kernel_config():
    """traitlets config for the kernels we start: CurveZMQ-encrypted transport, provisioned by
    jupyter_client for kernelspecs that declare it (ipykernel's does). Encrypted, the kernel no
    longer warns "Kernel is running over TCP without encryption"; every other message stays.

    >>> kernel_config().KernelManager.transport_encryption in ("auto", "disabled")
    True
    """
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto" if zmq.has("curve") else "disabled"}})


def run_notebook(path: Path, output: Path, profile: str, timeout: float) -> dict:
    """Execute one notebook; never raises for a failing notebook, returns its summary entry."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile} if has_parameters_cell(path) else {}
    began = time.monotonic()
    entry = {"notebook": str(path), "output": str(output), "profile": profile}
    try:
        pm.execute_notebook(str(path), str(output), parameters=params, cwd=str(path.parent),
                            kernel_name="python3", progress_bar=False, execution_timeout=timeout,
                            log_output=False, config=kernel_config())
        entry["status"] = "ok"
    except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
        entry["status"] = "failed"
        entry["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else err}"[:500]
    entry["seconds"] = round(time.monotonic() - began, 2)
    entry["metrics"] = recorded_metrics(json.loads(output.read_text())) if output.is_file() else {}
    if profile == "ci":
        entry["over_budget"] = entry["seconds"] > CI_BUDGET_SECONDS
    return entry


def run(paths, output_dir: Path, *, profile: str = "ci", timeout: float = 1800, progress=True, root=None,
        threads: int | None = None) -> dict:
    """Execute every notebook under ``paths``; write executed copies and ``summary.json``.

    Each entry holds the notebook's recorded metrics and, where course.yml (of ``root``, by default
    the course around the current folder) sets them, its targets against what was measured.
    """
    from tqdm.auto import tqdm

    from lepton_kit.course.curriculum import find_root
    from lepton_kit.profiles import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    notebooks = find_notebooks(paths)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    root = Path(root).resolve() if root else _course_root(find_root)
    course = load_course(root) if root else {}
    threads = threads or thread_budget()
    summary = {"profile": profile, "device": device_name(), "python": platform.python_version(),
               "threads": threads, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notebooks": []}
    base = root or Path.cwd().resolve()
    kernel_env = {**thread_env(threads), PROGRESS_ENV: "0"}  # no progress bars in the executed copies
    saved = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)  # the kernels inherit them
    try:
        for path in tqdm(notebooks, desc=f"papermill ({profile})", unit="notebook", disable=not progress):
            resolved = path.resolve()
            relative = resolved.relative_to(base) if resolved.is_relative_to(base) else Path(path.name)
            entry = run_notebook(path, output_dir / relative, profile, timeout)
            entry["targets"] = check(entry["metrics"], targets_for(course, relative.as_posix(), profile))
            if resolved.is_relative_to(base):  # summaries name paths in the course, not on this machine
                entry["notebook"] = relative.as_posix()
                out = Path(entry["output"]).resolve()
                entry["output"] = out.relative_to(base).as_posix() if out.is_relative_to(base) else entry["output"]
            summary["notebooks"].append(entry)
            # written after every notebook: a killed run keeps what it finished
            (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    summary["seconds"] = round(sum(e["seconds"] for e in summary["notebooks"]), 2)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _course_root(find_root):
    try:
        return find_root()
    except FileNotFoundError:  # notebooks outside a course: no targets
        return None


def missed_targets(summary: dict) -> list[str]:
    """``notebook: metric measured, target`` for every target a run missed."""
    return [f"{e['notebook']}: {t['metric']} = {t['measured']}, target {t['target']}"
            for e in summary["notebooks"] for t in e.get("targets", []) if not t["met"]]
