"""Plan a notebook (main thread), then run the plan: the kernel in its sandbox, the tests in the checker.

The trusted side of :mod:`lepton_kit.grading.executor` and :mod:`lepton_kit.grading.checker`: it
sends the cells one at a time, relays the checker's calls to the kernel and back, enforces the
wall-time and output limits, interrupts or kills what overruns, and takes verdicts from the checker
(or, for assignments whose tests still run in the kernel, from the guard when their signature checks
out). :func:`run` parses nothing, so it is safe in worker threads.

>>> plan({"cells": [{"cell_type": "code", "source": "1 + 1", "metadata": {"nbgrader": {"grade": True}}}]}).cells
[(0, 'test', '__lepton_value__ = (1 + 1)\\n', '__lepton_value__')]
"""
from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading import guard
from lepton_kit.grading.cells import defined_names, done_signal, guarded, imports_of, label, names_of, operation
from lepton_kit.grading.sandbox import Limits, OutputFlood, start_checker

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}


@dataclass
class CellRun:
    outputs: list = field(default_factory=list)
    verdict: bool | None = None   # instructor cells: True when the guard signed a pass
    value: float | None = None    # a test's signed partial-credit value
    why: str = ""
    ran: bool = False


@dataclass
class NotebookRun:
    cells: dict = field(default_factory=dict)  # cell index -> CellRun
    notes: list = field(default_factory=list)
    stopped: str = ""        # why execution ended before the last cell
    failure: str = ""        # the autograder itself failed (not the student's doing)
    seconds: float = 0.0


@dataclass
class Plan:
    """A notebook ready to run: every Python parse already done (in the parent's main thread)."""

    cells: list = field(default_factory=list)    # (index, op, code, value): instructor code guarded
    imports: list = field(default_factory=list)  # modules the instructor's cells use
    labels: dict = field(default_factory=dict)   # index -> the cell as a student finds it
    student_names: list = field(default_factory=list)  # what the release's answer cells define: the student's
    checker: bool = False    # tests run in the trusted checker (ops "setup", "check"), not in the kernel
    kernel_code: dict = field(default_factory=dict)  # index -> the source the kernel runs for a "setup" cell

    def label(self, index) -> str:
        return self.labels.get(index, "before the first cell")


def plan(nb, answer_stubs=(), checker=False) -> Plan:
    """The cells to send and how (parses instructor code: call it from the main thread).

    ``answer_stubs``: the release's answer cells; the names they define belong to the student, so a
    baseline that a locked cell defines under the same name is not put back before each test.

    ``checker``: tests run in the trusted checker. A locked cell runs there too (op ``setup``) when
    every name it reads was bound by instructor code the checker ran before (earlier setup cells and
    tests); one that reads anything else (a student's function, a variable of an unlocked cell) runs
    in the kernel only, and the names it binds become the student's (the checker fetches them). Test
    cells (op ``check``) never reach the kernel.
    """
    result = Plan(student_names=defined_names(answer_stubs), checker=checker)
    student, instructor = set(result.student_names), set()
    for index, cell in enumerate(nb["cells"]):
        op = operation(cell)
        if op is None:
            continue
        code, value = guarded(cell["source"]) if op != "run" else (cell["source"], None)
        if checker and op == "instr":
            free, bound = names_of(code)
            if free - instructor:
                op, code, value = "run", cell["source"], None
                student |= bound
            else:
                op = "setup"
                result.kernel_code[index] = cell["source"]
                instructor |= bound - student
        elif checker and op == "test":
            op = "check"
            instructor |= names_of(code)[1] - student
        result.cells.append((index, op, code, value))
        result.labels[index] = label(cell, index)
    if checker:
        result.student_names = sorted(student)
    result.imports = imports_of([nb["cells"][i]["source"] for i, op, _, _ in result.cells if op != "run"])
    return result


MAX_DEPTH = 32  # nesting of lists and dicts in an output (display metadata, JSON mime bundles)


