"""lepton_kit.keras_train: Keras training with the history and callbacks surface of lepton_kit.train."""
from __future__ import annotations

import os

import numpy as np
import pytest

from lepton_kit.keras_train import history_dict

pytestmark = pytest.mark.xdist_group("keras")


def test_history_dict_renames_and_orders_like_torch_fit():
    raw = {"val_sparse_categorical_accuracy": [0.4], "val_loss": [1.5], "sparse_categorical_accuracy": [0.5],
           "loss": [np.float32(1.25)], "learning_rate": [0.001]}
    out = history_dict(raw)
    assert list(out) == ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    assert out["loss"] == [1.25] and isinstance(out["loss"][0], float)


def test_history_dict_rejects_what_it_cannot_read():
    with pytest.raises(TypeError, match="History"):
        history_dict([1.0, 2.0])
    with pytest.raises(ValueError, match="'accuracy'"):
        history_dict({"acc": [0.5], "accuracy": [0.5]})


def test_keras_fit_learns_digits_and_matches_the_torch_history_keys():
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lepton_kit import data
    from lepton_kit.keras_train import evaluate, fit, predict
    from lepton_kit.models import keras_mlp

    d = data.load("digits")
    model = keras_mlp(64, (32,), 10)
    history = fit(model, d.x_train, d.y_train, epochs=5, batch_size=64, lr=3e-3,
                  validation_data=(d.x_test, d.y_test), seed=0)
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"] and len(history["loss"]) == 5
    assert history["loss"][-1] < history["loss"][0]
    result = evaluate(model, d.x_test, d.y_test)
    assert result["accuracy"] > 0.85
    assert result["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)
    logits = predict(model, d.x_test[:5])
    assert logits.shape == (5, 10)
    # the compiled loss is the cross-entropy of the logits (from_logits=True)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(5), d.y_test[:5]].mean()
    assert evaluate(model, d.x_test[:5], d.y_test[:5])["loss"] == pytest.approx(expected, rel=1e-4)


def test_keras_fit_takes_the_lepton_early_stopping_and_image_shapes():
    pytest.importorskip("tensorflow")
    from lepton_kit.keras_train import fit
    from lepton_kit.models import keras_mlp
    from lepton_kit.train import EarlyStopping

    rng = np.random.default_rng(0)
    # random labels: nothing to learn, so the validation loss soon stops improving
    x, y = rng.random((40, 4, 4)).astype(np.float32), rng.integers(0, 3, 40)
    x_val, y_val = rng.random((20, 4, 4)).astype(np.float32), rng.integers(0, 3, 20)
    stop = EarlyStopping(monitor="val_loss", patience=2)
    for _ in range(2):  # the same lepton_kit callback serves two trainings (a fresh Keras one each time)
        history = fit(keras_mlp((4, 4), (16,), 3), x, y, epochs=40, batch_size=8, lr=0.05,
                      validation_data=(x_val, y_val), callbacks=[stop], seed=0)
        assert len(history["loss"]) < 40 and len(history["val_loss"]) == len(history["loss"])
