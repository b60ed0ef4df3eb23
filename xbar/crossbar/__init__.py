"""Crossbar arrays: tiles, multi-tile cores, weight-to-conductance mapping, periphery, wire resistance (IR
drop) and hybrid synapses."""

from .core import Calibration, Core, CoreState
from .hybrid import (
    CapacitorPCMState, CapacitorPCMSynapse, MixedPrecisionState, MixedPrecisionUpdate, MultiMemristiveState,
    MultiMemristiveSynapse,
)
from .parasitics import CrossbarSolution, Parasitics, default_rtol, solve_crossbar
from .periphery import ADC, DAC, quantize_symmetric, straight_through
from .tile import (
    Tile, TileRead, TileState, compensate_ir_drop, nominal_range, put_devices, take_devices, weights_to_conductances,
)

__all__ = [
    "ADC",
    "Calibration",
    "CapacitorPCMState",
    "CapacitorPCMSynapse",
    "Core",
    "CoreState",
    "CrossbarSolution",
    "DAC",
    "MixedPrecisionState",
    "MixedPrecisionUpdate",
    "MultiMemristiveState",
    "MultiMemristiveSynapse",
    "Parasitics",
    "Tile",
    "TileRead",
    "TileState",
    "compensate_ir_drop",
    "default_rtol",
    "nominal_range",
    "put_devices",
    "quantize_symmetric",
    "solve_crossbar",
    "straight_through",
    "take_devices",
    "weights_to_conductances",
]
