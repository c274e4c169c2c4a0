"""The same FedAvg run in Flower 1.42's simulation: a ClientApp around the kit's ``client_update``, Flower's own FedAvg.

The parity check of :func:`lepton_kit.federated.simulate`: both train the same MLP on the same IID split of
MNIST-1D (:func:`lepton_kit.federated.task.mnist1d_task`, float64) with the same batches (``client_update``
draws them from ``(seed, server_round, partition-id)``), so the final global weights agree to rounding.
Flower needs its own virtual environment (``make flower`` builds ``.venv-flower``: flwr pins protobuf and
rich below the course's), so ``flwr`` is imported only inside the
functions that need it and this module stays importable, for its task, without it::

    .venv-flower/bin/python -m lepton_kit.federated.flower_app --clients 10 --rounds 5 --seed 0 --out result.npz

prints one JSON line: ``{"seconds": ..., "startup_seconds": ..., "rounds": 5, ...}`` and writes the final global
state (``name -> float64 array``) to ``--out``. Offline: Flower's telemetry and Ray's usage stats are switched off.

>>> task = build_task(num_clients=4, seed=0)
>>> task.x.shape, len(task.parts), sum(len(p) for p in task.parts)
((4000, 40), 4, 4000)
>>> {str(v.dtype) for v in task.model().state_dict().values()}
{'torch.float64'}
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

#: The checkout this package lives in, and the interpreter of its Flower virtualenv (``make flower``).
ROOT = Path(__file__).resolve().parents[2]
FLOWER_PYTHON = ROOT / ".venv-flower" / "bin" / "python"

#: Local training of every client in every round (FedAvg's E, B and the SGD step size).
LR, EPOCHS, BATCH_SIZE = 0.1, 1, 32


#: A folder where :func:`build_task` keeps the task it generated (unset: no cache). Flower's deployment engine
#: starts a new ``flwr-clientapp`` process for every message, so without it every client regenerates MNIST-1D
#: (seconds of CPU) in every round.
TASK_CACHE_ENV = "LEPTON_FLOWER_TASK_CACHE"


@lru_cache(maxsize=4)
def build_task(num_clients=10, seed=0):
    """:func:`lepton_kit.federated.task.mnist1d_task` (IID), once per process: every Ray actor builds it once;
    with ``$LEPTON_FLOWER_TASK_CACHE`` set, once per machine (an .npz there, written whole or not at all)."""
    from lepton_kit.federated.task import Task, mnist1d_task

    folder = os.environ.get(TASK_CACHE_ENV, "")
    path = os.path.join(folder, f"mnist1d-iid-float64-{int(num_clients)}-{int(seed)}.npz") if folder else ""
    if path and os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:   # arrays only: a planted file cannot run code
            parts = np.split(f["part_rows"], np.cumsum(f["part_sizes"])[:-1])
            return Task(f["x"], f["y"], f["x_test"], f["y_test"], parts, int(seed), "float64")
    task = mnist1d_task(num_clients=num_clients, seed=seed, split="iid", dtype="float64")
    if path:
        os.makedirs(folder, exist_ok=True)
        part = f"{path}.{os.getpid()}.part.npz"
        np.savez(part, x=task.x, y=task.y, x_test=task.x_test, y_test=task.y_test,
                 part_rows=np.concatenate(task.parts), part_sizes=np.array([len(p) for p in task.parts]))
        os.replace(part, path)
    return task


def _offline():
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    os.environ["MPLBACKEND"] = "Agg"   # a Jupyter kernel's inline backend is unknown to .venv-flower's matplotlib


def make_client_app():
    """A ClientApp whose ``train`` starts from the round's global arrays, runs ``client_update`` on its partition
    (``node_config["partition-id"]``) and replies with the new arrays and ``"num-examples"``."""
    _offline()
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg, context):
        import torch

        from lepton_kit.federated.client import client_update

        torch.set_num_threads(1)
        config = msg.content["config"]
        client = int(context.node_config["partition-id"])
        num_clients = int(context.node_config["num-partitions"])
        seed, server_round = int(config["seed"]), int(config["server-round"])
        task = build_task(num_clients, seed)
        model = task.model()
        global_state = msg.content["arrays"].to_torch_state_dict()
        rows = task.parts[client]
        state, num_examples, loss = client_update(
            model, global_state, task.x[rows], task.y[rows], epochs=int(config["epochs"]),
            batch_size=int(config["batch-size"]), lr=float(config["lr"]), seed=(seed, server_round, client))
        content = RecordDict({"arrays": ArrayRecord(state),
                              "metrics": MetricRecord({"train_loss": float(loss), "num-examples": int(num_examples)})})
        return Message(content=content, reply_to=msg)

    return app


def make_server_app(initial_state, *, num_clients, rounds, config, out):
    """A ServerApp running Flower's FedAvg (every client every round, no federated evaluation) for ``rounds``;
    the final global state (name -> numpy array) and the time at the end of each round land in the dict ``out``."""
    _offline()
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context):
        _fedavg(grid, initial_state, num_clients=num_clients, rounds=rounds, config=config, out=out)

    return app


def _fedavg(grid, initial_state, *, num_clients, rounds, config, out):
    """Flower's FedAvg on ``grid`` (every client every round, no federated evaluation) for ``rounds``; the final
    global state (name -> numpy array) lands in ``out["state"]`` and the time at the end of each round in
    ``out["ticks"]``."""
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.serverapp.strategy import FedAvg

    class StrictFedAvg(FedAvg):
        """Flower's FedAvg, except that a round with a failed or missing client stops the run (parity needs all)."""

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            errors = [f"node {m.metadata.src_node_id}: {m.error.reason}" for m in replies if m.has_error()]
            if errors or len(replies) != num_clients:
                raise RuntimeError(f"round {server_round}: {len(replies) - len(errors)} of {num_clients} clients "
                                   "replied" + "".join(f"\n  {e}" for e in errors))
            return super().aggregate_train(server_round, replies)

    strategy = StrictFedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=num_clients,
                            min_available_nodes=num_clients)
    ticks = out.setdefault("ticks", [])

    def tick(server_round, arrays):          # called before round 1 and after every round
        ticks.append((server_round, time.perf_counter()))
        return None

    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(initial_state), num_rounds=rounds,
                            train_config=ConfigRecord(config), evaluate_fn=tick)
    out["state"] = {k: v.detach().cpu().numpy() for k, v in result.arrays.to_torch_state_dict().items()}


