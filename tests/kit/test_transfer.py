"""Unit 07's kit: the body/head CNN in both frameworks (same features once the torch weights,
BatchNorm statistics included, are copied into Keras) and the lepton_kit.transfer helpers."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_kit.models import cnn2d_body, copy_torch_cnn_to_keras, count_parameters, transfer_cnn  # noqa: E402
from lepton_kit.transfer import (batchnorm_statistics, cached_file, class_subset, count_trainable,  # noqa: E402
                                 max_change, mean_by_k, plot_accuracy_vs_k, train_steps)


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def test_transfer_cnn_has_a_body_and_a_head_and_takes_28x28_images():
    model = transfer_cnn(5)
    assert model.body(torch.zeros(3, 28, 28)).shape == (3, 64)
    assert model(torch.zeros(3, 28, 28)).shape == (3, 5)
    assert count_parameters(model) == count_parameters(model.body) + 64 * 5 + 5
    rgb = transfer_cnn(3, image_size=(32, 32), in_channels=3, channels=(4, 8), strides=(2, 2))
    assert rgb(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.xdist_group("keras")
def test_keras_body_gives_the_torch_features_after_copying_weights_and_batchnorm_statistics(keras):
    torch.manual_seed(0)
    model = transfer_cnn(5)
    x = np.random.default_rng(0).uniform(-1, 1, size=(64, 28, 28)).astype(np.float32)
    train_steps(model, x, np.arange(64) % 5, optimizer=torch.optim.Adam(model.parameters()), steps=3)
    assert max_change(batchnorm_statistics(transfer_cnn(5)), batchnorm_statistics(model)) > 0
    model.eval()
    with torch.no_grad():
        expected = model(torch.as_tensor(x)).numpy()
    keras_model = copy_torch_cnn_to_keras(model, transfer_cnn(5, framework="keras"))
    np.testing.assert_allclose(keras_model.predict(x, verbose=0), expected, atol=1e-4)
    assert count_trainable(keras_model) == count_trainable(model)
    body = keras_model.get_layer("body")
    body.trainable = False
    assert count_trainable(keras_model) == 64 * 5 + 5
    stats = batchnorm_statistics(body)
    assert len(stats) == 8 and max_change(stats, batchnorm_statistics(body)) == 0.0
    with pytest.raises(ValueError, match="layers with weights"):
        copy_torch_cnn_to_keras(model, cnn2d_body(channels=(8, 16), strides=(2, 2), framework="keras"))


def test_train_steps_counts_steps_is_reproducible_and_decays_with_cosine():
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2)
        opt = torch.optim.Adam(net.parameters(), lr=0.1)
        runs.append(train_steps(net, x, y, optimizer=opt, steps=7, batch_size=8, seed=3, cosine=True))
    assert len(runs[0]) == 7 and runs[0] == runs[1]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        train_steps(net, x[:0], y[:0], optimizer=opt, steps=1)


def test_class_subset_count_trainable_and_summaries():
    x, y = np.arange(8), np.array([3, 1, 3, 2, 1, 3, 0, 2])
    xs, ys = class_subset(x, y, [3, 2])
    assert xs.tolist() == [0, 2, 3, 5, 7] and ys.tolist() == [0, 0, 1, 0, 1]
    model = transfer_cnn(2)
    for p in model.body.parameters():
        p.requires_grad = False
    assert count_trainable(model) == 64 * 2 + 2
    summary = mean_by_k([{"arm": "a", "k": 1, "accuracy": 0.2}, {"arm": "a", "k": 1, "accuracy": 0.4},
                         {"arm": "a", "k": "all", "accuracy": 0.9}])
    assert summary == {"a": {1: pytest.approx(0.3), "all": 0.9}}
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_accuracy_vs_k(summary, all_size=400)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "all"]


def test_cached_file_never_downloads(tmp_path, monkeypatch):
    from lepton_kit import downloads

    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    path, reason = cached_file("cifar-10-python.tar.gz")
    assert path is None and "not in the cache" in reason
    target = tmp_path / "toy" / "w.bin"
    target.parent.mkdir()
    target.write_bytes(b"weights")
    import hashlib

    monkeypatch.setitem(downloads.REGISTRY, "toy", {"base_url": "http://invalid/", "files": {
        "w.bin": "sha256:" + hashlib.sha256(b"weights").hexdigest()}})
    assert cached_file("w.bin") == (target, None)
    target.write_bytes(b"corrupt")
    assert cached_file("w.bin")[0] is None


def test_pretrain_reads_back_the_weights_and_the_random_state_that_training_leaves(tmp_path, monkeypatch):
    import torch

    from lepton_kit.transfer import pretrain

    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), np.arange(40) % 3

    def run():
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 3))
        net = pretrain(net, x, y, steps=7, lr=0.05, seed=2, batch_size=16)
        return net, torch.rand(3)

    trained, after_training = run()
    assert list((tmp_path / "pretrained").glob("*.npz")), "the weights were stored"
    read_back, after_reading = run()
    for a, b in zip(trained.state_dict().values(), read_back.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(after_training, after_reading), "torch's random state differs after a read-back"
    assert read_back.training
    torch.manual_seed(1)
    other = pretrain(torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 3)),
                     x, y, steps=8, lr=0.05, seed=2, batch_size=16)
    assert not torch.equal(other[0].weight, trained[0].weight), "other settings are another entry"
