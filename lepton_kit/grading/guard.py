"""In-kernel guard: instructor cells and tests run so that student code can neither rewrite nor fake them.

The sandboxed executor (:mod:`lepton_kit.grading.executor`) runs student cells through IPython. Instructor
cells (locked setup code and graded tests) go through an audit hook (PEP 578) that :func:`install`
adds before any student code runs; an audit hook cannot be removed from Python.

* ``sys.audit("lepton.begin", nonce, kind, source, tag)``: the hook checks ``tag``, an HMAC the
  trusted parent computed with the key the hook sent it at start-up; puts the checking code back as
  it was at start-up (module dicts, builtins, function code and defaults, class dicts, sys hooks,
  ``sys.modules``, the names instructor cells bound); compiles ``source`` itself, so no IPython
  transformer, event or patched ``run_cell`` touches it; and hands the code object to the executor.
* the last statement of that source is ``__lepton_audit__("lepton.done", nonce, value)``. The hook
  accepts it only from the frame running that very code object in the notebook's namespace, checks
  that nothing it restored changed while the test ran, and writes a signed verdict for the parent.

A test that did not run to its last line, or ran with patched checkers, never gets a signed pass.
The key and the hook's state live only in its code objects' constants, which Python reaches through
audited reads (``__code__``, ``f_code``) or :mod:`gc`. The hook reports at once, signed, any such
read and the other calls that can reach it: ``sys._current_frames``, tracing and profiling,
``/proc/*/mem``, raw memory access through ctypes. After such a report no later test can pass.

What is left (see autograder/README.md): writing arbitrary memory without ctypes (for example through
NumPy's array interface) and reading the hook's frame from a signal handler (it holds no secret).

>>> mac(b"k" * 32, "V|n|1") == mac(b"k" * 32, "V|n|1") != mac(b"j" * 32, "V|n|1")
True
"""
from __future__ import annotations

import re
import types

REFS = "__lepton_refs__"
MISSING = object()
# Calls that can read the hook's secrets or jump over a test's lines.
RED_FLAGS = frozenset({"sys.settrace", "sys.setprofile", "sys._current_frames", "gc.get_referrers",
                       "gc.get_referents", "gc.get_objects", "ctypes.string_at", "ctypes.wstring_at",
                       "ctypes.cdata", "ctypes.PyObj_FromPtr", "ctypes.dlsym"})
# Checking code: every name, function and class is restored before a test and verified after it.
CHECKERS = ("builtins", "numpy", "lepton_kit", "math", "operator", "functools", "numbers", "abc", "types")
# Other packages the instructor's cells import get their public names restored before each test (not
# verified after it: libraries such as torch rebind their own public names lazily).
SYS_KEYS = ("stdout", "stderr", "stdin", "displayhook", "excepthook", "audit")


