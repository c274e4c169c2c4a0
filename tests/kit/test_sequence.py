"""lepton_kit.sequence: the recurrent classifiers' shapes, parameter counts and readouts, and the
torch Elman RNN copied into Keras' SimpleRNN (one bias instead of two) giving the same outputs."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit.models import count_parameters  # noqa: E402
from lepton_kit.sequence import copy_rnn_weights_to_keras, rnn_classifier  # noqa: E402


def test_the_mnist1d_papers_gru_has_about_5k_parameters():
    net = rnn_classifier("gru", 1, 6, 10, bidirectional=True, readout="all", time_steps=40)
    assert count_parameters(net) == 2 * 3 * (6 * 1 + 6 * 6 + 2 * 6) + 2 * 6 * 40 * 10 + 10
    assert tuple(net(torch.zeros(3, 40)).shape) == (3, 10)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("readout", ["last", "mean", "max"])
def test_token_classifiers_give_finite_logits_with_padding_and_an_all_padding_row(cell, readout):
    torch.manual_seed(0)
    net = rnn_classifier(cell, 4, 5, 3, vocab_size=20, readout=readout, bidirectional=readout != "last").eval()
    tokens = torch.tensor([[0, 0, 7, 8, 9], [3, 4, 5, 6, 2], [0, 0, 0, 0, 0]])
    out = net(tokens)
    assert tuple(out.shape) == (3, 3)
    assert torch.isfinite(out).all()


def test_mean_readout_of_a_token_sequence_is_the_mean_of_the_unpadded_steps():
    torch.manual_seed(0)
    net = rnn_classifier("gru", 3, 4, 2, vocab_size=10, readout="mean").eval()
    tokens = torch.tensor([[0, 0, 5, 6]])
    with torch.no_grad():
        out, _ = net.rnn(net.embedding(tokens))
        expected = net.head(out[0, 2:].mean(0, keepdim=True))
        torch.testing.assert_close(net(tokens), expected)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="cell"):
        rnn_classifier("transformer")
    with pytest.raises(ValueError, match="time_steps"):
        rnn_classifier("gru", readout="all")


@pytest.mark.xdist_group("keras")
def test_torch_rnn_copied_into_keras_simplernn_gives_the_same_outputs():
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 5, batch_first=True)
    layer = keras.layers.SimpleRNN(5, return_sequences=True)
    layer.build((None, None, 3))
    copy_rnn_weights_to_keras(rnn, layer)
    x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32)
    with torch.no_grad():
        expected = rnn(torch.tensor(x))[0].numpy()
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="one-layer"):
        copy_rnn_weights_to_keras(torch.nn.RNN(3, 5, bidirectional=True), layer)
