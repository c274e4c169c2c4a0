"""Execute notebooks headlessly with papermill and write ``summary.json``."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from lepton_kit.utils import recorded_metrics

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
    """The accelerator papermill runs will see (torch's CUDA device name), else the CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


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
                            log_output=False)
        entry["status"] = "ok"
    except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
        entry["status"] = "failed"
        entry["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else err}"[:500]
    entry["seconds"] = round(time.monotonic() - began, 2)
    entry["metrics"] = recorded_metrics(json.loads(output.read_text())) if output.is_file() else {}
    if profile == "ci":
        entry["over_budget"] = entry["seconds"] > CI_BUDGET_SECONDS
    return entry


def run(paths, output_dir: Path, profile: str = "ci", timeout: float = 1800, progress=True) -> dict:
    """Execute every notebook under ``paths``; write executed copies and ``summary.json``."""
    from tqdm.auto import tqdm

    from lepton_kit.profiles import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    notebooks = find_notebooks(paths)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"profile": profile, "device": device_name(), "python": platform.python_version(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notebooks": []}
    cwd = Path.cwd().resolve()
    for path in tqdm(notebooks, desc=f"papermill ({profile})", unit="notebook", disable=not progress):
        resolved = path.resolve()
        relative = resolved.relative_to(cwd) if resolved.is_relative_to(cwd) else Path(path.name)
        entry = run_notebook(path, output_dir / relative, profile, timeout)
        summary["notebooks"].append(entry)
        # written after every notebook: a killed run keeps what it finished
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["seconds"] = round(sum(e["seconds"] for e in summary["notebooks"]), 2)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
