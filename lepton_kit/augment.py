"""Data augmentation for 1-D signals such as MNIST-1D: label-preserving random changes.

Every transform has the signature ``f(x, rng, **options) -> new array``: ``x`` is one signal of
shape ``(L,)`` or a batch of shape ``(N, L)`` (each row drawn independently), ``rng`` a
``np.random.Generator`` (or an int seed). The caller's array is never modified. Chain transforms
with :func:`compose`, and train on freshly augmented data every epoch with :class:`AugmentedLoader`.

Only use changes that keep the label: MNIST-1D signals were generated with random circular
translations, scaling and noise, so shifts, small rescaling and noise keep the digit; reversing
a signal (a "horizontal flip") turns it into a different pattern and does not.

>>> from functools import partial
>>> x = np.arange(6.0).reshape(2, 3)
>>> augment = compose(partial(shift, max_shift=1), partial(gaussian_noise, std=0.0))
>>> augment(x, np.random.default_rng(0)).shape
(2, 3)
"""
from __future__ import annotations

import math

import numpy as np

SHIFT_MODES = ("circular", "zero", "edge")


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a np.random.Generator or an int seed, got {type(rng).__name__}: "
                    "create one with np.random.default_rng(seed)")


def _signals(x) -> tuple[np.ndarray, bool]:
    """``x`` as a new 2-D float array (N, L) and whether it was a single 1-D signal."""
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected one signal (L,) or a batch (N, L), got shape {x.shape}")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return np.array(x, ndmin=2, copy=True), x.ndim == 1


def _out(x2d: np.ndarray, single: bool) -> np.ndarray:
    return x2d[0] if single else x2d


def shift(x, rng, max_shift=4, mode="circular"):
    """Shift each signal by its own random integer ``k`` in ``[-max_shift, max_shift]``.

    A positive ``k`` moves the signal to the right. ``mode`` says what enters at the border:
    ``"circular"`` wraps around (``np.roll``), ``"zero"`` fills with zeros, ``"edge"`` repeats
    the border value.

    >>> x = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> shift(x, np.random.default_rng(0), max_shift=0).tolist()
    [[1.0, 2.0, 3.0, 4.0]]
    >>> y = shift(x, np.random.default_rng(1), max_shift=2)
    >>> any(np.array_equal(y[0], np.roll(x[0], k)) for k in range(-2, 3))
    True
    """
    if mode not in SHIFT_MODES:
        raise ValueError(f"mode must be one of {SHIFT_MODES}, got {mode!r}")
    if int(max_shift) != max_shift or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
    rng = _generator(rng)
    signals, single = _signals(x)
    n, length = signals.shape
    k = rng.integers(-int(max_shift), int(max_shift) + 1, size=n)
    source = np.arange(length)[None, :] - k[:, None]        # out[i, j] = x[i, j - k_i]
    if mode == "circular":
        out = np.take_along_axis(signals, source % length, axis=1)
    else:
        out = np.take_along_axis(signals, np.clip(source, 0, length - 1), axis=1)
        if mode == "zero":
            out[(source < 0) | (source >= length)] = 0.0
    return _out(out, single)


def gaussian_noise(x, rng, std=0.1):
    """Add independent Gaussian noise of standard deviation ``std`` to every value.

    >>> x = np.zeros((2, 3), dtype=np.float32)
    >>> y = gaussian_noise(x, np.random.default_rng(0), std=0.5)
    >>> y.dtype, bool(np.all(x == 0)), bool(np.any(y != 0))
    (dtype('float32'), True, True)
    """
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    rng = _generator(rng)
    signals, single = _signals(x)
    signals += (std * rng.standard_normal(signals.shape)).astype(signals.dtype)
    return _out(signals, single)


def scale(x, rng, low=0.8, high=1.2):
    """Multiply each signal by its own random factor drawn uniformly from ``[low, high]``.

    >>> scale(np.ones((1, 3)), np.random.default_rng(0), low=2.0, high=2.0).tolist()
    [[2.0, 2.0, 2.0]]
    """
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low!r}, high={high!r}")
    rng = _generator(rng)
    signals, single = _signals(x)
    signals *= rng.uniform(low, high, size=(len(signals), 1)).astype(signals.dtype)
    return _out(signals, single)


def compose(*transforms):
    """One transform that applies ``transforms`` in order, all drawing from the same ``rng``.

    >>> from functools import partial
    >>> twice = compose(partial(scale, low=2.0, high=2.0), partial(scale, low=3.0, high=3.0))
    >>> twice(np.ones(2), np.random.default_rng(0)).tolist()
    [6.0, 6.0]
    """
    for t in transforms:
        if not callable(t):
            raise TypeError(f"compose takes functions f(x, rng), got {type(t).__name__}")

    def composed(x, rng):
        rng = _generator(rng)
        out = np.array(x, copy=True)
        for t in transforms:
            out = t(out, rng)
        return out

    return composed


class AugmentedLoader:
    """Minibatches of ``(x, y)`` torch tensors, with ``x`` freshly augmented in every epoch.

    Iterating once over the loader is one epoch: the whole training set goes through
    ``transform(x, rng)`` and is reshuffled, both from one generator seeded with ``seed``, so a
    run is reproducible while every epoch sees new variants. Use it where
    ``lepton_kit.train.fit`` expects a ``DataLoader``.

    >>> from functools import partial
    >>> loader = AugmentedLoader(np.zeros((10, 4)), np.arange(10), partial(gaussian_noise, std=0.1),
    ...                          batch_size=4)
    >>> len(loader), [tuple(xb.shape) for xb, yb in loader]
    (3, [(4, 4), (4, 4), (2, 4)])
    """

    def __init__(self, x, y, transform, batch_size=64, shuffle=True, seed=0):
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} examples but y has {len(self.y)}")
        if not callable(transform):
            raise TypeError("transform must be a function f(x, rng) -> augmented x")
        self.transform, self.batch_size, self.shuffle = transform, int(batch_size), shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        import torch

        x = np.asarray(self.transform(self.x, self.rng), dtype=np.float32)
        if x.shape != self.x.shape:
            raise ValueError(f"the transform changed the shape of x from {self.x.shape} to {x.shape}")
        order = self.rng.permutation(len(x)) if self.shuffle else np.arange(len(x))
        y = torch.as_tensor(self.y.astype(np.int64) if self.y.dtype.kind in "iu" else self.y.astype(np.float32))
        x = torch.as_tensor(x)
        for start in range(0, len(order), self.batch_size):
            batch = torch.as_tensor(order[start:start + self.batch_size])
            yield x[batch], y[batch]
