"""Hostile and faulty submissions of the bench assignment, each with the grade it must get.

    python autograder/corpus.py OUT     # writes OUT/<student>/bench/bench.ipynb and OUT/expected.json

Every case starts from the honest solution and changes one thing: a cheat from autograder/README.md
(IPython hooks, patched checkers, fake numbers, reading hidden tests, writing grades, network), a
submission that kills, hangs or floods its kernel, tampered structure or metadata, or a file that is
not a notebook. ``scores`` is the exact autograded score of each test cell (test_relu: 1 point,
test_softmax: 2, test_mse: 1). tests/grading/test_autograder_corpus.py grades the whole corpus in one
``lepton autograde`` batch, next to honest students whose grades must not change.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "autograder" / "bench"
ASSIGNMENT = "bench"
TESTS = ("test_relu", "test_softmax", "test_mse")
FULL = {"test_relu": 1.0, "test_softmax": 2.0, "test_mse": 1.0}

WRONG_RELU = "def relu(z):\n    return np.abs(z)\n"
HONEST_SURROGATES = ("name = b'caf\\xe9.txt'.decode('utf-8', 'surrogateescape')  # a file name that is not UTF-8\n"
                     "print('reading', name)\n")
DEEP_METADATA = ("from IPython.display import display\n\nnested = leaf = {}\nfor _ in range(600):\n"
                 "    leaf['a'] = {}\n    leaf = leaf['a']\n"
                 "display({'text/plain': 'deep'}, raw=True, metadata={'deep': nested})\n")
HONEST_MP_VALUE = ("import multiprocessing\n\ncounter = multiprocessing.Value('i', 0)\n"
                   "weights = multiprocessing.Array('d', 3)\ncounter.value += 1\n")
POSING_REBUILD = ("import ctypes\nimport multiprocessing.sharedctypes as shared\n\n"
                  "class Peek(ctypes.c_char * 8):\n    @classmethod\n    def from_buffer(cls, buf):\n"
                  "        return cls.from_address(id(buf))\n\n\n"
                  "class Wrapper:\n    def create_memoryview(self):\n        return memoryview(bytearray(8))\n\n\n"
                  "shared.rebuild_ctype(Peek, Wrapper(), None)\n")
LEAK_BASE64 = ("import base64\nimport sys\n\n\ndef relu(z):\n    consts = repr(sys._getframe(1).f_code.co_consts)\n"
               "    print('LEAKED', base64.b64encode(consts.encode()).decode())\n    return np.maximum(z, 0.0)\n")
HONEST_INLINE_PLOT = ("%matplotlib inline\nimport matplotlib.pyplot as plt\n\n"
                      "plt.plot([0, 1], [1, 0])\nplt.title('a figure in the answer cell')\nplt.show()\n")
WRONG_SOFTMAX = "def softmax(z):\n    raise NotImplementedError()\n"
# The review's forged passes (issue 8, section 1): each broke a design that ran the tests in the
# kernel. With the tests in the checker process, each one is a wrong answer and scores as one.
REEXEC_LYING_NAMES = """
import sys

class Yes:
    def __eq__(self, other): return True
    def __bool__(self): return True
    def __call__(self, *args, **kwargs): return self
    def __getattr__(self, name): return self
    def __iter__(self): return iter(())
    def __float__(self): return 0.0

class Lying(dict):
    def __missing__(self, key): return Yes()

def relu(z):
    frame = sys._getframe(1)
    while frame is not None and not getattr(relu, "busy", False):
        relu.busy = True
        try:
            exec(frame.f_code, frame.f_globals, Lying())  # run the caller again, every missing name lies
        except BaseException:
            pass
        relu.busy = False
        frame = frame.f_back
    return np.abs(z)
"""
SECOND_AUDIT_HOOK = """
import sys

seen = []

def spy(event, args):
    if len(seen) < 200 and event in ("lepton.begin", "lepton.done", "object.__getattr__", "exec", "compile"):
        frame = sys._getframe(1)
        seen.append((event, sorted(frame.f_locals)[:20]))
        for line in frame.f_locals.values():
            if isinstance(line, str) and line.startswith("LV "):
                print(line)  # replay anything that looks like a signed verdict

sys.addaudithook(spy)
"""
FINALIZER_IN_GUARD = """
import sys

