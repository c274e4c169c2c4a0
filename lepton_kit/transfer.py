"""Helpers for the transfer-learning unit (07) that are not what it teaches.

- :func:`class_subset` keeps some classes of a dataset and renumbers them 0, 1, ...
- :func:`train_steps` trains for a fixed number of minibatch steps (few-shot training sets have
  5 to 2,000 examples: a budget in steps, not epochs, treats every size alike).
- :func:`pretrain` is ``train_steps`` with Adam and a cosine schedule, done once per machine: the weights
  are kept in the kit's disk cache and read back by every later run (the autograder's included).
- :func:`count_trainable` counts trainable parameters in PyTorch and Keras alike.
- :func:`batchnorm_statistics` snapshots BatchNorm running (moving) means and variances, and
  :func:`max_change` compares two snapshots.
- :func:`mean_by_k` and :func:`plot_accuracy_vs_k` summarise and draw an accuracy-versus-k grid.
- :func:`cached_file` finds a registered download in the kit's cache without any network access.

torch, Keras and matplotlib are imported inside the functions only.

>>> import numpy as np
>>> x, y = np.arange(6.0), np.array([0, 5, 6, 5, 9, 6])
>>> class_subset(x, y, [5, 6])
(array([1., 2., 3., 5.]), array([0, 1, 0, 1]))
"""
from __future__ import annotations

import numpy as np


def class_subset(x, y, classes):
    """The examples whose label is in ``classes``, relabelled by position in ``classes`` (0, 1, ...)."""
    classes = list(classes)
    y = np.asarray(y)
    keep = np.isin(y, classes)
    lookup = {c: i for i, c in enumerate(classes)}
    return np.asarray(x)[keep], np.array([lookup[c] for c in y[keep]], dtype=np.int64)


def train_steps(model, x, y, *, optimizer, steps, batch_size=64, seed=0, loss_fn=None, cosine=False):
    """Train a torch classifier for ``steps`` minibatch updates on the arrays ``(x, y)``; return the losses.

    Batches are drawn without replacement from a fresh permutation of the data each pass (a batch
    is the whole set when it has at most ``batch_size`` examples); ``seed`` fixes their order.
    ``model.train()`` is called first, so Dropout and BatchNorm run in training mode. With
    ``cosine=True`` every learning rate of the optimizer (each parameter group's) decays to 0 along
    a cosine over the ``steps`` (``CosineAnnealingLR``, stepped after every update).

    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> x, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    >>> losses = train_steps(net, x, y, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), steps=4, batch_size=4)
    >>> len(losses)
    4
    """
    import torch

    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    n, size = len(x), min(batch_size, len(x))
    if n == 0:
        raise ValueError("no training examples")
    rng = np.random.default_rng(seed)
    order = np.empty(0, dtype=np.int64)
    losses = []
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if cosine else None
    model.train()
    for _ in range(steps):
        if len(order) < size:
            order = np.concatenate([order, rng.permutation(n)])
        batch, order = order[:size], order[size:]
        optimizer.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        losses.append(loss.item())
    return losses


def pretrain(model, x, y, *, steps, lr=3e-3, seed=0, batch_size=64):
    """Train ``model`` on ``(x, y)`` with Adam (``lr``) decaying along a cosine for ``steps`` steps
    (:func:`train_steps`), and return it; the result is kept in the disk cache (:mod:`lepton_kit.cache`).

    The cache key holds the model's layers and initial weights, the data, the settings, the torch
    version and the number of threads, so a run that reads the weights back gets the very weights it
    would have trained, in training mode, with torch's random state as training would have left it.

    >>> import torch
    >>> x, y = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32), np.arange(20) % 2
    >>> _ = torch.manual_seed(0)
    >>> net = pretrain(torch.nn.Linear(3, 2), x, y, steps=5, lr=0.1)
    >>> _ = torch.manual_seed(0)
    >>> again = pretrain(torch.nn.Linear(3, 2), x, y, steps=5, lr=0.1)       # read back
    >>> bool(torch.equal(net.weight, again.weight))
    True
    """
    import hashlib

    import torch

    from lepton_kit.cache import cached

    def digest(*arrays):
        h = hashlib.sha256()
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    initial = {name: value.detach().cpu().numpy() for name, value in model.state_dict().items()}
    key = {"model": repr(model), "initial": digest(*initial.values()), "data": digest(np.asarray(x), np.asarray(y)),
           "steps": steps, "lr": lr, "seed": seed, "batch_size": batch_size, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "code": digest(np.frombuffer(_training_code().encode(), np.uint8))}

    def train():
        train_steps(model, x, y, optimizer=torch.optim.Adam(model.parameters(), lr=lr), steps=steps,
                    batch_size=batch_size, seed=seed, cosine=True)
        state = {f"w.{name}": value.detach().cpu().numpy() for name, value in model.state_dict().items()}
        return {**state, "torch_rng": torch.get_rng_state().numpy()}

    stored = cached("pretrained", key, train)
    model.load_state_dict({name[2:]: torch.as_tensor(value) for name, value in stored.items() if name.startswith("w.")})
    torch.set_rng_state(torch.as_tensor(stored["torch_rng"]))
    model.train()
    return model


