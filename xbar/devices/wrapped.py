"""The model inside the device wrappers that add wear or retention loss."""

from __future__ import annotations

from ._base import Device
from .endurance import Endurance
from .retention import Retention

__all__ = ["innermost_model"]


def innermost_model(device: Device) -> Device:
    """Return the model inside any number of `Endurance` and `Retention` wrappers (the device itself if none)."""
    while isinstance(device, (Endurance, Retention)):
        device = device.device
    return device