class Reach:
    def __del__(self):
        frame = sys._getframe(1)
        while frame is not None:
            for value in list(frame.f_locals.values()):
                if isinstance(value, bytes) and len(value) == 32:
                    print("KEY", value.hex())
            frame = frame.f_back

def relu(z, _bait=None):
    return np.abs(z)

relu.__defaults__ = (Reach(),)
"""
RAW_MEMORY = """
import ctypes
import gc

def relu(z):
    for obj in list(sys.modules.values())[:50]:
        pointer = ctypes.cast(id(obj), ctypes.POINTER(ctypes.py_object))
        try:
            pointer[0]
        except Exception:
            pass
    return np.abs(z)

import sys
"""
LYING_MODULE_CLASS = """
import math
import types

import numpy
import numpy.testing

class Lying(types.ModuleType):
    def __getattribute__(self, name):
        if name in ("allclose", "isclose", "array_equal", "assert_allclose", "isfinite", "all"):
            return lambda *args, **kwargs: True
        return super().__getattribute__(name)

for module in (numpy, numpy.testing, math):
    module.__class__ = Lying
"""
PATCH_AND_PUT_BACK = """
import lepton_kit.checks as checks

original_close, calls = checks.check_close, [0]

def softmax(z):
    calls[0] += 1
    if calls[0] % 2:
        checks.check_close = lambda *args, **kwargs: None  # patched for the first call ...
    else:
        checks.check_close = original_close                # ... and put back by the second
    return np.full_like(np.asarray(z, dtype=float), 0.5)
"""
DISPATCHER_CODE = """
import numpy

always = (lambda a, b, rtol=1e-05, atol=1e-08, equal_nan=False: True).__code__
for name in ("allclose", "isclose", "array_equal"):
    implementation = getattr(numpy, name)
    target = getattr(implementation, "_implementation", None) or getattr(implementation, "__wrapped__", None)
    if target is not None:
        try:
            target.__code__ = always.replace(co_name=target.__code__.co_name)
        except (TypeError, ValueError):
            pass
