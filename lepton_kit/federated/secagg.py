"""Secure aggregation by pairwise masks (Bonawitz et al. 2017, without the dropout recovery).

Every pair of clients (i, j) derives one mask from a seed they share; i adds it, j subtracts it. Each
masked vector alone looks uniformly random, but the masks cancel in the sum, so the server learns the
sum and nothing else. Values are encoded in fixed point as 64-bit integers and all arithmetic wraps
modulo 2**64, so the masked sum equals the plain fixed-point sum **exactly**.

>>> import numpy as np
>>> updates = [np.array([0.5, -1.25]), np.array([2.0, 0.125]), np.array([-0.5, 1.0])]
>>> secure_sum(updates, seed=7).tolist()
[2.0, -0.125]
"""
from __future__ import annotations

import numpy as np

SCALE = 2.0 ** 24   # fixed point: 24 fractional bits, values up to about 5e11 in magnitude


def encode(vector, scale=SCALE):
    """Fixed-point integers modulo 2**64 (uint64 wraps)."""
    return np.round(np.asarray(vector, dtype=np.float64) * scale).astype(np.int64).view(np.uint64)


def decode(vector, scale=SCALE):
    return vector.view(np.int64).astype(np.float64) / scale


def pair_seed(seed, i, j):
    """The seed clients i and j share (in the protocol: from a Diffie-Hellman key agreement)."""
    return [seed, min(i, j), max(i, j)]


def masked(vector, client, clients, *, seed, scale=SCALE):
    """What ``client`` sends: its encoded vector plus the masks it shares with every other client."""
    out = encode(vector, scale)
    for other in clients:
        if other == client:
            continue
        mask = np.random.default_rng(pair_seed(seed, client, other)).integers(
            0, 2 ** 64, size=out.shape, dtype=np.uint64, endpoint=False)
        out = out + mask if client < other else out - mask
    return out


def secure_sum(vectors, *, seed, scale=SCALE):
    """The sum of ``vectors`` computed only from their masked versions."""
    clients = list(range(len(vectors)))
    total = np.zeros(np.shape(vectors[0]), dtype=np.uint64)
    for client, vector in zip(clients, vectors):
        total = total + masked(vector, client, clients, seed=seed, scale=scale)
    return decode(total, scale)
