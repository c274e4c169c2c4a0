"""PyTorch and Keras helpers: adapters, the shared MLP, the training loop, callbacks."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit import data, seed_everything  # noqa: E402
from lepton_kit.adapters import to_torch_loader  # noqa: E402
from lepton_kit.models import count_parameters, mlp  # noqa: E402
from lepton_kit.train import Callback, EarlyStopping, evaluate, fit, predict  # noqa: E402


def _toy(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _same_init():
    torch.manual_seed(0)
    first = mlp(4, hidden=(8,), num_classes=2)
    torch.manual_seed(0)
    return first, mlp(4, hidden=(8,), num_classes=2)


def test_arrays_and_a_loader_give_the_same_history_for_the_same_seed():
    x, y = _toy()
    (a, b), (c, _) = _same_init(), _same_init()
    options = dict(epochs=3, lr=0.05, progress=False, seed=3)
    from_arrays = fit(a, x, y, batch_size=8, **options)
    from_loader = fit(b, to_torch_loader(x, y, batch_size=8, shuffle=True, seed=3), **options)
    assert from_arrays == from_loader
    other_order = fit(c, x, y, batch_size=8, **{**options, "seed": 4})
    assert other_order["loss"] != from_arrays["loss"], "the seed must set the order of the batches"


def test_validation_data_as_arrays_or_a_loader():
    x, y = _toy()
    x_val, y_val = _toy(20, seed=1)
    a, b = _same_init()
    with_arrays = fit(a, x, y, epochs=2, validation_data=(x_val, y_val), progress=False, seed=0)
    with_loader = fit(b, x, y, epochs=2, validation_data=to_torch_loader(x_val, y_val, 7), progress=False, seed=0)
    assert list(with_arrays) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(with_arrays["val_loss"], with_loader["val_loss"], rtol=1e-6)
    assert with_arrays["val_accuracy"] == with_loader["val_accuracy"]
    assert with_arrays["val_loss"][-1] == pytest.approx(evaluate(a, x_val, y_val)["loss"])


def test_options_are_keyword_only_and_labels_are_required_with_arrays():
    x, y = _toy(8)
    model = mlp(4, hidden=(4,), num_classes=2)
    with pytest.raises(TypeError):
        fit(model, x, y, 5)
    with pytest.raises(TypeError):
        evaluate(model, x, y, 4)
    with pytest.raises(TypeError):
        predict(model, x, 4)
    with pytest.raises(TypeError, match="without labels"):
        fit(model, x, epochs=1, progress=False)


def test_predict_and_evaluate_take_arrays_or_loaders():
    x, y = _toy(30)
    model = mlp(4, hidden=(8,), num_classes=2)
    fit(model, x, y, epochs=2, progress=False, seed=0)
    loader = to_torch_loader(x, y, batch_size=7)
    np.testing.assert_allclose(predict(model, x, batch_size=4), predict(model, loader), rtol=1e-6)
    assert predict(model, x).shape == (30, 2)
    on_arrays, on_loader = evaluate(model, x, y), evaluate(model, loader)
    assert on_arrays["accuracy"] == on_loader["accuracy"]
    assert on_arrays["loss"] == pytest.approx(on_loader["loss"], rel=1e-6)
    expected = float((predict(model, x).argmax(axis=1) == y).mean())
    assert on_arrays["accuracy"] == pytest.approx(expected)


def test_callback_hooks_are_called_and_can_stop_training():
    class Recorder(Callback):
        def __init__(self):
            self.epochs, self.logs, self.ended = [], [], 0

        def on_epoch_end(self, epoch, logs, model):
            self.epochs.append(epoch)
            self.logs.append(dict(logs))
            return epoch == 2

        def on_train_end(self, model):
            self.ended += 1

    x, y = _toy(16)
    recorder, silent = Recorder(), Callback()
    history = fit(mlp(4, hidden=(4,), num_classes=2), x, y, epochs=5, callbacks=[silent, recorder], progress=False)
    assert recorder.epochs == [1, 2] and recorder.ended == 1
    assert [logs["loss"] for logs in recorder.logs] == history["loss"]


def test_scheduler_may_be_a_function_of_the_optimizer():
    x, y = _toy(16)
    model = mlp(4, hidden=(4,), num_classes=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.4)
    fit(model, x, y, epochs=2, optimizer=optimizer, progress=False,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_torch_loader_shuffles_reproducibly():
    x, y = np.arange(20, dtype=float).reshape(10, 2), np.arange(10)
    first = [b[1].tolist() for b in to_torch_loader(x, y, batch_size=5, shuffle=True, seed=3)]
    again = [b[1].tolist() for b in to_torch_loader(x, y, batch_size=5, shuffle=True, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(10)) and first != [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


@pytest.mark.slow
def test_fit_learns_digits_and_records_history():
    seed_everything(0)
    d = data.load("digits")
    model = mlp(64, hidden=(64,), framework="torch")
    history = fit(model, d.x_train, d.y_train, batch_size=64, validation_data=(d.x_test, d.y_test), epochs=8,
                  lr=3e-3, progress=False, seed=0)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and len(history["loss"]) == 8
    assert history["loss"][-1] < history["loss"][0]
    assert evaluate(model, d.x_test, d.y_test)["accuracy"] > 0.9
    assert predict(model, d.x_test[:7]).shape == (7, 10)


def test_fit_stops_on_a_diverging_loss():
    seed_everything(0)
    model = mlp(4, hidden=(8,), num_classes=2)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, np.random.default_rng(0).random((16, 4)) * 1e3, np.arange(16) % 2, batch_size=8, epochs=5,
            optimizer=torch.optim.SGD(model.parameters(), lr=1e30), progress=False)


@pytest.mark.slow
def test_early_stopping_stops_and_restores_best():
    seed_everything(0)
    d = data.load("digits")
    model = mlp(64, hidden=(16,))
    stop = EarlyStopping(monitor="val_loss", patience=2)
    # a learning rate this large makes validation loss worse after the first epochs
    history = fit(model, d.x_train, d.y_train, validation_data=(d.x_test, d.y_test), epochs=40, lr=0.05,
                  callbacks=[stop], progress=False, seed=0)
    assert len(history["loss"]) < 40 and stop.stopped_epoch is not None
    restored = evaluate(model, d.x_test, d.y_test)["loss"]
    assert restored == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_early_stopping_without_validation_says_why():
    model = mlp(4, hidden=(4,), num_classes=2)
    with pytest.raises(KeyError, match="pass validation_data"):
        fit(model, to_torch_loader(np.random.rand(8, 4), np.arange(8) % 2, 4), epochs=2,
            callbacks=[EarlyStopping()], progress=False)


@pytest.mark.xdist_group("keras")
def test_keras_and_torch_mlp_agree():
    pytest.importorskip("tensorflow")
    from lepton_kit.adapters import to_tf_dataset
    from lepton_kit.models import copy_torch_weights_to_keras

    torch_model, keras_model = mlp(64, (32, 16), framework="torch"), mlp(64, (32, 16), framework="keras")
    assert count_parameters(torch_model) == count_parameters(keras_model) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    copy_torch_weights_to_keras(torch_model, keras_model)
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    np.testing.assert_allclose(keras_model.predict(x, verbose=0), predict(torch_model, x), atol=1e-5)
    batches = [int(b[0].shape[0]) for b in to_tf_dataset(x, np.arange(5), batch_size=2)]
    assert batches == [2, 2, 1]
    assert EarlyStopping(patience=3).to_keras().patience == 3


def test_unknown_framework():
    with pytest.raises(ValueError, match="framework must be one of"):
        mlp(4, framework="jax")
