"""Client-level differential privacy: clip an update, add Gaussian noise, count the ε spent.

>>> import torch
>>> clipped = clip_update({"w": torch.tensor([3.0, 4.0])}, 1.0)       # norm 5 -> norm 1
>>> clipped["w"]
tensor([0.6000, 0.8000])
>>> round(rdp_epsilon(1.1, [0.01] * 100, delta=1e-5), 2) < 2       # 100 rounds at q = 0.01
True
"""
from __future__ import annotations


def update_norm(update):
    """The global L2 norm over every floating entry of a state-shaped update."""
    import torch

    return torch.sqrt(sum((v.to(torch.float64) ** 2).sum() for v in update.values() if v.is_floating_point()))


def clip_update(update, clip):
    """Scale ``update`` so its global L2 norm is at most ``clip`` (unchanged when already inside)."""
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    scale = min(1.0, clip / (float(update_norm(update)) + 1e-12))
    return {k: v * scale if v.is_floating_point() else v for k, v in update.items()}


def gaussian_noise_like(value, std, generator):
    """Noise N(0, std²) of ``value``'s shape and dtype, drawn from ``generator`` (seeded: reproducible)."""
    import torch

    return (torch.randn(value.shape, generator=generator, dtype=torch.float64) * std).to(value.dtype)


def rdp_epsilon(noise_multiplier, sample_rates, *, delta=1e-5):
    """ε after one sampled Gaussian mechanism per entry of ``sample_rates`` (Opacus' RDP accountant)."""
    from opacus.accountants import RDPAccountant

    if not sample_rates:
        return 0.0
    accountant = RDPAccountant()
    for rate in sample_rates:
        accountant.step(noise_multiplier=noise_multiplier, sample_rate=rate)
    return float(accountant.get_epsilon(delta=delta))
