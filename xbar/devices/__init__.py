"""Device models: immutable parameter pytrees with pure program, read and pulse functions."""

from ._base import Device, DeviceState, NormalNoiseDevice, ProgramVerify, draws_normals, program_with_pulses
from .compact import CompactDevice, CompactState
from .endurance import Endurance, EnduranceState
from .energy import pulse_energy, reset_energy
from .fitting import PulseFit, TraceComparison, compare_traces, fit_pulse_response, simulate_reads
from .ideal import IdealDevice
from .pcm import PCM, PCMState
from .presets import Preset, list_presets, nonlinearity_a_norm, preset, preset_info
from .programming_pulse import ProgrammingPulse
from .pulsed import (
    ConstantStep,
    ExponentialStep,
    ExpStep,
    PiecewiseStep,
    PowerStep,
    PulsedDevice,
    SoftBoundsStep,
    StepModel,
    StepNoise,
    exponential_curve,
    pulse_trajectory,
)
from .retention import Retention
from .wear import wear_state
from .wrapped import innermost_model

__all__ = [
    "CompactDevice", "CompactState", "ConstantStep", "Device", "DeviceState", "Endurance", "EnduranceState",
    "ExpStep", "ExponentialStep", "IdealDevice", "NormalNoiseDevice", "PCM", "PCMState", "PiecewiseStep", "PowerStep", "Preset",
    "ProgramVerify", "ProgrammingPulse", "PulseFit", "PulsedDevice", "Retention", "SoftBoundsStep", "StepModel",
    "StepNoise", "TraceComparison", "compare_traces", "draws_normals", "exponential_curve", "fit_pulse_response", "innermost_model",
    "list_presets",
    "nonlinearity_a_norm", "preset", "preset_info", "program_with_pulses", "pulse_energy", "pulse_trajectory",
    "reset_energy", "simulate_reads", "wear_state",
]
