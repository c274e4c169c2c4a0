"""Run one prepared notebook in a sandboxed executor and collect its outputs and signed verdicts.

The trusted side of :mod:`lepton_kit.grading.executor`: it sends the cells one at a time (hidden tests
reach the sandbox only when their cell runs), enforces the wall-time and output limits, interrupts
or kills what overruns, and keeps the guard's verdicts only when their signature checks out.

>>> roles({"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "grade_id": "t"}}})
'test'
"""
from __future__ import annotations

import ast
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading import guard
from lepton_kit.grading.sandbox import Executor, Limits, OutputFlood

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


def roles(cell) -> str | None:
    """How a cell runs: ``test`` and ``instr`` through the guard, ``run`` as student code."""
    if cell.get("cell_type") != "code":
        return None
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution"):
        return "run"
    if meta.get("grade"):
        return "test"
    if meta.get("locked"):
        return "instr"
    return "run"


def label(nb, index) -> str:
    """A cell as a student can find it: its grade_id, else its position."""
    if index is None or not 0 <= index < len(nb["cells"]):
        return "before the first cell"
    grade_id = nb["cells"][index].get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"cell {grade_id}" if grade_id else f"cell {index + 1}"


def _python(code: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(code)
    except Exception:
        return code


def guarded_source(code: str, nonce: str) -> str:
    """An instructor cell as the guard runs it: its last expression kept, then the done signal."""
    source = _python(code)
    value = "None"
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    if tree and tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = tree.body[-1]
        lines = source.splitlines(True)
        start, end = last.lineno - 1, last.end_lineno - 1
        text = ast.get_source_segment(source, last)
        head, tail = lines[start][:last.col_offset], lines[end][last.end_col_offset:]
        lines[start:end + 1] = [f"{head}__lepton_value__ = ({text}){tail}"]
        source, value = "".join(lines), "__lepton_value__"
    if not source.endswith("\n"):
        source += "\n"
    return source + f"__lepton_audit__('lepton.done', {nonce!r}, {value})\n"


def imports_of(codes) -> list[str]:
    """Modules that instructor cells use, lazily loaded submodules included (``np.random.x``).

    The executor imports them before any student code runs, so the guard protects them.
    """
    names, aliases, chains = set(), {}, set()
    for code in codes:
        try:
            tree = ast.parse(_python(code))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names.add(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                for alias in node.names:
                    names.add(f"{node.module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Attribute):
                parts = []
                while isinstance(node, ast.Attribute):
                    parts.insert(0, node.attr)
                    node = node.value
                if isinstance(node, ast.Name):
                    chains.add((node.id, tuple(parts)))
    for base, parts in chains:
        if base in aliases:
            for i in range(1, len(parts)):
                names.add(".".join([aliases[base], *parts[:i]]))
    return sorted(names)


def _clean_output(output) -> dict | None:
    """An nbformat output built from untrusted data, or None."""
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
        except ValueError:
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


def run_notebook(nb, limits: Limits, files: Path, slot: int = 0, sandboxed: bool = True) -> NotebookRun:
    """Execute the code cells of a canonical notebook; never raises for anything the notebook does."""
    began = time.monotonic()
    plan = [(i, roles(c), c["source"]) for i, c in enumerate(nb["cells"]) if roles(c)]
    result = NotebookRun(cells={i: CellRun() for i, _, _ in plan})
    instructor = [code for _, op, code in plan if op != "run"]
    imports = imports_of(instructor)
    session = _Session(limits, result.cells, result.notes, lambda i: label(nb, i))
    deadline = began + limits.notebook_timeout
    try:
        executor = Executor.start(limits, files, slot=slot, sandboxed=sandboxed)
    except OSError as err:
        result.failure = f"could not start the executor: {err}"
        return result
    try:
        executor.send({"op": "hello", "imports": imports, "packages": sorted({n.split(".")[0] for n in imports})})
        for line in executor.records(min(deadline, time.monotonic() + max(120.0, limits.cell_timeout))):
            session.handle(line)
            if session.ready:
                break
        if not (session.ready and session.key):
            result.failure = "the executor did not start: " + executor.stderr_tail.decode("utf-8", "replace")[-500:]
            return result
        _run_cells(executor, session, plan, limits, deadline, result, lambda i: label(nb, i))
        if not result.stopped:
            executor.send({"op": "bye"})
            for line in executor.records(time.monotonic() + 5):
                session.handle(line)
    except OutputFlood as err:
        result.stopped = f"stopped during {label(nb, session.current)}: {err}"
    finally:
        executor.kill()
    result.notes[:] = list(dict.fromkeys(result.notes))
    if session.forged:
        result.notes.append(f"{session.forged} forged autograder message(s) ignored")
    if result.stopped:
        result.notes.append(result.stopped)
    result.seconds = time.monotonic() - began
    return result


def _run_cells(executor, session, plan, limits, deadline, result, name):
    for index, op, code in plan:
        if time.monotonic() >= deadline:
            result.stopped = f"the notebook ran past its {limits.notebook_timeout:.0f} s limit before {name(index)}"
            return
        request = {"op": op, "i": index, "code": code}
        if op != "run":
            nonce = secrets.token_hex(8)
            source = guarded_source(code, nonce)
            request.update(n=nonce, code=source, tag=guard.mac(session.key, f"B|{nonce}|{op}|{source}"))
            session.nonces[nonce] = index
        session.current = index
        result.cells[index].ran = True
        if not executor.send(request):
            result.stopped = f"the kernel was gone before {name(index)}"
            return
        cell_deadline = min(time.monotonic() + limits.cell_timeout, deadline)
        if _wait(executor, session, index, cell_deadline):
            continue
        if executor.eof:
            result.stopped = f"the kernel stopped during {name(index)} ({executor.exit_status()})"
            return
        executor.interrupt()
        over = "its" if time.monotonic() < deadline else "the notebook's"
        if _wait(executor, session, index, time.monotonic() + limits.interrupt_grace):
            result.notes.append(f"{name(index)} ran past {over} time limit and was interrupted")
            continue
        result.stopped = f"{name(index)} ran past {over} time limit and did not stop when interrupted"
        return


def _wait(executor, session, index, deadline) -> bool:
    for line in executor.records(deadline):
        if session.handle(line) == index:
            return True
    return False
