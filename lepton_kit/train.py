"""One PyTorch training loop with Keras' surface: arrays (or a DataLoader) in, a history out.

``fit(model, x, y)`` is enough; the options (``epochs``, ``batch_size``, ``validation_data``,
``optimizer``, ``callbacks``, ...) are keyword-only and have defaults. Where arrays are accepted a
``DataLoader`` of ``(x, y)`` batches is too (then ``y`` stays None).

>>> import torch
>>> from lepton_kit.models import torch_mlp
>>> x, y = np.random.default_rng(0).random((32, 4)), np.arange(32) % 2
>>> model = torch_mlp(4, (8,), 2)
>>> history = fit(model, x, y, epochs=2, batch_size=8, validation_data=(x, y), progress=False, seed=0)
>>> sorted(history), predict(model, x[:3]).shape
(['accuracy', 'loss', 'val_accuracy', 'val_loss'], (3, 2))
"""
from __future__ import annotations

import copy
import math

import numpy as np


class Callback:
    """Base class of :func:`fit`'s callbacks; override the hooks you need.

    ``on_epoch_end(epoch, logs, model)`` runs after each epoch (``logs``: that epoch's metrics) and
    returns True to stop training; ``on_train_end(model)`` runs once at the end.

    >>> class Print(Callback):
    ...     def on_epoch_end(self, epoch, logs, model):
    ...         print(epoch, logs)
    >>> Print().on_epoch_end(1, {"loss": 0.5}, model=None)
    1 {'loss': 0.5}
    """

    def on_epoch_end(self, epoch, logs, model):
        return None

    def on_train_end(self, model):
        return None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best`` the model gets back the weights of its best epoch. ``to_keras()`` gives
    the matching Keras callback, so both frameworks share one callbacks surface.

    >>> stop = EarlyStopping(patience=1)
    >>> stop.to_keras().patience
    1
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode=None, restore_best=True):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = mode or ("max" if "acc" in monitor else "min")
        self.restore_best = restore_best
        self.best, self.best_epoch, self.best_state, self.wait = None, None, None, 0
        self.stopped_epoch = None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs, model):
        """Return True to stop training."""
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r} but the history has only {sorted(logs)}; "
                           "pass validation_data to fit() to get val_* metrics")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model):
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)

    def to_keras(self):
        import keras

        return keras.callbacks.EarlyStopping(monitor=self.monitor, patience=self.patience,
                                             min_delta=self.min_delta, mode=self.mode,
                                             restore_best_weights=self.restore_best)


def _device_of(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return "cpu"


def _is_array(x):
    return isinstance(x, (np.ndarray, list)) or hasattr(x, "shape")


def _loader(x, y, batch_size, shuffle=False, seed=None):
    """A loader over the arrays ``(x, y)``, or ``x`` itself when it is a loader (``y`` None)."""
    if y is None and _is_array(x):
        raise TypeError("got inputs without labels: pass y, or a loader of (x, y) batches")
    if y is None:
        return x
    from lepton_kit.adapters import to_torch_loader

    return to_torch_loader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)


def _correct(out, yb):
    """How many argmax predictions of a classifier's outputs are right (0 for other outputs)."""
    return int((out.argmax(dim=1) == yb).sum()) if out.ndim == 2 and out.shape[1] > 1 else 0


def evaluate(model, x, y=None, *, batch_size=1000, loss_fn=None):
    """Mean loss (cross-entropy by default) and accuracy of a classifier, without gradients.

    >>> from lepton_kit.models import torch_mlp
    >>> sorted(evaluate(torch_mlp(3, (4,), 2), np.zeros((5, 3)), np.zeros(5, dtype=int)))
    ['accuracy', 'loss']
    """
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    dev = _device_of(model)
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with torch.no_grad():
        for xb, yb in _loader(x, y, batch_size):
            xb, yb = xb.to(dev), yb.to(dev)
            out = model(xb)
            loss_sum += float(loss_fn(out, yb)) * len(yb)
            correct += _correct(out, yb)
            total += len(yb)
    if total == 0:
        raise ValueError("nothing to evaluate: the data is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


def predict(model, x, *, batch_size=1000):
    """Model outputs for an array (or a loader; only the inputs of its batches are used), as NumPy.

    >>> from lepton_kit.models import torch_mlp
    >>> predict(torch_mlp(3, (4,), 2), np.zeros((5, 3))).shape
    (5, 2)
    """
    import torch

    dev = _device_of(model)
    model.eval()
    if _is_array(x):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        batches = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in x)
    with torch.no_grad():
        parts = [model(xb.to(dev)).cpu() for xb in batches]
    return torch.cat(parts).numpy()


def fit(model, x, y=None, *, epochs=10, batch_size=32, validation_data=None, optimizer=None, loss_fn=None,
        lr=1e-3, callbacks=(), progress=None, device=None, scheduler=None, shuffle=True, seed=None):
    """Train ``model`` on ``(x, y)`` arrays or a loader ``x``; return the history (name -> list per epoch).

    - ``batch_size`` and ``shuffle`` apply to arrays; ``validation_data`` is ``(x_val, y_val)`` or a
      loader, and adds ``val_loss`` and ``val_accuracy``.
    - ``seed`` seeds Python, NumPy and torch before training (``lepton_kit.seed_everything``) and the
      order of the batches of arrays; without it they come from torch's global generator.
    - The default optimizer is Adam(lr), the default loss cross-entropy; ``scheduler`` (a scheduler,
      or a function of the optimizer that makes one) is stepped once per epoch.
    - ``callbacks`` are :class:`Callback` objects, such as :class:`EarlyStopping`.
    - ``progress``: a bar over the epochs; by default shown unless ``LEPTON_PROGRESS=0``, which the
      course's headless runners set (:func:`lepton_kit.utils.progress_enabled`).

    A non-finite loss stops training with a clear error instead of silently producing nan weights.
    """
    import torch
    from tqdm.auto import tqdm

    from lepton_kit.utils import progress_enabled, seed_everything

    if seed is not None:
        seed_everything(seed)
    if device is not None:
        model.to(device)
    dev = _device_of(model)
    loader = _loader(x, y, batch_size, shuffle=shuffle, seed=seed)
    if isinstance(validation_data, (tuple, list)):
        validation_data = _loader(*validation_data, batch_size=1000)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = scheduler(optimizer) if callable(scheduler) else scheduler
    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    history: dict[str, list] = {}
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            optimizer.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at epoch {epoch}: lower the learning rate")
            loss.backward()
            optimizer.step()
            loss_sum += value * len(yb)
            correct += _correct(out, yb)
            seen += len(yb)
        if scheduler is not None:
            scheduler.step()
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        if validation_data is not None:
            logs.update({f"val_{k}": v for k, v in evaluate(model, validation_data, loss_fn=loss_fn).items()})
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        if any([cb.on_epoch_end(epoch, logs, model) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return history
