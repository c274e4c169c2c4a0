"""The trusted checker: runs hidden tests outside the student's process and computes their verdicts.

``lepton autograde`` starts one per submission next to the sandboxed kernel
(:mod:`lepton_kit.grading.executor`) and relays between them. The checker runs the instructor's setup
cells (those that use no student name) and every test cell in a namespace of its own. A name that
the test uses and the checker does not hold (``linear_forward``, a trained ``model``) is fetched from
the kernel when the test starts: data arrives as data, anything else as a handle whose calls run in
the kernel and return data (:mod:`lepton_kit.grading.wire`). So the test's source, its expected
values and the comparison never enter the student's process, and nothing the student's code does
there can change them.

Protocol, one JSON object a line; stdin: ``{"op": "hello", "student_names": [...]}``, ``{"op":
"instr" | "test", "i": 5, "code": "...", "value": "__lepton_value__"}``, ``{"op": "bye"}`` and the
call protocol's ``{"k": "answer" | "ask", ...}``; stdout: ``{"t": "o", "i": 5, "o": <output>}``,
``{"t": "done", "i": 5, "error": "..."}`` (setup), ``{"t": "verdict", "i": 5, "ok": true, "value":
0.5}`` (tests), ``{"t": "ready"}`` and the call protocol's messages.

    python -s -m lepton_kit.grading.checker
"""
from __future__ import annotations

import ast
import builtins
import functools
import importlib
import json
import os
import sys
import traceback

from lepton_kit.grading.cells import free_names
from lepton_kit.grading.executor import Channel, Stream
from lepton_kit.grading.wire import Disconnected, Peer, Remote, dumps

# Kit functions that train a model: on a student's own model class (a handle) they run in the kernel, where
# the model lives; evaluate and predict stay here and call the model's forward across the boundary.
IN_THE_KERNEL = ("lepton_kit.train.fit",)
_kit_check_own_work = None  # lepton_kit.checks.check_own_work as imported, before serve() points it here


PUSH = "__lepton_push__"


def pushing(code: str, names, filename: str):
    """``code`` compiled so that every top-level statement binding one of ``names`` sends the new value to
    the kernel right after it (``def mlp_forward(...)`` in a test replaces the student's function there too).

    >>> ns = {PUSH: lambda name, value: print("push", name, value)}
    >>> exec(pushing("x = 1\\ntry:\\n    f = 2\\nfinally:\\n    g = 3", {"f", "x"}, "<t>"), ns)
    push x 1
    push f 2
    """
    tree = ast.parse(code)

    def bound(stmt):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return {stmt.name}
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        return set()

    def rewrite(body):
        out = []
        for stmt in body:
            for field in ("body", "orelse", "finalbody"):
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)) \
                        and isinstance(getattr(stmt, field, None), list):
                    setattr(stmt, field, rewrite(getattr(stmt, field)))
            if isinstance(stmt, ast.Try):
                for handler in stmt.handlers:
                    handler.body = rewrite(handler.body)
            out.append(stmt)
            for name in sorted(bound(stmt) & set(names)):
                out.append(ast.Expr(ast.Call(ast.Name(PUSH, ast.Load()), [ast.Constant(name), ast.Name(name, ast.Load())], [])))
        return out

    tree.body = rewrite(tree.body)
    return compile(ast.fix_missing_locations(tree), filename, "exec", dont_inherit=True)


def check_own_work(func, forbidden, name=None):
    """:func:`lepton_kit.checks.check_own_work` for a student's function that lives in the kernel: the
    kernel reports the names its code uses and the modules they are bound to, the decision is made here."""
    if type(func) is not Remote:
        return _kit_check_own_work(func, forbidden, name)
    info = func.__lepton_names__()
    forbidden = (forbidden,) if isinstance(forbidden, str) else tuple(forbidden)
    name = name or info.get("name", "the function")

    def banned(module):
        return isinstance(module, str) and any(module == f or module.startswith(f + ".") for f in forbidden)

    for used in info.get("names", []):
        if banned(used):
            raise AssertionError(f"{name} imports {used}: write it yourself, this exercise is about how it works")
        module = info.get("modules", {}).get(used)
        if banned(module):
            raise AssertionError(f"{name} uses {used} from {module}: write it yourself, "
                                 "this exercise is about how it works")


def _plain_number(value):
    import numbers

    if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__module__ in (
            "builtins", "numpy"):
        return float(value)
    return None