def count_trainable(model) -> int:
    """Number of trainable parameters: ``requires_grad`` ones in torch, ``trainable_weights`` in Keras.

    (``model.count_params()`` in Keras also counts frozen weights and BatchNorm's moving statistics.)

    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> _ = net.bias.requires_grad_(False)
    >>> count_trainable(net)
    6
    """
    if hasattr(model, "trainable_weights"):
        return int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def batchnorm_statistics(model) -> dict:
    """A copy of every BatchNorm layer's running mean and variance, ``{name: array}``, torch or Keras.

    >>> import torch
    >>> sorted(batchnorm_statistics(torch.nn.Sequential(torch.nn.BatchNorm1d(2))))
    ['0.running_mean', '0.running_var']
    """
    if hasattr(model, "trainable_weights"):
        import keras

        stats = {}
        layers = [model]
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, keras.layers.BatchNormalization):
                stats[f"{layer.name}.moving_mean"] = np.array(layer.moving_mean.numpy())
                stats[f"{layer.name}.moving_variance"] = np.array(layer.moving_variance.numpy())
            layers += list(getattr(layer, "layers", []) or [])
        return stats
    return {name: buf.detach().cpu().numpy().copy() for name, buf in model.named_buffers()
            if name.endswith(("running_mean", "running_var"))}


def max_change(before: dict, after: dict) -> float:
    """Largest absolute difference between two snapshots of the same arrays (0.0 when unchanged).

    >>> max_change({"a": np.zeros(2)}, {"a": np.array([0.0, 0.5])})
    0.5
    """
    if before.keys() != after.keys():
        raise ValueError("the two snapshots hold different arrays")
    return max((float(np.max(np.abs(np.asarray(after[k]) - np.asarray(before[k])))) for k in before), default=0.0)


def mean_by_k(results):
    """``{arm: {k: mean accuracy}}`` from rows ``{"arm", "k", "accuracy", ...}`` (one row per seed).

    >>> mean_by_k([{"arm": "scratch", "k": 5, "accuracy": 0.5}, {"arm": "scratch", "k": 5, "accuracy": 0.7}])
    {'scratch': {5: 0.6}}
    """
    table: dict = {}
    for row in results:
        table.setdefault(row["arm"], {}).setdefault(row["k"], []).append(float(row["accuracy"]))
    return {arm: {k: round(float(np.mean(v)), 10) for k, v in by_k.items()} for arm, by_k in table.items()}


def plot_accuracy_vs_k(summary, *, all_size=None, ax=None, title="accuracy against labels per class"):
    """Draw ``{arm: {k: accuracy}}`` (from :func:`mean_by_k`) on a log k axis; returns the axes.

    The key ``"all"`` is drawn at ``all_size`` (the average number of labels per class of the
    whole training set), or one step past the largest k.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    numeric = sorted({k for by_k in summary.values() for k in by_k if k != "all"})
    where = {k: k for k in numeric}
    where["all"] = all_size or (numeric[-1] * 4 if numeric else 1)
    for arm, by_k in summary.items():
        ks = sorted(by_k, key=lambda k: where[k])
        ax.plot([where[k] for k in ks], [by_k[k] for k in ks], marker="o", label=arm)
    ticks = sorted(where.values())
    ax.set_xscale("log")
    ax.set_xticks(ticks, [("all" if t == where["all"] else str(t)) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def cached_file(filename: str):
    """``(path, None)`` when ``filename`` is registered in ``lepton_kit.downloads.REGISTRY`` and its
    cached copy has the registered hash, else ``(None, reason)``. Never downloads.

    >>> cached_file("no-such-file.bin")
    (None, 'no-such-file.bin is not registered in lepton_kit.downloads.REGISTRY')
    """
    from lepton_kit import downloads

    for dataset, entry in downloads.REGISTRY.items():
        if filename in entry.get("files", {}):
            try:
                path = downloads.cache_dir() / dataset / filename
            except Exception as err:  # no cache folder can be determined
                return None, f"no cache folder for {filename}: {err}"
            if not path.is_file():
                return None, f"{filename} is not in the cache ({path})"
            if not downloads._hash_ok(path, entry["files"][filename]):
                return None, f"{path} does not have the registered hash"
            return path, None
    return None, f"{filename} is not registered in lepton_kit.downloads.REGISTRY"


def _training_code() -> str:
    import inspect

    return inspect.getsource(train_steps) + inspect.getsource(pretrain)
