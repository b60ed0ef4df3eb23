"""Crossbar arrays: tiles, weight-to-conductance mapping, periphery and wire resistance (IR drop)."""

from .core import Calibration, Core, CoreState
from .parasitics import CrossbarSolution, Parasitics, default_rtol, solve_crossbar
from .periphery import ADC, DAC, quantize_symmetric, straight_through
from .tile import (
    Tile, TileRead, TileState, compensate_ir_drop, nominal_range, put_devices, take_devices, weights_to_conductances,
)

__all__ = [
    "ADC",
    "Calibration",
    "Core",
    "CoreState",
    "CrossbarSolution",
    "DAC",
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
