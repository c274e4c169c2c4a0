"""Adapters from NumPy arrays to ``torch.utils.data`` and ``tf.data``."""
from __future__ import annotations

import numpy as np


def to_torch_loader(x, y=None, batch_size=64, shuffle=False, seed=0, **loader_options):
    """A ``DataLoader`` over ``(x, y)`` tensors; shuffling is reproducible through ``seed``
    (``seed=None`` draws the order from torch's global generator).

    >>> loader = to_torch_loader(np.zeros((10, 3)), np.arange(10), batch_size=4)
    >>> [len(b[0]) for b in loader]
    [4, 4, 2]
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    tensors = [torch.as_tensor(np.asarray(x, dtype=np.float32))]
    if y is not None:
        y = np.asarray(y)
        tensors.append(torch.as_tensor(y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(np.float32)))
    generator = torch.Generator().manual_seed(seed) if shuffle and seed is not None else None
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle,
                      generator=generator, **loader_options)


def to_tf_dataset(x, y=None, batch_size=64, shuffle=False, seed=0):
    """A batched ``tf.data.Dataset`` over ``(x, y)``; shuffling reshuffles each epoch from ``seed``.

    >>> ds = to_tf_dataset(np.zeros((10, 3)), np.arange(10), batch_size=4)
    >>> [int(b[0].shape[0]) for b in ds]
    [4, 4, 2]
    """
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32)
    items = x if y is None else (x, np.asarray(y))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