"""
WRONG_MSE = "def mse(y, t):\n    return 0.0\n"


@dataclass
class Case:
    student: str
    what: str
    build: Callable      # honest notebook (dict, a copy) -> notebook dict, or bytes for a raw file
    scores: tuple        # points of test_relu, test_softmax, test_mse
    note: str = ""       # a phrase the student's notes or failure reason must contain
    failed: bool = False  # the submission cannot be graded (reported as failed)
    files: Callable | None = None  # adds files to the student's folder (after the notebook is written)
    escapes: bool = False  # only the sandbox keeps it from the course, the network or the grader (skipped without)

    @property
    def expected(self) -> dict:
        return dict(zip(TESTS, map(float, self.scores)))


# --- editing helpers ------------------------------------------------------------------------------

def _cell(nb, grade_id):
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def answer(grade_id: str, code: str, keep=False) -> Callable:
    """Replace (or, with ``keep``, prefix) the answer in a solution cell."""
    def edit(nb):
        cell = _cell(nb, grade_id)
        cell["source"] = code + ("\n" + cell["source"] if keep else "")
        return nb
    return edit


def after(grade_id: str, code: str) -> Callable:
    def edit(nb):
        cell = _cell(nb, grade_id)
        cell["source"] = cell["source"] + "\n" + code
        return nb
    return edit


def chain(*edits) -> Callable:
    def edit(nb):
        for e in edits:
            nb = e(nb)
        return nb
    return edit


def cheat(code: str) -> Callable:
    """The cheat in the relu cell, with wrong relu and softmax and an honest mse."""
    return chain(answer("relu_solution", code + "\n\n" + WRONG_RELU), answer("softmax_solution", WRONG_SOFTMAX))


def meta(target: str, **changes) -> Callable:
    def edit(nb):
        _cell(nb, target)["metadata"]["nbgrader"].update(changes)
        return nb
    return edit


def drop(*grade_ids) -> Callable:
    def edit(nb):
        nb["cells"] = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                       not in grade_ids]
        return nb
    return edit


def duplicate(grade_id: str, times=2) -> Callable:
    def edit(nb):
        i = nb["cells"].index(_cell(nb, grade_id))
        nb["cells"][i:i] = [copy.deepcopy(nb["cells"][i]) for _ in range(times)]
        return nb
    return edit


def split(grade_id: str) -> Callable:
    def edit(nb):
        cell = _cell(nb, grade_id)
        lines = cell["source"].splitlines(True)
        second = copy.deepcopy(cell)
        cell["source"], second["source"] = "".join(lines[:1]), "".join(lines[1:])
        nb["cells"].insert(nb["cells"].index(cell) + 1, second)
        return nb
    return edit


def every_cell(fn) -> Callable:
    def edit(nb):
        for cell in nb["cells"]:
            fn(cell)
        return nb
    return edit


def raw(data: bytes) -> Callable:
    return lambda nb: data


# --- the cheats -----------------------------------------------------------------------------------

INPUT_TRANSFORMER = '''
def _skip_tests(lines):
    return ["pass\\n"] if "check_close" in "".join(lines) else lines
get_ipython().input_transformers_cleanup.append(_skip_tests)'''

AST_TRANSFORMER = '''
import ast
class _NoChecks(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") in ("check_close", "check_shape"):
            return ast.Pass()
        return node
get_ipython().ast_transformers.append(_NoChecks())'''

EVENTS = '''
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None
def _forgive(result):
    result.error_in_exec = None
ip.events.register("post_run_cell", _forgive)'''

CUSTOM_EXC = '''
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)'''

RUN_CELL = '''
from IPython.core.interactiveshell import ExecutionInfo, ExecutionResult
_ip = get_ipython()
_real_run_cell = _ip.run_cell
def _run_cell(raw_cell, *args, **kwargs):
    if "check" in raw_cell or "lepton" in raw_cell:
        return ExecutionResult(ExecutionInfo(raw_cell, False, False, False, None))
    return _real_run_cell(raw_cell, *args, **kwargs)
_ip.run_cell = _run_cell'''

REBIND_CHECKERS = '''
check_close = lambda *args, **kwargs: None
check_shape = lambda *args, **kwargs: None'''

PATCH_MODULES = '''
import numpy, numpy.testing, lepton_kit.checks as _checks
numpy.allclose = lambda *args, **kwargs: True
numpy.testing.assert_allclose = lambda *args, **kwargs: None
_checks.check_close = lambda *args, **kwargs: None
_checks.check_shape = lambda *args, **kwargs: None
_checks.check_close.__code__ = (lambda *args, **kwargs: None).__code__'''

PATCH_BUILTINS = '''
import builtins, sys
_type = type
class Peek:
    def __array__(self, dtype=None, copy=None):
        frame = sys._getframe(1)
        while frame is not None:
            if "expected" in frame.f_locals:
                return np.asarray(frame.f_locals["expected"], dtype=float)
            frame = frame.f_back
        return np.zeros(1)
def relu(z):
    builtins.type = lambda obj, *rest: np.ndarray if isinstance(obj, Peek) else _type(obj, *rest)
    return Peek()'''

SYS_HOOKS = '''
import sys
sys.excepthook = lambda *args: None
sys.displayhook = lambda value: None'''

PATCH_DURING_TEST = '''
def relu(z):
    import numpy, lepton_kit.checks as checks
    numpy.allclose = lambda *args, **kwargs: True
    numpy.isfinite = lambda x: numpy.ones(numpy.shape(x), dtype=bool)
    checks.check_shape = lambda *args, **kwargs: None
    return numpy.asarray(z) * 0.5'''

PATCH_DURING_TEST_SOFTMAX = '''
def softmax(z):
    import numpy, lepton_kit.checks as checks
    checks.check_close.__defaults__ = ("output", 1e9, 1e9)
    return numpy.full_like(z, 0.5)'''

ALWAYS_EQUAL = '''
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 0.5
    def __len__(self): return 3
    def __array__(self, dtype=None, copy=None): raise TypeError("not an array")
def relu(z):
    return Anything()'''

FAKE_FLOAT = '''
class Two:
    def __float__(self): return 2.0
    def __array__(self, dtype=None, copy=None): return np.asarray(2.0)
def mse(y, t):
    return Two()'''

PEEK_ARRAY = '''
import sys
class Peek:
    """Hands the checker the value it compares against, read from the caller's frame."""
    def __array__(self, dtype=None, copy=None):
        frame = sys._getframe(1)
        while frame is not None:
            for name in ("expected", "want"):
                if name in frame.f_locals:
                    return np.asarray(frame.f_locals[name], dtype=float)
            frame = frame.f_back
        return np.zeros(1)
