"""Compact memristor models driven by voltage waveforms."""

from . import windows
from ._as_device import CompactDevice, CompactState
from ._integrate import ORDER, CompactModel, integrate
from .linear_drift import LinearIonDrift, strukov2008
from .stanford import StanfordPKU, stanford_pku_v1
from .vteam import VTEAM
from .yakopcic import Yakopcic, yakopcic_set_a, yakopcic_set_b

__all__ = [
    "ORDER", "CompactDevice", "CompactModel", "CompactState", "LinearIonDrift", "StanfordPKU", "VTEAM",
    "Yakopcic", "integrate", "stanford_pku_v1", "strukov2008", "windows", "yakopcic_set_a", "yakopcic_set_b",
]