def make_deploy_server_app():
    """The ServerApp for Flower's deployment engine (``flwr run``, see ``flower_deploy/pyproject.toml``): the task,
    the rounds and the training settings come from the run config (``num-partitions``, ``num-server-rounds``,
    ``seed``, ``lr``, ``epochs``, ``batch-size``); the final global state is written with ``np.savez`` to the
    run config's ``out`` when it is not empty (an absolute path on the SuperLink's machine)."""
    _offline()
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context):
        cfg = context.run_config
        num_clients, seed = int(cfg["num-partitions"]), int(cfg["seed"])
        model = build_task(num_clients, seed).model()
        initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        config = {"seed": seed, "lr": float(cfg["lr"]), "epochs": int(cfg["epochs"]),
                  "batch-size": int(cfg["batch-size"])}
        out = {}
        _fedavg(grid, initial_state, num_clients=num_clients, rounds=int(cfg["num-server-rounds"]), config=config,
                out=out)
        if str(cfg.get("out", "")):
            target = str(cfg["out"])
            np.savez(target + ".part.npz", **{k: np.asarray(v, dtype=np.float64) for k, v in out["state"].items()})
            os.replace(target + ".part.npz", target)          # whole or absent: a reader never sees half a file

    return app


def __getattr__(name):
    """``client_app`` and ``server_app``, the module-level apps that ``flwr run`` names (PEP 562: built, and flwr
    imported, on first access only, so that this module stays importable without Flower)."""
    if name == "client_app":
        client_app = make_client_app()
        globals()[name] = client_app
        return client_app
    if name == "server_app":
        server_app = make_deploy_server_app()
        globals()[name] = server_app
        return server_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run(num_clients=10, rounds=5, seed=0, *, lr=LR, epochs=EPOCHS, batch_size=BATCH_SIZE,
        cpus_per_client=1.0, verbose=False):
    """Run the Flower simulation; return ``(final_state, timings)`` (state: name -> float64 array)."""
    _offline()
    started = time.perf_counter()
    model = build_task(num_clients, seed).model()
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    built = time.perf_counter()

    from flwr.simulation import run_simulation

    config = {"seed": seed, "lr": float(lr), "epochs": int(epochs),
              "batch-size": int(batch_size)}
    out = {}
    backend_config = {"init_args": {"num_cpus": os.cpu_count() or 1, "num_gpus": 0, "include_dashboard": False,
                                    "logging_level": "error" if not verbose else "info"},
                      "client_resources": {"num_cpus": float(cpus_per_client), "num_gpus": 0.0}}
    launched = time.perf_counter()
    run_simulation(server_app=make_server_app(initial_state, num_clients=num_clients, rounds=rounds, config=config,
                                              out=out),
                   client_app=make_client_app(), num_supernodes=num_clients, backend_config=backend_config,
                   verbose_logging=verbose)
    finished = time.perf_counter()
    if "state" not in out:
        raise RuntimeError("the Flower simulation ended without a final global state (see its log above)")
    ticks = dict(out.get("ticks", []))
    ends = [ticks[r] for r in range(1, rounds + 1) if r in ticks]
    round_seconds = [b - a for a, b in zip([ticks.get(0, launched)] + ends, ends)]
    steady = round_seconds[1:] or round_seconds
    per_round = float(np.mean(steady)) if steady else float("nan")
    timings = {
        "seconds": finished - started,
        # launch of the simulation to the end of round 1, less one steady round: Ray, the actors, their imports
        "startup_seconds": (ends[0] - launched - per_round) if ends else float("nan"),
        "seconds_per_round": per_round,
        "round_seconds": round_seconds,
        "task_seconds": built - started,
        "shutdown_seconds": finished - ends[-1] if ends else float("nan"),
        "rounds": rounds,
        "clients": num_clients,
    }
    state = {k: np.asarray(v, dtype=np.float64) for k, v in out["state"].items()}
    return state, timings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lepton_kit.federated.flower_app",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--cpus-per-client", type=float, default=1.0, help="Ray CPUs per client actor")
    parser.add_argument("--out", default="result.npz", help="the final global state, name -> float64 array")
    parser.add_argument("--verbose", action="store_true", help="Flower's and Ray's full logs")
    args = parser.parse_args(argv)
    state, timings = run(args.clients, args.rounds, args.seed, lr=args.lr,
                         epochs=args.epochs, batch_size=args.batch_size, cpus_per_client=args.cpus_per_client,
                         verbose=args.verbose)
    np.savez(args.out, **state)
    sys.stdout.write(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in timings.items()}
                                | {"round_seconds": [round(s, 4) for s in timings["round_seconds"]]}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # Ray's workers unpickle the apps' functions by module name: run them from the importable module, not __main__.
    from lepton_kit.federated import flower_app

    sys.exit(flower_app.main())
