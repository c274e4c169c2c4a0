"""Rebuild a submitted notebook on the instructor's structure before it runs.

Students may only change their answers. Everything else comes from the instructor's side: the
release notebook gives the cells' order and metadata, the gradebook the locked sources (hidden tests
included), points and checksums. Deleted, duplicated, split or retyped instructor cells, edited
points, flags, ids or schema versions, stripped metadata and foreign kernelspecs are restored, and
each change is reported. A file that is not a notebook raises :class:`Malformed`. The pipeline's
steps call :func:`parse`, :func:`rebuild`, :func:`kernelspec` and :func:`unique_ids` in turn.

>>> try:
...     parse(b"")
... except Malformed as err:
...     print(err)
the file is empty
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lepton_kit.grading.cells import role

MAX_BYTES = 256 << 20   # the file, saved outputs included (outputs are discarded before grading)
MAX_SOURCE = 64 << 20   # the cells' sources together
MAX_CELLS = 5000        # far more than any real notebook; 250,000 empty cells only cost time
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # used with fullmatch


class Malformed(ValueError):
    """The submitted file is not a usable notebook (the message says why, for the student)."""


@dataclass
class TemplateCell:
    grade_id: str
    role: str | None     # cells.role() of the instructor's cell
    cell_type: str
    source: str          # locked cells: the gradebook's source (hidden tests included)
    release_source: str  # what the student received
    nbgrader: dict       # canonical metadata.nbgrader
    metadata: dict       # the release cell's other metadata
    cell_id: str | None = None

    @property
    def points(self):
        return self.nbgrader.get("points")


@dataclass
class Template:
    """The instructor's version of one notebook, as :func:`templates` builds it."""

    name: str
    cells: list            # TemplateCell in release order
    metadata: dict         # notebook metadata (kernelspec from the gradebook)
    nbformat_minor: int = 5
    by_id: dict = field(default_factory=dict)

    def __post_init__(self):
        self.by_id = {cell.grade_id: cell for cell in self.cells}


def parse(raw: bytes) -> dict:
    """The notebook as a dict, or :class:`Malformed` with a reason a student understands."""
    if len(raw) > MAX_BYTES:
        raise Malformed(f"the file is larger than {MAX_BYTES >> 20} MiB")
    if not raw.strip():
        raise Malformed("the file is empty")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Malformed("not a notebook: the file is binary, not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise Malformed(f"not a notebook: invalid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise Malformed("not a notebook: the JSON is nested too deeply") from None
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data):
        raise Malformed("not a notebook: no cells")
    if data.get("nbformat") != 4:
        raise Malformed(f"nbformat {data.get('nbformat')!r} notebook: open and save it with a current "
                        "Jupyter (nbformat 4)")
    if not isinstance(data.get("cells"), list):
        raise Malformed("not a notebook: 'cells' is not a list")
    if len(data["cells"]) > MAX_CELLS:
        raise Malformed(f"the notebook has {len(data['cells'])} cells, more than the {MAX_CELLS} allowed")
    source = sum(len(_text(c.get("source")) or "") for c in data["cells"] if isinstance(c, dict))
    if source > MAX_SOURCE:
        raise Malformed(f"the cells' code and text are larger than {MAX_SOURCE >> 20} MiB")
    return data


def _text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def _student_cells(data: dict, notes: list) -> list[dict]:
    cells = []
    for position, cell in enumerate(data["cells"]):
        source = _text(cell.get("source")) if isinstance(cell, dict) else None
        if source is None or cell.get("cell_type") not in ("code", "markdown", "raw"):
            notes.append(f"cell {position + 1} is not a valid notebook cell: ignored")
            continue
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        meta = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
        grade_id = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        cells.append({"cell_type": cell["cell_type"], "source": source, "nbgrader": meta, "grade_id": grade_id})
    return cells


