"""Device-to-device variability: per-device draws of any device-model parameter, optionally spatially correlated.

Every device function is elementwise with broadcasting, so a model whose parameters are arrays of the
array's shape describes an array of different devices. `sample_parameters` returns such a model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from .. import _random
from .._validation import check_finite, check_positive, is_concrete

logger = logging.getLogger(__name__)

# Parameter pairs that must satisfy low < high on every device after sampling, where a model has both.
DEFAULT_ORDERED_PAIRS: tuple[tuple[str, str], ...] = (("g_min", "g_max"), ("r_on", "r_off"))


@dataclass(frozen=True)
class Normal:
    """Normal distribution around the nominal value.

    Attributes:
        spread: standard deviation, relative to |nominal| when `relative` (0.1 means 10 %), else absolute in the
            parameter's unit.
        relative: whether `spread` is relative to the nominal value (default True).
    """

    spread: float
    relative: bool = True

    def __post_init__(self):
        check_positive("Normal spread", self.spread, allow_zero=True)

    def transform(self, nominal, z):
        """Map standard normal draws `z` onto samples around `nominal`."""
        return nominal + _std(self.spread, self.relative, nominal) * z


@dataclass(frozen=True)
class LogNormal:
    """Lognormal distribution: nominal exp(sigma z), so the median is the nominal value and ln(value) has std sigma.

    The mean is nominal exp(sigma^2 / 2), above the nominal value. Samples keep the sign of the nominal value.

    Attributes:
        sigma: standard deviation of ln(value / nominal) (0.1 is roughly a 10 % spread).
    """

    sigma: float

    def __post_init__(self):
        check_positive("LogNormal sigma", self.sigma, allow_zero=True)

    def transform(self, nominal, z):
        """Map standard normal draws `z` onto samples with median `nominal`."""
        return nominal * jnp.exp(self.sigma * z)


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal distribution around the nominal value, truncated to [low, high].

    `spread` is the standard deviation of the normal before truncation, so the samples have a smaller
    spread, and a mean other than the nominal value when the bounds are asymmetric about it. Samples are
    drawn by inverting the cumulative distribution, which keeps spatial correlation and gradients.

    Attributes:
        spread: standard deviation before truncation, relative to |nominal| when `relative`, else absolute.
        low, high: bounds in the parameter's unit (None: unbounded on that side).
        relative: whether `spread` is relative to the nominal value (default True).
    """

    spread: float
    low: float | None = None
    high: float | None = None
    relative: bool = True

    def __post_init__(self):
        check_positive("TruncatedNormal spread", self.spread, allow_zero=True)
        for name in ("low", "high"):
            check_finite(f"TruncatedNormal {name}", getattr(self, name), "pass a finite bound or None for no bound")
        if self.low is not None and self.high is not None and not float(self.low) < float(self.high):
            raise ValueError(f"TruncatedNormal needs low < high, got low={self.low}, high={self.high}; swap them")

    def transform(self, nominal, z):
        """Map standard normal draws `z` onto samples in [low, high]."""
        std = _std(self.spread, self.relative, nominal)
        safe_std = jnp.where(std > 0, std, 1.0)
        cdf_low = 0.0 if self.low is None else ndtr((self.low - nominal) / safe_std)
        cdf_high = 1.0 if self.high is None else ndtr((self.high - nominal) / safe_std)
        sample = nominal + std * ndtri(cdf_low + ndtr(z) * (cdf_high - cdf_low))
        # ndtri returns -inf or inf when rounding puts its argument at 0 or 1: the clip maps those onto the bounds.
        low = -jnp.inf if self.low is None else self.low
        high = jnp.inf if self.high is None else self.high
        return jnp.clip(sample, low, high)


Distribution = Normal | LogNormal | TruncatedNormal


def _std(spread, relative, nominal):
    return spread * jnp.abs(nominal) if relative else jnp.asarray(spread)


