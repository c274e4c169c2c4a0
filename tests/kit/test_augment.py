"""Unit tests of lepton_kit.augment (offline, fast)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from lepton_kit import augment


def _shift_of(out_row, in_row, max_shift):
    return [k for k in range(-max_shift, max_shift + 1) if np.array_equal(out_row, np.roll(in_row, k))]


def test_circular_shift_moves_each_row_by_its_own_amount_within_the_bound():
    x = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32)
    before = x.copy()
    out = augment.shift(x, np.random.default_rng(1), max_shift=3)
    assert out.shape == x.shape and out.dtype == np.float32
    shifts = [_shift_of(o, i, 3) for o, i in zip(out, x)]
    assert all(len(s) == 1 for s in shifts), "every row must be a circular shift of its own input row"
    assert {s[0] for s in shifts} == {-3, -2, -1, 0, 1, 2, 3}   # each row drawn independently, both ends included
    assert np.array_equal(x, before), "the caller's array must not change"


def test_positive_shift_moves_right_and_padded_modes_fill_the_border():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    rng = np.random.default_rng(0)
    k = int(rng.integers(-2, 3, size=1)[0])          # the shift the same seed will draw
    for mode, fill in [("circular", None), ("zero", 0.0), ("edge", "edge")]:
        out = augment.shift(x, np.random.default_rng(0), max_shift=2, mode=mode)[0]
        if mode == "circular":
            expected = np.roll(x[0], k)
        else:
            expected = np.roll(x[0], k)
            if k > 0:
                expected[:k] = 0.0 if fill == 0.0 else x[0, 0]
            elif k < 0:
                expected[k:] = 0.0 if fill == 0.0 else x[0, -1]
        np.testing.assert_array_equal(out, expected, err_msg=f"mode={mode}, k={k}")


def test_shift_of_one_signal_and_edge_cases():
    x = np.arange(10.0)
    out = augment.shift(x, 3, max_shift=2)                  # an int seed works too
    assert out.shape == (10,) and _shift_of(out, x, 2)
    np.testing.assert_array_equal(augment.shift(x, 0, max_shift=0), x)
    np.testing.assert_array_equal(augment.shift(np.arange(4), 0, max_shift=0), np.arange(4.0))   # ints -> float
    with pytest.raises(ValueError, match="mode"):
        augment.shift(x, 0, mode="reflect")
    with pytest.raises(ValueError, match="max_shift"):
        augment.shift(x, 0, max_shift=-1)
    with pytest.raises(ValueError, match="shape"):
        augment.shift(np.zeros((2, 3, 4)), 0)
    with pytest.raises(TypeError, match="default_rng"):
        augment.shift(x, np.random.RandomState(0))


def test_gaussian_noise_has_the_requested_std_and_leaves_the_input_alone():
    x = np.random.default_rng(0).normal(size=(400, 250))
    before = x.copy()
    out = augment.gaussian_noise(x, np.random.default_rng(1), std=0.3)
    noise = out - x
    assert abs(noise.std() - 0.3) < 0.005 and abs(noise.mean()) < 0.005
    assert np.array_equal(x, before)
    np.testing.assert_array_equal(augment.gaussian_noise(x, 5, std=0.3), augment.gaussian_noise(x, 5, std=0.3))
    with pytest.raises(ValueError):
        augment.gaussian_noise(x, 0, std=-1.0)


def test_scale_multiplies_each_row_by_one_factor_in_range():
    x = np.ones((500, 8))
    out = augment.scale(x, np.random.default_rng(0), low=0.5, high=1.5)
    factors = out[:, 0]
    assert np.allclose(out, factors[:, None]) and factors.min() >= 0.5 and factors.max() <= 1.5
    assert factors.std() > 0.2                               # one factor per row, not one per batch
    with pytest.raises(ValueError):
        augment.scale(x, 0, low=2.0, high=1.0)


def test_compose_is_reproducible_and_keeps_the_labels_aligned():
    transform = augment.compose(partial(augment.shift, max_shift=4), partial(augment.gaussian_noise, std=0.1))
    x = np.random.default_rng(0).normal(size=(50, 40))
    a, b = transform(x, np.random.default_rng(7)), transform(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, transform(x, np.random.default_rng(8)))
    with pytest.raises(TypeError):
        augment.compose("not a function")


def test_augmented_loader_gives_new_variants_every_epoch_and_keeps_pairs():
    torch = pytest.importorskip("torch")
    x = np.tile(np.arange(12.0), (20, 1))
    x[:, 0] = np.arange(20)                                  # a unique marker per example ...
    y = np.arange(20)                                        # ... equal to its label
    loader = augment.AugmentedLoader(x, y, partial(augment.shift, max_shift=0), batch_size=6, seed=0)
    assert len(loader) == 4
    epoch = list(loader)
    assert [len(yb) for _, yb in epoch] == [6, 6, 6, 2]
    xb, yb = epoch[0]
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    for xb, yb in epoch:                                     # shuffled, but every signal keeps its label
        assert torch.equal(xb[:, 0].long(), yb)
    noisy = augment.AugmentedLoader(x, y, partial(augment.gaussian_noise, std=1.0), batch_size=20, shuffle=False)
    first, second = next(iter(noisy))[0], next(iter(noisy))[0]
    assert not torch.equal(first, second), "every epoch must draw new augmentations"
    again = augment.AugmentedLoader(x, y, partial(augment.gaussian_noise, std=1.0), batch_size=20, shuffle=False)
    assert torch.equal(next(iter(again))[0], first), "the same seed must give the same run"
    with pytest.raises(ValueError, match="examples"):
        augment.AugmentedLoader(x, y[:5], partial(augment.shift, max_shift=1))


def test_augmented_loader_trains_with_fit():
    torch = pytest.importorskip("torch")
    from lepton_kit.models import torch_mlp
    from lepton_kit.train import fit

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    y = (x[:, :5].sum(axis=1) > 0).astype(np.int64)
    loader = augment.AugmentedLoader(x, y, partial(augment.gaussian_noise, std=0.05), batch_size=16)
    history = fit(torch_mlp(10, (16,), 2), loader, epochs=3, progress=False)
    assert len(history["loss"]) == 3 and all(np.isfinite(history["loss"]))