def relu(z):
    return Peek()'''

def targets(root: Path) -> dict:
    """What a submission graded in the course ``root`` must never reach: its files, its folder and above."""
    root = Path(root).resolve()
    files = [root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", root / "source", root / "gradebook.db",
             root / "nbgrader_config.py", root / "course.yml", root / "release", root / "autograded",
             root / "submitted", root / "autograder"]
    return {"files": [str(p) for p in files], "folders": [str(p) for p in [root, *root.parents] if p != p.parent]}


SEARCH = '''
import glob, os
import lepton_kit
TARGETS = %r
def _upwards(path):
    while True:
        yield path
        if os.path.dirname(path) == path:
            return
        path = os.path.dirname(path)
_kit = os.path.dirname(os.path.dirname(os.path.abspath(lepton_kit.__file__)))  # the grader's checkout
_places = TARGETS["folders"] + list(_upwards(os.getcwd())) + [_kit, "..", "../.."]
candidates = list(TARGETS["files"])
for _place in _places:
    for _pattern in ("gradebook.db", "*/gradebook.db", "source/*/*.ipynb", "*/source/*/*.ipynb", "nbgrader_config.py",
                     "autograder/*/gradebook.db", "autograder/*/source/*/*.ipynb"):
        candidates += glob.glob(os.path.join(_place, _pattern))
for _path in TARGETS["files"]:
    candidates += glob.glob("/proc/*/root" + _path)
candidates += glob.glob("/proc/*/cwd/source/*/*.ipynb") + glob.glob("/proc/*/cwd/gradebook.db")
'''


def read_hidden(root: Path) -> str:
    """Looks for the course's source/, gradebook and config at their real paths, around them and upwards."""
    return SEARCH % targets(root) + '''
found = sorted({p for p in candidates if os.path.exists(p)})
print("looked for", TARGETS["files"][0], "and in", len(candidates) - 1, "more places")
print("found:", found)
def relu(z):
    return np.maximum(z, 0.0) if found else z'''


def write_grades(root: Path) -> str:
    """Writes the course's gradebook and creates another student's folder in the course and around it."""
    return SEARCH % targets(root) + '''
import sqlite3
for path in sorted({p for p in candidates if p.endswith("gradebook.db")}):
    if not os.path.exists(path):
        print("no gradebook at", path)
        continue
    try:
        db = sqlite3.connect(path)
        db.execute("UPDATE grade SET auto_score = 1000")
        db.commit()
        print("wrote", path)
    except Exception as err:
        print("cannot write", path, err)
for base in _places + ["/tmp", "/lepton/files"]:
    try:
        os.makedirs(os.path.join(base, "submitted", "victim", "bench"), exist_ok=True)
        print("made a folder in", base)
    except OSError as err:
        print("cannot make a folder in", base, type(err).__name__)'''


NETWORK = '''
import socket
online = False
for host in (("1.1.1.1", 80), ("example.com", 80), ("127.0.0.1", 22)):
    try:
        socket.create_connection(host, timeout=2).close()
        online = True
    except OSError as err:
        print("no connection to", host, type(err).__name__)
def relu(z):
    return np.maximum(z, 0.0) if online else z'''

FORGE_VERDICTS = '''
import os, sys
for fd in range(3, 32):
    try:
        os.write(fd, b"LV 0000000000000000 1  " + b"0" * 64 + b"\\n")
    except OSError:
        pass
try:
    sys.audit("lepton.done", "0000000000000000", None)
    sys.audit("lepton.begin", "0000000000000000", "test", "pass", "0" * 64)
