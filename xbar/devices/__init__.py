"""Device models: immutable parameter pytrees with pure program, read and pulse functions."""

from ._base import Device, DeviceState, ProgramVerify
from .ideal import IdealDevice
from .pcm import PCM, PCMState

__all__ = ["Device", "DeviceState", "IdealDevice", "PCM", "PCMState", "ProgramVerify"]
from .compact import CompactDevice, CompactState  # noqa: E402
__all__ += ["CompactDevice", "CompactState"]
from .endurance import Endurance, EnduranceState  # noqa: E402
from .retention import Retention  # noqa: E402
__all__ += ["Endurance", "EnduranceState", "Retention"]
from .pulsed import (  # noqa: E402
    ConstantStep, ExpStep, ExponentialStep, PiecewiseStep, PowerStep, PulsedDevice, SoftBoundsStep, StepModel,
    StepNoise, exponential_curve, pulse_trajectory,
)
from .presets import Preset, list_presets, nonlinearity_a_norm, preset, preset_info  # noqa: E402
from .fitting import PulseFit, TraceComparison, compare_traces, fit_pulse_response, simulate_reads  # noqa: E402
__all__ += [
    "ConstantStep", "ExpStep", "ExponentialStep", "PiecewiseStep", "PowerStep", "PulsedDevice", "SoftBoundsStep",
    "StepModel", "StepNoise", "exponential_curve", "pulse_trajectory", "Preset", "list_presets",
    "nonlinearity_a_norm", "preset", "preset_info", "PulseFit", "TraceComparison", "compare_traces",
    "fit_pulse_response", "simulate_reads",
]
