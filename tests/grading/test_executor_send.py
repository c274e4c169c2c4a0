"""Every write across the sandbox boundary has a deadline: a kernel that stops reading cannot hang the batch."""
from __future__ import annotations

import subprocess
import sys
import time

from lepton_kit.grading.sandbox import Executor, Limits


def test_a_request_to_an_executor_that_never_reads_times_out_instead_of_blocking():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        executor = Executor(proc, backend=None, limits=Limits())
        began = time.monotonic()
        assert executor.send({"op": "run", "code": "x" * (1 << 20)}, timeout=1.0) is False  # 1 MiB > pipe buffer
        assert time.monotonic() - began < 5
        assert executor.send({"op": "run", "code": "1"}, timeout=1.0) in (True, False)  # still answers, never hangs
    finally:
        proc.kill()
        proc.wait()


def test_a_small_request_is_written_whole():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print(len(sys.stdin.readline()))"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    executor = Executor(proc, backend=None, limits=Limits())
    assert executor.send({"op": "run", "code": "y" * 200_000}, timeout=10.0) is True
    lines = list(executor.records(time.monotonic() + 10))
    proc.wait()
    assert int(lines[0]) == len('{"op": "run", "code": ""}\n') + 200_000


def test_the_checker_runs_under_the_kernels_memory_cap(tmp_path):
    """A student's model rebuilt in the checker (or its state) cannot exhaust the grading machine."""
    from lepton_kit.grading.sandbox import start_checker

    checker = start_checker(Limits(memory=3 << 30), tmp_path)
    try:
        limit = None
        for _ in range(100):
            lines = [l for l in open(f"/proc/{checker.proc.pid}/limits") if l.startswith("Max data size")]
            limit = lines[0].split()[3] if lines else None
            if limit == str(3 << 30):
                break
            time.sleep(0.1)
        assert limit == str(3 << 30)
    finally:
        checker.kill()
