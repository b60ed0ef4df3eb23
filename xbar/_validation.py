"""Eager input checks shared by the public entry points.

Every check runs on concrete values only. Under `jit`, `vmap` or `grad` the value is a tracer and the
check is skipped, so the same constructor or function works inside traced code; the traced paths clamp
their inputs so that no NaN can appear from finite input.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
    """Return True when no leaf of `value` is a JAX tracer."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def check_finite(name: str, value: Any, fix: str = "") -> None:
    """Raise ValueError when a concrete array or number contains NaN or infinity."""
    if value is None or not is_concrete(value):
        return
    array = np.asarray(value)
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        where = np.argwhere(bad)[0].tolist() if array.ndim else []
        example = array[tuple(where)] if array.ndim else array
        message = f"{name} contains non-finite values ({int(bad.sum())} of {array.size}, e.g. {example} at index {where})"
        raise ValueError(message + (f"; {fix}" if fix else "; pass finite numbers"))


def check_positive(name: str, value: Any, unit: str = "", *, allow_zero: bool = False) -> None:
    """Raise ValueError unless a concrete scalar parameter is finite and positive (or non-negative)."""
    if not is_concrete(value):
        return
    array = np.asarray(value, dtype=float)
    ok = np.isfinite(array) & ((array >= 0) if allow_zero else (array > 0))
    if not ok.all():
        bound = ">= 0" if allow_zero else "> 0"
        shown = array if array.ndim == 0 else array[~ok][0]
        suffix = f" {unit}" if unit else ""
        raise ValueError(f"{name} must be finite and {bound}, got {shown}{suffix}; pass a value {bound}{suffix}")


def check_bits(name: str, bits: Any) -> None:
    """Raise ValueError unless `bits` is None (ideal converter) or an integer of at least 1."""
    if bits is None:
        return
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"{name} must be an integer number of bits or None for an ideal converter, got {bits!r}")
    if bits < 1:
        raise ValueError(f"{name} must be at least 1 bit, got {bits}; use None for an ideal converter")
    if bits > 24:
        raise ValueError(f"{name} = {bits} is beyond float32 resolution; use at most 24 bits or None for ideal")


def check_time(name: str, t: Any) -> None:
    """Raise ValueError when a concrete time is negative or not finite."""
    if not is_concrete(t):
        return
    array = np.asarray(t, dtype=float)
    if not np.isfinite(array).all() or (array < 0).any():
        bad = array if array.ndim == 0 else array[~(np.isfinite(array) & (array >= 0))][0]
        raise ValueError(f"{name} must be a finite time >= 0 s after programming, got {bad} s")


def check_range(name_low: str, low: Any, name_high: str, high: Any, unit: str = "S") -> None:
    """Raise ValueError unless 0 <= low < high (both concrete scalars)."""
    if not (is_concrete(low) and is_concrete(high)):
        return
    low_f, high_f = float(np.asarray(low)), float(np.asarray(high))
    if not (math.isfinite(low_f) and math.isfinite(high_f)):
        raise ValueError(f"{name_low} and {name_high} must be finite, got {low_f} and {high_f} {unit}")
    if low_f < 0:
        raise ValueError(f"{name_low} must be >= 0 {unit}, got {low_f} {unit}; conductances cannot be negative")
    if high_f <= 0:
        raise ValueError(f"{name_high} must be > 0 {unit}, got {high_f} {unit}")
    if high_f <= low_f:
        raise ValueError(
            f"{name_high} ({high_f} {unit}) must be greater than {name_low} ({low_f} {unit}); "
            "swap them or widen the range"
        )
