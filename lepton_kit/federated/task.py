"""The benchmark task that the kit's simulator and Flower both run: MNIST-1D over K clients, a small MLP.

One definition, so the two runs train the same model on the same rows with the same seeds.

>>> task = mnist1d_task(num_clients=10, seed=0)
>>> len(task.parts), task.x.shape, sum(p.numel() for p in task.model().parameters())
(10, (4000, 40), 1642)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Task:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    parts: list
    seed: int
    dtype: str = "float64"
    hidden: int = 32

    def model(self):
        """A new MLP 40 → hidden → 10 with the same initial weights every time (seeded)."""
        import torch

        torch.manual_seed(self.seed)
        net = torch.nn.Sequential(torch.nn.Linear(self.x.shape[1], self.hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(self.hidden, 10))
        return net.to(getattr(torch, self.dtype))


def mnist1d_task(*, num_clients=10, seed=0, split="iid", dtype="float64"):
    """MNIST-1D's 4,000 training signals over ``num_clients`` clients (``"iid"`` or ``"shards"``)."""
    from lepton_kit.data import load
    from lepton_kit.federated.partition import partition_iid, partition_shards

    data = load("mnist1d")
    partition = {"iid": partition_iid, "shards": partition_shards}[split]
    return Task(data.x_train, data.y_train, data.x_test, data.y_test,
                partition(data.y_train, num_clients, seed=seed), seed, dtype)
