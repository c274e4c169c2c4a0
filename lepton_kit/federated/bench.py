"""Benchmark: the kit's federated simulator against clients trained one by one, and against Flower.

    python -m lepton_kit.federated.bench               # both comparisons, figures printed as a table
    python -m lepton_kit.federated.bench --no-flower   # without Flower (no .venv-flower: `make flower`)

1. McMahan's setting on MNIST-1D: 100 clients, C = 0.1, E = 5, B = 10, FedAvg; the vectorised simulator
   against the same simulator training its clients one after another (the plain loop). Same seeds, so
   both reach the same accuracy; the ratio is their wall-time ratio.
2. Flower 1.42's simulation (run in ``.venv-flower``) against the kit on the same task (10 clients, every
   client every round, float64): wall time of each, the ratio, and the largest difference between the
   two final global models (the parity check: ≤ 1e-6).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lepton_kit.federated.flower_app import FLOWER_PYTHON, ROOT


def simulator_vs_loop(*, clients=100, fraction=0.1, rounds=20, epochs=5, batch_size=10, lr=0.05, seed=0):
    """Seconds and final accuracy of the vectorised simulator and of the one-by-one loop."""
    from lepton_kit.federated import FedAvg, simulate
    from lepton_kit.federated.task import mnist1d_task

    task = mnist1d_task(num_clients=clients, seed=seed, dtype="float32")
    rows = {}
    for name, vectorize in (("vectorised", True), ("one by one", False)):
        started = time.perf_counter()
        history = simulate(task.model(), (task.x, task.y), task.parts, FedAvg(lr=lr, epochs=epochs, batch_size=batch_size),
                           rounds=rounds, fraction=fraction, seed=seed, test=(task.x_test, task.y_test),
                           eval_every=rounds, vectorize=vectorize, progress=False)
        rows[name] = (time.perf_counter() - started, history.accuracy[-1])
    return rows


def kit_vs_flower(*, clients=10, rounds=5, epochs=1, batch_size=32, lr=0.1, seed=0):
    """Seconds of Flower's simulation and of the kit's on the same task, and the final models' largest difference."""
    import torch

    from lepton_kit.federated import FedAvg, evaluate_state, simulate
    from lepton_kit.federated.task import mnist1d_task

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flower.npz"
        started = time.perf_counter()
        done = subprocess.run([str(FLOWER_PYTHON), "-m", "lepton_kit.federated.flower_app", "--clients", str(clients),
                               "--rounds", str(rounds), "--seed", str(seed), "--epochs", str(epochs),
                               "--batch-size", str(batch_size), "--lr", str(lr), "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        flower_seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"Flower's run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        flower_state = {k: torch.from_numpy(v) for k, v in np.load(out, allow_pickle=False).items()}
    task = mnist1d_task(num_clients=clients, seed=seed)
    model = task.model()
    started = time.perf_counter()
    history = simulate(model, (task.x, task.y), task.parts, FedAvg(lr=lr, epochs=epochs, batch_size=batch_size),
                       rounds=rounds, fraction=1.0, seed=seed, test=(task.x_test, task.y_test), eval_every=rounds,
                       progress=False)
    kit_seconds = time.perf_counter() - started
    kit_state = model.state_dict()
    diff = max(float((kit_state[k] - flower_state[k]).abs().max()) for k in kit_state)
    flower_accuracy, _ = evaluate_state(task.model(), flower_state, task.x_test, task.y_test)
    return {"flower_seconds": flower_seconds, "flower_startup_seconds": report.get("startup_seconds"),
            "kit_seconds": kit_seconds, "max_abs_diff": diff, "kit_accuracy": history.accuracy[-1],
            "flower_accuracy": flower_accuracy}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lepton_kit.federated.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the 100-client run")
    parser.add_argument("--flower-rounds", type=int, default=5)
    parser.add_argument("--no-flower", action="store_true")
    args = parser.parse_args(argv)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = simulator_vs_loop(rounds=args.rounds)
    (fast, fast_acc), (slow, slow_acc) = rows["vectorised"], rows["one by one"]
    print(f"100 clients, C=0.1, E=5, B=10, {args.rounds} rounds of FedAvg on MNIST-1D:")
    print(f"  vectorised simulator   {fast:7.2f} s   test accuracy {fast_acc:.3f}")
    print(f"  clients one by one     {slow:7.2f} s   test accuracy {slow_acc:.3f}")
    print(f"  speed-up: {slow / fast:.1f}x")
    if args.no_flower:
        return 0
    if not FLOWER_PYTHON.exists():
        print(f"Flower: skipped, {FLOWER_PYTHON.relative_to(ROOT)} is missing (make flower builds it)")
        return 0
    result = kit_vs_flower(rounds=args.flower_rounds)
    print(f"10 clients, every client every round, E=1, B=32, {args.flower_rounds} rounds (float64):")
    print(f"  Flower 1.42 simulation {result['flower_seconds']:7.2f} s   (start-up {result['flower_startup_seconds']:.1f} s)"
          f"   test accuracy {result['flower_accuracy']:.3f}")
    print(f"  kit simulator          {result['kit_seconds']:7.2f} s   test accuracy {result['kit_accuracy']:.3f}")
    print(f"  max |kit - Flower| of the final weights: {result['max_abs_diff']:.2e}")
    print(f"  speed-up over Flower: {result['flower_seconds'] / result['kit_seconds']:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
