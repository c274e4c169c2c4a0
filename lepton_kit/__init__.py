"""Lepton Kit: the helper package behind every notebook of the course.

Importing it is cheap: torch and TensorFlow are imported only by the modules that need them
(``lepton_kit.models``, ``lepton_kit.train``, ``lepton_kit.adapters``).

>>> from lepton_kit import profile_settings
>>> profile_settings("ci", ci=dict(epochs=2), full=dict(epochs=50)).epochs
2
"""
from lepton_kit.profiles import PROFILES, profile_settings
from lepton_kit.utils import device, record, seed_everything

__all__ = ["PROFILES", "device", "profile_settings", "record", "seed_everything"]
__version__ = "0.1.0"
