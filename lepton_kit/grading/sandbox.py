"""Isolation of one submission: a backend (bubblewrap, or unsandboxed), limits, a bounded pipe to the executor.

The batch chooses its backend once (:func:`backend`) and starts every executor through it.

The executor (:mod:`lepton_kit.grading.executor`) runs in a bubblewrap sandbox with no network, a fresh
PID namespace, a read-only view of the system, the Python environment and ``lepton_kit`` only (no
course folder, gradebook or other student), and one writable, size-limited home. When lepton runs
as root each job slot of each batch gets its own unprivileged uid, so the process limit is per submission.

>>> limits = Limits.from_config({"LeptonAutograde": {"memory": 1 << 30}})
>>> limits.memory, limits.cell_timeout
(1073741824, 600.0)
"""
from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from lepton_kit.tasks import GRADER_FILES
from lepton_kit.utils import thread_env

HOME = "/home/student"
FILES = GRADER_FILES        # the assignment's files, read-only (the kit reads variant.json there)
EXECUTOR = [sys.executable, "-s", "-m", "lepton_kit.grading.executor"]  # with PYTHONSAFEPATH: cwd not on sys.path
BASE_UID = 200000  # as root, job slot s of the batch run by process p runs as uid BASE_UID + 64 (p % 10000) + s


@dataclass
class Limits:
    """Per-submission limits; nbgrader_config.py sets them as ``c.LeptonAutograde.<name>``."""

    cell_timeout: float = 600.0          # seconds of wall time per cell
    notebook_timeout: float = 1800.0     # seconds of wall time per notebook
    memory: int = 2 << 30                # bytes of heap and anonymous memory per process (no swap)
    processes: int = 256                 # processes and threads
    disk: int = 512 << 20                # bytes in the home folder, /tmp and /dev/shm (each)
    output: int = 2 << 20                # bytes of output per notebook
    cell_output: int = 512 << 10         # bytes of output per cell
    interrupt_grace: float = 5.0         # seconds a cell gets to stop after an interrupt
    threads: int = 1                     # BLAS / OpenMP threads (results stay reproducible)
    data: int = 64 << 20                 # bytes of one call's data between the checker and the kernel

    @classmethod
    def from_config(cls, config) -> "Limits":
        section = dict(config.get("LeptonAutograde", {}) or {})
        section.pop("tests_in_kernel", None)  # not a limit: see pipeline.Batch.open
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(section) - set(known)
        if unknown:
            raise ValueError(f"unknown c.LeptonAutograde setting(s): {', '.join(sorted(unknown))}")
        values = {k: (float if known[k] == "float" else int)(v) for k, v in section.items()}
        if "cell_timeout" not in values:
            timeout = (config.get("Execute", {}) or {}).get("timeout")
            if timeout:
                values["cell_timeout"] = float(timeout)
        return cls(**values)


class SandboxUnavailable(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def bwrap_problem() -> str:
    """Why bubblewrap cannot isolate submissions here ("" when it can)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap (bwrap) is not installed"
    cmd = [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap failed to start: {err}"
    return "" if result.returncode == 0 else f"bwrap cannot create namespaces here: {result.stderr.strip()[:300]}"


def require_sandbox() -> None:
    problem = bwrap_problem()
    if problem:
        raise SandboxUnavailable(
            f"{problem}. Student code must not run unisolated: install it (Debian/Ubuntu: "
            "`apt-get install bubblewrap`) or, knowing that student code then runs as you and can read "
            "source/, the gradebook and other submissions, pass --no-sandbox.")


def _namespace_args() -> list:
    if os.getuid() == 0:  # privileged mode: no user namespace, the executor drops to a slot uid itself
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-all"]


def _python_paths() -> list[Path]:
    """What the executor's interpreter needs: the base installation, the environment, lepton_kit."""
    import lepton_kit

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(lepton_kit.__file__).resolve().parent}
    return sorted(p for p in paths if p.exists())


def _data_dir() -> Path | None:
    try:
        from lepton_kit.downloads import cache_dir

        path = cache_dir()
    except Exception:
        return None
    return path if path.is_dir() else None