class Checker:
    def __init__(self, channel: Channel, reader, streams):
        self.channel, self.reader, self.streams = channel, reader, streams
        self.ns = {"__name__": "__main__", "__builtins__": builtins}
        self.student = set()  # names that always come from the kernel
        self.peer = Peer(send=self._send, receive=self._receive, before_answer=self.flush, trusted=True)

    def _send(self, message):
        self.flush()
        line = (dumps(message) + "\n").encode()
        while line:
            line = line[os.write(self.channel.fd, line):]

    def _receive(self):
        line = self.reader.readline()
        return json.loads(line) if line else None

    def _in_the_kernel(self, path, kit_function):
        """``kit_function`` as the tests call it: on a student's object (a handle: a model of the student's own
        class), the kernel's copy of the kit runs it; on the checker's own objects, it runs here."""
        peer = self.peer

        @functools.wraps(kit_function)
        def run(*args, **kwargs):
            if any(type(a) is Remote for a in (*args, *kwargs.values())):
                return peer.call({"kit": path}, args, kwargs)
            return kit_function(*args, **kwargs)

        return run

    def _push(self, name, value):
        """A test rebinds a student's name (a spy around ``mlp_forward``): the kernel's namespace gets it too."""
        self.peer.request({"op": "set", "name": name, "value": self.peer.encode(value)})

    def flush(self):
        for stream in self.streams:
            stream.flush()

    def _error(self):
        etype, err, tb = sys.exc_info()
        frames = [f for f in traceback.extract_tb(tb) if not f.filename.endswith(("wire.py", "checker.py"))]
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
                 *(["In the notebook's code:\n", *[line + "\n" for line in err.where]] if getattr(err, "where", None)
                   else []),
                 *traceback.format_exception_only(etype, err)]
        self.flush()
        self.channel.output({"output_type": "error", "ename": etype.__name__, "evalue": str(err)[:5000],
                             "traceback": [line.rstrip("\n") for line in lines][-40:]})

    def run(self, request) -> dict:
        op, code = request.get("op"), request.get("code", "")
        self.channel.start(request.get("i"))
        self.peer.reset()
        fetched = {}
        try:
            compiled = compile(code, f"<cell {request.get('i')}>", "exec", dont_inherit=True)
            if op == "test":
                loaded = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
                wanted = sorted(n for n in free_names(code) | (loaded & self.student)
                                if n not in self.ns or n in self.student)
                if wanted:
                    fetched = self.peer.request({"op": "get", "names": wanted})
                    self.ns.update(fetched)
                compiled = pushing(code, self.student, f"<cell {request.get('i')}>")
                self.ns[PUSH] = self._push
            # with torch in the tests' namespace, a function handed to a student's function goes by value
            self.peer.functions_by_value = self.ns.get("torch") is sys.modules.get("torch") is not None
            exec(compiled, self.ns)
            value = self.ns.pop(request.get("value") or "__lepton_value__", None)  # before the names are forgotten
        except BaseException as err:  # noqa: BLE001 (a failing test is a verdict, not a crash)
            self._error()
            if isinstance(err, Disconnected):  # the kernel is gone: the parent reports it
                raise
            return {"ok": False}
        finally:
            for name in self.student:
                self.ns.pop(name, None)
            for name, obj in fetched.items():  # read afresh by the next test, unless this one rebound it
                if name in self.ns and self.ns[name] is obj:
                    del self.ns[name]
            self.flush()
        return {"ok": True, "value": _plain_number(value)}

    def serve(self) -> None:
        while True:
            request = self._receive()
            if request is None or request.get("op") == "bye":
                return
            if request.get("op") == "hello":
                self.student = set(request.get("student_names", []))
                global _kit_check_own_work
                import lepton_kit.checks

                if _kit_check_own_work is None:  # the tests' check_own_work also takes a Remote function
                    _kit_check_own_work, lepton_kit.checks.check_own_work = lepton_kit.checks.check_own_work, check_own_work
                for path in IN_THE_KERNEL:
                    module, _, name = path.rpartition(".")
                    module = importlib.import_module(module)
                    if not hasattr(getattr(module, name), "__wrapped__"):
                        setattr(module, name, self._in_the_kernel(path, getattr(module, name)))
                self._send({"t": "ready"})
            elif request.get("op") == "instr":
                outcome = self.run(request)
                self._send({"t": "done", "i": request.get("i"), **({} if outcome["ok"] else {"error": "failed"})})
            elif request.get("op") == "test":
                self._send({"t": "verdict", "i": request.get("i"), **self.run(request)})


def main() -> int:
    memory = os.environ.get("LEPTON_CHECKER_MEMORY", "")
    if memory.isdigit():  # a student's model rebuilt here (or its state) must not exhaust the grading machine
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (int(memory), int(memory)))
    records, requests = os.dup(1), os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    channel = Channel(records, 1 << 20)
    streams = [Stream("stdout", channel, 1), Stream("stderr", channel, 2)]
    sys.stdout, sys.stderr = streams
    Checker(channel, os.fdopen(requests, "r", encoding="utf-8"), streams).serve()
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