def correlated_normal(key: jax.Array, shape: Sequence[int], correlation_length: float) -> jax.Array:
    """Draw standard normal values that are spatially correlated over the last two axes of `shape`.

    White noise on a grid padded by the kernel radius is filtered with a separable Gaussian kernel of
    standard deviation `correlation_length` (in cells) and unit L2 norm. Every value then has variance 1,
    and the correlation between cells a distance d apart is exp(-d^2 / (4 correlation_length^2)). Other
    leading axes are independent.
    """
    shape = _check_shape(shape)
    if len(shape) < 2:
        raise ValueError(f"spatial correlation needs a shape with at least 2 axes (rows, columns), got {shape}")
    check_positive("correlation_length", correlation_length, "cells")
    radius = max(1, math.ceil(4.0 * float(correlation_length)))
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.result_type(float))
    kernel = jnp.exp(-0.5 * (offsets / correlation_length) ** 2)
    kernel = kernel / jnp.sqrt(jnp.sum(kernel**2))

    rows, columns = shape[-2:]
    padded = _random.normal(key, (*shape[:-2], rows + 2 * radius, columns + 2 * radius), jnp.result_type(float))
    # Valid-mode filtering along each axis: the whole kernel overlaps every output cell, so the variance is uniform.
    along_rows = sum(kernel[i] * padded[..., i : i + rows, :] for i in range(2 * radius + 1))
    return sum(kernel[i] * along_rows[..., :, i : i + columns] for i in range(2 * radius + 1))


def sample_parameters(
    device: eqx.Module,
    shape: Sequence[int],
    key: jax.Array,
    distributions: Mapping[str, Distribution],
    *,
    correlation_length: float | None = None,
    max_resamples: int = 10,
    ordered_pairs: Sequence[tuple[str, str]] = DEFAULT_ORDERED_PAIRS,
) -> eqx.Module:
    """Return `device` with the named parameters replaced by per-device arrays of shape `shape`.

    `device` is a `Device` or any other equinox module of parameters, such as a compact model that a
    tile device wraps. Sampling the compact model first and wrapping it afterwards lets the wrapper
    compute its conductance range per device from the sampled resistances.

    Each parameter leaf (a tuple field such as a polynomial's coefficients has several) gets its own
    independent draw. With `correlation_length` (cells), the draws are spatially correlated over the last
    two axes of `shape` (see `correlated_normal`).

    Validity rule. A device's draw is invalid when a sampled parameter whose nominal value is positive
    comes out <= 0, one whose nominal value is 0 comes out < 0, or a pair in `ordered_pairs` (by default
    g_min < g_max and r_on < r_off) is out of order. Parameters with negative nominal values are not
    constrained. All sampled parameters of an invalid device are drawn again, up to `max_resamples`
    times. Devices still invalid after that raise ValueError when the values are concrete. Under `jit`,
    `vmap` or `grad` no error can be raised, so those devices get the nominal parameters instead. No
    NaN or infinity is ever produced from finite nominal values.

    Redrawn devices are independent of their neighbours, so a correlated field loses a little correlation
    where redraws happened.

    Sample the parameters of an inner model before wrapping it: wrappers such as `Endurance` copy g_min
    and g_max from the model they wrap at construction.

    Inside a `Tile`, weights are mapped and outputs scaled with the mean range (`Tile.nominal_range`), and
    each device clips its target to its own range. NOTE: the two devices of a differential pair share the
    sampled parameters of their cell.

    Args:
        device: the nominal device model (or model of parameters).
        shape: shape of the device array, e.g. (rows, columns) of a tile.
        key: PRNG key.
        distributions: parameter name to `Normal`, `LogNormal` or `TruncatedNormal`.
        correlation_length: Gaussian correlation length in cells, or None for independent devices.
        max_resamples: number of redraws of invalid devices (int >= 0).
        ordered_pairs: (low, high) parameter names that must stay ordered.
    """
    shape = _check_shape(shape)
    _check_request(device, distributions, max_resamples)
    if correlation_length is not None:
        check_positive("correlation_length", correlation_length, "cells")

    names = list(distributions)
    nominal = {name: jax.tree_util.tree_leaves(getattr(device, name)) for name in names}
    for name in names:
        check_finite(f"nominal {name}", np.asarray(nominal[name], dtype=float) if is_concrete(nominal[name]) else None)
    dtype = jnp.result_type(float)

    def draw(round_index):
        drawn = {}
        for index, name in enumerate(names):
            leaf_key = jax.random.fold_in(jax.random.fold_in(key, index), round_index)
            leaf_keys = jax.random.split(leaf_key, len(nominal[name]))
            drawn[name] = [
                jnp.asarray(distributions[name].transform(jnp.asarray(value, dtype), _standard_normal(k, shape, correlation_length)), dtype)
                for k, value in zip(leaf_keys, nominal[name])
            ]
        return drawn

    samples = draw(0)
    valid = _valid(device, samples, nominal, shape, ordered_pairs)
    for round_index in range(1, max_resamples + 1):
        if is_concrete(valid) and bool(jnp.all(valid)):
            break
        redrawn = draw(round_index)
        samples = {
            name: [jnp.where(valid, old, new) for old, new in zip(samples[name], redrawn[name])] for name in names
        }
        valid = _valid(device, samples, nominal, shape, ordered_pairs)

    if is_concrete(valid):
        invalid = int(np.size(valid) - np.count_nonzero(np.asarray(valid)))
        if invalid:
            raise ValueError(
                f"{invalid} of {int(np.size(valid))} devices drew invalid parameters ({', '.join(names)}) "
                f"in {max_resamples + 1} draws: a positive parameter came out <= 0 or a pair in {list(ordered_pairs)} "
                "came out of order; reduce the spread, use TruncatedNormal or LogNormal, or raise max_resamples"
            )
    else:
        samples = {
            name: [jnp.where(valid, value, jnp.asarray(base, dtype)) for value, base in zip(samples[name], nominal[name])]
            for name in names
        }

    for name in names:
        treedef = jax.tree_util.tree_structure(getattr(device, name))
        device = eqx.tree_at(lambda d, name=name: getattr(d, name), device, jax.tree_util.tree_unflatten(treedef, samples[name]))
    logger.debug("sampled %s for %s devices", names, shape)
    return device


