"""Checks of the ADC sizing in `benchmarks/core_digits.py`, the one step of that script that is not library code.

The full script (`python benchmarks/core_digits.py --quick`, about 35 s on 2 cores) is not run here, as
no other benchmark script is.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import ADC, DAC, Core, Slicing, Tile
from xbar.devices import IdealDevice

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def core_digits():
    """Import the benchmark script as a module, with its folder on sys.path for its import of `tile_forward`."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("core_digits")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _core(module, current_range: float, input_range: float) -> Core:
    """A bit-serial core of ideal devices whose ADC only saturates at `current_range` (no rounding)."""
    tile = Tile(
        device=IdealDevice(), read_voltage=module.READ_VOLTAGE, dac=DAC(input_range=input_range),
        adc=ADC(None, current_range=current_range),
    )
    return Core(tile=tile, tile_shape=module.TILE_SHAPE, slicing=Slicing(input_bits=module.INPUT_BITS))


@pytest.mark.parametrize("shape", [(70, 20), (64, 130)])
def test_adc_range_covers_every_bit_read(core_digits, rng, key, shape):
    # Grids of 2 x 1 and 1 x 3 tiles, with padded blocks, and signed inputs up to the DAC range of 2.
    input_range = 2.0
    weights = jnp.asarray(rng.normal(size=shape), jnp.float32)
    inputs = jnp.asarray(rng.uniform(-input_range, input_range, size=(16, shape[0])), jnp.float32)
    current_range = core_digits.bit_read_current_range(weights, inputs, input_range, IdealDevice())

    # At the computed range no bit read saturates, so the ideal core gives the product of the inputs as the
    # bit reads represent them. The tolerance of 1e-4 is far above the float32 rounding of sums of 130 terms.
    core = _core(core_digits, current_range, input_range)
    exact = core.quantize_inputs(inputs) @ weights
    tolerance = {"rtol": 1e-4, "atol": 1e-4 * float(jnp.max(jnp.abs(exact)))}
    output = core.forward(weights, inputs, key=key)
    np.testing.assert_allclose(output, exact, **tolerance)

    # 10 % below it the largest bit reads saturate, so the range is the largest current, not a bound above it.
    clipped = _core(core_digits, 0.9 * current_range, input_range).forward(weights, inputs, key=key)
    assert not np.allclose(clipped, exact, **tolerance)
