"""Classification metrics: NumPy in, numbers out (checked against scikit-learn in the tests)."""
from __future__ import annotations

import numpy as np


def _labels(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no labels given")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def accuracy(y_true, y_pred) -> float:
    """Share of correct predictions.

    >>> accuracy([0, 1, 1], [0, 1, 0])
    0.6666666666666666
    """
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None) -> np.ndarray:
    """Counts ``cm[true, predicted]``.

    >>> confusion_matrix([0, 1, 1], [0, 1, 0]).tolist()
    [[1, 0], [1, 1]]
    """
    y_true, y_pred = _labels(y_true, y_pred)
    n = num_classes or int(max(y_true.max(), y_pred.max())) + 1
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def precision_recall_f1(y_true, y_pred, average="macro", num_classes=None):
    """Precision, recall and F1, per class (``average=None``) or macro-averaged.

    A class never predicted (or never present) counts 0, as scikit-learn's ``zero_division=0``.

    >>> p, r, f = precision_recall_f1([0, 1, 1], [0, 1, 0])
    >>> round(p, 3), round(r, 3), round(f, 3)
    (0.75, 0.75, 0.667)
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    if average is None:
        return precision, recall, f1
    if average != "macro":
        raise ValueError(f"average must be 'macro' or None, got {average!r}")
    return float(precision.mean()), float(recall.mean()), float(f1.mean())
