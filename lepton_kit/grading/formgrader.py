"""What formgrader's buttons run, made safe: feedback without hidden tests, no autograde outside the sandbox.

nbgrader's Generate Feedback renders the autograded notebook, whose test cells hold the hidden
tests (nbgrader #917, #1363); its Autograde runs student code as the instructor, with no sandbox.
``nbgrader_config.py`` puts :class:`HideHiddenTests` into ``GenerateFeedback.preprocessors`` and makes
:class:`RefuseUnsandboxedAutograde` the ``Autograde.exporter_class``, so both buttons
(and the ``nbgrader`` commands behind them) follow the course's rules.

>>> cell = {"cell_type": "code", "metadata": {}, "outputs": [],
...         "source": "check(f(1))\\n### BEGIN HIDDEN TESTS\\ncheck(f(7) == 49)\\n### END HIDDEN TESTS"}
>>> print(hide_hidden_tests(cell)["source"])
check(f(1))
# (hidden tests: not shown)
"""
from __future__ import annotations

from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from lepton_kit.grading.feedback import hidden_lines, scrub

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: not shown)"


def visible_part(source: str) -> str:
    """``source`` without the lines between hidden-test markers (markers included)."""
    kept, hidden = [], False
    for line in source.splitlines():
        if line.strip().startswith(BEGIN):
            hidden = True
            if not kept or kept[-1] != HIDDEN_NOTE:
                kept.append(HIDDEN_NOTE)
        elif line.strip().startswith(END):
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def hide_hidden_tests(cell: dict) -> dict:
    """A test cell as a student may see it: the visible part, and only the error's first line, scrubbed.

    Printed output and tracebacks are dropped: tracebacks quote hidden lines, and student code that a
    test calls could print what it found of the hidden part.
    """
    if cell.get("cell_type") != "code" or BEGIN not in cell.get("source", ""):
        return cell
    full = cell["source"]
    cell["source"] = visible_part(full)
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    cell["outputs"] = []
    if errors:
        first = str(errors[-1].get("evalue", "")).splitlines()
        message = f"{errors[-1].get('ename', 'Error')}: {first[0] if first else ''}"
        cell["outputs"] = [{"output_type": "stream", "name": "stderr",
                            "text": scrub(message, hidden_lines(full, cell["source"])) + "\n"}]
    return cell


class HideHiddenTests(Preprocessor):
    """nbconvert preprocessor for nbgrader's GenerateFeedback: see :func:`hide_hidden_tests`."""

    enabled = Bool(True).tag(config=True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        return hide_hidden_tests(cell), resources


class RefuseUnsandboxedAutograde(NotebookExporter):
    """The exporter of nbgrader's Autograde: it refuses to exist, before any file is touched.

    nbgrader builds its exporter before it looks at a submission, so nothing in ``autograded/`` (what
    ``lepton autograde`` wrote) is removed, and the message names the sandboxed command.
    """

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "this course autogrades submissions only in the sandbox: run "
            "`lepton autograde ASSIGNMENT --submissions submitted` (autograder/README.md); "
            "nbgrader's own autograde, and formgrader's Autograde button, would run student code as you")