def bwrap_command(limits: Limits, files: Path, extra_env: dict) -> list:
    """The bubblewrap command line that runs the executor for one submission."""
    args = ["bwrap", *_namespace_args(), "--die-with-parent", "--new-session", "--clearenv"]
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "etc"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    binds = [(str(p), str(p)) for p in _python_paths() if not str(p).startswith("/usr/")]
    data = _data_dir()
    if data:
        binds.append((str(data), str(data)))
        args += ["--setenv", "LEPTON_DATA_DIR", str(data)]
    binds.append((str(files), FILES))
    # scratch file systems first: a bind below /tmp (a clone of the course in /tmp, say) must land on top
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "01777", "--size", str(limits.disk), "--tmpfs", "/tmp",
             "--perms", "01777", "--size", str(limits.disk), "--tmpfs", "/dev/shm"]
    made = set()
    for _, target in binds + [("", HOME)]:
        for parent in reversed(Path(target).parents[:-1]):  # bwrap would create them mode 0700
            if str(parent) not in made and not Path(parent).is_symlink():
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    for source, target in binds:
        args += ["--ro-bind", source, target]
    args += ["--perms", "01777", "--size", str(limits.disk), "--tmpfs", HOME, "--chdir", HOME]
    for key, value in {**executor_env(limits, HOME), **extra_env}.items():
        args += ["--setenv", key, value]
    return args + ["--", *EXECUTOR]


def executor_env(limits: Limits, home: str) -> dict:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": home,
            "TMPDIR": "/tmp" if home == HOME else home, "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "PYTHONSAFEPATH": "1",
            "NBGRADER_EXECUTION": "autograde",
            "IPYTHONDIR": f"{home}/.ipython", "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            "XDG_CACHE_HOME": f"{home}/.cache", "TF_CPP_MIN_LOG_LEVEL": "2", **thread_env(limits.threads),
            "LEPTON_PROGRESS": "0",
            "LEPTON_FILES": FILES if home == HOME else ""}


def _rlimits(limits: Limits, uid: int | None) -> dict:
    processes = limits.processes
    if os.getuid() != 0:  # RLIMIT_NPROC counts every process of this user: leave room for them
        processes += _processes_of(os.getuid())
    elif uid is None:
        processes = None  # root ignores RLIMIT_NPROC
    return {"uid": uid, "memory": limits.memory, "processes": processes, "file_size": limits.disk,
            "cpu_seconds": int(limits.notebook_timeout * 2 + 60), "core": 0, "open_files": 1024,
            "cell_output": limits.cell_output}


class Bubblewrap:
    """The executor in a bubblewrap sandbox (as root: under a uid of its own per job slot)."""

    name = "bubblewrap"

    def start(self, limits: Limits, files: Path, slot: int = 0) -> "Executor":
        uid = BASE_UID + 64 * (os.getpid() % 10000) + slot % 64 if os.getuid() == 0 else None
        read_info, write_info = os.pipe()
        cmd = bwrap_command(limits, files, {"LEPTON_LIMITS": json.dumps(_rlimits(limits, uid))})
        cmd[1:1] = ["--info-fd", str(write_info)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(write_info,), start_new_session=True)
        except OSError:
            os.close(read_info)
            raise
        finally:
            os.close(write_info)
        return Executor(proc, self, limits, _read_child_pid(read_info))

    def kernel_pid(self, executor: "Executor"):
        """The executor's pid: the only child of the sandbox's init."""
        children = _children(executor.init_pid) if executor.init_pid else []
        return children[0] if children else None