def _edited_fields(student: dict, cell: TemplateCell) -> list[str]:
    changed = []
    if student["cell_type"] != cell.cell_type:
        changed.append(f"type {student['cell_type']} instead of {cell.cell_type}")
    meta = student["nbgrader"]
    for key in ("grade", "solution", "locked", "points", "schema_version", "task"):
        want, got = cell.nbgrader.get(key), meta.get(key)
        if key == "points" and want is not None:
            try:
                same = float(got) == float(want)
            except (TypeError, ValueError):
                same = False
        else:
            same = bool(got) == bool(want) if key in ("grade", "solution", "locked", "task") else got == want
        if not same:
            changed.append(f"{key}={got!r}")
    return changed


def rebuild(data: dict, template: Template) -> tuple[dict, list[str]]:
    """The cells to execute and the changes found, from a parsed notebook and the template.

    Returns ``(nb, notes)``: ``nb`` is an nbformat 4 notebook (no metadata yet) whose instructor
    cells come from the template (in its order) and whose answers and extra cells come from the student.
    """
    import nbformat

    notes: list[str] = []
    cells = _student_cells(data, notes)
    _recover_stripped(cells, template, notes)

    # where each instructor cell is, and which student cells follow it
    last_answer = {}
    for position, cell in enumerate(cells):
        tpl = template.by_id.get(cell["grade_id"])
        if tpl is not None and tpl.role in ("solution", "manual"):
            last_answer[tpl.grade_id] = position
    anchors, extras, seen = {}, {None: []}, {}
    current = None
    for position, cell in enumerate(cells):
        grade_id, tpl = cell["grade_id"], template.by_id.get(cell["grade_id"])
        if grade_id is not None and tpl is None:
            notes.append(f"unknown grade_id {grade_id[:40]!r}: run as an ordinary cell")
        if tpl is None:
            extras.setdefault(current, []).append(cell)
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        if tpl.role in ("solution", "manual"):
            if position != last_answer[grade_id]:
                extras.setdefault(current, []).append({**cell, "grade_id": None})
                continue
        elif grade_id in anchors:
            continue  # a copy of an instructor cell: dropped
        anchors[grade_id] = cell
        current = grade_id
        edited = [] if cell.get("recovered") else _edited_fields(cell, tpl)
        if edited:
            notes.append(f"cell {grade_id}: {', '.join(edited)}: restored")
        if tpl.role in ("locked", "test", "task") and cell["source"] != tpl.release_source \
                and "type" not in " ".join(edited):
            notes.append(f"locked cell {grade_id} was edited: restored")
    for grade_id, count in seen.items():
        if count > 1:
            role = template.by_id[grade_id].role
            notes.append(f"cell {grade_id} appears {count} times: "
                         + ("the last one is the answer" if role in ("solution", "manual") else "kept one"))

    plain_sources = {c["source"] for c in cells if c["grade_id"] is None}
    out = [_cell(nbformat, c, f"x{i}") for i, c in enumerate(extras.get(None, []))]
    for tpl in template.cells:
        student = anchors.get(tpl.grade_id)
        if student is None:
            if tpl.role == "solution":
                continue  # its code may live in the student's own cells
            how = "lost its nbgrader metadata" if tpl.release_source in plain_sources else "was deleted"
            notes.append(f"cell {tpl.grade_id} {how}: restored from the source")
        source = student["source"] if student is not None and tpl.role in ("solution", "manual") else \
            (tpl.source if tpl.role != "manual" else tpl.release_source)
        out.append(_template_cell(nbformat, tpl, source))
        out += [_cell(nbformat, c, f"x{tpl.grade_id[:40]}-{i}") for i, c in enumerate(extras.get(tpl.grade_id, []))]
    nb = nbformat.v4.new_notebook(cells=out)
    nb.nbformat_minor = template.nbformat_minor
    return nb, notes


def _recover_stripped(cells: list, template: Template, notes: list) -> None:
    """An instructor cell that lost its metadata but kept its exact source gets its grade_id back, in place.

    So the student's own cells around it keep their order (a locked cell re-run after the student's
    answer would undo it).
    """
    present = {c["grade_id"] for c in cells if c["grade_id"]}
    by_source: dict = {}
    for tpl in template.cells:
        if tpl.role in ("locked", "test", "task") and tpl.grade_id not in present:
            by_source.setdefault(tpl.release_source, []).append(tpl)
    for cell in cells:
        candidates = by_source.get(cell["source"]) if cell["grade_id"] is None else None
        if candidates and len(candidates) == 1 and candidates[0].cell_type == cell["cell_type"]:
            tpl = candidates.pop()
            cell["grade_id"], cell["recovered"] = tpl.grade_id, True
            notes.append(f"cell {tpl.grade_id} lost its nbgrader metadata: restored from the source")


