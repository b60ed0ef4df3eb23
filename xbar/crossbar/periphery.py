"""Converters at the edges of a tile: the input DAC and the output ADC."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_bits, check_positive


def quantize_symmetric(x, full_scale, bits: int):
    """Round `x` to a uniform signed grid over [-full_scale, full_scale], saturating outside it.

    With b >= 2 bits the grid has 2^b - 1 levels, zero among them, with step full_scale / (2^(b-1) - 1);
    with 1 bit the two levels are -full_scale and +full_scale (zero maps to +full_scale). Rounding has a
    zero gradient almost everywhere: this is a hard quantizer, not differentiable in any useful sense.
    """
    if bits == 1:
        return jnp.where(x >= 0, full_scale, -full_scale).astype(jnp.result_type(x, float))
    levels = 2 ** (bits - 1) - 1
    step = full_scale / levels
    return jnp.clip(jnp.round(x / step), -levels, levels) * step


def straight_through(x, quantized, full_scale):
    """Return `quantized` in the forward pass with the gradient of clipping x to +-full_scale.

    This is the straight-through estimator: the rounding is invisible to `grad`, while saturated values
    still pass no gradient.
    """
    clipped = jnp.clip(x, -full_scale, full_scale)
    return clipped + jax.lax.stop_gradient(quantized - clipped)


class DAC(eqx.Module):
    """Input digital-to-analog converter: maps digital inputs onto read voltages.

    An input of magnitude `input_range` becomes the tile's full read voltage. With `bits=None` the DAC is
    ideal: no quantization and no clipping, so the tile reproduces `x @ W` in the ideal limit.

    Attributes:
        bits: resolution including sign, or None for an ideal converter (static).
        input_range: input magnitude that maps to the full read voltage, in input units (default 1).
        straight_through: pass gradients through the rounding as if it were absent (static, default
            False, in which case the quantizer's gradient is zero almost everywhere).
    """

    bits: int | None = eqx.field(static=True, default=None)
    input_range: float = 1.0
    straight_through: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_bits("DAC bits", self.bits)
        check_positive("DAC input_range", self.input_range)

    def __call__(self, x):
        """Return the normalized drive in [-1, 1] (unbounded when ideal) for inputs `x`."""
        u = x / self.input_range
        if self.bits is None:
            return u
        quantized = quantize_symmetric(u, 1.0, self.bits)
        return straight_through(u, quantized, 1.0) if self.straight_through else quantized


class ADC(eqx.Module):
    """Output analog-to-digital converter on each sensed line.

    Currents beyond +-`current_range` saturate, and with `bits` set the rest are rounded to a uniform signed
    grid. `bits=None, current_range=None` is the ideal converter; `bits=None` with a range only saturates.

    Attributes:
        bits: resolution including sign, or None for no quantization (static).
        current_range: full-scale current in A, or None for no saturation (needs `bits=None`).
        straight_through: pass gradients through the rounding as if it were absent (static, default
            False, in which case the quantizer's gradient is zero almost everywhere).
    """

    bits: int | None = eqx.field(static=True, default=None)
    current_range: float | None = None
    straight_through: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_bits("ADC bits", self.bits)
        if self.current_range is None:
            if self.bits is not None:
                raise ValueError(
                    f"ADC with bits={self.bits} needs current_range (full-scale current in A); "
                    "set it, or use bits=None for an ideal ADC"
                )
        else:
            check_positive("ADC current_range", self.current_range, "A")

    @property
    def is_ideal(self) -> bool:
        return self.bits is None and self.current_range is None

    def __call__(self, current):
        """Return the digitized current in A (saturated and quantized as configured)."""
        if self.current_range is None:
            return current
        if self.bits is None:
            return jnp.clip(current, -self.current_range, self.current_range)
        quantized = quantize_symmetric(current, self.current_range, self.bits)
        return straight_through(current, quantized, self.current_range) if self.straight_through else quantized
