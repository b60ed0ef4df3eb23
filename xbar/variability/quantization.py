"""Conductance quantization: devices that hold only N evenly spaced conductance levels."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import is_concrete
from ..devices import Device, DeviceState, ProgramVerify


def check_levels(levels) -> int:
    """Return `levels` as an int, or raise ValueError unless it is an integer >= 2."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
        raise ValueError(f"levels must be an integer number of conductance levels (>= 2), got {levels!r}")
    if levels < 2:
        raise ValueError(f"levels must be at least 2 (g_min and g_max), got {levels}")
    return int(levels)


def quantize(g, levels: int, g_min, g_max, *, straight_through: bool = False) -> jax.Array:
    """Round conductances `g` (S) to the nearest of `levels` evenly spaced values in [g_min, g_max].

    Values outside the range go to the nearer end, so the result has at most `levels` distinct values
    per device. Rounding has zero gradient almost everywhere. With `straight_through` the gradient is
    that of the identity, the straight-through estimator of Bengio, Leonard and Courville (arXiv
    1308.3432, 2013).
    """
    levels = check_levels(levels)
    _check_ordered(g_min, g_max)
    g = jnp.asarray(g, jnp.result_type(float))
    step = (g_max - g_min) / (levels - 1)
    index = jnp.round(jnp.clip((g - g_min) / step, 0, levels - 1))
    quantized = g_min + index * step
    if straight_through:
        return g + jax.lax.stop_gradient(quantized - g)
    return quantized


class Quantized(Device):
    """Quantization to `levels` conductance levels on top of any device model.

    Targets are rounded to the levels before programming, and every `drift` and `read` result is rounded
    again, so each device reads at most `levels` distinct values at any time whatever its inner noise and
    drift. The inner state is the state of this model.

    Attributes:
        device: the wrapped device model.
        g_min, g_max: conductance range of the wrapped device, S (copied from it at construction); the
            levels are evenly spaced on it, both ends included.
        levels: number of levels, an integer >= 2 (static).
        straight_through: pass gradients through the rounding as the identity (static, default False).
    """

    device: Device
    g_min: float
    g_max: float
    levels: int = eqx.field(static=True)
    straight_through: bool = eqx.field(static=True)

    def __init__(self, device: Device, levels: int, *, straight_through: bool = False):
        if not isinstance(device, Device):
            raise ValueError(f"Quantized wraps a Device instance, got {device!r}")
        self.device = device
        self.g_min = device.g_min
        self.g_max = device.g_max
        self.levels = check_levels(levels)
        self.straight_through = bool(straight_through)

    def _round(self, g):
        return quantize(g, self.levels, self.device.g_min, self.device.g_max, straight_through=self.straight_through)

    def program(self, target, *, key: jax.Array, verify: ProgramVerify | None = None) -> DeviceState:
        """Program the target rounded to the nearest level through the inner device."""
        target = jnp.clip(jnp.asarray(target, jnp.result_type(float)), self.g_min, self.g_max)
        return self.device.program(self._round(target), key=key, verify=verify)

    def _program_once(self, target, *, key):
        return self.program(target, key=key)

    def drift(self, state: DeviceState, t) -> jax.Array:
        """Return the noise-free conductance (S) at time t (s), rounded to the levels."""
        return self._round(self.device.drift(state, t))

    def read(self, state: DeviceState, t, *, key: jax.Array) -> jax.Array:
        """Return the conductance (S) read at time t (s), rounded to the levels."""
        return self._round(self.device.read(state, t, key=key))

    def apply_pulses(self, state: DeviceState, n_pulses, *, key: jax.Array, max_pulses: int | None = None):
        """Apply pulses through the inner device; reads of the new state are rounded."""
        return self.device.apply_pulses(state, n_pulses, key=key, max_pulses=max_pulses)


def _check_ordered(g_min, g_max):
    # Per-device (array) ranges are allowed, so this compares elementwise rather than as scalars.
    if not is_concrete((g_min, g_max)):
        return
    low, high = np.asarray(g_min, dtype=float), np.asarray(g_max, dtype=float)
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high <= low).any():
        raise ValueError(f"quantization needs finite g_min < g_max, got g_min={g_min}, g_max={g_max} S")
