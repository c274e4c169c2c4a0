"""lepton_kit.widgets.explore: a static figure without a frontend, live controls that redraw quickly."""
from __future__ import annotations

import base64
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lepton_kit.widgets import WIDGET_VIEW, explore  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
RESULTS = {(name, lr): np.cumsum(np.random.default_rng(i).normal(size=200)) * lr
           for i, (name, lr) in enumerate((n, lr) for n in ("sgd", "adam") for lr in (0.01, 0.1, 1.0))}


def draw_curve(optimizer="adam", lr=0.1, steps=100):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(RESULTS[optimizer, lr][:steps])
    ax.set_title(f"{optimizer}, lr={lr}")
    return fig


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")  # figures other tests left open would count as the explorer's
    yield
    plt.close("all")


def _explorer():
    return explore(draw_curve, optimizer=["sgd", "adam"], lr=(0.01, 0.1, 1.0), steps=range(10, 201, 10))


def test_a_headless_call_leaves_a_static_figure_and_a_sentence(monkeypatch):
    monkeypatch.setenv("LEPTON_PROGRESS", "0")  # what lepton run, make lessons and nbval set
    view = _explorer()
    bundle = view._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:8] == PNG
    assert WIDGET_VIEW not in bundle
    text = bundle["text/plain"]
    assert text.startswith("explorer of draw_curve over optimizer, lr, steps (showing optimizer='adam', lr=0.1, steps=100)")
    assert "interactive(" not in text and "children" not in text and len(text) < 160
    assert plt.get_fignums() == [], "the explorer must not leave figures for the inline backend to show again"


def test_in_a_live_kernel_it_is_standard_controls_and_an_output_with_the_image(monkeypatch):
    import ipywidgets as widgets

    monkeypatch.delenv("LEPTON_PROGRESS", raising=False)
    view = _explorer()
    bundle = view._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == view.model_id and "image/png" in bundle
    kinds = {name: type(c) for name, c in view.controls.items()}
    assert kinds == {"optimizer": widgets.Dropdown, "lr": widgets.SelectionSlider, "steps": widgets.IntSlider}
    assert isinstance(view, widgets.VBox) and view.children[-1] is view.output
    (shown,) = view.output.outputs
    assert base64.b64decode(shown["data"]["image/png"])[:8] == PNG


def test_changing_a_control_redraws_quickly():
    view = _explorer()
    first = view.png
    began = time.perf_counter()
    view.controls["optimizer"].value = "sgd"
    seconds = time.perf_counter() - began
    print(f"redraw after a change: {seconds:.3f} s (draw and PNG: {view.seconds:.3f} s)")
    assert view.redraws == 2 and view.values["optimizer"] == "sgd"
    assert view.png != first and view.output.outputs[0]["data"]["image/png"] == base64.b64encode(view.png).decode()
    assert seconds < 2.0
    view.controls["steps"].value = 50
    assert view.redraws == 3 and "steps=50" in view.describe()


def test_a_failing_redraw_is_shown_in_the_output_not_lost():
    def draw(lr=0.1):
        if lr > 0.5:
            raise ValueError("no result for this rate")
        return plt.figure()

    view = explore(draw, lr=(0.1, 1.0))
    view.controls["lr"].value = 1.0
    assert "could not draw {'lr': 1.0}: ValueError: no result for this rate" in view.output.outputs[0]["text"]


def test_bad_controls_are_named():
    with pytest.raises(ValueError, match="at least one control"):
        explore(draw_curve)
    with pytest.raises(TypeError, match="control lr: give a list"):
        explore(draw_curve, lr=0.1)
    with pytest.raises(ValueError, match="default 0.1 of the draw function is not one of its options"):
        explore(draw_curve, lr=(1.0, 2.0))
    with pytest.raises(TypeError, match="returned int, not a matplotlib figure"):
        explore(lambda x=1: 3, x=[1, 2])
