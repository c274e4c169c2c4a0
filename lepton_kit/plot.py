"""Plots in one consistent style: learning curves, confusion matrices, decision boundaries."""
from __future__ import annotations

import numpy as np


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def learning_curves(history, ax=None, title=None, metrics=None):
    """Plot per-epoch curves from a history dict (``{"loss": [...], "val_loss": [...]}``).

    Losses go on the left axis, accuracies (names containing ``acc``) on a right axis.

    >>> fig = learning_curves({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8]})
    """
    fig, ax = _axes(ax)
    names = list(metrics or history)
    if not names:
        raise ValueError("history is empty: nothing to plot")
    acc_ax = None
    for index, name in enumerate(names):
        values = np.asarray(history[name], dtype=float)
        epochs = np.arange(1, len(values) + 1)
        target = ax
        if "acc" in name:
            acc_ax = acc_ax or ax.twinx()
            target = acc_ax
        style = "--" if name.startswith("val") or name.startswith("test") else "-"
        target.plot(epochs, values, style, color=f"C{index}", marker="o" if len(values) < 30 else None, ms=3,
                    label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    if acc_ax is not None:
        acc_ax.set_ylabel("accuracy")
        h2, l2 = acc_ax.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def confusion_matrix(cm, classes=None, ax=None, normalize=False, title=None):
    """Show a confusion matrix ``cm[true, predicted]`` with counts (or row shares) in the cells.

    >>> fig = confusion_matrix(np.array([[3, 1], [0, 4]]), classes=["cat", "dog"])
    """
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = _axes(ax, figsize=(5, 4.5))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    n = cm.shape[0]
    labels = [str(c) for c in (classes if classes is not None else range(n))]
    ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 2 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    if title:
        ax.set_title(title)
    return fig


def decision_boundary(predict, x, y, ax=None, resolution=200, title=None):
    """Shade the classes that ``predict`` (N x 2 array -> labels) assigns over the plane of ``x``.

    >>> fig = decision_boundary(lambda p: (p[:, 0] > 0).astype(int), np.array([[-1., 0.], [1., 1.]]), [0, 1])
    """
    x = np.asarray(x, dtype=float)
    fig, ax = _axes(ax)
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0) + 1e-9)
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    zz = np.asarray(predict(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax.contourf(gx, gy, zz, alpha=0.3, cmap="tab10")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", s=12, edgecolors="k", linewidths=0.3)
    if title:
        ax.set_title(title)
    return fig
