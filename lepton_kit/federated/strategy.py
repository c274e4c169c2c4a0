"""Strategies: what clients do in a round and how the server combines what they send back.

A strategy is one small class with Flower's shape: :meth:`FedAvg.configure_round` says what each
sampled client trains with, :meth:`FedAvg.aggregate` turns the clients' results (and failures, which
are values, not exceptions) into the next global state. Everything else is a short subclass.

>>> import torch
>>> a, b = {"w": torch.tensor([0.0, 0.0])}, {"w": torch.tensor([3.0, 6.0])}
>>> FedAvg().aggregate(1, a, [ClientResult(0, a, 100), ClientResult(1, b, 200)], [])["w"]
tensor([2., 4.])
>>> FedMedian().aggregate(1, a, [ClientResult(0, a, 100), ClientResult(1, b, 200), ClientResult(2, b, 1)], [])["w"]
tensor([3., 6.])
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClientResult:
    """What one client sends back: its new state, how many examples it trained on, its training loss."""

    client: int
    state: dict
    num_examples: int
    loss: float = float("nan")
    partial: bool = False   # a straggler that did only part of its local work


@dataclass
class ClientFailure:
    """A sampled client that sent nothing usable (dropped out, or a straggler the strategy does not wait for)."""

    client: int
    reason: str


def weighted_average(states, weights):
    """Σ w_k s_k / Σ w_k for every entry; integer entries (BatchNorm's ``num_batches_tracked``) rounded back.

    >>> import torch
    >>> weighted_average([{"n": torch.tensor(2)}, {"n": torch.tensor(5)}], [1, 2])["n"]
    tensor(4)
    """
    import torch

    total = float(sum(weights))
    if not states or total <= 0:
        raise ValueError("weighted_average needs at least one state with a positive weight")
    out = {}
    for name, first in states[0].items():
        acc = sum(s[name].to(torch.float64) * (w / total) for s, w in zip(states, weights))
        out[name] = acc.round().to(first.dtype) if not first.is_floating_point() else acc.to(first.dtype)
    return out


@dataclass
class FedAvg:
    """McMahan et al. (2017): E local epochs of SGD with batch size B, the server averages the new weights
    **weighted by each client's number of examples** (an unweighted mean over-counts small clients).

    Stragglers are dropped (``accept_partial=False``): the server waits only for the clients that finished.
    """

    lr: float = 0.1
    epochs: int = 1
    batch_size: int | None = 32
    accept_partial: bool = False

    def configure_round(self, server_round, *, sampled, num_clients):
        """The local training of every sampled client in this round (``sampled`` of ``num_clients``)."""
        return {"lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size, "mu": 0.0}

    def aggregate(self, server_round, global_state, results, failures):
        """The next global state; the current one when no client sent anything."""
        if not results:
            return global_state
        return weighted_average([r.state for r in results], [r.num_examples for r in results])


@dataclass
class FedSGD(FedAvg):
    """One full-batch gradient step per client per round (E = 1, B = ∞): averaging the new weights weighted by
    example counts is one SGD step on the whole federation's gradient."""

    epochs: int = 1
    batch_size: int | None = None


@dataclass
class FedProx(FedAvg):
    """Li et al. (2020): local objective + (μ/2)‖w − w_global‖², and partial work from stragglers is kept."""

    mu: float = 0.01
    accept_partial: bool = True

    def configure_round(self, server_round, *, sampled, num_clients):
        return {**super().configure_round(server_round, sampled=sampled, num_clients=num_clients), "mu": self.mu}


@dataclass
class FedMedian(FedAvg):
    """Coordinate-wise median of the clients' states (Yin et al. 2018): one wild client cannot drag it."""

    def aggregate(self, server_round, global_state, results, failures):
        import torch

        if not results:
            return global_state
        return {name: torch.stack([r.state[name].to(torch.float64) for r in results]).median(dim=0).values
                .to(first.dtype) for name, first in results[0].state.items()}


@dataclass
class FedTrimmedAvg(FedAvg):
    """Coordinate-wise trimmed mean: drop the ``beta`` fraction largest and smallest values, average the rest."""

    beta: float = 0.1

    def aggregate(self, server_round, global_state, results, failures):
        import torch

        if not results:
            return global_state
        cut = int(self.beta * len(results))
        if 2 * cut >= len(results):
            raise ValueError(f"beta={self.beta} trims every one of {len(results)} clients")
        out = {}
        for name, first in results[0].state.items():
            values = torch.stack([r.state[name].to(torch.float64) for r in results]).sort(dim=0).values
            out[name] = values[cut:len(results) - cut].mean(dim=0).to(first.dtype)
        return out


@dataclass
class DPFedAvg(FedAvg):
    """Differentially private FedAvg (McMahan et al. 2018, central DP at the server).

    Each client's update ``w_k - w_global`` is clipped to L2 norm ``clip``; the server averages the clipped
    updates (uniform weights: one client's influence is bounded by ``clip / m``) and adds Gaussian noise of
    standard deviation ``noise_multiplier * clip / m``. :meth:`epsilon` reads the privacy spent from an RDP
    accountant (Opacus') fed with every round's client sampling rate.
    """

    clip: float = 1.0
    noise_multiplier: float = 1.0
    seed: int = 0
    sample_rates: list = field(default_factory=list)

    def configure_round(self, server_round, *, sampled, num_clients):
        self.sample_rates.append(sampled / num_clients)
        return super().configure_round(server_round, sampled=sampled, num_clients=num_clients)

    def aggregate(self, server_round, global_state, results, failures):
        import torch

        from lepton_kit.federated.privacy import clip_update, gaussian_noise_like

        if not results:
            return global_state
        sampled = len(results) + len(failures)   # the denominator is fixed before anyone answers
        deltas = [clip_update({k: r.state[k] - global_state[k] for k in global_state}, self.clip)
                  for r in results]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + server_round)
        std = self.noise_multiplier * self.clip / sampled
        out = {}
        for name, value in global_state.items():
            if not value.is_floating_point():
                out[name] = value
                continue
            mean = sum(d[name] for d in deltas) / sampled
            out[name] = value + mean + gaussian_noise_like(value, std, generator)
        return out

    def epsilon(self, delta=1e-5):
        """The (ε, δ) guarantee spent so far, per client (RDP accountant of the sampled Gaussian mechanism)."""
        from lepton_kit.federated.privacy import rdp_epsilon

        return rdp_epsilon(self.noise_multiplier, self.sample_rates, delta=delta)


@dataclass
class SecAggFedAvg(FedAvg):
    """FedAvg whose server sees only masked updates: each client sends ``n_k · w_k`` under pairwise masks
    (:func:`lepton_kit.federated.secagg.secure_sum`) and the server divides the unmasked sum by ``Σ n_k``.
    Equal to FedAvg up to the fixed-point rounding (2⁻²⁴)."""

    seed: int = 0

    def aggregate(self, server_round, global_state, results, failures):
        import numpy as np
        import torch

        from lepton_kit.federated.secagg import secure_sum

        if not results:
            return global_state
        names = list(global_state)
        flat = [np.concatenate([r.state[n].double().reshape(-1).numpy() * r.num_examples for n in names])
                for r in results]
        total = secure_sum(flat, seed=self.seed * 1_000_003 + server_round) / sum(r.num_examples for r in results)
        out, start = {}, 0
        for name in names:
            value = global_state[name]
            chunk = torch.from_numpy(total[start:start + value.numel()].copy()).reshape(value.shape)
            out[name] = chunk.to(value.dtype) if value.is_floating_point() else chunk.round().to(value.dtype)
            start += value.numel()
        return out