def mac(key: bytes, message: str) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, in hex (the parent checks verdicts with it)."""
    import hmac

    return hmac.new(key, message.encode(), "sha256").hexdigest()


# --- the hook's code -----------------------------------------------------------------------------
# These functions are never called as written: install() compiles their source with every R_NAME
# replaced by an entry of a private list that lives only in the compiled code's constants. So the
# hook uses no global, builtin, default or closure that student code could read or rebind.

def _tpl_hook(event, args):  # noqa: F821 (R_ names are resolved by install())
    try:
        if R_S["busy"] == R_IDENT():
            return
        if event == "lepton.begin":
            R_BEGIN(args)
        elif event == "lepton.done":
            R_DONE(args)
        elif event == "object.__getattr__":
            if R_TYPE(args[1]) is not R_STR:
                return
            if args[1] == "__code__":
                if R_ID(args[0]) in R_GUARD_IDS:
                    R_FLAG("read the autograder's code object")
            elif args[1] == "f_code" and R_TYPE(args[0]) is R_FRAME:
                R_S["busy"] = R_IDENT()
                code = args[0].f_code
                R_S["busy"] = 0
                if R_ID(code) in R_GUARD_IDS:
                    R_FLAG("read the autograder's frame")
        elif event in R_RED_FLAGS:
            if event == "ctypes.cdata":  # multiprocessing.Value/Array build their object with from_buffer
                R_S["busy"] = R_IDENT()
                trusted = R_ID(R_GETFRAME(1).f_code) in R_CTYPES_CALLERS
                R_S["busy"] = 0
                if trusted:
                    return
            if event != "ctypes.dlsym" or (R_TYPE(args[1]) is R_STR and args[1][:2] in ("Py", "_P")):
                R_FLAG("called " + event)
        elif event == "open":
            path = args[0]
            if R_TYPE(path) is R_BYTES:
                path = path.decode("latin-1")
            if R_TYPE(path) is R_STR and path.startswith("/proc/") and path.endswith("/mem"):
                R_FLAG("opened " + path)
        elif event == "ctypes.call_function" and R_TYPE(args[0]) is R_INT and args[0] in R_CTYPES_RAW:
            R_FLAG("called ctypes memmove/memset")
    except BaseException:
        R_S["busy"] = 0


def _tpl_send(kind, fields):  # noqa: F821
    text = kind + "|" + "|".join(fields)
    line = ("L" + kind + " " + " ".join(fields) + " "
            + R_HMAC(R_KEY, text.encode(), "sha256").hex() + "\n").encode()
    stat = R_FSTAT(R_FD)
    if (stat.st_dev, stat.st_ino) != R_CHANNEL_ID:
        R_KILL(R_GETPID(), 9)  # the channel was swapped: die rather than stay silent
    while line:
        line = line[R_WRITE(R_FD, line):]


def _tpl_flag(why):  # noqa: F821
    if not R_S["tamper"]:
        R_S["tamper"] = why
    R_SEND("F", (why.encode().hex(),))


def _tpl_begin(args):  # noqa: F821
    R_MAILBOX[0] = None
    if R_TYPE(args) is not R_TUPLE or R_LEN(args) != 4:
        return
    nonce, kind, source, tag = args
    if R_TYPE(nonce) is not R_STR or R_TYPE(source) is not R_STR or R_TYPE(tag) is not R_STR \
            or R_TYPE(kind) is not R_STR or not tag.isascii():
        return
    good = R_HMAC(R_KEY, ("B|" + nonce + "|" + kind + "|" + source).encode(), "sha256")
    if not R_CMP(good.hex(), tag) or nonce in R_S["used"]:
        R_FLAG("altered or replayed an instructor cell")
        return
    R_S["used"].add(nonce)
    R_RESTORE()
    R_S["cur"] = nonce
    R_S["kind"] = kind
    R_S["pre"] = R_DICT(R_NS)
    try:
        code = R_COMPILE(source, "<lepton-" + nonce[:8] + ">", "exec", 0, True, 0)
    except BaseException:
        R_SEND("V", (nonce, "0", "", "the instructor cell does not compile".encode().hex()))
        return
    R_S["code"] = code
    R_MAILBOX[0] = code


def _tpl_done(args):  # noqa: F821
    if R_TYPE(args) is not R_TUPLE or R_LEN(args) != 2 or R_TYPE(args[0]) is not R_STR \
            or args[0] != R_S["cur"]:
        return
    nonce = args[0]
    R_S["cur"] = None
    R_S["busy"] = R_IDENT()
    frame = R_GETFRAME(2)  # 0: this function, 1: the hook, 2: the code that called sys.audit
    genuine = frame.f_code is R_S["code"] and frame.f_globals is R_NS
    R_S["busy"] = 0
    R_S["code"] = None
    why = ""
    if not genuine:
        why = "the test did not run to its end"
    if not why:
        why = R_VERIFY()
        if why:
            why = "changed while the test ran: " + why
    if not why and R_S["tamper"]:
        why = "tampering earlier in the notebook: " + R_S["tamper"]
    value = ""
    if not why and R_ID(R_TYPE(args[1])) in R_NUMBER_TYPES:
        value = R_REPR(R_FLOAT(args[1]))
    if not why and R_S["kind"] == "instr":
        pre = R_S["pre"]
        for name, obj in R_TUPLE(R_NS.items()):
            if R_TYPE(name) is R_STR and pre.get(name, R_MISSING) is not obj and name not in R_STUDENT_NAMES \
                    and (R_TYPE(obj) is R_MODULE or R_CALLABLE(obj)):
                R_S["bind"][name] = obj
    R_S["pre"] = None
    R_SEND("V", (nonce, "0" if why else "1", value, why.encode().hex()))


def _tpl_restore():  # noqa: F821
    for modname, d, items, strict in R_MODS:
        for name, obj in items:
            if d.get(name, R_MISSING) is not obj:
                d[name] = obj
    R_S["busy"] = R_IDENT()
    for qualname, func, code, defaults, kwdefaults, cells, values in R_FUNCS:
        if func.__code__ is not code:
            func.__code__ = code
        if func.__defaults__ is not defaults:
            func.__defaults__ = defaults
        if func.__kwdefaults__ is not kwdefaults:
            func.__kwdefaults__ = kwdefaults
        i = 0
        for cell in cells:
            try:
                if values[i] is not R_MISSING and cell.cell_contents is not values[i]:
                    cell.cell_contents = values[i]
            except BaseException:
                pass
            i += 1
    R_S["busy"] = 0
    for qualname, cls, proxy, items in R_CLASSES:
        for name, obj in items:
            if proxy.get(name, R_MISSING) is not obj:
                try:
                    R_TYPE_SETATTR(cls, name, obj)
                except BaseException:
                    pass
    for name, obj in R_SYS_ITEMS:
        R_SYSD[name] = obj
    R_META[:] = R_META_ITEMS
    for name, module in R_SYSMOD_ITEMS:
        if R_SYSMODS.get(name) is not module:
            R_SYSMODS[name] = module
    R_NS["__builtins__"] = R_BUILTINS
    R_NS["__lepton_audit__"] = R_AUDIT
    for name, obj in R_TUPLE(R_S["bind"].items()):
        R_NS[name] = obj


def _tpl_verify():  # noqa: F821
    for modname, d, items, strict in R_MODS:
        if not strict:
            continue
        for name, obj in items:
            if d.get(name, R_MISSING) is not obj:
                return modname + "." + name
    R_S["busy"] = R_IDENT()
    for qualname, func, code, defaults, kwdefaults, cells, values in R_FUNCS:
        changed = func.__code__ is not code or func.__defaults__ is not defaults \
            or func.__kwdefaults__ is not kwdefaults
        i = 0
        for cell in cells:
            try:
                if cell.cell_contents is not values[i]:
                    changed = True
            except BaseException:
                changed = values[i] is not R_MISSING
            i += 1
        if changed:
            R_S["busy"] = 0
            return qualname
    R_S["busy"] = 0
    for qualname, cls, proxy, items in R_CLASSES:
        for name, obj in items:
            if proxy.get(name, R_MISSING) is not obj:
                return qualname + "." + name
    for name, obj in R_SYS_ITEMS:
        if name != "stdin" and R_SYSD.get(name, R_MISSING) is not obj:
            return "sys." + name
    if R_LEN(R_META) != R_LEN(R_META_ITEMS):
        return "sys.meta_path"
    i = 0
    for finder in R_META_ITEMS:
        if R_META[i] is not finder:
            return "sys.meta_path"
        i += 1
    for name, module in R_SYSMOD_ITEMS:
        if R_SYSMODS.get(name) is not module:
            return "sys.modules[" + name + "]"
    if R_NS.get("__builtins__") is not R_BUILTINS:
        return "__builtins__"
    for name, obj in R_TUPLE(R_S["bind"].items()):
        if R_NS.get(name, R_MISSING) is not obj:
            return name
    return ""


TEMPLATES = {"hook": _tpl_hook, "send": _tpl_send, "flag": _tpl_flag, "begin": _tpl_begin,
             "done": _tpl_done, "restore": _tpl_restore, "verify": _tpl_verify}


def _compile_template(func, index: dict, refs: list):
    """Compile a template with each ``R_NAME`` read from ``refs`` through a code constant."""
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(func))
    source = re.sub(r"\bR_([A-Z0-9_]+)\b", lambda m: f'"{REFS}".__getitem__({index[m.group(1)]})', source)
    module = compile(source, f"<lepton-guard-{func.__name__}>", "exec", dont_inherit=True)
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    assert not [c for c in code.co_consts if isinstance(c, types.CodeType)], \
        f"{func.__name__}: the guard's functions must not nest code objects"
    code = code.replace(co_consts=tuple(refs if c == REFS else c for c in code.co_consts))
    return types.FunctionType(code, {"__builtins__": {}}, func.__name__)


def _modules(packages):
    import sys

    tops = set(packages)
    return [(name, m) for name, m in list(sys.modules.items())
            if isinstance(m, types.ModuleType) and name.split(".")[0] in tops]


def _snapshot(strict, loose):
    """Immutable copies of what tests rely on: module dicts, and the functions and classes of ``strict``.

    Names bound to None are left out: libraries fill them lazily (``_cache = None``).
    """
    mods, funcs, classes, seen = [], [], [], set()
    names = {name for name, _ in strict}

    def add_function(f, qualname):
        if type(f) is types.FunctionType and id(f) not in seen:
            seen.add(id(f))
            cells = f.__closure__ or ()
            values = []
            for cell in cells:
                try:
                    values.append(cell.cell_contents)
                except ValueError:
                    values.append(MISSING)
            funcs.append((qualname, f, f.__code__, f.__defaults__, f.__kwdefaults__, cells, tuple(values)))

    for modname, module in loose:
        items = tuple((k, v) for k, v in vars(module).items() if type(k) is str and not k.startswith("_")
                      and v is not None)
        mods.append((modname, vars(module), items, False))
    for modname, module in strict:
        items = tuple((k, v) for k, v in vars(module).items() if type(k) is str and v is not None)
        mods.append((modname, vars(module), items, True))
        for name, value in items:
            add_function(value, f"{modname}.{name}")
            if isinstance(value, type) and id(value) not in seen and getattr(value, "__module__", None) in names \
                    and not value.__flags__ & (1 << 8):  # skip immutable (C) types
                seen.add(id(value))
                proxy = vars(value)
                citems = tuple((k, v) for k, v in proxy.items() if type(k) is str and v is not None)
                qualname = f"{modname}.{name}"
                classes.append((qualname, value, proxy, citems))
                for member_name, member in citems:
                    add_function(getattr(member, "__func__", member), f"{qualname}.{member_name}")
    classes.sort(key=lambda entry: not issubclass(entry[1], type))  # metaclasses first
    return tuple(mods), tuple(funcs), tuple(classes)


def _exporter_byte_copies(packages) -> tuple:
    """Code of libraries that copy a tensor's own bytes through ``ctypes.from_address`` (torch's ONNX exporter
    writes every weight so): trusted callers when the instructor's cells use ONNX. The address is the data
    pointer of a tensor, which a student can only point elsewhere with torch's own raw-storage constructors,
    a raw read that needs no ctypes (autograder/README.md: what is left)."""
    if not {"onnx", "onnxruntime", "onnxscript"} & set(packages):
        return ()
    try:
        from torch.onnx._internal.exporter import _core
    except Exception:  # no torch, or another torch layout: the exporter is then simply not trusted
        return ()
    method = getattr(getattr(_core, "TorchTensor", None), "_get_cbytes", None)
    return (method.__code__,) if hasattr(method, "__code__") else ()


def install(channel_fd: int, user_ns: dict, mailbox: list, packages=(), student_names=()) -> None:
    """Snapshot the checking code, add the audit hook and send the parent its key (``LK <hex>``).

    Call once, before any student code runs. ``packages``: top-level packages the instructor's
    cells import (their public names are restored before each test; :data:`CHECKERS` are restored
    and verified whole). ``mailbox[0]`` receives each compiled cell.
    """
    import _hashlib
    import _thread
    import builtins
    import os
    import sys

    numbers = [int, float]
    if "numpy" in sys.modules:
        np = sys.modules["numpy"]
        numbers += [np.float64, np.float32, np.float16, np.int64, np.int32]
    import ctypes
    import multiprocessing.sharedctypes as shared

    ctypes_raw = [getattr(ctypes, n) for n in ("_memmove_addr", "_memset_addr") if hasattr(ctypes, n)]
    # multiprocessing.Value/Array make their object with from_buffer on their own shared memory (no raw
    # address): that "ctypes.cdata" event is not a red flag when the original rebuild_ctype code raises it
    ctypes_callers = (shared.rebuild_ctype.__code__, *_exporter_byte_copies(packages))
    strict = _modules(CHECKERS)
    loose = _modules(set(packages) - set(CHECKERS))
    mods, funcs, classes = _snapshot(strict, loose)
    stat = os.fstat(channel_fd)
    key = os.urandom(32)
    state = {"busy": 0, "cur": None, "code": None, "kind": None, "pre": None, "bind": {}, "used": set(),
             "tamper": ""}
    values = {
        "S": state, "KEY": key, "FD": channel_fd, "CHANNEL_ID": (stat.st_dev, stat.st_ino),
        "HMAC": _hashlib.hmac_digest, "CMP": _hashlib.compare_digest, "FSTAT": os.fstat, "WRITE": os.write,
        "KILL": os.kill, "GETPID": os.getpid, "IDENT": _thread.get_ident, "GETFRAME": sys._getframe,
        "COMPILE": builtins.compile, "TYPE": type, "STR": str, "BYTES": bytes, "INT": int, "FLOAT": float,
        "REPR": repr, "TUPLE": tuple, "DICT": dict, "LEN": len, "ID": id, "CALLABLE": callable,
        "MODULE": types.ModuleType, "FRAME": types.FrameType, "MISSING": MISSING,
        "TYPE_SETATTR": type.__setattr__, "RED_FLAGS": RED_FLAGS, "CTYPES_RAW": frozenset(ctypes_raw),
        "CTYPES_CALLERS": frozenset(id(o) for o in ctypes_callers), "CTYPES_KEEP": ctypes_callers,
        "STUDENT_NAMES": frozenset(n for n in student_names if type(n) is str),
        "NUMBER_TYPES": frozenset(id(t) for t in numbers), "NUMBER_TYPES_KEEP": tuple(numbers),
        "MODS": mods, "FUNCS": funcs, "CLASSES": classes,
        "SYSD": sys.__dict__, "SYS_ITEMS": tuple((k, getattr(sys, k)) for k in SYS_KEYS),
        "META": sys.meta_path, "META_ITEMS": tuple(sys.meta_path),
        "SYSMODS": sys.modules, "SYSMOD_ITEMS": tuple(strict + loose),
        "NS": user_ns, "BUILTINS": builtins, "AUDIT": sys.audit, "MAILBOX": mailbox,
    }
    names = sorted(values) + [name.upper() for name in TEMPLATES] + ["GUARD_IDS", "GUARD_KEEP"]
    index = {name: i for i, name in enumerate(names)}
    refs = [values.get(name) for name in names]
    compiled = {name: _compile_template(tpl, index, refs) for name, tpl in TEMPLATES.items()}
    for name, func in compiled.items():
        refs[index[name.upper()]] = func
    guarded = list(compiled.values()) + [f.__code__ for f in compiled.values()]
    refs[index["GUARD_KEEP"]] = tuple(guarded)
    refs[index["GUARD_IDS"]] = frozenset(id(o) for o in guarded)
    user_ns["__lepton_audit__"] = sys.audit
    sys.addaudithook(compiled["hook"])
    os.write(channel_fd, f"LK {key.hex()}\n".encode())
