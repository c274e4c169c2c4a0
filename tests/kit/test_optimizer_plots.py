"""Unit tests of lepton_kit.optimizer_plots: path plots, the explorer, comparison and schedule plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lepton_kit import optimizer_plots as plots  # noqa: E402
from lepton_kit import optimizers  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class PlainSGD:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self, grads):
        for p, g in zip(self.params, grads):
            p -= self.lr * g


def test_plot_paths_marks_divergence_and_keeps_the_window():
    f = optimizers.FUNCTIONS["quadratic"]
    good = optimizers.run_path(f, None, "sgd", steps=30, lr=0.1)
    with np.errstate(all="ignore"):
        bad = optimizers.run_path(f, None, "sgd", steps=30, lr=0.25)
    fig = plots.plot_paths(f, {"good": good, "bad": bad})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("good (f = ") and labels[1] == "bad (diverged)"
    assert ax.get_xlim() == f.xlim and ax.get_ylim() == f.ylim
    fig2 = plots.plot_losses("quadratic", {"good": good})
    assert fig2.axes[0].get_yscale() == "log"


def test_show_path_draws_path_and_losses():
    fig = plots.show_path("himmelblau", "nesterov", lr=0.01, steps=20)
    assert len(fig.axes) == 2
    assert "20 steps" in fig.axes[0].get_title()


def test_explorer_builds_headless_and_reacts_to_its_controls():
    import ipywidgets as widgets

    w = plots.explorer(optimizers={"mine": PlainSGD}, function="quadratic", optimizer="mine", lr=0.1, steps=10)
    assert isinstance(w, widgets.interactive)
    controls = {c.description: c for c in w.kwargs_widgets}
    assert set(controls) == {"function", "optimizer", "lr", "steps"}
    assert "mine" in controls["optimizer"].options and "adadelta" in controls["optimizer"].options
    assert controls["lr"].value == pytest.approx(0.1)
    first = w.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n", "the first view is drawn while the widget is built"
    assert w.image in w.children
    assert plt.get_fignums() == [], "the view must not leave figures for the inline backend to display"
    controls["optimizer"].value = "adam"   # re-runs the view function; must not raise
    controls["steps"].value = 5
    assert w.kwargs == {"function": "quadratic", "optimizer": "adam", "lr": pytest.approx(0.1), "steps": 5}
    assert w.image.value != first


def test_comparison_and_schedule_plots():
    results = {"sgd": {"history": {"loss": [1.0, 0.5]}}, "adam": {"history": {"loss": [0.8, 0.1]}}}
    ax = plots.plot_comparison(results).axes[0]
    assert ax.get_yscale() == "log" and [line.get_color() for line in ax.lines] == ["C0", "C1"]
    ax = plots.plot_schedules({"step": [0.1, 0.05], "cosine": [0.1, 0.0]}).axes[0]
    assert ax.get_ylabel() == "learning rate" and [t.get_text() for t in ax.get_legend().get_texts()] == ["step", "cosine"]