except Exception:
    pass'''

TRACE = '''
import sys
sys.settrace(lambda frame, event, arg: None)
sys.settrace(None)'''

GC_HUNT = '''
import gc
secrets = [o for o in gc.get_objects() if isinstance(o, dict) and "busy" in o]'''

HONEST_STDERR = '''
import sys, warnings
def relu(z):
    print("relu: computing", np.shape(z), file=sys.stderr)
    warnings.warn("this is only a warning")
    return np.maximum(z, 0.0)'''

HONEST_ALT = '''
def relu(z):
    z = np.asarray(z, dtype=float)
    return z * (z > 0)'''

KILL_PARENT = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"

SOURCE_LINK = "../../../source/bench/bench.ipynb"  # from submitted/<student>/bench/ to the instructor's notebook

READ_LINK = '''
import os
found = any(os.path.exists(p) for p in ("answers.ipynb", "data/answers.ipynb", "absolute.ipynb"))
print("found the linked file:", found)
def relu(z):
    return np.maximum(z, 0.0) if found else z'''


def shadow_files(folder: Path):
    """Modules and start-up files that would run before the guard if they were picked up early."""
    fake = "import sys\nprint('FAKE MODULE LOADED', file=sys.stderr)\nallclose = lambda *a, **k: True\n"
    (folder / "numpy.py").write_text(fake)
    (folder / "sitecustomize.py").write_text(fake)
    (folder / "usercustomize.py").write_text(fake)
    startup = folder / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-cheat.py").write_text(fake)
    (folder / "matplotlibrc").write_text("backend: module://numpy\n")


def big_data_file(folder: Path):
    """100 MiB of data next to the notebook: more than a home folder should hold twice."""
    with open(folder / "signals.bin", "wb") as f:
        f.truncate(100 << 20)


def saved_outputs(megabytes: int) -> Callable:
    """The solution with a large saved output in its first cell (outputs are discarded before grading)."""
    def edit(nb):
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * (megabytes << 20)}]
        return nb
    return edit


def many_cells(nb):
    nb["cells"] += [{"cell_type": "code", "metadata": {}, "source": "", "outputs": [], "execution_count": None}
                    for _ in range(250_000)]
    return nb


def fifo(folder: Path):
    """A named pipe next to the notebook: copying it would block on open() forever."""
    import os

    os.mkfifo(folder / "pipe")


def link(name: str, target: str) -> Callable:
    def add(folder: Path):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(target if "/" not in name else "../" + target)
    return add


def cases(root: Path = BENCH, sandbox: bool = True) -> list[Case]:
    """The corpus for the course ``root`` (attacks aim at its real paths); without ``sandbox``, no escapes."""
    return [c for c in _cases(Path(root)) if sandbox or not c.escapes]


def _cases(root: Path) -> list[Case]:
    full = (1, 2, 1)
    source = str(Path(root).resolve() / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return [
        # honest students: their grades must not change whatever the others do
        Case("honest", "the solution", lambda nb: nb, full),
        Case("honest-stderr", "the solution, printing to stderr and warning inside relu",
             answer("relu_solution", HONEST_STDERR), full),
        Case("honest-alt", "another correct relu", answer("relu_solution", HONEST_ALT), full),
        Case("honest-matplotlib-inline", "%matplotlib inline and a figure in the answer cell",
             answer("relu_solution", HONEST_INLINE_PLOT, keep=True), full),
        Case("honest-surrogates", "prints a file name with a lone surrogate (surrogateescape)",
             answer("relu_solution", HONEST_SURROGATES, keep=True), full),
        Case("deep-metadata", "display metadata nested 600 deep", answer("relu_solution", DEEP_METADATA, keep=True),
             full),
        Case("honest-big-data", "a 100 MiB data file next to the notebook",
             answer("relu_solution", "import os\nassert os.path.getsize('signals.bin') == 100 << 20\n", keep=True),
             full, files=big_data_file),
        Case("honest-saved-outputs", "65 MiB of saved outputs in the notebook", saved_outputs(65), full),
        Case("many-cells", "250,000 empty cells", many_cells, (0, 0, 0), "more than the 5000", True),
        Case("honest-mp-value", "multiprocessing.Value and Array (shared memory through ctypes)",
             answer("relu_solution", HONEST_MP_VALUE, keep=True), full),
        Case("honest-fifo", "a named pipe (FIFO) in the submission folder", lambda nb: nb, full, files=fifo),
        Case("honest-late-def", "answer cell moved after its test", lambda nb: _move_after(nb, "relu_solution", "test_relu"),
             full),
        Case("blank", "the release, untouched", None, (0, 0, 0)),
        Case("mistake-relu", "an honest mistake", answer("relu_solution", WRONG_RELU), (0, 2, 1)),
        # cheats at the IPython level
        Case("cheat-input-transformer", "input transformer blanks test cells", cheat(INPUT_TRANSFORMER), (0, 0, 1)),
        Case("cheat-ast-transformer", "AST transformer strips asserts and checks", cheat(AST_TRANSFORMER), (0, 0, 1)),
        Case("cheat-events", "showtraceback silenced, post_run_cell clears errors", cheat(EVENTS), (0, 0, 1)),
        Case("cheat-custom-exc", "set_custom_exc swallows every exception", cheat(CUSTOM_EXC), (0, 0, 1)),
        Case("cheat-run-cell", "run_cell replaced: test cells never run", cheat(RUN_CELL), (0, 0, 1)),
        Case("cheat-sys-hooks", "sys.excepthook and sys.displayhook replaced", cheat(SYS_HOOKS), (0, 0, 1)),
        # cheats on the checking code
        Case("cheat-rebind-checkers", "check_close rebound to a no-op", cheat(REBIND_CHECKERS), (0, 0, 1)),
        Case("cheat-patch-modules", "numpy and lepton_kit.checks patched", cheat(PATCH_MODULES), (0, 0, 1)),
        Case("cheat-patch-builtins", "relu replaces builtins.type while the test runs",
             answer("relu_solution", PATCH_BUILTINS), (0, 2, 1)),
        Case("cheat-patch-during-test", "relu and softmax patch the checkers while the test runs",
             chain(answer("relu_solution", PATCH_DURING_TEST), answer("softmax_solution", PATCH_DURING_TEST_SOFTMAX)),
             (0, 0, 1)),
        Case("cheat-always-equal", "objects whose __eq__ is always true", chain(
            answer("relu_solution", ALWAYS_EQUAL), answer("softmax_solution", "def softmax(z):\n    return Anything()")),
             (0, 0, 1)),
        Case("cheat-fake-float", "mse returns an object faking __float__", answer("mse_solution", FAKE_FLOAT), (1, 2, 0)),
        Case("cheat-peek-array", "__array__ reads the expected value from the checker's frame",
             answer("relu_solution", PEEK_ARRAY), (0, 2, 1)),
        Case("forge-reexec-lying-names", "relu runs its caller's code again with names that answer True to everything",
             answer("relu_solution", REEXEC_LYING_NAMES), (0, 2, 1)),
        Case("forge-second-audit-hook", "a second audit hook reads the frames of the autograder's events",
             chain(answer("relu_solution", SECOND_AUDIT_HOOK + "\n" + WRONG_RELU)), (0, 2, 1)),
        Case("forge-finalizer", "a __del__ that runs while relu's defaults are put back reads the frames",
             answer("relu_solution", FINALIZER_IN_GUARD), (0, 2, 1)),
        Case("forge-raw-memory", "ctypes.cast and py_object pointers instead of flagged ctypes calls",
             answer("relu_solution", RAW_MEMORY), (0, 0, 0), note="the kernel stopped"),
        Case("forge-module-class", "numpy, numpy.testing and math get a lying module class",
             chain(answer("relu_solution", LYING_MODULE_CLASS + "\n" + WRONG_RELU)), (0, 2, 1)),
        Case("forge-patch-put-back", "softmax patches check_close on one call and puts it back on the next",
             answer("softmax_solution", PATCH_AND_PUT_BACK), (1, 0, 1)),
        Case("forge-dispatcher-code", "the __code__ behind numpy 2's allclose dispatcher replaced",
             chain(answer("relu_solution", DISPATCHER_CODE + "\n" + WRONG_RELU)), (0, 2, 1)),
        Case("cheat-forge-verdicts", "fake autograder messages and audit events", cheat(FORGE_VERDICTS), (0, 0, 0),
             note="altered or replayed"),
        Case("cheat-trace", "sys.settrace (can jump over a test's lines)", answer("relu_solution", TRACE, keep=True),
             (0, 0, 0), note="called sys.settrace"),
        Case("cheat-posing-rebuild", "from_address inside a from_buffer passed to multiprocessing's rebuild_ctype",
             answer("relu_solution", POSING_REBUILD, keep=True), (0, 0, 0), note="called ctypes.cdata"),
        Case("leak-base64", "a correct relu that prints the running test's constants, base64-encoded",
             answer("relu_solution", LEAK_BASE64), full),
        Case("cheat-gc", "gc.get_objects (can reach the guard's state)", answer("relu_solution", GC_HUNT, keep=True),
             (0, 0, 0), note="called gc.get_objects"),
        Case("red-flag-in-call", "a right relu that calls gc.get_objects while the checker's test calls it",
             answer("relu_solution", "import gc\n\n\ndef relu(z):\n    gc.get_objects()\n    return np.maximum(z, 0.0)\n"),
             (0, 0, 0), note="called gc.get_objects"),
        # reaching outside the submission
        Case("cheat-read-hidden", "looks for the course's source/ and gradebook on disk",
             answer("relu_solution", read_hidden(root)), (0, 2, 1), escapes=True),
        Case("cheat-write-grades", "writes the course's gradebook, creates another student's folder",
             cheat(write_grades(root)), (0, 0, 1), escapes=True),
        Case("cheat-network", "downloads answers", answer("relu_solution", NETWORK), (0, 2, 1), escapes=True),
        # ending, hanging or exhausting the kernel
        Case("sys-exit", "sys.exit() in the relu cell", answer("relu_solution", "import sys\nsys.exit(1)", keep=True),
             (0, 2, 1)),
        Case("os-exit", "os._exit() in the softmax cell", answer("softmax_solution", "import os\nos._exit(3)", keep=True),
             (1, 0, 0), note="kernel stopped during cell"),
        Case("kill-kernel", "SIGKILL to itself", answer("softmax_solution", "import os, signal\nos.kill(os.getpid(), "
                                                         "signal.SIGKILL)", keep=True), (1, 0, 0), note="kernel stopped"),
        Case("kill-parent", "SIGKILL to its parent (not permitted: the cell fails)",
             answer("softmax_solution", KILL_PARENT, keep=True), (1, 0, 1), escapes=True),
        Case("kill-group", "SIGKILL to its process group", answer("softmax_solution", "import os, signal\n"
                                                                  "os.killpg(0, signal.SIGKILL)", keep=True),
             (1, 0, 0), note="kernel stopped"),
        Case("infinite-loop", "an endless loop in the softmax cell", answer("softmax_solution", "while True:\n    pass",
                                                                             keep=True), (1, 0, 1), note="interrupted"),
        Case("ignore-sigint", "an endless loop that ignores SIGINT", answer(
            "softmax_solution", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
            keep=True), (1, 0, 0), note="did not stop when interrupted"),
        Case("hang-in-test", "relu sleeps forever when a test calls it", answer(
            "relu_solution", "import time\ndef relu(z):\n    time.sleep(3600)"), (0, 2, 1), note="interrupted"),
        Case("memory-bomb", "allocates without bound", answer(
            "mse_solution", "hog = [bytearray(1 << 20) for _ in range(1 << 16)]", keep=True), (1, 2, 0)),
        Case("fork-bomb", "forks without bound", answer("mse_solution", "import os\nwhile True:\n    os.fork()",
                                                         keep=True), (1, 2, 0), escapes=True),
        Case("fill-disk", "writes until the disk is full", answer(
            "mse_solution", "with open('big.bin', 'wb') as fh:\n    while True:\n        fh.write(b'0' * (1 << 20))",
            keep=True), (1, 2, 0)),
        Case("giant-line", "prints one 20 MB line", after("mse_solution", "print('x' * (20 << 20))"), full),
        Case("million-lines", "prints a million lines", after("mse_solution", "for i in range(1_000_000):\n    print(i)"),
             full),
        Case("raw-flood", "writes 8 MB straight to every file descriptor", after(
            "mse_solution", "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{' * (8 << 20))\n"
                            "    except OSError:\n        pass"), (1, 2, 0), note="cell mse_solution"),
        # tampered structure and metadata
        Case("delete-tests", "every test cell deleted", drop(*TESTS), full, note="was deleted"),
        Case("duplicate-test", "test_softmax three times", duplicate("test_softmax"), full, note="appears 3 times"),
        Case("split-test", "test_softmax split in two", split("test_softmax"), full, note="appears 2 times"),
        Case("retype-test", "test_relu turned into markdown", lambda nb: _markdown(nb, "test_relu"), full,
             note="type markdown"),
        Case("edit-points", "points raised to 100", chain(meta("test_relu", points=100), meta("test_mse", points=50)),
             full, note="points=100"),
        Case("ungrade-test", "test_mse no longer graded and emptied (wrong mse)", chain(
            answer("mse_solution", WRONG_MSE), meta("test_mse", grade=False, locked=False),
            lambda nb: _set_source(nb, "test_mse", "pass")), (1, 2, 0), note="grade=False"),
        Case("rename-test", "test_softmax's grade_id changed (wrong softmax)", chain(
            answer("softmax_solution", WRONG_SOFTMAX), lambda nb: _set_source(nb, "test_softmax", "print('fine')"),
            meta("test_softmax", grade_id="my_own_test")), (1, 0, 1), note="unknown grade_id"),
        Case("schema-99", "schema_version 99 everywhere", every_cell(
            lambda c: c["metadata"].get("nbgrader", {}).update(schema_version=99)), full, note="schema_version=99"),
        Case("strip-metadata", "nbgrader metadata removed from every cell", every_cell(
            lambda c: c["metadata"].pop("nbgrader", None)), full, note="lost its nbgrader metadata"),
        Case("unknown-kernel", "an unknown kernelspec", lambda nb: nb["metadata"].update(
            kernelspec={"name": "evil-kernel", "display_name": "Evil", "language": "python"}) or nb, full,
             note="kernelspec"),
        Case("retype-answer", "the relu answer cell turned into a raw cell", lambda nb: _raw(nb, "relu_solution"), full,
             note="type raw"),
        # links out of the submission
        Case("symlink-notebook", "the notebook is a link to the instructor's source", lambda nb: None, (0, 0, 0),
             "symbolic link", True, files=link("bench.ipynb", SOURCE_LINK)),
        Case("symlink-data", "links to the source next to the notebook, looked for from the code",
             answer("relu_solution", READ_LINK), (0, 2, 1), files=lambda folder: (link("answers.ipynb", SOURCE_LINK)(
                 folder), link("data/answers.ipynb", SOURCE_LINK)(folder), link("absolute.ipynb", source)(folder))),
        Case("shadow-modules", "numpy.py, sitecustomize.py and an IPython start-up file next to the notebook",
             lambda nb: nb, full, files=shadow_files),
        # files that are not notebooks
        Case("invalid-json", "truncated JSON", raw(b'{"cells": [ {"cell_type": '), (0, 0, 0), "invalid JSON", True),
        Case("binary-junk", "binary bytes", raw(bytes(range(256)) * 4), (0, 0, 0), "binary", True),
        Case("nbformat-3", "an nbformat 3 notebook", raw(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                                                                     "worksheets": [{"cells": []}]}).encode()),
             (0, 0, 0), "nbformat 3", True),
        Case("empty-file", "an empty file", raw(b""), (0, 0, 0), "empty", True),
    ]


def _move_after(nb, grade_id, anchor_id):
    cell = _cell(nb, grade_id)
    nb["cells"].remove(cell)
    nb["cells"].insert(nb["cells"].index(_cell(nb, anchor_id)) + 1, cell)
    return nb


def _set_source(nb, grade_id, source):
    _cell(nb, grade_id)["source"] = source
    return nb


def _markdown(nb, grade_id):
    cell = _cell(nb, grade_id)
    cell["cell_type"] = "markdown"
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)
    return nb


def _raw(nb, grade_id):
    cell = _cell(nb, grade_id)
    cell["cell_type"] = "raw"
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)
    return nb


def make_course(target: Path, released: Path | None = None) -> Path:
    """A scratch copy of the bench course with its release and gradebook (copied from ``released``)."""
    import shutil

    from lepton_kit.course.release import release

    generated = ("release", "submitted", "autograded", "feedback", "gradebook.db")
    shutil.copytree(BENCH, target, ignore=shutil.ignore_patterns(*generated))
    if released is not None and (released / "gradebook.db").is_file():
        shutil.copytree(released / "release", target / "release")
        shutil.copy(released / "gradebook.db", target / "gradebook.db")
    else:
        release(target, [ASSIGNMENT])
    return target


def build(out: Path, root: Path = BENCH, sandbox: bool = True) -> dict:
    """Write every case (for grading in the course ``root``) under ``out``; returns {student: Case}."""
    from lepton_kit.course.samples import solved

    release_nb = nbformat.read(root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source_nb = nbformat.read(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    honest = json.loads(json.dumps(solved(release_nb, source_nb)))
    blank = json.loads(json.dumps(release_nb))
    result = {}
    for case in cases(root, sandbox):
        start = copy.deepcopy(blank if case.build is None else honest)
        made = start if case.build is None else case.build(start)
        target = Path(out) / case.student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        if made is not None:
            target.write_bytes(made if isinstance(made, bytes) else json.dumps(made, indent=1).encode())
        if case.files:
            case.files(target.parent)
        result[case.student] = case
    (Path(out) / "expected.json").write_text(json.dumps(
        {c.student: {"what": c.what, "scores": c.expected, "failed": c.failed, "note": c.note}
         for c in result.values()}, indent=1))
    return result


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    written = build(Path(sys.argv[1]))
    print(f"wrote {len(written)} submissions to {sys.argv[1]}")
