"""Device models: immutable parameter pytrees with pure program, read and pulse functions."""

from ._base import Device, DeviceState, ProgramVerify
from .ideal import IdealDevice
from .pcm import PCM, PCMState

__all__ = ["Device", "DeviceState", "IdealDevice", "PCM", "PCMState", "ProgramVerify"]