def _standard_normal(key, shape, correlation_length):
    if correlation_length is None:
        return _random.normal(key, shape, jnp.result_type(float))
    return correlated_normal(key, shape, correlation_length)


def _valid(device, samples, nominal, shape, ordered_pairs):
    valid = jnp.ones(shape, bool)
    for name, values in samples.items():
        for value, base in zip(values, nominal[name]):
            base = jnp.asarray(base)
            positive = jnp.where(base > 0, value > 0, True)
            non_negative = jnp.where(base == 0, value >= 0, True)
            valid = valid & positive & non_negative & jnp.isfinite(value)
    for low_name, high_name in ordered_pairs:
        if low_name not in samples and high_name not in samples:
            continue
        if not (hasattr(device, low_name) and hasattr(device, high_name)):
            continue
        low = samples[low_name][0] if low_name in samples else jnp.asarray(getattr(device, low_name))
        high = samples[high_name][0] if high_name in samples else jnp.asarray(getattr(device, high_name))
        valid = valid & (low < high)
    return valid


def _check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise ValueError(f"shape must be a sequence of integers such as (rows, columns), got {shape!r}") from None
    if any(n < 1 for n in shape):
        raise ValueError(f"shape must contain positive sizes, got {shape}")
    return shape


def _check_request(device, distributions, max_resamples):
    if not isinstance(device, eqx.Module) or isinstance(device, type):
        raise ValueError(f"device must be a Device or another equinox module of parameters, got {device!r}")
    if isinstance(max_resamples, bool) or not isinstance(max_resamples, (int, np.integer)) or max_resamples < 0:
        raise ValueError(f"max_resamples must be an integer >= 0, got {max_resamples!r}")
    if not distributions:
        raise ValueError("distributions is empty; pass a mapping such as {'g_max': Normal(0.05)}")
    fields = {field.name: field for field in dataclasses.fields(device)}
    for name, distribution in distributions.items():
        if name not in fields:
            raise ValueError(
                f"{type(device).__name__} has no parameter {name!r}; choose from {sorted(fields)}"
            )
        if fields[name].metadata.get("static", False):
            raise ValueError(f"{type(device).__name__}.{name} is a static setting, not a numerical parameter")
        if not isinstance(distribution, (Normal, LogNormal, TruncatedNormal)):
            raise ValueError(
                f"distribution of {name!r} must be Normal, LogNormal or TruncatedNormal, got {distribution!r}"
            )
        leaves = jax.tree_util.tree_leaves(getattr(device, name))
        if not leaves or not all(_is_number(leaf) for leaf in leaves):
            raise ValueError(
                f"{type(device).__name__}.{name} = {getattr(device, name)!r} is not numerical; "
                "sample only float parameters (or tuples of them)"
            )
        if any(np.ndim(leaf) for leaf in leaves if is_concrete(leaf)):
            raise ValueError(
                f"{type(device).__name__}.{name} is already an array; sample parameters of the nominal (scalar) model"
            )


def _is_number(leaf) -> bool:
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, (int, float, np.number)):
        return True
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.number) and not jnp.issubdtype(leaf.dtype, jnp.bool_)
