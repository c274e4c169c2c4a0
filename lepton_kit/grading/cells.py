"""What a cell is (its one :func:`role`), and the parsing of instructor code, serialized by a lock.

CPython 3.11's ``ast`` module and IPython's transformers (which use it) are not safe in two threads
at once ("AST constructor recursion depth mismatch"). Grading parses in the parent's main thread
only (the ``plan`` step), and every function here holds :data:`PARSING` as well.

>>> role({"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "grade_id": "t"}}})
'test'
"""
from __future__ import annotations

import ast
import builtins
import threading

PARSING = threading.RLock()


def nbgrader(cell) -> dict:
    """The cell's ``metadata.nbgrader`` (empty when absent)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def role(cell) -> str | None:
    """``solution``, ``manual`` (graded answer), ``task``, ``test`` (graded code), ``locked``, or None."""
    meta = nbgrader(cell)
    if meta.get("solution"):
        return "manual" if meta.get("grade") else "solution"
    if meta.get("task"):
        return "task"
    if meta.get("grade"):
        return "test" if cell.get("cell_type") == "code" else "locked"
    return "locked" if meta.get("locked") else None


def operation(cell) -> str | None:
    """How a cell runs: ``test`` and ``instr`` through the guard, ``run`` as student code, None: not at all."""
    if cell.get("cell_type") != "code":
        return None
    return {"test": "test", "locked": "instr"}.get(role(cell), "run")


def label(cell, index: int) -> str:
    """A cell as a student can find it: its grade_id, else its position."""
    grade_id = nbgrader(cell).get("grade_id")
    return f"cell {grade_id}" if grade_id else f"cell {index + 1}"


def _python(code: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(code)
    except Exception:
        return code


def guarded(code: str) -> tuple[str, str]:
    """An instructor cell as the guard runs it, without the done signal: (source, name of its last value)."""
    with PARSING:
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
    return (source if source.endswith("\n") else source + "\n"), value


def done_signal(nonce: str, value: str) -> str:
    """The last line of a guarded cell: it tells the guard that the cell ran to its end."""
    return f"__lepton_audit__('lepton.done', {nonce!r}, {value})\n"


def defined_names(codes) -> list[str]:
    """Names that the top level of these cells defines (functions, classes, assignments).

    >>> defined_names(["def predict(x):\\n    raise NotImplementedError()\\nW, b = 1, 2", "class Net: pass"])
    ['Net', 'W', 'b', 'predict']
    """
    names = set()
    with PARSING:
        for code in codes:
            try:
                tree = ast.parse(_python(code))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return sorted(names)


def free_names(code: str) -> set:
    """Names a cell reads without binding them anywhere in it (function arguments count as bound).

    >>> sorted(free_names("x = f(a)\\ndef g(y):\\n    return y + z\\nprint(x)"))
    ['a', 'f', 'z']
    """
    loaded, bound = set(), set()
    with PARSING:
        tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins))


def names_of(code: str) -> tuple[set, set]:
    """(free, bound): the names a cell reads without binding them, and the names its top level binds
    (imports included).

    >>> free, bound = names_of("import numpy as np\\nx = f(a)\\ndef g(y):\\n    return y + z")
    >>> sorted(free), sorted(bound)
    (['a', 'f', 'z'], ['g', 'np', 'x'])
    """
    with PARSING:
        try:
            tree = ast.parse(code)
            imported = {(alias.asname or alias.name).split(".")[0] for node in tree.body
                        if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
            return free_names(code), set(defined_names([code])) | imported
        except SyntaxError:
            return set(), set()


def imports_of(codes) -> list[str]:
    """Modules that instructor cells use, lazily loaded submodules included (``np.random.x``).

    The executor imports them before any student code runs, so the guard protects them.
    """
    names, aliases, chains = set(), {}, set()
    with PARSING:
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
