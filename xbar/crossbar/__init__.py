"""Crossbar arrays: tiles, weight-to-conductance mapping and periphery."""

from .periphery import ADC, DAC, quantize_symmetric, straight_through
from .tile import Tile, TileRead, TileState, nominal_range, weights_to_conductances

__all__ = ["ADC", "DAC", "Tile", "TileRead", "TileState", "nominal_range", "quantize_symmetric", "straight_through", "weights_to_conductances"]
