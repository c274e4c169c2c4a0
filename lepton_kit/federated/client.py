"""One client's local training: SGD from the global state, one new batch order per epoch.

This is the reference that :func:`lepton_kit.federated.simulate` vectorises and that the Flower
ClientApp calls; both draw batches with :func:`batch_schedule`, so the same seed gives the same
batches everywhere.

>>> import numpy as np, torch
>>> model = torch.nn.Linear(2, 2)
>>> start = {k: v.clone() for k, v in model.state_dict().items()}
>>> x, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
>>> state, n, loss = client_update(model, start, x, y, epochs=2, batch_size=8, lr=0.5, seed=(0, 1, 3))
>>> n, all(torch.equal(start[k], v) for k, v in model.state_dict().items())
(20, False)
>>> torch.equal(start["weight"], state["weight"])          # the global state itself is never changed
False
"""
from __future__ import annotations

import numpy as np


def batch_schedule(num_examples, *, epochs, batch_size, seed, max_steps=None):
    """The batches one client trains on: a list of index arrays, one new permutation per epoch.

    ``batch_size=None`` is the full batch (FedSGD); ``max_steps`` cuts the list (a straggler's partial work).

    >>> [b.tolist() for b in batch_schedule(5, epochs=1, batch_size=2, seed=0)]
    [[2, 4], [3, 0], [1]]
    """
    rng = np.random.default_rng(seed)
    size = num_examples if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be positive or None (full batch), got {batch_size!r}")
    batches = []
    for _ in range(int(epochs)):
        order = rng.permutation(num_examples)
        batches.extend(order[i:i + size] for i in range(0, num_examples, size))
    return batches[:max_steps] if max_steps is not None else batches


def steps_per_round(num_examples, *, epochs, batch_size):
    """How many SGD steps a client makes in a round: ``epochs * ceil(n / B)`` (1 per epoch for the full batch).

    >>> steps_per_round(600, epochs=5, batch_size=10)        # McMahan's u = E n / B
    300
    """
    size = num_examples if batch_size is None else int(batch_size)
    return int(epochs) * -(-num_examples // size)


def as_tensors(x, y, dtype):
    """Features in the model's floating dtype, labels as int64."""
    import torch

    return torch.as_tensor(np.asarray(x), dtype=dtype), torch.as_tensor(np.asarray(y), dtype=torch.long)


def client_update(model, global_state, x, y, *, epochs=1, batch_size=32, lr=0.1, mu=0.0, seed=0, max_steps=None):
    """Train ``model`` from ``global_state`` on one client's ``(x, y)``; return ``(state, num_examples, loss)``.

    Plain SGD on the cross-entropy; ``mu > 0`` adds FedProx's proximal term ``mu/2 * ||w - w_global||^2``.
    ``state`` is a new dict (``global_state`` is never changed); ``loss`` is the mean training loss over the
    last epoch's batches (weighted by batch size).
    """
    import torch
    import torch.nn.functional as F

    model.load_state_dict({k: v.clone() for k, v in global_state.items()})
    params = [p for p in model.parameters() if p.requires_grad]
    anchors = [p.detach().clone() for p in params] if mu else None
    dtype = params[0].dtype if params else torch.float32
    xt, yt = as_tensors(x, y, dtype)
    batches = batch_schedule(len(yt), epochs=epochs, batch_size=batch_size, seed=seed, max_steps=max_steps)
    last_epoch = steps_per_round(len(yt), epochs=1, batch_size=batch_size)
    model.train()
    total, count = 0.0, 0
    for step, rows in enumerate(batches):
        rows = torch.from_numpy(rows)
        loss = F.cross_entropy(model(xt[rows]), yt[rows])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, a in zip(params, grads, anchors or [None] * len(params)):
                p -= lr * (g + mu * (p - a) if mu else g)
        if step >= len(batches) - last_epoch:
            total, count = total + loss.item() * len(rows), count + len(rows)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, len(yt), total / max(count, 1)
