"""The disk cache: what it reads back is what computing gives, side effects included; damage and a
read-only folder cost only time."""
from __future__ import annotations

import random

import numpy as np
import pytest

from lepton_kit.cache import cache_path, cached
from lepton_kit.data import load


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path))
    return tmp_path


def _after_load(**options):
    data = load("mnist1d", **options)
    return data, np.random.rand(4), np.random.randn(3), random.random(), random.gauss(0, 1)


def test_mnist1d_read_back_equals_generated_and_leaves_the_global_generators_as_generating_does(cache):
    generated = _after_load(num_samples=300, seed=3)
    assert list((cache / "mnist1d").glob("*.npz")), "the first load stores the signals"
    read_back = _after_load(num_samples=300, seed=3)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(generated[0], name), getattr(read_back[0], name)), name
        assert getattr(generated[0], name).dtype == getattr(read_back[0], name).dtype
    assert np.array_equal(generated[0].extra["t"], read_back[0].extra["t"])
    for before, after in zip(generated[1:], read_back[1:]):
        assert np.array_equal(before, after), "the draws after a load differ between generating and reading back"
    other = load("mnist1d", num_samples=300, seed=4)
    assert not np.array_equal(other.x_train, generated[0].x_train), "another seed is another entry"


def test_a_damaged_file_is_computed_again_and_replaced(tmp_path):
    path = cache_path("squares", {"n": 3}, folder=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    got = cached("squares", {"n": 3}, lambda: {"x": np.arange(3) ** 2}, folder=tmp_path)
    assert got["x"].tolist() == [0, 1, 4]
    assert np.load(path)["x"].tolist() == [0, 1, 4]


def test_a_folder_that_cannot_be_written_only_means_computing(tmp_path):
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "cache"  # mkdir fails there, as it does, read-only, in the sandbox
    calls = []
    for _ in range(2):
        got = cached("squares", {"n": 3}, lambda: calls.append(1) or {"x": np.arange(3)}, folder=folder)
        assert got["x"].tolist() == [0, 1, 2]
    assert len(calls) == 2


def test_lepton_cache_0_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_CACHE", "0")
    cached("squares", {"n": 3}, lambda: {"x": np.arange(3)}, folder=tmp_path)
    assert not any(tmp_path.iterdir())
