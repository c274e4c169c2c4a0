"""Beyond one machine (issue 12): the same ClientApp/ServerApp as the simulation parity test, under Flower 1.42's
*deployment* engine: a SuperLink and two SuperNodes as separate processes on 127.0.0.1 (insecure: loopback only),
the run submitted with ``flwr run`` (the app project is ``lepton_kit/federated/flower_deploy``), and its final global
weights equal to the kit's ``simulate`` on the same task (2 clients, every client every round, 3 rounds).

Everything Flower writes goes to a temporary folder (``FLWR_HOME`` and the processes' working folder); every process
is stopped in a ``finally`` (process groups, SIGTERM then SIGKILL, then whatever still carries this run's marker in its
environment: the SuperLink starts its SuperExec and ServerApp in sessions of their own), and the test checks that no
child, no marked process and no listening port is left. Without ``.venv-flower`` it skips (fails under ``CI``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWER_BIN = ROOT / ".venv-flower" / "bin"
APP = ROOT / "lepton_kit" / "federated" / "flower_deploy"
CLIENTS, ROUNDS, SEED = 2, 3, 0
MARK = "LEPTON_FLOWER_DEPLOY"       # in every process's environment: what they start inherits it
BUDGET_S = 120                      # the whole test: start-up, the run and the shutdown
READY_S = 40                        # the three processes listening

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]


def flower_bin_or_skip() -> Path:
    """``.venv-flower/bin``; a skip with the reason locally, a failure when ``CI`` is set."""
    why = ""
    for tool in ("flower-superlink", "flower-supernode", "flower-superexec", "flwr"):
        if not (FLOWER_BIN / tool).exists():
            why = f"Flower's virtualenv lacks {(FLOWER_BIN / tool).relative_to(ROOT)}: make flower"
            break
    if why:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI: {why}", pytrace=False)
        pytest.skip(why)
    return FLOWER_BIN


def free_ports(n):
    """``n`` distinct loopback ports that are free now (the OS picks them; closed again before use)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _live(proc):
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cmdline(proc):
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def marked(token):
    """pid -> psutil.Process of every live process whose environment carries ``MARK=token``."""
    found = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) == token and _live(proc):
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return found


def own_children():
    """pid -> command line of every live descendant of this process."""
    return {p.pid: cmdline(p)[:160] for p in psutil.Process().children(recursive=True) if _live(p)}


def leftovers(token, ports, children_before=()):
    return {
        "children": {pid: c for pid, c in own_children().items() if pid not in children_before},
        "marked": {pid: cmdline(p)[:160] for pid, p in marked(token).items()},
        "ports": [port for port in ports if listening(port)],
    }


def stop_all(procs, token, ports, children_before, grace=10.0):
    """SIGTERM to every process group, SIGKILL to what is left after ``grace`` s, then the same to every process
    still carrying the marker; returns what is left after that (see :func:`leftovers`)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for proc in procs.values():
            try:
                os.killpg(proc.pid, sig)             # each was started in a session (and group) of its own
            except (ProcessLookupError, PermissionError):
                pass
        stray = list(marked(token).values())          # the SuperExec and the app processes: sessions of their own
        for proc in stray:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        psutil.wait_procs(stray, timeout=max(0.1, deadline - time.monotonic()))
        if not any(proc.poll() is None for proc in procs.values()) and not marked(token):
            break
    deadline = time.monotonic() + 5                   # ports and zombies of grandchildren: a moment to clear
    while any((left := leftovers(token, ports, children_before)).values()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


def flwr_dir_state():
    """``~/.flwr``'s files and their modification times (``None`` when it does not exist)."""
    home = Path.home() / ".flwr"
    if not home.exists():
        return None
    return sorted((str(p.relative_to(home)), p.stat().st_mtime_ns) for p in home.rglob("*"))


def tails(work, names, n=2500):
    out = []
    for name in names:
        path = work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        out.append(f"--- {name}.log (last {n} chars) ---\n{text[-n:]}")
    return "\n".join(out)


def run_log(bin_dir, run_id, work, env, n=4000):
    """The run's own log (the ServerApp's output, tracebacks included), as ``flwr log --show`` prints it."""
    try:
        shown = subprocess.run([str(bin_dir / "flwr"), "log", str(run_id), "lepton-local", "--show"], cwd=work,
                               env=env, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                               start_new_session=True)
        return (shown.stdout + shown.stderr)[-n:]
    except subprocess.TimeoutExpired:
        return "(flwr log --show timed out)"


def kit_final_state():
    from lepton_kit.federated import FedAvg, simulate
    from lepton_kit.federated.flower_app import BATCH_SIZE, EPOCHS, LR
    from lepton_kit.federated.task import mnist1d_task

    task = mnist1d_task(num_clients=CLIENTS, seed=SEED, split="iid", dtype="float64")
    model = task.model()
    start = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    simulate(model, (task.x, task.y), task.parts, FedAvg(lr=LR, epochs=EPOCHS, batch_size=BATCH_SIZE),
             rounds=ROUNDS, fraction=1.0, seed=SEED, progress=False, vectorize=False)
    return start, {k: v.detach().numpy() for k, v in model.state_dict().items()}