def kernelspec(data: dict, template: Template) -> tuple[dict, list[str]]:
    """The notebook's metadata (the template's), and a note when the student's kernelspec differed."""
    kernel = (data.get("metadata") or {}).get("kernelspec") if isinstance(data.get("metadata"), dict) else None
    wanted = (template.metadata.get("kernelspec") or {}).get("name")
    notes = [f"kernelspec {str(kernel.get('name'))[:40]!r} replaced by {wanted!r}"] \
        if isinstance(kernel, dict) and kernel.get("name") != wanted else []
    return copy.deepcopy(template.metadata), notes



def _cell(nbformat, cell: dict, cell_id: str):
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell}[cell["cell_type"]]
    new = make(source=cell["source"])
    new["id"] = cell_id
    return new


def _template_cell(nbformat, tpl: TemplateCell, source: str):
    new = _cell(nbformat, {"cell_type": tpl.cell_type, "source": source}, tpl.cell_id or tpl.grade_id)
    new.metadata = copy.deepcopy(tpl.metadata)
    new.metadata["nbgrader"] = copy.deepcopy(tpl.nbgrader)
    return new


def unique_ids(nb) -> None:
    """Valid, unique cell ids (students' ids may clash with each other or with the template's)."""
    used = set()
    for i, cell in enumerate(nb.cells):
        cell_id = re.sub(r"[^a-zA-Z0-9_-]", "-", str(cell.get("id") or f"c{i}"))[:60] or f"c{i}"
        while cell_id in used or not CELL_ID.fullmatch(cell_id):
            cell_id = f"c{i}-{len(used)}"
        used.add(cell_id)
        cell["id"] = cell_id


def templates(root: Path, assignment_id: str, gb) -> dict:
    """The instructor's version of each notebook: release structure, gradebook sources and points."""
    import nbformat
    from nbgrader.api import MissingEntry

    try:
        notebooks = gb.find_assignment(assignment_id).notebooks
    except MissingEntry:
        notebooks = []
    if not notebooks:
        raise RuntimeError(f"{assignment_id} is not in the gradebook: run `lepton release {assignment_id}`")
    result = {}
    for notebook in notebooks:
        path = Path(root) / "release" / assignment_id / f"{notebook.name}.ipynb"
        if not path.is_file():
            raise RuntimeError(f"{path} is missing: run `lepton release {assignment_id}`")
        release_nb = nbformat.read(path, as_version=4)
        cells = []
        for cell in release_nb.cells:
            meta = dict(cell.metadata.get("nbgrader", {}))
            grade_id = meta.get("grade_id")
            if not grade_id:
                continue
            try:
                source = gb.find_source_cell(grade_id, notebook.name, assignment_id)
            except MissingEntry:
                raise RuntimeError(f"cell {grade_id} of {path} is not in the gradebook: run "
                                   f"`lepton release {assignment_id}`") from None
            if meta.get("grade"):
                meta["points"] = float(gb.find_graded_cell(grade_id, notebook.name, assignment_id).max_score)
            meta["checksum"] = source.checksum
            meta["locked"] = bool(source.locked)
            other = {k: v for k, v in cell.metadata.items() if k != "nbgrader"}
            cells.append(TemplateCell(grade_id, role({"cell_type": source.cell_type, "metadata": {"nbgrader": meta}}),
                                      source.cell_type, source.source, cell.source, meta, other, cell.get("id")))
        metadata = dict(release_nb.metadata)
        if notebook.kernelspec:
            metadata["kernelspec"] = json.loads(notebook.kernelspec)
        result[notebook.name] = Template(notebook.name, cells, metadata, release_nb.nbformat_minor)
    return result
