"""Parity with PyTorch for operators written from their equations (skills test S2): optimizers and layer ops.

A hand-written optimizer here is a step function ``step(params, grads, state, hp)`` that updates the
float64 arrays of ``params`` in place, keeps its buffers in the dict ``state`` and reads PyTorch's
hyperparameter names from ``hp``. :func:`optimizer_trajectories` runs it and PyTorch's optimizer on
the same least-squares problem with mini-batch gradients (the variance that centred RMSProp divides by
stays away from zero, so rounding differences are not amplified) and returns both paths. Importing
this module is cheap: torch is imported inside the functions.

>>> def sgd(params, grads, state, hp):
...     for p, g in zip(params, grads):
...         p -= hp["lr"] * g
>>> mine, reference = optimizer_trajectories(sgd, "sgd", {"lr": 0.1}, steps=5, seed=0)
>>> max_difference(mine, reference) < 1e-12
True
"""
from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "adamw", "centred_rmsprop", "adagrad_decay")
LAYERS = ("dilated_conv1d", "maxpool1d_backward")


def minibatch_problem(seed: int):
    """Least squares with 16 examples: the starting parameters ``[W (3, 4), b (4,)]`` and a function that
    returns their gradient on the next mini-batch of 4 examples (the four batches take turns)."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 4))
    start = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    calls = [0]

    def gradients(w, b):
        rows = slice(4 * (calls[0] % 4), 4 * (calls[0] % 4) + 4)
        calls[0] += 1
        residual = (x[rows] @ w + b - y[rows]) / 4
        return [x[rows].T @ residual, residual.sum(axis=0)]

    return start, gradients


def torch_optimizer(name: str, params, hp: dict):
    """PyTorch's optimizer for one of :data:`OPTIMIZERS`, with the hyperparameters ``hp``."""
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, **hp)
    if name == "adamw":
        return torch.optim.AdamW(params, **hp)
    if name == "centred_rmsprop":
        return torch.optim.RMSprop(params, centered=True, **hp)
    if name == "adagrad_decay":
        return torch.optim.Adagrad(params, **hp)
    raise ValueError(f"unknown optimizer {name!r}: one of {OPTIMIZERS}")


def optimizer_trajectories(step_function, name: str, hp: dict, *, steps: int, seed: int):
    """``(mine, reference)``: the parameters after each step of ``step_function`` and of PyTorch's ``name``.

    Fails with a message when ``step_function`` replaces the arrays instead of updating them in place, or
    changes the gradients it is given.
    """
    import torch

    start, gradients = minibatch_problem(seed)
    params, state, mine = [p.copy() for p in start], {}, []
    for _ in range(steps):
        grads = gradients(*params)
        kept, ids = [g.copy() for g in grads], [id(p) for p in params]
        step_function(params, grads, state, dict(hp))
        assert [id(p) for p in params] == ids, "update the arrays of params in place (p -= ..., p[...] = ...)"
        assert all(np.array_equal(g, k) for g, k in zip(grads, kept)), "the step must not change grads"
        mine.append([np.array(p, dtype=np.float64) for p in params])
    start, gradients = minibatch_problem(seed)
    tensors = [torch.tensor(p, dtype=torch.float64) for p in start]
    optimizer, reference = torch_optimizer(name, tensors, dict(hp)), []
    for _ in range(steps):
        for tensor, g in zip(tensors, gradients(*[t.numpy() for t in tensors])):
            tensor.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        reference.append([t.numpy().copy() for t in tensors])
    return mine, reference


def max_difference(mine, reference) -> float:
    """The largest absolute difference between two trajectories (lists of lists of arrays), ``inf`` on a shape mismatch."""
    worst = 0.0
    for a, b in zip(mine, reference, strict=True):
        for p, q in zip(a, b, strict=True):
            if np.shape(p) != np.shape(q):
                return float("inf")
            worst = max(worst, float(np.max(np.abs(np.asarray(p, dtype=np.float64) - q))))
    return worst


def torch_layer(name: str, x, **kw) -> np.ndarray:
    """PyTorch's result (float64) for one of :data:`LAYERS`: ``dilated_conv1d`` (``w``, ``b``, ``dilation``)
    is the forward pass; ``maxpool1d_backward`` (``dout``, ``kernel``, ``stride``) is ``dx``."""
    import torch
    import torch.nn.functional as F

    x = torch.tensor(np.asarray(x, dtype=np.float64))
    if name == "dilated_conv1d":
        return F.conv1d(x, torch.tensor(kw["w"]), torch.tensor(kw["b"]), dilation=kw["dilation"]).numpy()
    if name == "maxpool1d_backward":
        x.requires_grad_(True)
        F.max_pool1d(x, kw["kernel"], kw["stride"]).backward(torch.tensor(kw["dout"]))
        return x.grad.numpy()
    raise ValueError(f"unknown layer operation {name!r}: one of {LAYERS}")
