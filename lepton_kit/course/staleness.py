"""Stored lesson outputs that predate the kit code that drew them.

nbval compares a lesson's text outputs, not its figures, so a fix in ``lepton_kit.plot`` can leave
every stored figure stale without any test noticing. ``make lessons`` stamps each executed lesson with
a fingerprint of the kit modules it imports (and those they import in turn): a hash of each module's
code, docstrings and comments left out. The test suite fails when a stamp no longer matches the code.

    python -m lepton_kit.course.staleness notebooks/*.ipynb            # which lessons are stale
    python -m lepton_kit.course.staleness --stamp notebooks/01_*.ipynb  # after re-executing one

>>> sorted(kit_imports("from lepton_kit import record\\nfrom lepton_kit.data import load\\n%matplotlib inline"))
['lepton_kit', 'lepton_kit.data']
>>> "lepton_kit.profiles" in closure({"lepton_kit"})
True
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from pathlib import Path

import lepton_kit

KIT = Path(lepton_kit.__file__).resolve().parent
KEY = "lepton"       # notebook metadata: {"lepton": {"kit_code": {module: hash}}}
UNSTAMPED = "(no stamp)"


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = KIT.joinpath(*parts) if parts else KIT
    for path in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if path is not None and path.is_file():
            return path
    return None


def _python(source: str) -> str:
    """Cell source with IPython's magics and shell escapes turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def kit_imports(source: str) -> set[str]:
    """The ``lepton_kit`` modules that a piece of code imports (``from lepton_kit import x`` counts x when x is one)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lepton_kit"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "lepton_kit":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    return {name for name in found if _module_file(name)}


def closure(modules: set[str]) -> set[str]:
    """``modules`` and every kit module they import, directly or not (packages' ``__init__`` included)."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen or not _module_file(name):
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += parents + sorted(kit_imports(_module_file(name).read_text()))
    return seen


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_digest(source: str) -> str:
    """A short hash of Python code that ignores its comments, docstrings and layout.

    >>> code_digest("def f(x):\\n    'Twice x.'\\n    return 2 * x  # doubled") == code_digest("def f(x): return 2*x")
    True
    >>> code_digest("def f(x): return 2 * x") == code_digest("def f(x): return 3 * x")
    False
    """
    return hashlib.sha256(ast.dump(_without_docstrings(ast.parse(source))).encode()).hexdigest()[:16]


def code_hash(name: str) -> str:
    """:func:`code_digest` of a kit module."""
    return code_digest(_module_file(name).read_text())


def fingerprint(notebook) -> dict:
    """{module: code hash} of every kit module a notebook (an nbformat node) runs."""
    imported = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            imported |= kit_imports(cell.source)
    return {name: code_hash(name) for name in sorted(closure(imported))}


def stale_modules(path: Path) -> list[str]:
    """Kit modules whose code changed since ``path``'s outputs were stored (``[UNSTAMPED]`` when never stamped)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    stored = nb.metadata.get(KEY, {}).get("kit_code")
    if stored is None:
        return [UNSTAMPED]
    now = fingerprint(nb)
    return sorted(name for name in set(now) | set(stored) if now.get(name) != stored.get(name))


def describe(changed: list[str]) -> str:
    """One line for the stale modules of a notebook."""
    what = "it was never stamped" if changed == [UNSTAMPED] else f"the code of {', '.join(changed)} changed"
    return f"stored outputs are stale ({what}): re-execute it with `make lessons`, which stamps it"


def stamp(path: Path) -> dict:
    """Record the fingerprint of the kit code in ``path``'s metadata (right after executing it)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault(KEY, {})["kit_code"] = fingerprint(nb)
    nbformat.write(nb, path)
    return nb.metadata[KEY]["kit_code"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_kit.course.staleness", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--stamp", action="store_true", help="record the current kit code (after executing)")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.notebooks:
        if args.stamp:
            print(f"{path}: stamped with {len(stamp(path))} kit modules")
            continue
        changed = stale_modules(path)
        stale += bool(changed)
        print(f"{path}: " + (describe(changed) if changed else "up to date"))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