def _plain(value, depth=0):
    """JSON data safe to write: lone surrogates replaced, nesting cut at MAX_DEPTH, odd types as text.

    >>> _plain({"a": ["\\udcff", 1.5, [[[]]]]}, depth=MAX_DEPTH - 2)
    {'a': ['?', 1.5, '[nested too deep]']}
    """
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        return {_plain(str(k)): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    return _plain(str(value))


def _clean_output(output) -> dict | None:
    """An nbformat output built from untrusted data, or None."""
    output = _plain(output)
    if not isinstance(output, dict) or output.get("output_type") not in OUTPUT_TYPES:
        return None
    kind = output["output_type"]
    if kind == "stream":
        if output.get("name") not in ("stdout", "stderr") or not isinstance(output.get("text"), str):
            return None
        return {"output_type": "stream", "name": output["name"], "text": output["text"]}
    if kind == "error":
        tb = output.get("traceback") if isinstance(output.get("traceback"), list) else []
        return {"output_type": "error", "ename": str(output.get("ename", ""))[:200],
                "evalue": str(output.get("evalue", ""))[:5000], "traceback": [str(t) for t in tb][:200]}
    data = output.get("data")
    if not isinstance(data, dict):
        return None
    clean = {}
    for mime, value in data.items():
        if isinstance(mime, str) and (isinstance(value, str) or mime.endswith("json")):
            clean[mime] = value
        elif isinstance(mime, str) and isinstance(value, list) and all(isinstance(v, str) for v in value):
            clean[mime] = "".join(value)
    metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    result = {"output_type": kind, "data": clean, "metadata": metadata}
    if kind == "execute_result":
        count = output.get("execution_count")
        result["execution_count"] = count if isinstance(count, int) else None
    return result


class _Session:
    """Bookkeeping of one run: outputs per cell within limits, verdicts checked by signature."""

    def __init__(self, limits: Limits, cells: dict, notes: list, name=str):
        self.limits, self.cells, self.notes, self.name = limits, cells, notes, name
        self.key, self.ready, self.nonces, self.current = None, False, {}, None
        self.output_bytes, self.cut, self.tampered, self.forged = 0, set(), False, 0

    def handle(self, line: str):
        """Process one record; returns the index of a finished cell, or None."""
        if line.startswith("LK ") and self.key is None:
            self.key = bytes.fromhex(line.split(" ")[1].strip())
            return None
        if line.startswith(("LV ", "LF ")):
            self._signed(line)
            return None
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        if record.get("t") == "ready":
            self.ready = True
        elif record.get("t") == "o" and record.get("i") in self.cells:
            self._output(record["i"], _clean_output(record.get("o")))
        elif record.get("t") == "done" and record.get("i") == self.current:
            return self.current
        return None

    def _signed(self, line: str) -> None:
        parts = line.rstrip("\n").split(" ")
        kind = parts[0][1]
        try:
            valid = self.key is not None and guard.mac(self.key, kind + "|" + "|".join(parts[1:-1])) == parts[-1]
        except (TypeError, ValueError):
            valid = False
        if not valid:
            self.forged += 1
            return
        if kind == "F":
            why = bytes.fromhex(parts[1]).decode("utf-8", "replace")
            self.notes.append(f"tampering detected during {self.name(self.current)}: {why}; no later test can pass")
            self.tampered = True
        elif kind == "V" and len(parts) == 6 and parts[1] in self.nonces:
            index = self.nonces.pop(parts[1])
            run = self.cells[index]
            run.why = bytes.fromhex(parts[4]).decode("utf-8", "replace")
            if run.why and not run.why.startswith("tampering earlier"):
                self.notes.append(f"{self.name(index)}: {run.why}")
            run.verdict = parts[2] == "1" and not self.tampered
            if run.verdict and parts[3]:
                run.value = float(parts[3])
            if parts[2] == "1" and self.tampered:
                run.why = "tampering earlier in the notebook"

    def _output(self, index: int, output) -> None:
        if output is None:
            return
        size = len(json.dumps(output))
        run = self.cells[index]
        cell_bytes = sum(len(json.dumps(o)) for o in run.outputs)
        if self.output_bytes + size > self.limits.output or cell_bytes + size > self.limits.cell_output:
            if index not in self.cut:
                self.cut.add(index)
                run.outputs.append({"output_type": "stream", "name": "stderr",
                                    "text": "\n[output truncated by the autograder's output limit]\n"})
            return
        self.output_bytes += size
        run.outputs.append(output)


def run(plan: Plan, limits: Limits, files: Path, backend, slot: int = 0, checker_files=()) -> NotebookRun:
    """Execute a planned notebook through ``backend``; never raises for anything the notebook does.

    ``checker_files``: the grader's own files the checker's tests read (the grader's draw of the tasks)."""
    began = time.monotonic()
    result = NotebookRun(cells={index: CellRun() for index, _, _, _ in plan.cells})
    session = _Session(limits, result.cells, result.notes, plan.label)
    deadline = began + limits.notebook_timeout
    checker, folder = None, None
    try:
        executor = backend.start(limits, files, slot=slot)
        if plan.checker:
            folder = tempfile.TemporaryDirectory(prefix="lepton-checker-")
            for path in checker_files:
                shutil.copyfile(path, Path(folder.name) / Path(path).name)
            checker = start_checker(limits, Path(folder.name))
            executor.carry_data()
    except OSError as err:
        result.failure = f"could not start the executor: {err}"
        return result
    try:
        executor.send({"op": "hello", "imports": plan.imports, "student_names": plan.student_names,
                       "packages": sorted({n.split(".")[0] for n in plan.imports})})
        if checker:
            checker.send({"op": "hello", "student_names": plan.student_names})
        for line in executor.records(min(deadline, time.monotonic() + max(120.0, limits.cell_timeout))):
            session.handle(line)
            if session.ready:
                break
        if not (session.ready and session.key):
            result.failure = "the executor did not start: " + executor.stderr_tail.decode("utf-8", "replace")[-500:]
            return result
        if checker and _message(checker, time.monotonic() + 120.0, lambda line: None) != {"t": "ready"}:
            result.failure = "the checker did not start: " + checker.stderr_tail.decode("utf-8", "replace")[-500:]
            return result
        _run_cells(executor, session, plan, limits, deadline, result, checker)
        if not result.stopped:
            executor.send({"op": "bye"})
            for line in executor.records(time.monotonic() + 5):
                session.handle(line)
    except OutputFlood as err:
        result.stopped = f"stopped during {plan.label(session.current)}: {err}"
    finally:
        executor.kill()
        if checker:
            checker.kill()
            folder.cleanup()
    result.notes[:] = list(dict.fromkeys(result.notes))
    if session.forged:
        result.notes.append(f"{session.forged} forged autograder message(s) ignored")
    if result.stopped:
        result.notes.append(result.stopped)
    result.seconds = time.monotonic() - began
    return result


def _run_cells(executor, session, plan, limits, deadline, result, checker=None):
    name = plan.label
    for index, op, code, value in plan.cells:
        if time.monotonic() >= deadline:
            result.stopped = f"the notebook ran past its {limits.notebook_timeout:.0f} s limit before {name(index)}"
            return
        if op == "check":
            session.current = index
            result.cells[index].ran = True
            if not _check(executor, checker, session, index, code, value, limits, deadline, result):
                return
            continue
        if op == "setup":  # the checker runs it too, in its own namespace
            if not checker.send({"op": "instr", "i": index, "code": code}):
                result.stopped = f"the checker was gone before {name(index)}"
                return
            request = {"op": "run", "i": index, "code": plan.kernel_code[index]}
        else:
            request = {"op": op, "i": index, "code": code}
        if op not in ("run", "setup"):
            nonce = secrets.token_hex(8)
            source = code + done_signal(nonce, value)
            request.update(n=nonce, code=source, tag=guard.mac(session.key, f"B|{nonce}|{op}|{source}"))
            session.nonces[nonce] = index
        session.current = index
        result.cells[index].ran = True
        if not executor.send(request, timeout=max(0.0, min(limits.cell_timeout, deadline - time.monotonic()))):
            result.stopped = f"the kernel was gone or stopped reading its requests before {name(index)}"
            return
        cell_deadline = min(time.monotonic() + limits.cell_timeout, deadline)
        if _wait(executor, session, index, cell_deadline):
            if op == "setup" and not _setup_done(checker, index, cell_deadline, result, name):
                return
            continue
        if executor.eof:
            result.stopped = f"the kernel stopped during {name(index)} ({executor.exit_status()})"
            return
        executor.interrupt()
        over = "its" if time.monotonic() < deadline else "the notebook's"
        if _wait(executor, session, index, time.monotonic() + limits.interrupt_grace):
            result.notes.append(f"{name(index)} ran past {over} time limit and was interrupted")
            if op == "setup" and not _setup_done(checker, index, time.monotonic() + limits.cell_timeout, result, name):
                return
            continue
        result.stopped = f"{name(index)} ran past {over} time limit and did not stop when interrupted"
        return


def _wait(executor, session, index, deadline) -> bool:
    for line in executor.records(deadline):
        if session.handle(line) == index:
            return True
    return False


def _message(source, deadline, other):
    """The next call-protocol message (or checker record) from ``source``; ``other(line)`` gets the rest
    (outputs, and the guard's signed lines: a red flag raised inside a call still counts)."""
    for line in source.records(deadline):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            other(line)
            continue
        if isinstance(record, dict) and ("k" in record or record.get("t") in ("ready", "verdict", "done")):
            return record
        other(line)
    return None


def _setup_done(checker, index, deadline, result, name) -> bool:
    """Wait for the checker's copy of a setup cell; False (the notebook stops) when the checker is gone."""
    while True:
        record = _message(checker, deadline, lambda line: None)
        if record is None:
            result.stopped = f"the checker did not finish {name(index)}"
            return False
        if record.get("t") == "done" and record.get("i") == index:
            if record.get("error"):
                result.notes.append(f"{name(index)} failed in the checker: the tests that use it cannot pass")
            return True


def _check(executor, checker, session, index, code, value, limits, deadline, result) -> bool:
    """Run a test in the checker, relaying its calls to the kernel (and the kernel's calls back) until
    the checker's verdict. False when the notebook must stop (a kernel that died or hung, a lost checker)."""
    name, run = session.name, result.cells[index]
    cell_deadline = min(time.monotonic() + limits.cell_timeout, deadline)
    if not checker.send({"op": "test", "i": index, "code": code, "value": value}):
        result.stopped = f"the checker was gone before {name(index)}"
        return False

    def checker_output(line):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return
        if isinstance(record, dict) and record.get("t") == "o":
            session._output(index, _clean_output(record.get("o")))

    side, interrupted = checker, False
    while True:
        other = executor if side is checker else checker
        wait_until = cell_deadline if not interrupted else min(cell_deadline, interrupted)
        record = _message(side, wait_until if side is executor else cell_deadline + limits.interrupt_grace,
                          checker_output if side is checker else session.handle)
        if record is None:
            if side is checker:
                result.stopped = f"the checker did not finish {name(index)} within its time limit"
                return False
            if executor.eof:
                result.stopped = f"the kernel stopped during {name(index)} ({executor.exit_status()})"
                return False
            if interrupted:
                result.stopped = f"{name(index)} ran past its time limit and did not stop when interrupted"
                return False
            executor.interrupt()
            interrupted = time.monotonic() + limits.interrupt_grace
            cell_deadline = max(cell_deadline, interrupted)
            result.notes.append(f"{name(index)} ran past its time limit and was interrupted")
            continue
        if side is checker and record.get("t") == "verdict":
            run.verdict = record.get("ok") is True and not session.tampered
            if record.get("ok") is True and session.tampered:
                run.why = "tampering earlier in the notebook"
            number = record.get("value")
            run.value = float(number) if run.verdict and isinstance(number, (int, float)) \
                and not isinstance(number, bool) else None
            return True
        if record.get("k") not in ("ask", "answer"):
            continue
        forward = {"k": record["k"], "i": index, **{key: record[key] for key in ("q", "ok", "value", "changed", "state", "synced", "error", "type", "where")
                                                     if key in record}}
        if not other.send(forward, timeout=max(0.0, cell_deadline - time.monotonic())):
            result.stopped = f"the {'kernel' if other is executor else 'checker'} stopped reading during {name(index)}"
            return False
        side = other
