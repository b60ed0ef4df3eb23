"""Crossbar arrays: tiles, weight-to-conductance mapping and periphery."""

from .periphery import ADC, DAC, quantize_symmetric, straight_through
from .tile import Tile, TileRead, TileState, weights_to_conductances

__all__ = ["ADC", "DAC", "Tile", "TileRead", "TileState", "quantize_symmetric", "straight_through", "weights_to_conductances"]
