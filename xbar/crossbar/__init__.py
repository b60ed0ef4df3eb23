"""Crossbar arrays: tiles, multi-tile cores, bit slicing, weight-to-conductance mapping, periphery, wire
resistance (IR drop), hybrid synapses, network layers on cores, and energy, latency and area."""

from .core import Calibration, Core, CoreState
from .cost import (
    COST_VARIABLES, Area, Cost, CostModel, Energy, core_cost, programming_cost, tile_cost, tops_per_mm2, tops_per_watt,
)
from .hybrid import (
    CapacitorPCMState, CapacitorPCMSynapse, MixedPrecisionState, MixedPrecisionUpdate, MultiMemristiveState,
    MultiMemristiveSynapse,
)
from .layers import ACTIVATIONS, Conv2D, Dense, Flatten, Layer, LayerRead, LayerState, Sequential
from .parasitics import CrossbarSolution, Parasitics, default_rtol, solve_crossbar
from .periphery import ADC, DAC, quantize_symmetric, straight_through
from .slicing import Slicing, slicing_error
from .tile import (
    Tile, TileRead, TileState, compensate_ir_drop, nominal_range, put_devices, take_devices, weights_to_conductances,
)

__all__ = [
    "ACTIVATIONS", "ADC", "Area", "COST_VARIABLES", "Calibration", "CapacitorPCMState", "CapacitorPCMSynapse",
    "Conv2D", "Core", "CoreState", "Cost", "CostModel", "CrossbarSolution", "DAC", "Dense", "Energy", "Flatten",
    "Layer", "LayerRead", "LayerState", "MixedPrecisionState", "MixedPrecisionUpdate", "MultiMemristiveState",
    "MultiMemristiveSynapse", "Parasitics", "Sequential", "Slicing", "Tile", "TileRead", "TileState",
    "compensate_ir_drop", "core_cost", "default_rtol", "nominal_range", "programming_cost", "put_devices",
    "quantize_symmetric", "slicing_error", "solve_crossbar", "straight_through", "take_devices", "tile_cost", "tops_per_mm2",
    "tops_per_watt", "weights_to_conductances",
]
