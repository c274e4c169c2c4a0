"""Lessons in JupyterLab: in every lesson a figure renders, each explorer reacts to a control, the self-check
quiz answers a click; lepton_kit's fit shows a progress bar."""
from __future__ import annotations

import re

import nbformat
import pytest

from .conftest import (KERNEL_TIMEOUT, REPO, UI_TIMEOUT, open_notebook, shot, type_into_cell, wait_run_done)

LESSONS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "notebooks").glob("*.ipynb"))
EXPLORER = re.compile(r"^explore\(", re.M)
QUIZ = re.compile(r"^quiz\(", re.M)
PNG_OUTPUT = '.jp-OutputArea-output[data-mime-type="image/png"] img'
IMAGES = ".jp-OutputArea-output img, .widget-image, .jupyter-widgets img"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, start_lab):
    """A lab (started without LEPTON_PROGRESS) in a folder holding the lessons without their stored outputs."""
    root = tmp_path_factory.mktemp("lessons") / "course"
    (root / "notebooks").mkdir(parents=True)
    for lesson in LESSONS:
        nb = nbformat.read(REPO / lesson, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)  # no saved widget state: what shows is what the kernel draws now
        nbformat.write(nb, root / lesson)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")],
                                            metadata=nb.metadata), root / "scratch.ipynb")
    return start_lab(root, name="lessons")


def _shut_down_kernels(lab):
    for session in lab.api("api/sessions") or []:  # one lesson's kernel at a time: memory and cores
        lab.api(f"api/sessions/{session['id']}", method="DELETE")


def _select(page, cell):
    cell.locator(".jp-InputPrompt").click()   # selects the cell (command mode)


