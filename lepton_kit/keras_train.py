"""Keras keeps ``model.fit``; this module gives it the same surface as ``lepton_kit.train``.

``history_dict`` turns a Keras ``History`` into the dict of lists that ``lepton_kit.train.fit``
returns (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``), so one plot or table serves both
frameworks. ``fit`` compiles a classifier that outputs logits and trains it (options keyword-only,
as in ``lepton_kit.train``); callbacks may be Keras callbacks or lepton_kit ones with a
``to_keras()`` method (``lepton_kit.train.EarlyStopping``).
TensorFlow is imported inside the functions only.

>>> import numpy as np
>>> from lepton_kit.models import keras_mlp
>>> x, y = np.random.default_rng(0).random((32, 4)), np.arange(32) % 2
>>> history = fit(keras_mlp(4, (8,), 2), x, y, epochs=2, batch_size=8, seed=0, progress=False)
>>> sorted(history), len(history["loss"])
(['accuracy', 'loss'], 2)
"""
from __future__ import annotations

import os

import numpy as np

from lepton_kit.utils import progress_enabled

# Keras 3 names the accuracy metric after its class when it is given as an object.
_ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # also silences TensorFlow's start-up notice on stderr
    import keras

    return keras


def _plain_name(name: str) -> str:
    prefix = "val_" if name.startswith("val_") else ""
    base = name[len(prefix):]
    return prefix + ("accuracy" if base in _ACCURACY_NAMES else base)


def history_dict(history) -> dict:
    """A Keras ``History`` (or its ``.history`` dict) as ``{name: [float per epoch]}``.

    Accuracy metrics are renamed ``accuracy`` / ``val_accuracy`` and the keys come in the order of
    ``lepton_kit.train.fit``: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, then the rest.

    >>> history_dict({"sparse_categorical_accuracy": [0.5, 0.75], "loss": [1.0, 0.5]})
    {'loss': [1.0, 0.5], 'accuracy': [0.5, 0.75]}
    """
    raw = history.history if hasattr(history, "history") else history
    if not isinstance(raw, dict):
        raise TypeError(f"expected a keras History or its .history dict, got {type(raw).__name__}")
    renamed = {}
    for name, values in raw.items():
        plain = _plain_name(name)
        if plain in renamed:
            raise ValueError(f"two metrics of the history map to {plain!r}: give the metrics distinct names")
        renamed[plain] = [float(v) for v in values]
    first = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in renamed]
    return {k: renamed[k] for k in first + sorted(set(renamed) - set(first))}


def compile_classifier(model, *, lr=1e-3, optimizer=None):
    """Compile ``model`` for integer labels: Adam(lr) (or ``optimizer``), sparse cross-entropy, accuracy.

    The lepton_kit models output logits, hence the loss's ``from_logits=True``.
    """
    keras = _keras()
    model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def fit(model, x, y, *, epochs=10, batch_size=32, lr=1e-3, optimizer=None, validation_data=None, callbacks=(),
        shuffle=True, seed=None, progress=None):
    """Compile a Keras classifier (:func:`compile_classifier`) and train it; return ``history_dict``.

    ``seed`` (when given) seeds Python, NumPy and TensorFlow through ``keras.utils.set_random_seed``
    before training, which fixes the order of the batches. Callbacks with a ``to_keras()`` method
    are converted, so ``lepton_kit.train.EarlyStopping`` works with both frameworks. ``progress``
    (Keras' one-line-per-epoch log) follows :func:`lepton_kit.utils.progress_enabled`, like ``train.fit``.
    """
    keras = _keras()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    compile_classifier(model, lr=lr, optimizer=optimizer)
    callbacks = [cb.to_keras() if hasattr(cb, "to_keras") else cb for cb in callbacks]
    if validation_data is not None:
        validation_data = tuple(np.asarray(a) for a in validation_data)
    history = model.fit(np.asarray(x, dtype=np.float32), np.asarray(y), epochs=epochs, batch_size=batch_size,
                        validation_data=validation_data, callbacks=callbacks, shuffle=shuffle,
                        verbose=2 if progress_enabled(progress) else 0)
    return history_dict(history)


def predict(model, x, *, batch_size=1000) -> np.ndarray:
    """Model outputs (logits for the lepton_kit models) for a NumPy array, as a NumPy array."""
    return np.asarray(model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0))


def evaluate(model, x, y, *, batch_size=1000) -> dict:
    """Mean loss (the compiled one) and accuracy (from the argmax of the outputs), like ``train.evaluate``."""
    y = np.asarray(y)
    loss = model.evaluate(np.asarray(x, dtype=np.float32), y, batch_size=batch_size, verbose=0, return_dict=True)
    outputs = predict(model, x, batch_size=batch_size)
    return {"loss": float(loss["loss"]), "accuracy": float(np.mean(outputs.argmax(axis=1) == y.ravel()))}
