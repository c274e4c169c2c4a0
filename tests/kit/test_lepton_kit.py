"""Unit tests of the helper package (offline, fast)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

import lepton_kit
from lepton_kit import checks, data, metrics, profile_settings, record
from lepton_kit.utils import RECORD_MIME, recorded_metrics


def test_import_is_light():
    code = ("import time, sys; t = time.perf_counter(); import lepton_kit; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'matplotlib') if m in sys.modules]; "
            "print(dt); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    seconds, heavy = float(out[0]), out[1]
    assert heavy == "", f"import lepton_kit pulled in {heavy}"
    assert seconds < 0.3, f"import lepton_kit took {seconds:.3f} s"


def test_profile_settings_picks_one_and_rejects_unknown():
    assert profile_settings("ci", ci=dict(epochs=2), full=dict(epochs=9)).epochs == 2
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        profile_settings("gpu", ci={}, full={})
    with pytest.raises(ValueError, match="no entry for full"):
        profile_settings("ci", ci={})


def test_record_outside_a_kernel_prints_and_returns(capsys):
    assert record("acc", np.float32(0.5)) == np.float32(0.5)
    assert capsys.readouterr().out.strip() == "acc = 0.5"
    with pytest.raises(ValueError):
        record("not a name", 1)


def test_recorded_metrics_reads_outputs():
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {RECORD_MIME: {"name": "a", "value": 0.9}}},
        {"output_type": "stream", "text": "hello"}]}]}
    assert recorded_metrics(nb) == {"a": 0.9}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    y_pred[:100] = y_true[:100]
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    for ours, theirs in zip(metrics.precision_recall_f1(y_true, y_pred, average=None), (p, r, f)):
        np.testing.assert_allclose(ours, theirs)
    macro = skm.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)[:3]
    np.testing.assert_allclose(metrics.precision_recall_f1(y_true, y_pred), macro)


def test_metrics_zero_division_and_bad_input():
    p, r, f = metrics.precision_recall_f1([0, 0, 1], [0, 0, 0], average=None)
    assert p[1] == 0 and r[1] == 0 and f[1] == 0
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        metrics.accuracy([0, 1, 1], [0, 1])


def test_check_close_messages():
    checks.check_close([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(AssertionError, match="shape"):
        checks.check_close([1.0], [1.0, 2.0])
    with pytest.raises(AssertionError, match="nan or inf"):
        checks.check_close([np.inf], [1.0])
    with pytest.raises(AssertionError, match="forget a `return`"):
        checks.check_close(None, [1.0])
    with pytest.raises(AssertionError, match="not close"):
        checks.check_close([1.0, 2.5], [1.0, 2.0])


def test_check_close_names_the_index_in_plain_ints():
    got = np.zeros((2, 3))
    got[1, 2] = 5.0
    with pytest.raises(AssertionError) as info:
        checks.check_close(got, np.zeros((2, 3)), name="z")
    assert "at index (1, 2) (got 5, expected 0)" in str(info.value)
    assert "np.int" not in str(info.value)


def test_check_close_is_not_fooled_by_objects_that_compare_equal():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(AssertionError):
        checks.check_close(AlwaysEqual(), [1.0])


def test_gradient_check_catches_a_wrong_gradient():
    f = lambda v: float(np.sum(np.sin(v) * v))  # noqa: E731
    x = np.random.default_rng(0).normal(size=(3, 2))
    good = np.cos(x) * x + np.sin(x)
    assert checks.gradient_check(f, x.copy(), good) < 1e-7
    with pytest.raises(AssertionError, match="relative error"):
        checks.gradient_check(f, x.copy(), np.cos(x) * x)
    before = x.copy()
    checks.numerical_gradient(f, x)
    np.testing.assert_array_equal(x, before)


def test_digits_is_stratified_and_scaled():
    d = data.load("digits", test_size=0.25, seed=0)
    assert d.x_train.shape == (1347, 64) and d.x_test.shape == (450, 64)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert np.bincount(d.y_test).min() >= 43  # 25 % of the smallest class (174 images)
    assert "digits" in repr(d)


def test_mnist1d_is_deterministic_and_shuffle_changes_positions():
    a, b = data.load("mnist1d", num_samples=1000), data.load("mnist1d", num_samples=1000)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (800, 40) and a.x_test.shape == (200, 40)
    shuffled = data.load("mnist1d", num_samples=1000, shuffle_seq=True)
    assert not np.allclose(shuffled.x_train, a.x_train)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="digits, mnist1d, mnist"):
        data.load("imagenet")


def test_stratified_split_keeps_shares():
    y = np.array([0] * 80 + [1] * 20)
    _, _, _, y_te = data.stratified_split(np.zeros((100, 1)), y, test_size=0.25, seed=1)
    assert np.bincount(y_te).tolist() == [20, 5]


def test_public_api():
    assert set(lepton_kit.__all__) >= {"record", "seed_everything", "device", "profile_settings"}
