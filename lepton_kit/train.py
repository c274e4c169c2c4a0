"""One PyTorch training loop: progress bar, history, callbacks (early stopping).

>>> import torch
>>> from lepton_kit.adapters import to_torch_loader
>>> from lepton_kit.models import torch_mlp
>>> _ = torch.manual_seed(0)
>>> loader = to_torch_loader(np.random.rand(32, 4), np.arange(32) % 2, batch_size=8)
>>> history = fit(torch_mlp(4, (8,), 2), loader, epochs=2, progress=False)
>>> sorted(history)
['accuracy', 'loss']
"""
from __future__ import annotations

import copy
import math

import numpy as np


class EarlyStopping:
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
                           "pass val_loader to fit() to get val_* metrics")
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


def evaluate(model, loader, loss_fn=None):
    """Mean loss and accuracy of a classifier over a loader, without gradients."""
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    dev = _device_of(model)
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with torch.no_grad():
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)
            out = model(xb)
            loss_sum += float(loss_fn(out, yb)) * len(yb)
            if out.ndim == 2 and out.shape[1] > 1:
                correct += int((out.argmax(dim=1) == yb).sum())
            total += len(yb)
    if total == 0:
        raise ValueError("the loader is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


def predict(model, x, batch_size=512):
    """Model outputs for a NumPy array, as a NumPy array."""
    import torch

    dev = _device_of(model)
    model.eval()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        parts = [model(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy()


def fit(model, train_loader, epochs=10, optimizer=None, loss_fn=None, val_loader=None, lr=1e-3,
        callbacks=(), progress=True, device=None, scheduler=None):
    """Train ``model`` and return its history (metric name -> list per epoch).

    The default optimizer is Adam(lr) and the default loss cross-entropy. A non-finite loss stops
    training with a clear error instead of silently producing nan weights.
    """
    import torch
    from tqdm.auto import tqdm

    if device is not None:
        model.to(device)
    dev = _device_of(model)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    history: dict[str, list] = {}
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for xb, yb in train_loader:
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
            if out.ndim == 2 and out.shape[1] > 1:
                correct += int((out.argmax(dim=1) == yb).sum())
            seen += len(yb)
        if scheduler is not None:
            scheduler.step()
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        if val_loader is not None:
            logs.update({f"val_{k}": v for k, v in evaluate(model, val_loader, loss_fn).items()})
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        if any([cb.on_epoch_end(epoch, logs, model) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return history
