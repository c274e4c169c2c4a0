"""Benchmark: ci-profile notebooks when two runs share the machine, default threads vs a thread budget.

    python tests/benchmarks/threads.py [NOTEBOOK ...]     # default: lessons 02 and 05

Runs the same notebooks twice, each time as two `lepton run` processes at once (as two pytest
workers do): first with every kernel free to use all cores (torch's and TensorFlow's defaults),
then with the budget Lepton sets (cores // 2 per kernel). Prints seconds per notebook and the ratio.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT = ["notebooks/02_training_with_autograd.ipynb", "notebooks/05_convolutional_networks.ipynb"]


def two_runs_at_once(notebooks, threads: int, out: Path) -> dict:
    """Seconds per notebook, worst of the two concurrent runs."""
    procs = []
    for k in range(2):
        env = {**os.environ, "LEPTON_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "lepton_kit.course.cli", "--root", str(REPO), "run", *notebooks,
               "--output", str(out / f"{threads}-{k}")]
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for proc in procs:
        proc.wait()
    seconds = {}
    for k in range(2):
        for entry in json.loads((out / f"{threads}-{k}" / "summary.json").read_text())["notebooks"]:
            name = Path(entry["notebook"]).name
            seconds[name] = max(seconds.get(name, 0.0), entry["seconds"])
    return seconds


def main(notebooks) -> None:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        free = two_runs_at_once(notebooks, cores, Path(tmp))
        budget = two_runs_at_once(notebooks, max(1, cores // 2), Path(tmp))
    print(f"two concurrent `lepton run --profile ci` on {cores} cores")
    print(f"{'notebook':42} {cores} threads each  {max(1, cores // 2)} thread(s) each  speed-up")
    for name in free:
        print(f"{name:42} {free[name]:12.1f} s {budget[name]:15.1f} s {free[name] / budget[name]:9.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