class Unsandboxed:
    """The executor as a plain child process: the limits and the guard, no isolation (``--no-sandbox``)."""

    name = "NO SANDBOX"

    def start(self, limits: Limits, files: Path, slot: int = 0) -> "Executor":
        env = {**executor_env(limits, str(files)), "LEPTON_LIMITS": json.dumps(_rlimits(limits, None))}
        proc = subprocess.Popen(EXECUTOR, cwd=files, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        return Executor(proc, self, limits)

    def kernel_pid(self, executor: "Executor"):
        return executor.proc.pid


CHECKER = [sys.executable, "-s", "-m", "lepton_kit.grading.checker"]


def start_checker(limits: Limits, folder: Path) -> "Executor":
    """The trusted checker (:mod:`lepton_kit.grading.checker`): a plain child process, in an empty ``folder``."""
    env = {**os.environ, **thread_env(limits.threads), "MPLBACKEND": "Agg", "LEPTON_PROGRESS": "0",
           "PYTHONSAFEPATH": "1", "NBGRADER_EXECUTION": "autograde", "TF_CPP_MIN_LOG_LEVEL": "2",
           "LEPTON_CHECKER_MEMORY": str(int(limits.memory))}  # the kernel's memory cap: a model it rebuilds is the student's
    env.pop("LEPTON_RECORD_FILE", None)
    proc = subprocess.Popen(CHECKER, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    checker = Executor(proc, Unsandboxed(), limits)
    checker.carry_data()
    return checker


def backend(sandbox: bool | None = None):
    """The batch's backend: bubblewrap unless ``sandbox`` is False (None: unless ``LEPTON_SANDBOX=off``).

    Refuses (:class:`SandboxUnavailable`) when bubblewrap is wanted and cannot isolate here.
    """
    if sandbox is None:
        sandbox = os.environ.get("LEPTON_SANDBOX", "on").lower() not in ("off", "0", "no")
    if not sandbox:
        return Unsandboxed()
    require_sandbox()
    return Bubblewrap()


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += sum(1 for _ in (entry / "task").iterdir()) if entry.stat().st_uid == uid else 0
            except OSError:
                pass
    return count


class Executor:
    """One running executor: send requests, read records, interrupt, kill.

    >>> # ex = Bubblewrap().start(Limits(), files=Path(tmp), slot=0); ex.send({"op": "hello"})
    """

    def __init__(self, proc: subprocess.Popen, backend, limits: Limits, init_pid=None):
        self.proc, self.backend, self.limits, self.init_pid = proc, backend, limits, init_pid
        self.buffer, self.scanned, self.received, self.stderr_tail, self.eof = bytearray(), 0, 0, b"", False
        self.line_cap = limits.cell_output + (1 << 20)  # bytes of one record
        self.budget = 4 * limits.output + 16 * limits.cell_output + (1 << 20)  # bytes of all records
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)

    def carry_data(self) -> None:
        """Records may hold call data (the checker's protocol): larger lines, a larger budget."""
        self.line_cap = max(self.line_cap, self.limits.data * 4 // 3 + (1 << 20))
        self.budget += 32 * self.limits.data

    def send(self, request: dict, timeout: float | None = None) -> bool:
        """Write one request; False when the executor is gone or has not read it within ``timeout``
        (default: the cell time limit). A kernel that stops reading its requests can never block the batch."""
        data = (json.dumps(request) + "\n").encode()
        deadline = time.monotonic() + (self.limits.cell_timeout if timeout is None else timeout)
        try:
            fd = self.proc.stdin.fileno()
            while data:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                _, writable, _ = select.select([], [fd], [], min(left, 1.0))
                if writable:
                    try:
                        data = data[os.write(fd, data):]
                    except BlockingIOError:
                        continue
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def records(self, deadline: float):
        """Yield record lines (str) until ``deadline``; ends early when the executor's output ends.

        Raises :class:`OutputFlood` when the executor sends more than the notebook's output limit.
        """
        out, err = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        budget = self.budget
        while True:
            at = self.buffer.find(b"\n", self.scanned)
            while at >= 0:
                line = bytes(self.buffer[:at])
                del self.buffer[:at + 1]
                self.scanned = 0
                yield line.decode("utf-8", "replace")
                at = self.buffer.find(b"\n")
            self.scanned = len(self.buffer)
            if len(self.buffer) > self.line_cap:
                raise OutputFlood("a single output line exceeded the output limit")
            timeout = deadline - time.monotonic()
            if timeout <= 0 or self.eof:
                return
            ready, _, _ = select.select([out, err], [], [], min(timeout, 1.0))
            if err in ready:
                chunk = _read(err)
                self.stderr_tail = (self.stderr_tail + chunk)[-4096:]
            if out in ready:
                chunk = _read(out)
                if chunk is None:
                    continue
                if not chunk:
                    self.eof = True  # the executor is gone
                    return
                self.received += len(chunk)
                if self.received > budget:
                    raise OutputFlood(f"more than {budget} bytes of output")
                self.buffer += chunk

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_status(self) -> str:
        """How the executor ended, in words."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"killed by {name}"
        return f"exit status {code}"

    def interrupt(self) -> None:
        """SIGINT to the executor (a KeyboardInterrupt in the running cell)."""
        pid = self.backend.kernel_pid(self)
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def kill(self) -> None:
        """End the submission and every process it started."""
        targets = [self.init_pid] if self.init_pid else []
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)  # the PID namespace's init: the kernel kills all its processes
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


class OutputFlood(RuntimeError):
    pass


def _read(fd):
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _read_child_pid(fd: int, timeout: float = 30.0):
    data, deadline = b"", time.monotonic() + timeout
    try:
        while b"}" not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.decode()).get("child-pid")
    except (ValueError, OSError):
        return None
    finally:
        os.close(fd)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
                except (OSError, ValueError, IndexError):
                    pass
        return found
