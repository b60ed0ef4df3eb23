"""Stuck-at faults: devices that read a fixed low (SA0) or high (SA1) conductance whatever is written."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, is_concrete
from ..devices import Device, DeviceState, ProgramVerify

# Codes of a fault map (int8).
NO_FAULT = 0
SA0 = 1  # stuck at the lowest conductance g_min (stuck off, high-resistance state)
SA1 = 2  # stuck at the highest conductance g_max (stuck on, low-resistance state)


def fault_map(key: jax.Array, shape, sa0_rate, sa1_rate) -> jax.Array:
    """Draw a fault map of `shape`: each device is SA0 with probability `sa0_rate`, SA1 with `sa1_rate`.

    The two faults are exclusive, so the rates must satisfy sa0_rate + sa1_rate <= 1. Returns int8 codes
    `NO_FAULT`, `SA0` or `SA1`.
    """
    _check_rates(sa0_rate, sa1_rate)
    u = jax.random.uniform(key, tuple(shape))
    codes = jnp.where(u < sa0_rate, SA0, jnp.where(u < sa0_rate + sa1_rate, SA1, NO_FAULT))
    return codes.astype(jnp.int8)


def apply_faults(g, faults, g_min, g_max) -> jax.Array:
    """Return conductances `g` (S) with SA0 devices set to `g_min` and SA1 devices set to `g_max`."""
    g = jnp.asarray(g)
    return jnp.where(faults == SA0, g_min, jnp.where(faults == SA1, g_max, g))


class FaultState(DeviceState):
    """State of devices wrapped by `StuckAtFaults`.

    Attributes:
        g: conductance at the end of the last event with faults applied, S.
        iterations: programming attempts of the inner device (int32).
        inner: state of the wrapped device model.
        faults: fault map (int8 codes NO_FAULT, SA0, SA1).
    """

    inner: DeviceState
    faults: jax.Array


class StuckAtFaults(Device):
    """Stuck-at faults on top of any device model.

    SA0 devices read g_min and SA1 devices read g_max at any time, whatever was programmed or pulsed.
    The fault map is `fault_map` when given (a fixed defect map of a physical array, of the programmed
    shape), else it is drawn at each `program` from the rates. The faulty devices keep an inner state
    that evolves normally but is never read. Program-and-verify cannot repair a stuck device, so
    `state.iterations` reports the attempts of the inner device only.

    Attributes:
        device: the wrapped device model.
        g_min, g_max: conductance range of the wrapped device, S (copied from it at construction).
        sa0_rate, sa1_rate: probabilities of SA0 and SA1 per device (sa0_rate + sa1_rate <= 1).
        fault_map: a fixed fault map (int8 codes) or None to draw one at programming.
    """

    device: Device
    g_min: float
    g_max: float
    sa0_rate: float
    sa1_rate: float
    fault_map: jax.Array | None

    def __init__(self, device: Device, *, sa0_rate: float = 0.0, sa1_rate: float = 0.0, fault_map=None):
        if not isinstance(device, Device):
            raise ValueError(f"StuckAtFaults wraps a Device instance, got {device!r}")
        self.device = device
        self.g_min = device.g_min
        self.g_max = device.g_max
        self.sa0_rate = sa0_rate
        self.sa1_rate = sa1_rate
        self.fault_map = None if fault_map is None else jnp.asarray(fault_map, jnp.int8)

    def __check_init__(self):
        _check_rates(self.sa0_rate, self.sa1_rate)
        if self.fault_map is not None and is_concrete(self.fault_map):
            codes = np.unique(np.asarray(self.fault_map))
            if not np.isin(codes, (NO_FAULT, SA0, SA1)).all():
                raise ValueError(
                    f"fault_map contains codes {codes.tolist()}; use only NO_FAULT (0), SA0 (1) and SA1 (2)"
                )

    def _faults(self, shape, key):
        if self.fault_map is None:
            return fault_map(key, shape, self.sa0_rate, self.sa1_rate)
        if is_concrete(self.fault_map) and np.shape(self.fault_map) != tuple(shape):
            raise ValueError(
                f"fault_map has shape {np.shape(self.fault_map)} but the devices have shape {tuple(shape)}; "
                "pass a fault_map of the programmed shape or None to draw one"
            )
        return self.fault_map

    def program(self, target, *, key: jax.Array, verify: ProgramVerify | None = None) -> FaultState:
        """Program through the inner device and apply the fault map (drawn now unless fixed)."""
        key_inner, key_faults = jax.random.split(key)
        inner = self.device.program(target, key=key_inner, verify=verify)
        faults = self._faults(jnp.shape(inner.g), key_faults)
        g = apply_faults(inner.g, faults, self.device.g_min, self.device.g_max)
        return FaultState(g=g, iterations=inner.iterations, inner=inner, faults=jnp.broadcast_to(faults, jnp.shape(g)))

    def _program_once(self, target, *, key):
        return self.program(target, key=key)

    def drift(self, state: FaultState, t) -> jax.Array:
        """Return the noise-free conductance (S) at time t (s), stuck devices at their fixed level."""
        return apply_faults(self.device.drift(state.inner, t), state.faults, self.device.g_min, self.device.g_max)

    def read(self, state: FaultState, t, *, key: jax.Array) -> jax.Array:
        """Return the conductance (S) read at time t (s), stuck devices at their fixed level."""
        return apply_faults(self.device.read(state.inner, t, key=key), state.faults, self.device.g_min, self.device.g_max)

    def apply_pulses(self, state: FaultState, n_pulses, *, key: jax.Array, max_pulses: int | None = None):
        """Apply pulses through the inner device; stuck devices stay at their level."""
        check_finite("n_pulses", n_pulses)
        inner = self.device.apply_pulses(state.inner, n_pulses, key=key, max_pulses=max_pulses)
        g = apply_faults(inner.g, state.faults, self.device.g_min, self.device.g_max)
        return eqx.tree_at(lambda s: (s.g, s.inner), state, (g, inner))


def _check_rates(sa0_rate, sa1_rate):
    if not is_concrete((sa0_rate, sa1_rate)):
        return
    for name, rate in (("sa0_rate", sa0_rate), ("sa1_rate", sa1_rate)):
        value = np.asarray(rate, dtype=float)
        if not (np.isfinite(value).all() and (value >= 0).all() and (value <= 1).all()):
            raise ValueError(f"{name} must be a probability in [0, 1], got {rate}")
    if (np.asarray(sa0_rate, dtype=float) + np.asarray(sa1_rate, dtype=float) > 1).any():
        raise ValueError(f"sa0_rate + sa1_rate must be <= 1 (each device has at most one fault), got {sa0_rate} + {sa1_rate}")
