"""Split a labelled training set over clients: IID, McMahan's label shards, or Dirichlet label skew.

Every partitioner takes the labels first and returns one array of row indices per client:
disjoint, together every row exactly once, and the same for the same ``seed``.

>>> import numpy as np
>>> y = np.repeat(np.arange(10), 20)                      # 200 labels, 20 of each class
>>> parts = partition_shards(y, 10, shards_per_client=2, seed=0)
>>> sorted(np.concatenate(parts).tolist()) == list(range(200))
True
>>> max(len(np.unique(y[p])) for p in parts)              # pathological non-IID: at most 2 classes each
2
"""
from __future__ import annotations

import numpy as np


def _check(y, num_clients):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ValueError(f"num_clients must be a positive integer, got {num_clients!r}")
    if num_clients > len(y):
        raise ValueError(f"{num_clients} clients for {len(y)} examples: every client needs at least one")
    return y


def partition_iid(y, num_clients, *, seed=0):
    """Shuffle the rows and deal them out: client sizes differ by at most one.

    >>> [len(p) for p in partition_iid(np.zeros(10), 3)]
    [4, 3, 3]
    """
    y = _check(y, num_clients)
    order = np.random.default_rng(seed).permutation(len(y))
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def partition_shards(y, num_clients, *, shards_per_client=2, seed=0):
    """McMahan et al. (2017): sort by label, cut into ``num_clients * shards_per_client`` shards, deal them at random.

    Each client then holds examples of about ``shards_per_client`` classes (the paper's pathological non-IID).

    >>> parts = partition_shards(np.repeat([0, 1, 2, 3], 5), 2, seed=1)
    >>> [len(p) for p in parts]
    [10, 10]
    """
    y = _check(y, num_clients)
    num_shards = num_clients * shards_per_client
    if shards_per_client < 1 or num_shards > len(y):
        raise ValueError(f"{num_shards} shards for {len(y)} examples: use fewer clients or shards_per_client")
    rng = np.random.default_rng(seed)
    by_label = np.argsort(y, kind="stable")
    shards = np.array_split(by_label, num_shards)
    dealt = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in dealt]


def partition_dirichlet(y, num_clients, *, alpha=0.5, min_size=1, seed=0):
    """Label skew: each class is split over the clients in proportions drawn from Dirichlet(``alpha``).

    Small ``alpha`` (0.1) gives each client few classes; large ``alpha`` (100) is close to IID. Draws are
    repeated (up to 100 times) until every client holds at least ``min_size`` examples.

    >>> parts = partition_dirichlet(np.repeat(np.arange(5), 40), 4, alpha=0.1, seed=0)
    >>> sum(len(p) for p in parts), min(len(p) for p in parts) >= 1
    (200, True)
    """
    y = _check(y, num_clients)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    rng = np.random.default_rng(seed)
    for _ in range(100):
        owners = [[] for _ in range(num_clients)]
        for label in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == label))
            cuts = (np.cumsum(rng.dirichlet(np.full(num_clients, alpha))) * len(rows)).astype(int)[:-1]
            for client, part in enumerate(np.split(rows, cuts)):
                owners[client].append(part)
        parts = [np.sort(np.concatenate(p)) for p in owners]
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ValueError(f"no Dirichlet(alpha={alpha}) draw in 100 gives every one of {num_clients} clients "
                     f"{min_size} examples: raise alpha or lower num_clients")


def label_histogram(y, parts, *, num_classes=None):
    """Counts of each label per client, shape ``(num_clients, num_classes)``.

    >>> label_histogram(np.array([0, 0, 1, 2]), [np.array([0, 1]), np.array([2, 3])]).tolist()
    [[2, 0, 0], [0, 1, 1]]
    """
    y = np.asarray(y)
    num_classes = int(num_classes or y.max() + 1)
    return np.stack([np.bincount(y[p], minlength=num_classes) for p in parts])


def plot_partition(y, parts, *, ax=None, title=None, max_clients=30):
    """A stacked bar per client: how many examples of each label it holds (the first ``max_clients``)."""
    import matplotlib.pyplot as plt

    counts = label_histogram(y, parts)[:max_clients]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3), layout="constrained")
    bottom = np.zeros(len(counts))
    colors = plt.get_cmap("tab10" if counts.shape[1] <= 10 else "tab20")
    for label in range(counts.shape[1]):
        ax.bar(np.arange(len(counts)), counts[:, label], bottom=bottom, color=colors(label % colors.N),
               label=str(label), width=0.85)
        bottom += counts[:, label]
    ax.set(xlabel="client", ylabel="examples", title=title or f"labels per client ({len(parts)} clients)")
    ax.legend(title="label", ncol=2, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax
