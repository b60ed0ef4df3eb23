"""Number representation of a core: bit-serial inputs, weights sliced over devices, and signed weights.

Inputs. With `input_bits=None` every input vector is one analog read: the tile's DAC turns each input into
a read voltage. With `input_bits=B` each input is rounded to B magnitude bits of the DAC range, and the
core reads once per bit. The read for bit k drives a row at the full read voltage where bit k of that
input's magnitude is 1 and leaves it at 0 V otherwise. The sign of the input sets the polarity of the row's
read pulses, so a signed input costs B reads rather than 2B (one phase per sign). The IBM HERMES chip
likewise reads signed inputs in one phase, though with pulse-width-modulated inputs rather than bits
(Le Gallo et al., Nature Electronics 2023, doi:10.1038/s41928-023-01010-1). Every bit read is digitized on
its own, and the digital periphery adds the digitized outputs with weights 2^k (shift and add). A signed
input therefore takes 2^(B+1) - 1 values: B magnitude bits plus the sign.

Weights. With `bits_per_slice=None` a weight is one analog conductance (per device of a pair). With
`bits_per_slice=p` each weight is rounded to an integer code of S*p bits (S = `weight_slices`), cut into
S digits of p bits. Digit s is stored on its own devices, at one of 2^p equally spaced conductance levels,
and carries significance 2^(s*p): the most significant slice carries 2^((S-1)*p). Each slice is a tile
of its own, with its own programming and read noise and its own ADC, and the digitized slice outputs are
combined by shift and add in digital.

Signed weights:
    - "differential": each digit is stored on a pair (G+, G-). The device of the weight's sign holds the
      level and the other device stays at g_min, so S*p bits carry the magnitude and the pair the sign.
    - "offset": each cell is one device that stores W plus a fixed offset (half the range), so every
      stored value is non-negative. One reference column per tile (per slice tile when sliced) stores the
      offset, and the digital periphery subtracts its digitized output from every other column. This
      uses half the devices of the differential scheme, but the sign takes one of the S*p bits, and every
      column current carries the offset, which uses ADC range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, check_time, is_concrete

if TYPE_CHECKING:
    from .core import Core

__all__ = ["Slicing", "slicing_error"]

NEGATIVE_SCHEMES = ("differential", "offset")

# Weight codes and input codes are int32 and must stay exact in float32, whose significand has 24 bits.
MAX_CODE_BITS = 24


def _check_count(name: str, value, *, allow_none: bool, fix: str) -> None:
    """Raise ValueError unless `value` is an integer >= 1 (or None where allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        expected = "an integer >= 1 or None" if allow_none else "an integer >= 1"
        raise ValueError(f"{name} must be {expected}, got {value!r}; {fix}")


class Slicing(eqx.Module):
    """How a core represents inputs and weights: bit-serial inputs, weight slices and the sign of weights.

    The default, `Slicing()`, is one analog read per input vector and one differential pair per weight.

    Attributes:
        input_bits: magnitude bits of a bit-serial input, one read per bit, with the sign applied as the
            polarity of the read pulses; None (default) for one analog read through the tile's DAC. A bit
            read drives each row at 0 V or at the full read voltage of either polarity. So the resolution
            of the tile's DAC is not used, but its `input_range` still sets the full-scale input.
        weight_slices: number of slices S of each weight, each on its own devices (default 1).
        bits_per_slice: bits p of each slice's digit, so that each slice device has 2^p conductance
            levels; None (default) for analog weights without quantization, which needs `weight_slices=1`.
        negative: "differential" (default) for pairs (G+, G-), or "offset" for one device per cell plus one
            reference column per tile that holds the offset.
    """

    input_bits: int | None = eqx.field(static=True, default=None)
    weight_slices: int = eqx.field(static=True, default=1)
    bits_per_slice: int | None = eqx.field(static=True, default=None)
    negative: str = eqx.field(static=True, default="differential")

    def __check_init__(self):
        _check_count("input_bits", self.input_bits, allow_none=True, fix="use None for one analog read per input")
        if self.input_bits is not None and self.input_bits > MAX_CODE_BITS:
            raise ValueError(f"input_bits = {self.input_bits} is beyond float32 resolution; use at most {MAX_CODE_BITS}")
        _check_count("weight_slices", self.weight_slices, allow_none=False, fix="use 1 for unsliced weights")
        _check_count("bits_per_slice", self.bits_per_slice, allow_none=True, fix="use None for analog weights")
        if self.negative not in NEGATIVE_SCHEMES:
            raise ValueError(f"negative must be one of {NEGATIVE_SCHEMES}, got {self.negative!r}")
        if self.bits_per_slice is None:
            if self.weight_slices != 1:
                raise ValueError(
                    f"weight_slices = {self.weight_slices} needs bits_per_slice (bits stored per device); "
                    "set bits_per_slice, or use weight_slices=1 for analog weights"
                )
            return
        total = self.weight_slices * self.bits_per_slice
        if total > MAX_CODE_BITS:
            raise ValueError(
                f"weight_slices * bits_per_slice = {total} bits is beyond float32 resolution; "
                f"use at most {MAX_CODE_BITS} bits per weight"
            )
        if self.negative == "offset" and total < 2:
            raise ValueError(
                "offset weights need at least 2 bits (one of them is the sign), got weight_slices * "
                f"bits_per_slice = {total}; raise bits_per_slice or weight_slices"
            )

    # Counts used by the energy and area accounting.

    @property
    def reads_per_product(self) -> int:
        """Tile reads per input vector: `input_bits` for bit-serial inputs, else 1."""
        return 1 if self.input_bits is None else self.input_bits

    @property
    def devices_per_weight(self) -> int:
        """Devices that store one weight: `weight_slices`, times 2 for differential pairs."""
        return self.weight_slices * (2 if self.negative == "differential" else 1)

    @property
    def reference_columns(self) -> int:
        """Extra columns of every tile (and of every slice's tile): 1 for offset weights, else 0."""
        return 1 if self.negative == "offset" else 0

    @property
    def stores_levels(self) -> bool:
        """True when the core maps weights itself (quantized or offset); False when each tile maps its block."""
        return self.bits_per_slice is not None or self.negative == "offset"

    # Inputs.

    def quantize_inputs(self, x, input_range):
        """Return the inputs as the bit-serial reads represent them (in input units); `x` itself when analog.

        Magnitudes are rounded to `input_bits` bits of `input_range` and saturate beyond it. Not
        differentiable: the gradient is zero almost everywhere.
        """
        x = jnp.asarray(x, jnp.result_type(float))
        if self.input_bits is None:
            return x
        levels = 2**self.input_bits - 1
        return jnp.sign(x) * _magnitude_code(x / input_range, levels) * (input_range / levels)

    def input_planes(self, x, input_range):
        """Split inputs (..., M) into signed bit planes for the bit-serial reads.

        Returns the planes, shape (input_bits, ..., M) with values in {-1, 0, 1}, least significant bit
        first, and the significance of each plane, shape (input_bits,). Plane k drives its rows at the full
        read voltage with the sign of the input, and sum_k significance_k * plane_k * input_range equals
        `quantize_inputs(x, input_range)`.
        """
        if self.input_bits is None:
            raise ValueError("input_planes needs bit-serial inputs: set input_bits")
        x = jnp.asarray(x, jnp.result_type(float))
        levels = 2**self.input_bits - 1
        code = _magnitude_code(x / input_range, levels).astype(jnp.int32)
        shifts = jnp.arange(self.input_bits, dtype=jnp.int32).reshape((-1,) + (1,) * x.ndim)
        bits = (code[None] >> shifts) & 1
        planes = jnp.sign(x)[None] * bits.astype(x.dtype)
        significance = jnp.asarray([2.0**k / levels for k in range(self.input_bits)], x.dtype)
        return planes, significance

    # Weights.

    def quantize_weights(self, weights, full_scale):
        """Return the weights as the slices store them, for a block whose full-scale weight is `full_scale`.

        Weights beyond +-full_scale saturate. Differential weights round to 2^(S*p+1) - 1 signed levels
        and offset weights to 2^(S*p) - 1 levels, zero among them in both schemes. Analog weights are
        only clipped.
        Differentiable for analog weights; with `bits_per_slice` the gradient is zero almost everywhere.
        """
        weights = jnp.asarray(weights, jnp.result_type(float))
        if self.bits_per_slice is None:
            return jnp.clip(weights, -full_scale, full_scale)
        values = self.split_weights(weights, full_scale)
        significance = jnp.asarray(self.slice_significance(), weights.dtype)
        reference = jnp.asarray(self.reference_levels(), weights.dtype)
        shape = (-1,) + (1,) * weights.ndim
        return full_scale * jnp.sum((values - reference.reshape(shape)) * significance.reshape(shape), axis=0)

    def split_weights(self, weights, full_scale):
        """Return each slice's share of the weights in device units, shape (weight_slices, ...).

        A device unit of 1 is the full conductance range, so a value v is programmed as g_min + |v| (g_max -
        g_min). Differential values lie in [-1, 1] (the sign picks the device of the pair) and offset
        values in [0, 1]. Slices are ordered from least to most significant. The weights are recovered
        as full_scale * sum_s significance_s * (value_s - reference_s) with `slice_significance` and
        `reference_levels`. Differentiable for analog weights; the digits of quantized weights are not.
        """
        weights = jnp.asarray(weights, jnp.result_type(float))
        ratio = jnp.clip(weights / full_scale, -1.0, 1.0)
        offset = self.negative == "offset"
        if self.bits_per_slice is None:
            return ((ratio + 1.0) / 2.0 if offset else ratio)[None]

        p = self.bits_per_slice
        top = 2**p - 1
        if offset:
            signed_levels = 2 ** (self.weight_bits - 1) - 1
            code = jnp.round(ratio * signed_levels).astype(jnp.int32) + 2 ** (self.weight_bits - 1)
            sign = jnp.ones_like(ratio)
        else:
            code = _magnitude_code(ratio, 2**self.weight_bits - 1).astype(jnp.int32)
            sign = jnp.sign(ratio)
        shifts = (p * jnp.arange(self.weight_slices, dtype=jnp.int32)).reshape((-1,) + (1,) * weights.ndim)
        digits = (code[None] >> shifts) & top
        return sign[None] * digits.astype(weights.dtype) / top

    def slice_significance(self) -> tuple[float, ...]:
        """Return the weight of each slice's output, least significant first, in units of the full scale."""
        if self.bits_per_slice is None:
            return (2.0,) if self.negative == "offset" else (1.0,)
        top = 2**self.bits_per_slice - 1
        if self.negative == "offset":
            levels = 2 ** (self.weight_bits - 1) - 1
        else:
            levels = 2**self.weight_bits - 1
        return tuple(top * 2.0 ** (s * self.bits_per_slice) / levels for s in range(self.weight_slices))

    def reference_levels(self) -> tuple[float, ...]:
        """Return the value of the reference column in each slice (device units); zeros when differential.

        The offset is half the code range, 2^(S*p-1) (1/2 of the range for analog weights), stored in the
        reference column with the same digits as a weight.
        """
        if self.negative == "differential":
            return (0.0,) * self.weight_slices
        if self.bits_per_slice is None:
            return (0.5,)
        offset_code = 2 ** (self.weight_bits - 1)
        top = 2**self.bits_per_slice - 1
        return tuple(((offset_code >> (s * self.bits_per_slice)) & top) / top for s in range(self.weight_slices))

    @property
    def weight_bits(self) -> int | None:
        """Bits of a weight's code, S*p; None for analog weights."""
        return None if self.bits_per_slice is None else self.weight_slices * self.bits_per_slice


def _magnitude_code(ratio, levels: int):
    """Round |ratio| * levels to an integer in [0, levels] (kept as a float)."""
    return jnp.clip(jnp.round(jnp.abs(ratio) * levels), 0, levels)


def slicing_error(core: Core, weights, inputs, t=0.0, *, key: jax.Array, reference: str = "exact"):
    """Measure the relative RMS error of a core's product: ||y - y_ref|| / ||y_ref|| over all outputs.

    The core programs `weights` (M x N), reads them at time `t` (s) and computes `inputs @ weights` for
    inputs of shape (..., M). With `reference="exact"` the reference is the float product, so the error
    includes the rounding of inputs and weights. With `reference="quantized"` the reference is the
    product of the inputs and weights as the core represents them (`Core.quantize_inputs`,
    `Core.quantize_weights`), so the error is that of the devices and converters alone. Pure and
    jit-compatible; a concrete all-zero reference raises ValueError.
    """
    if reference not in ("exact", "quantized"):
        raise ValueError(f"reference must be 'exact' or 'quantized', got {reference!r}")
    inputs = jnp.asarray(inputs, jnp.result_type(float))
    weights = jnp.asarray(weights, inputs.dtype)
    check_finite("inputs", inputs, "remove NaN or infinite inputs")
    check_time("read time t", t)
    measured = core.forward(weights, inputs, t, key=key)
    if reference == "exact":
        target = inputs @ weights
    else:
        target = core.quantize_inputs(inputs) @ core.quantize_weights(weights)
    norm = jnp.sqrt(jnp.sum(target**2))
    if is_concrete(norm) and float(norm) == 0.0:
        raise ValueError("the reference product inputs @ weights is all zero, so a relative error is undefined; "
                         "pass non-zero inputs and weights")
    return jnp.sqrt(jnp.sum((measured - target) ** 2)) / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny)
