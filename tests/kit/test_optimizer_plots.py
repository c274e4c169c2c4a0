"""Unit tests of lepton_kit.optimizer_plots: path plots, comparison and schedule plots."""
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


def test_comparison_and_schedule_plots():
    results = {"sgd": {"history": {"loss": [1.0, 0.5]}}, "adam": {"history": {"loss": [0.8, 0.1]}}}
    ax = plots.plot_comparison(results).axes[0]
    assert ax.get_yscale() == "log" and [line.get_color() for line in ax.lines] == ["C0", "C1"]
    ax = plots.plot_schedules({"step": [0.1, 0.05], "cosine": [0.1, 0.0]}).axes[0]
    assert ax.get_ylabel() == "learning rate" and [t.get_text() for t in ax.get_legend().get_texts()] == ["step", "cosine"]
