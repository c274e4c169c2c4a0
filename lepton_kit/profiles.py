"""Execution profiles: ``ci`` (CPU, small, fast) and ``full`` (GPU if any, full targets)."""
from __future__ import annotations

from types import SimpleNamespace

PROFILES = ("ci", "full")


def profile_settings(profile: str, **table: dict) -> SimpleNamespace:
    """Pick one profile's settings from a notebook's profile table.

    >>> cfg = profile_settings("full", ci=dict(epochs=2), full=dict(epochs=40))
    >>> cfg.epochs
    40
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ValueError(f"the profile table has no entry for {', '.join(missing)}")
    return SimpleNamespace(profile=profile, **table[profile])
