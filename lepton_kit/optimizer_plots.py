"""Plots of :mod:`lepton_kit.optimizers`: optimizer paths on contours, losses along them,
optimizer comparisons and learning-rate schedules, in the style of :mod:`lepton_kit.plot`.

>>> fig = plot_schedules({"constant": [0.1] * 10})
"""
from __future__ import annotations

import numpy as np

from lepton_kit.optimizers import FUNCTIONS, TORCH_OPTIMIZERS, get_function, path_losses, run_path
from lepton_kit.plot import _axes


def plot_paths(function, paths, ax=None, title=None, resolution=200, levels=20):
    """Contours of a 2-D test function with one or several optimizer paths drawn on top.

    ``paths`` maps a label to a path ``(steps + 1, 2)`` (as :func:`run_path` returns). The start is
    a circle, the end a square, the minima stars; the view stays on the function's window even when
    a path diverges (its label then says so).

    >>> fig = plot_paths("quadratic", {"sgd": run_path("quadratic", None, "sgd", steps=20, lr=0.1)})
    """
    import matplotlib.pyplot as plt
    from matplotlib import colors

    f = get_function(function)
    fig, ax = _axes(ax, figsize=(6, 4.5))
    gx, gy = np.meshgrid(np.linspace(*f.xlim, resolution), np.linspace(*f.ylim, resolution))
    zz = f(gx, gy)
    greys = colors.ListedColormap(plt.get_cmap("Greys_r")(np.linspace(0.35, 1.0, 256)))  # light: paths stand out
    if f.log_levels:
        lo = max(float(zz.min()), 1e-3)
        ax.contourf(gx, gy, zz, levels=np.logspace(np.log10(lo), np.log10(zz.max()), levels),
                    norm=colors.LogNorm(), cmap=greys)
    else:
        ax.contourf(gx, gy, zz, levels=levels, cmap=greys)
    for mx, my in f.minima:
        ax.plot(mx, my, "*", color="gold", ms=14, mec="k", zorder=5)
    for i, (label, path) in enumerate(paths.items()):
        path = np.asarray(path, dtype=float)
        color = f"C{i}"
        finite = np.all(np.isfinite(path), axis=1)
        outside = ~((path[:, 0] >= f.xlim[0]) & (path[:, 0] <= f.xlim[1])
                    & (path[:, 1] >= f.ylim[0]) & (path[:, 1] <= f.ylim[1]))
        end = path[finite][-1] if finite.any() else path[0]
        final = path_losses(f, end[None])[0]
        note = "diverged" if (not finite.all() or outside[-1]) else f"f = {final:.2g}"
        ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.5, label=f"{label} ({note})")
        ax.plot(path[0, 0], path[0, 1], "o", color=color, ms=6, mec="k")
        ax.plot(end[0], end[1], "s", color=color, ms=6, mec="k")
    ax.set_xlim(*f.xlim)
    ax.set_ylim(*f.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if paths:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f.name)
    return fig


def plot_losses(function, paths, ax=None, title=None):
    """The function's value along each path, on a log scale (the gap to the minimum value 0).

    >>> fig = plot_losses("quadratic", {"sgd": run_path("quadratic", None, "sgd", steps=20, lr=0.1)})
    """
    fig, ax = _axes(ax, figsize=(6, 4.5))
    for i, (label, path) in enumerate(paths.items()):
        ax.plot(np.maximum(path_losses(function, path), 1e-16), color=f"C{i}", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("f(x, y)")
    ax.grid(alpha=0.3)
    if paths:
        ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def show_path(function="rosenbrock", optimizer="adam", lr=0.01, steps=100, start=None, label=None, **hyper):
    """One optimizer on one test function: the path on the contours (left), the value per step (right).

    This is what the :func:`explorer` draws for each choice of its controls; call it directly for a
    static figure.

    >>> fig = show_path("quadratic", "momentum", lr=0.05, steps=30)
    """
    import matplotlib.pyplot as plt

    f = get_function(function)
    label = label or (optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "optimizer"))
    with np.errstate(all="ignore"):
        path = run_path(f, start, optimizer, steps=steps, lr=lr, **hyper)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    plot_paths(f, {f"{label}, lr={lr:.3g}": path}, ax=left, title=f"{f.name}: {steps} steps")
    plot_losses(f, {label: path}, ax=right, title="value along the path")
    return fig


def plot_comparison(results, ax=None, title="training loss per epoch"):
    """Training-loss curves of :func:`compare_optimizers` results on one log-scale axes.

    >>> fig = plot_comparison({"sgd": {"history": {"loss": [1.0, 0.5]}}})
    """
    fig, ax = _axes(ax, figsize=(6, 4.5))
    for i, (label, r) in enumerate(results.items()):
        loss = np.asarray(r["history"]["loss"], dtype=float)
        ax.plot(np.arange(1, len(loss) + 1), loss, color=f"C{i}", marker="o" if len(loss) < 30 else None, ms=3,
                label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return fig


def plot_schedules(curves, ax=None, title="learning-rate schedules"):
    """Plot ``{label: learning rates per step}`` on one axes.

    >>> fig = plot_schedules({"constant": [0.1] * 10})
    """
    fig, ax = _axes(ax, figsize=(7, 4))
    for i, (label, values) in enumerate(curves.items()):
        ax.plot(np.arange(len(values)), np.asarray(values, dtype=float), color=f"C{i}", label=label, lw=2)
    ax.set_xlabel("step (or epoch)")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return fig