def test_flower_deployment_fedavg_matches_kit_simulate(tmp_path):
    bin_dir = flower_bin_or_skip()
    app_files = sorted(p.name for p in APP.iterdir())
    home_flwr = flwr_dir_state()
    children_before = own_children()             # e.g. a resource tracker an earlier test in this worker started
    began = time.monotonic()
    deadline = began + BUDGET_S - 15                  # leaves the shutdown its time inside the budget
    work = tmp_path / "work"
    flwr_home = tmp_path / "flwr-home"
    work.mkdir()
    flwr_home.mkdir()
    result = tmp_path / "result.npz"
    link_port, *node_ports = free_ports(1 + CLIENTS)
    ports = [link_port, *node_ports]
    (flwr_home / "config.toml").write_text(
        '[superlink]\ndefault = "lepton-local"\n\n'
        f'[superlink.lepton-local]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n', encoding="utf-8")
    token = uuid.uuid4().hex
    env = {**os.environ, MARK: token, "FLWR_HOME": str(flwr_home), "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_DISABLE_UPDATE_CHECK": "1", "PYTHONWARNINGS": "ignore",
           # one MNIST-1D per test, not one per flwr-clientapp process (a new one for every message)
           "LEPTON_FLOWER_TASK_CACHE": str(tmp_path / "task-cache"),
           # the SuperLink and the SuperNodes start flower-superexec / flwr-serverapp / flwr-clientapp by name
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VIRTUAL_ENV", None)
    commands = {
        "superlink": [str(bin_dir / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                      "--port", str(link_port), "--disable-runtime-dependency-installation"],
        **{f"supernode-{i}": [str(bin_dir / "flower-supernode"), "--insecure",
                              "--superlink", f"127.0.0.1:{link_port}", "--host", "127.0.0.1", "--port", str(port),
                              "--node-config", f"partition-id={i} num-partitions={CLIENTS}"]
           for i, port in enumerate(node_ports)},
    }
    port_of = {"superlink": link_port, **{f"supernode-{i}": p for i, p in enumerate(node_ports)}}
    procs, logs, figures = {}, [], {}
    try:
        for name, command in commands.items():
            log = open(work / f"{name}.log", "wb")
            logs.append(log)
            procs[name] = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        launched = time.monotonic()
        pending = dict(port_of)
        while pending:
            for name in list(pending):
                if procs[name].poll() is not None:
                    pytest.fail(f"{name} exited ({procs[name].returncode}) while starting:\n"
                                f"{tails(work, [name])}", pytrace=False)
                if listening(pending[name]):
                    figures[f"{name}_ready_s"] = round(time.monotonic() - launched, 2)
                    del pending[name]
            if pending and time.monotonic() > min(launched + READY_S, deadline):
                pytest.fail(f"not listening after {READY_S} s: {sorted(pending)}\n{tails(work, commands)}",
                            pytrace=False)
            time.sleep(0.2)

        submitted = time.monotonic()
        run = subprocess.run([str(bin_dir / "flwr"), "run", str(APP), "lepton-local", "--format", "json",
                              "--run-config", f'out="{result}"'],
                             cwd=work, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=max(5.0, deadline - time.monotonic()), start_new_session=True)
        assert run.returncode == 0, f"flwr run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        answer = json.loads(run.stdout[run.stdout.index("{"):])
        assert answer["success"], answer
        figures["flwr_run_submit_s"] = round(time.monotonic() - submitted, 2)

        server_seen, server_gone = False, None
        while not result.exists():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited ({proc.returncode}) during the run:\n{tails(work, commands)}",
                                pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no final state from run {answer['run-id']} after {time.monotonic() - began:.0f} s"
                            f"\n{tails(work, commands)}", pytrace=False)
            # the ServerApp's process ended without writing the state: the run failed, no need to wait for the deadline
            server_up = any("flwr-serverapp" in cmdline(p) for p in marked(token).values())
            server_seen |= server_up
            server_gone = None if server_up else (server_gone or time.monotonic())
            if server_seen and server_gone and time.monotonic() - server_gone > 3 and not result.exists():
                pytest.fail(f"run {answer['run-id']}: the ServerApp ended without a final state; its log:\n"
                            f"{run_log(bin_dir, answer['run-id'], work, env)}\n{tails(work, commands)}",
                            pytrace=False)
            time.sleep(0.5)
        figures["run_s"] = round(time.monotonic() - submitted, 2)
        with np.load(result) as saved:
            flower_state = {name: saved[name] for name in saved.files}
    finally:
        stopping = time.monotonic()
        left = stop_all(procs, token, ports, children_before)
        figures["shutdown_s"] = round(time.monotonic() - stopping, 2)
        for log in logs:
            log.close()
        if any(left.values()):
            message = f"processes or ports left behind by the deployment run: {left}"
            if sys.exc_info()[0] is None:
                pytest.fail(message, pytrace=False)
            print(message)

    kit_began = time.monotonic()
    start, kit_state = kit_final_state()
    figures["kit_simulate_s"] = round(time.monotonic() - kit_began, 2)
    assert sorted(flower_state) == sorted(kit_state)
    for name, value in kit_state.items():
        assert flower_state[name].dtype == np.float64 and value.dtype == np.float64
        assert flower_state[name].shape == value.shape
    moved = max(float(np.abs(kit_state[k] - start[k]).max()) for k in kit_state)
    assert moved > 1e-3, "training did not move the weights: the comparison would prove nothing"
    diff = max(float(np.abs(flower_state[k] - kit_state[k]).max()) for k in kit_state)
    figures["total_s"] = round(time.monotonic() - began, 2)
    print(f"\nFlower deployment vs kit: max |diff| = {diff:.3g}; {json.dumps(figures)}")
    assert diff <= 1e-6, f"Flower's deployment engine and the kit differ by {diff:.3g} after {ROUNDS} rounds"
    assert figures["total_s"] <= BUDGET_S, f"the deployment test took {figures['total_s']} s (budget {BUDGET_S} s)"
    assert sorted(p.name for p in APP.iterdir()) == app_files, "flwr run wrote into the app folder"
    assert home_flwr == flwr_dir_state(), "Flower wrote into ~/.flwr despite FLWR_HOME"
