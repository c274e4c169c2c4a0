"""Lessons in JupyterLab: a figure renders, lesson 03's explorer reacts to its controls, fit shows a progress bar."""
from __future__ import annotations

import re

import nbformat
import pytest

from .conftest import (KERNEL_TIMEOUT, REPO, UI_TIMEOUT, open_notebook, shot, type_into_cell, wait_run_done)

LESSON = "notebooks/03_optimizers.ipynb"
EXPLORER = re.compile(r"\bexplorer?\(")  # lepton_kit.widgets.explore(...) or optimizer_plots.explorer(...)
PNG_OUTPUT = '.jp-OutputArea-output[data-mime-type="image/png"] img'

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, start_lab):
    """A lab (started without LEPTON_PROGRESS) in a folder holding lesson 03 without its stored outputs."""
    root = tmp_path_factory.mktemp("lessons") / "course"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.read(REPO / LESSON, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)  # no saved widget state: what shows is what the kernel draws now
    nbformat.write(nb, root / LESSON)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")],
                                            metadata=nb.metadata), root / "scratch.ipynb")
    return start_lab(root, name="lessons")


@pytest.fixture(scope="module")
def lesson03(lab, browser):
    """Lesson 03 open, every cell above the explorer's run (Run > Run All Above Selected Cell)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT)
    page = context.new_page()
    cells = nbformat.read(lab.root / LESSON, as_version=4).cells
    index = max(i for i, c in enumerate(cells) if c.cell_type == "code" and EXPLORER.search(c.source))
    nb = open_notebook(page, lab, LESSON)
    explorer = nb.locator(".jp-Cell").nth(index)   # every cell is in the DOM (windowingMode none)
    explorer.locator(".jp-InputPrompt").click()          # selects the cell (command mode)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("Run All Above Selected Cell")).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')]
                 .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""", timeout=60_000, polling=100)
    wait_run_done(page)
    yield page, nb, explorer
    context.close()


def test_a_lesson_figure_renders(lesson03):
    page, nb, _ = lesson03
    errors = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    img = nb.locator(PNG_OUTPUT).first      # the first matplotlib figure of the lesson, drawn just now
    img.wait_for(timeout=KERNEL_TIMEOUT)
    img.scroll_into_view_if_needed()
    box = img.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, box
    assert img.evaluate("i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0")
    shot(page, "4-lesson-figure", "Lesson 03 run from a kernel (outputs cleared first): a matplotlib figure "
         "renders as an image of non-zero size.")


def _current_image(explorer):
    img = explorer.locator(".jp-OutputArea-output img, .widget-image, .jupyter-widgets img").last
    img.wait_for(timeout=KERNEL_TIMEOUT)
    page = explorer.page
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=UI_TIMEOUT)
    return img.get_attribute("src"), img.screenshot()


def test_the_explorer_reacts_to_a_control(lesson03):
    page, nb, explorer = lesson03
    explorer.locator(".jp-InputPrompt").click()
    page.locator('.jp-NotebookPanel:visible [data-command="notebook:run-cell"], '
                 '.jp-NotebookPanel:visible [data-command="notebook:run-cell-and-select-next"]').first.click()
    selects = explorer.locator(".jupyter-widgets select")
    selects.first.wait_for(timeout=KERNEL_TIMEOUT)
    wait_run_done(page)
    src_before, png_before = _current_image(explorer)
    explorer.scroll_into_view_if_needed()
    shot(page, "3a-explorer-before", "Lesson 03's explorer after its cell ran: the controls and the first view.")
    # the optimizer control when there is one, else the first dropdown; another option than the current one
    labelled = explorer.locator(".widget-dropdown").filter(has_text="optimizer").locator("select")
    select = labelled.first if labelled.count() else selects.first
    current = select.input_value()
    options = [o for o in select.locator("option").evaluate_all("os => os.map(o => o.value)") if o != current]
    assert options, "the control has a single option"
    choice = "sgd" if "sgd" in options else options[0]
    select.select_option(choice)
    page.wait_for_function(
        """([cell, before]) => {
            const imgs = cell.querySelectorAll('.jp-OutputArea-output img, .widget-image, .jupyter-widgets img');
            const img = imgs[imgs.length - 1];
            return img && img.getAttribute('src') !== before && img.complete && img.naturalWidth > 0;
        }""", arg=[explorer.element_handle(), src_before], timeout=KERNEL_TIMEOUT, polling=200)
    src_after, png_after = _current_image(explorer)
    assert src_after != src_before
    assert png_after != png_before, "the image's pixels did not change"
    errors = explorer.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    shot(page, "3b-explorer-after", f"The explorer after choosing '{choice}' (was '{current}'): the figure is redrawn.")


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
