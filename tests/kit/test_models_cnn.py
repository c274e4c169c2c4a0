"""The reference CNNs and GRU: same parameter counts in PyTorch and Keras, and the same outputs
once the torch weights are copied into the Keras model (channels-first vs channels-last, Flatten
order, GRU gate order)."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit.models import (  # noqa: E402
    cnn1d, cnn2d, conv_output_length, count_parameters, gru, torch_cnn1d)

pytestmark = pytest.mark.xdist_group("keras")


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _torch_out(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


def _cnn1d_params(length, channels, kernels, in_channels, head_features, classes):
    total, width = 0, in_channels
    for c, k in zip(channels, kernels):
        total += width * c * k + c
        width = c
    return total + head_features * classes + classes


def test_conv_output_length_matches_torch():
    for length, k, s, p in [(40, 5, 1, 2), (40, 5, 2, 1), (19, 3, 2, 1), (8, 3, 3, 0), (7, 2, 2, 0)]:
        out = torch.nn.functional.conv1d(torch.zeros(1, 1, length), torch.zeros(1, 1, k), stride=s, padding=p)
        assert conv_output_length(length, k, s, p) == out.shape[-1]


def test_cnn1d_defaults_are_the_mnist1d_paper_cnn():
    model = cnn1d(40)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs] == [(25, 5, 2)] * 3
    assert count_parameters(model) == _cnn1d_params(40, (25,) * 3, (5,) * 3, 1, 25 * 40, 10) == 16460
    assert model(torch.zeros(4, 40)).shape == (4, 10)


@pytest.mark.parametrize("options", [
    dict(),                                                              # the paper's CNN, flatten head
    dict(kernel_size=(5, 3, 3), stride=2, padding=1),                   # strided: 40 -> 19 -> 10 -> 5
    dict(channels=(8, 16), kernel_size=4, stride=(2, 1)),               # even kernel: uneven lengths
    dict(channels=(6, 6), head="global_avg"),
    dict(channels=(5,), kernel_size=3, in_channels=3),                   # (N, C, L) vs (N, L, C)
])
def test_cnn1d_same_parameters_and_outputs_in_both_frameworks(keras, options):
    from lepton_kit.models import copy_torch_weights_to_keras

    torch.manual_seed(0)
    t_model, k_model = cnn1d(40, **options, framework="torch"), cnn1d(40, **options, framework="keras")
    assert count_parameters(t_model) == count_parameters(k_model)
    copy_torch_weights_to_keras(t_model, k_model)
    c = options.get("in_channels", 1)
    x = np.random.default_rng(1).normal(size=(6, 40) if c == 1 else (6, c, 40)).astype(np.float32)
    x_keras = x if c == 1 else x.transpose(0, 2, 1)                   # channels first -> channels last
    np.testing.assert_allclose(k_model.predict(x_keras, verbose=0), _torch_out(t_model, x), rtol=1e-4, atol=1e-5)


def test_flatten_order_matters_without_the_permute(keras):
    """Without Permute((2, 1)) Keras flattens (L, C) while torch flattens (C, L): outputs differ."""
    from lepton_kit.models import copy_torch_weights_to_keras

    torch.manual_seed(0)
    t_model, k_model = cnn1d(12, channels=(3,)), cnn1d(12, channels=(3,), framework="keras")
    layers = [layer for layer in k_model.layers if not isinstance(layer, keras.layers.Permute)]
    no_permute = keras.Sequential([keras.Input(shape=(12,))] + layers)
    copy_torch_weights_to_keras(t_model, no_permute)
    x = np.random.default_rng(2).normal(size=(4, 12)).astype(np.float32)
    assert not np.allclose(no_permute.predict(x, verbose=0), _torch_out(t_model, x), atol=1e-3)


@pytest.mark.parametrize("options", [
    dict(image_size=(8, 8)),
    dict(image_size=(28, 28), channels=(4, 8), hidden=(16,), dropout=0.5),
    dict(image_size=(32, 32), in_channels=3, channels=(4, 8, 8), kernel_size=5),
    dict(image_size=(9, 7), channels=(3,)),                             # odd sizes: pooling floors
])
def test_cnn2d_same_parameters_and_outputs_in_both_frameworks(keras, options):
    from lepton_kit.models import copy_torch_weights_to_keras

    torch.manual_seed(0)
    t_model, k_model = cnn2d(**options, framework="torch"), cnn2d(**options, framework="keras")
    assert count_parameters(t_model) == count_parameters(k_model)
    copy_torch_weights_to_keras(t_model, k_model)
    c = options.get("in_channels", 1)
    h, w = options["image_size"]
    x = np.random.default_rng(3).random((5, h, w, c)).astype(np.float32)      # channels last, as loaded
    np.testing.assert_allclose(k_model.predict(x, verbose=0), _torch_out(t_model, x.transpose(0, 3, 1, 2)),
                               rtol=1e-4, atol=1e-5)


def test_cnn2d_parameter_count_by_hand():
    # conv 1->32 (3x3) + conv 32->64 (3x3) + linear 64*2*2 -> 10 on 8x8 digits
    assert count_parameters(cnn2d((8, 8))) == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (256 * 10 + 10)


@pytest.mark.parametrize("options", [
    dict(input_size=1, hidden_size=16),                                 # (N, T) signals, e.g. MNIST-1D
    dict(input_size=3, hidden_size=8, num_layers=2),                    # (N, T, F) features, stacked
    dict(input_size=6, hidden_size=5, vocab_size=50, num_classes=2),   # integer tokens
])
def test_gru_same_parameters_and_outputs_in_both_frameworks(keras, options):
    from lepton_kit.models import copy_torch_weights_to_keras

    torch.manual_seed(0)
    t_model, k_model = gru(**options, framework="torch"), gru(**options, framework="keras")
    f, h = options["input_size"], options["hidden_size"]
    per_layer = [3 * (h * (f + h) + 2 * h)] + [3 * (h * 2 * h + 2 * h)] * (options.get("num_layers", 1) - 1)
    expected = sum(per_layer) + h * options.get("num_classes", 10) + options.get("num_classes", 10)
    expected += options.get("vocab_size", 0) * f
    assert count_parameters(t_model) == count_parameters(k_model) == expected
    copy_torch_weights_to_keras(t_model, k_model)
    rng = np.random.default_rng(4)
    if "vocab_size" in options:
        x = rng.integers(0, options["vocab_size"], size=(4, 11))
        t_out = _torch_out(t_model, x)
    else:
        x = rng.normal(size=(4, 11) if f == 1 else (4, 11, f)).astype(np.float32)
        t_out = _torch_out(t_model, x)
    np.testing.assert_allclose(k_model.predict(x, verbose=0), t_out, rtol=1e-4, atol=1e-5)


def test_keras_gru_without_reset_after_has_fewer_parameters(keras):
    """reset_after=False (one bias vector) is not torch's convention: 3 * hidden parameters fewer."""
    old = keras.Sequential([keras.Input(shape=(None, 2)), keras.layers.GRU(4, reset_after=False)])
    new = keras.Sequential([keras.Input(shape=(None, 2)), keras.layers.GRU(4, reset_after=True)])
    assert count_parameters(new) - count_parameters(old) == 3 * 4
    assert count_parameters(new) == count_parameters(torch.nn.GRU(2, 4))


def test_copy_refuses_mismatched_models(keras):
    from lepton_kit.models import copy_torch_weights_to_keras

    with pytest.raises(ValueError, match="layers with weights"):
        copy_torch_weights_to_keras(cnn1d(40, channels=(4, 4)), cnn1d(40, channels=(4,), framework="keras"))
    with pytest.raises(ValueError, match="do not fit"):
        copy_torch_weights_to_keras(cnn1d(40, channels=(4,)), cnn1d(40, channels=(5,), framework="keras"))


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="framework must be one of"):
        cnn2d(framework="jax")
    with pytest.raises(ValueError, match="one entry per conv layer"):
        torch_cnn1d(40, channels=(4, 4), kernel_size=(3, 3, 3))
    with pytest.raises(ValueError, match="too short"):
        cnn1d(8, channels=(4, 4), kernel_size=5, stride=4, padding=0)
    with pytest.raises(ValueError, match="too small"):
        cnn2d((4, 4), channels=(2, 2, 2))
    with pytest.raises(ValueError, match="odd"):
        cnn2d(kernel_size=4)
    with pytest.raises(ValueError, match="head must be"):
        cnn1d(40, head="attention")
