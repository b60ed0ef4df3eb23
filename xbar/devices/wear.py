"""Worn and stuck devices of an array, read from the cycle records of its `Endurance` wrappers."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._validation import is_concrete
from ._base import Device, DeviceState
from .endurance import Endurance, EnduranceState
from .retention import Retention

__all__ = ["wear_state"]


def wear_state(device: Device, state: DeviceState, *, closure_threshold: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """Return boolean masks (worn, stuck) with the shape of `state.g`.

    stuck: devices that an `Endurance` wrapper has failed (`EnduranceState.failed`), which read g_max or
    g_min whatever they are programmed to.

    worn: devices whose conductance window has closed by more than `closure_threshold`, as a share of
    the window before wear. The closed share is `Endurance.closed_fraction` of the cycles endured, by
    which `Endurance.window` narrows the range. A failed device is also worn if its window closed that
    far before it failed, so the two masks can overlap.

    Wrappers nest in any order: `Retention` passes the state through, and every `Endurance` level adds
    its own worn and stuck devices. A model without `Endurance` has neither. Pure and elementwise;
    works under `jit` and `vmap`.

    Args:
        device: the device model, possibly wrapped in `Endurance` and `Retention`.
        state: the state that `device.program` or `device.apply_pulses` returned.
        closure_threshold: closed share of the window above which a device counts as worn, in [0, 1)
            (default 0.1, an illustrative choice).

    Raises:
        ValueError: for a threshold outside [0, 1), or a state that does not belong to the wrapped model.
    """
    if is_concrete(closure_threshold) and not 0.0 <= float(closure_threshold) < 1.0:
        raise ValueError(f"closure_threshold must lie in [0, 1), got {closure_threshold}; pass a share such as 0.1")
    shape = jnp.shape(state.g)
    worn, stuck = _wear_masks(device, state, closure_threshold)
    return jnp.broadcast_to(worn, shape), jnp.broadcast_to(stuck, shape)


def _wear_masks(device: Device, state: DeviceState, closure_threshold):
    if isinstance(device, Endurance):
        if not isinstance(state, EnduranceState):
            raise ValueError(
                f"an Endurance model needs the EnduranceState that its program returns, got {type(state).__name__}"
            )
        worn = device.closed_fraction(state.cycles) > closure_threshold
        inner_worn, inner_stuck = _wear_masks(device.device, state.inner, closure_threshold)
        return worn | inner_worn, state.failed | inner_stuck
    if isinstance(device, Retention):
        return _wear_masks(device.device, state, closure_threshold)
    none = jnp.zeros(jnp.shape(state.g), bool)
    return none, none
