"""PyTorch and Keras helpers: adapters, the shared MLP, the training loop, callbacks."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit import data, seed_everything  # noqa: E402
from lepton_kit.adapters import to_torch_loader  # noqa: E402
from lepton_kit.models import count_parameters, mlp  # noqa: E402
from lepton_kit.train import EarlyStopping, evaluate, fit, predict  # noqa: E402


def test_device_is_cpu_here_or_an_accelerator():
    from lepton_kit import device

    assert device() in {"cpu", "cuda", "mps"}


def test_torch_loader_shuffles_reproducibly():
    x, y = np.arange(20, dtype=float).reshape(10, 2), np.arange(10)
    first = [b[1].tolist() for b in to_torch_loader(x, y, batch_size=5, shuffle=True, seed=3)]
    again = [b[1].tolist() for b in to_torch_loader(x, y, batch_size=5, shuffle=True, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(10)) and first != [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_fit_learns_digits_and_records_history():
    seed_everything(0)
    d = data.load("digits")
    model = mlp(64, hidden=(64,), framework="torch")
    history = fit(model, to_torch_loader(d.x_train, d.y_train, 64, shuffle=True),
                  val_loader=to_torch_loader(d.x_test, d.y_test, 256), epochs=8, lr=3e-3, progress=False)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and len(history["loss"]) == 8
    assert history["loss"][-1] < history["loss"][0]
    assert evaluate(model, to_torch_loader(d.x_test, d.y_test, 256))["accuracy"] > 0.9
    assert predict(model, d.x_test[:7]).shape == (7, 10)


def test_fit_stops_on_a_diverging_loss():
    model = mlp(4, hidden=(8,), num_classes=2)
    loader = to_torch_loader(np.random.rand(16, 4) * 1e3, np.arange(16) % 2, 8)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, loader, epochs=5, optimizer=torch.optim.SGD(model.parameters(), lr=1e30), progress=False)


def test_early_stopping_stops_and_restores_best():
    seed_everything(0)
    d = data.load("digits")
    model = mlp(64, hidden=(16,))
    stop = EarlyStopping(monitor="val_loss", patience=2)
    # a learning rate this large makes validation loss worse after the first epochs
    history = fit(model, to_torch_loader(d.x_train, d.y_train, 32, shuffle=True),
                  val_loader=to_torch_loader(d.x_test, d.y_test, 256), epochs=40, lr=0.05,
                  callbacks=[stop], progress=False)
    assert len(history["loss"]) < 40 and stop.stopped_epoch is not None
    restored = evaluate(model, to_torch_loader(d.x_test, d.y_test, 256))["loss"]
    assert restored == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_early_stopping_without_validation_says_why():
    model = mlp(4, hidden=(4,), num_classes=2)
    with pytest.raises(KeyError, match="pass val_loader"):
        fit(model, to_torch_loader(np.random.rand(8, 4), np.arange(8) % 2, 4), epochs=2,
            callbacks=[EarlyStopping()], progress=False)


@pytest.mark.xdist_group("keras")
def test_keras_and_torch_mlp_agree():
    pytest.importorskip("tensorflow")
    from lepton_kit.adapters import to_tf_dataset
    from lepton_kit.models import copy_torch_to_keras

    torch_model, keras_model = mlp(64, (32, 16), framework="torch"), mlp(64, (32, 16), framework="keras")
    assert count_parameters(torch_model) == count_parameters(keras_model) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    copy_torch_to_keras(torch_model, keras_model)
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    np.testing.assert_allclose(keras_model.predict(x, verbose=0), predict(torch_model, x), atol=1e-5)
    batches = [int(b[0].shape[0]) for b in to_tf_dataset(x, np.arange(5), batch_size=2)]
    assert batches == [2, 2, 1]
    assert EarlyStopping(patience=3).to_keras().patience == 3


def test_unknown_framework():
    with pytest.raises(ValueError, match="framework must be one of"):
        mlp(4, framework="jax")