def _run_all_above(page, cell):
    _select(page, cell)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("Run All Above Selected Cell")).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')]
                 .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""", timeout=60_000, polling=100)
    wait_run_done(page)


def _run_cell(page, cell):
    _select(page, cell)
    page.locator('.jp-NotebookPanel:visible [data-command="notebook:run-cell"], '
                 '.jp-NotebookPanel:visible [data-command="notebook:run-cell-and-select-next"]').first.click()
    cell.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=KERNEL_TIMEOUT)
    wait_run_done(page)


def _image(cell):
    img = cell.locator(IMAGES).last
    img.wait_for(timeout=KERNEL_TIMEOUT)
    cell.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=UI_TIMEOUT)
    return img.get_attribute("src"), img.screenshot()


def _move_a_control(cell) -> str:
    """Another option of the first dropdown; without one, the first slider one step on (arrow keys)."""
    selects = cell.locator(".jupyter-widgets select")
    if selects.count():
        select = selects.first
        current = select.input_value()
        options = [o for o in select.locator("option").evaluate_all("os => os.map(o => o.value)") if o != current]
        assert options, "the explorer's dropdown has a single option"
        select.select_option(options[0])
        return f"dropdown {current!r} -> {options[0]!r}"
    handle = cell.locator(".jupyter-widgets .noUi-handle").first
    handle.wait_for(timeout=UI_TIMEOUT)
    readout = cell.locator(".widget-readout").first.inner_text()
    handle.focus()
    key = "ArrowLeft" if handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax") else "ArrowRight"
    handle.press(key)
    return f"slider {readout!r} {key}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_explorer_reacts_to_a_control_and_the_quiz_answers(lab, browser, lesson):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    stem = lesson.rsplit("/", 1)[-1].split("_")[0]
    try:
        cells = nbformat.read(lab.root / lesson, as_version=4).cells
        explorers = [i for i, c in enumerate(cells) if c.cell_type == "code" and EXPLORER.search(c.source)]
        quizzes = [i for i, c in enumerate(cells) if c.cell_type == "code" and QUIZ.search(c.source)]
        assert explorers and quizzes, f"{lesson}: an explorer and a quiz"
        nb = open_notebook(page, lab, lesson)
        cell = nb.locator(".jp-Cell")   # every cell is in the DOM (windowingMode none)
        _run_all_above(page, cell.nth(explorers[-1]))
        _run_cell(page, cell.nth(explorers[-1]))

        img = nb.locator(PNG_OUTPUT).first      # the lesson's first matplotlib figure, drawn just now
        img.wait_for(timeout=KERNEL_TIMEOUT)
        assert img.evaluate("i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100")
        errors = nb.locator(STDERR)
        assert not [t for t in errors.all_inner_texts() if "Error" in t], errors.all_inner_texts()[:3]

        for n, index in enumerate(explorers):
            explorer = cell.nth(index)
            explorer.locator(".jupyter-widgets").first.wait_for(timeout=KERNEL_TIMEOUT)
            src_before, png_before = _image(explorer)
            explorer.scroll_into_view_if_needed()
            moved = _move_a_control(explorer)
            page.wait_for_function(
                """([cell, before]) => {
                    const imgs = cell.querySelectorAll('.jp-OutputArea-output img, .widget-image, .jupyter-widgets img');
                    const img = imgs[imgs.length - 1];
                    return img && img.getAttribute('src') !== before && img.complete && img.naturalWidth > 0;
                }""", arg=[explorer.element_handle(), src_before], timeout=KERNEL_TIMEOUT, polling=200)
            assert _image(explorer)[1] != png_before, f"{lesson}: the image's pixels did not change ({moved})"
            assert explorer.locator(STDERR).count() == 0, explorer.locator(STDERR).first.inner_text()[:2000]
            shot(page, f"lesson{stem}-explorer{n + 1}", f"{lesson}, explorer {n + 1} after one move ({moved}): "
                 "the figure is redrawn by the kernel.")

        quiz = cell.nth(quizzes[-1])
        _run_cell(page, quiz)
        radios = quiz.locator(".widget-radio-box").first    # the first multiple-choice question
        radios.wait_for(timeout=KERNEL_TIMEOUT)
        question = radios.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")  # its box: text, options, buttons, feedback
        radios.locator("input[type=radio]").first.check()
        question.get_by_role("button", name="Check").click()
        feedback = question.locator(".widget-html").filter(has_text=re.compile(r"^(Correct|Not quite)"))
        feedback.wait_for(timeout=KERNEL_TIMEOUT)   # the kernel answers the click
        said = feedback.inner_text()
        question.get_by_role("button", name="Show answer").click()
        question.locator(".widget-html").filter(has_text=re.compile(r"^Answer: ")).wait_for(timeout=KERNEL_TIMEOUT)
        quiz.scroll_into_view_if_needed()
        shot(page, f"lesson{stem}-quiz", f"{lesson}, the self-check quiz: first option checked "
             f"({said[:60]!r}), then Show answer.")
    except Exception:
        shot(page, f"failed-lesson{stem}", f"{lesson}: the page when the test failed.")
        raise
    finally:
        context.close()
        _shut_down_kernels(lab)


FIT_CELL = """\
import time
import torch
from lepton_kit.data import load
from lepton_kit.train import Callback, fit

digits = load("digits")


class Slow(Callback):  # a few epochs of a tiny model take well under a second: hold the bar on screen
    def on_epoch_end(self, epoch, logs, model):
        time.sleep(1.0)


torch.manual_seed(0)
model = torch.nn.Linear(digits.x_train.shape[1], len(digits.classes))
history = fit(model, digits.x_train[:300], digits.y_train[:300], epochs=4, batch_size=64, callbacks=[Slow()])
print("epochs run:", len(history["loss"]))
"""


def test_fit_shows_a_progress_bar(lab, page):
    nb = open_notebook(page, lab, "scratch.ipynb")
    editor = nb.locator(".jp-CodeCell .cm-content").first
    editor.click()
    type_into_cell(page, FIT_CELL)
    page.keyboard.press("Shift+Enter")
    nb.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[(\*|\d+)\]")).first.wait_for()
    bar = nb.locator(".widget-hprogress, .widget-progress, progress").first   # ipywidgets 8: widget-hprogress
    bar.wait_for(state="attached", timeout=KERNEL_TIMEOUT)
    shot(page, "5-fit-progress-bar", "lepton_kit.train.fit in a scratch notebook (lab started without "
         "LEPTON_PROGRESS): a progress bar shows while it trains.")
    nb.get_by_text("epochs run: 4").wait_for(timeout=KERNEL_TIMEOUT)
    wait_run_done(page)
    errors = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert not [t for t in errors.all_inner_texts() if "Error" in t], errors.all_inner_texts()
