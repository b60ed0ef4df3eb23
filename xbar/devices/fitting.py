"""Fit a pulse-update device to measured pulse-response traces, and compare simulated traces with them.

A trace is the conductance read after each of a series of identical pulses of one polarity. The fit
returns a `PulsedDevice` with `PiecewiseStep` models for both polarities: mean step and step noise as
piecewise-linear functions of the present conductance, plus Gaussian read noise.

Method (a binned piecewise step, as in the PiecewiseStepDevice fit of IBM aihwkit's example 21 for the
data of Gong et al., Nature Communications 9, 2102 (2018), extended by a read-noise split):

1. The position of each pulse on the conductance axis is the read before it, smoothed by a centred
   moving average, because a raw read carries read noise that would bias the binned mean towards the
   middle of the range (regression to the mean).
2. The mean step is a least-squares fit of the per-pulse changes of the smoothed trace onto hat
   functions centred on K nodes spaced evenly over [g_min, g_max], with a small second-difference
   penalty so that nodes without data follow their neighbours, and by default constrained to >= 0.
   The smoothed changes sum to the same displacement as the raw ones but carry far less read noise.
3. Read noise, drawn anew at every read, does not accumulate, but step noise does. Over L pulses the
   residual (change minus fitted mean) sums to a walk whose mean square is L s_step^2 + 2 s_read^2. A line
   fitted to this variogram for L up to a tenth of the median trace length (with its own slope and a
   quadratic term for the error of the fitted mean in each polarity) gives the read variance as half
   the shared intercept. Noise that relaxes within that many pulses thus counts as read noise. The step-noise table of each polarity is its fitted residual variance
   times the share that read noise leaves, 1 - 2 s_read^2 / (pooled residual variance of that
   polarity). A subtraction of 2 s_read^2 node by node would leave a small difference of two noisy
   numbers. Step noise plus read noise then reproduce the pooled spread of per-pulse changes of each
   polarity exactly, and its variation with conductance approximately.

Fitting runs in float64 NumPy, outside traced code. Traces are arrays of conductance in S; trailing NaN
values (ramps of different lengths) are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from .. import _random
from .pulsed import PiecewiseStep, PulsedDevice, pulse_trajectory

logger = logging.getLogger(__name__)

# Weight of the second-difference penalty relative to the mean diagonal of the normal equations; small
# enough to leave well-sampled nodes at their least-squares values.
_SMOOTHING = 1e-3


def _as_traces(traces, name: str) -> list[np.ndarray]:
    """Return a list of 1-D float64 traces without trailing NaN; a 2-D array has one trace per column."""
    if isinstance(traces, np.ndarray) or not isinstance(traces, Sequence):
        array = np.asarray(traces, dtype=np.float64)
        if array.ndim == 1:
            columns = [array]
        elif array.ndim == 2:
            columns = list(array.T)
        else:
            raise ValueError(f"{name} must be a 1-D trace, a 2-D array (pulses x traces) or a list of traces, got shape {array.shape}")
    else:
        columns = [np.asarray(trace, dtype=np.float64).ravel() for trace in traces]

    result = []
    for index, column in enumerate(columns):
        finite = np.isfinite(column)
        length = int(np.flatnonzero(finite)[-1]) + 1 if finite.any() else 0
        column = column[:length]
        if not np.isfinite(column).all():
            raise ValueError(f"{name}[{index}] has NaN or infinity before its end; only trailing NaN values are allowed")
        if length >= 3:
            result.append(column)
    if not result:
        raise ValueError(f"{name} needs at least one trace with 3 or more finite reads")
    return result


def moving_average(trace: np.ndarray, half_width: int) -> np.ndarray:
    """Return the centred moving average of a 1-D trace over 2 half_width + 1 reads (shorter at the ends)."""
    if half_width <= 0:
        return np.asarray(trace, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(trace)])
    index = np.arange(len(trace))
    low = np.maximum(index - half_width, 0)
    high = np.minimum(index + half_width + 1, len(trace))
    return (cumulative[high] - cumulative[low]) / (high - low)


def _hat_basis(u: np.ndarray, count: int) -> np.ndarray:
    """Return the (len(u), count) matrix of hat functions on nodes spaced evenly over [0, 1]."""
    position = np.clip(u, 0.0, 1.0) * (count - 1)
    index = np.clip(np.floor(position).astype(int), 0, count - 2)
    fraction = position - index
    basis = np.zeros((len(u), count))
    basis[np.arange(len(u)), index] = 1.0 - fraction
    basis[np.arange(len(u)), index + 1] = fraction
    return basis


def _fit_nodes(u: np.ndarray, values: np.ndarray, count: int, *, nonnegative: bool = False) -> np.ndarray:
    """Return node values of the piecewise-linear least-squares fit of `values` at positions `u`."""
    basis = _hat_basis(u, count)
    second_difference = np.diff(np.eye(count), n=2, axis=0)
    weight = _SMOOTHING * max(float(np.sum(basis**2)) / count, 1.0)
    if not nonnegative:
        normal = basis.T @ basis + weight * second_difference.T @ second_difference
        return np.linalg.solve(normal, basis.T @ values)
    matrix = np.vstack([basis, np.sqrt(weight) * second_difference])
    target = np.concatenate([values, np.zeros(len(second_difference))])
    return optimize.lsq_linear(matrix, target, bounds=(0.0, np.inf)).x


@dataclass(frozen=True)
class PulseFit:
    """Result of `fit_pulse_response`.

    Attributes:
        device: the fitted device (conductances in S).
        read_noise: fitted standard deviation of a read, S.
        up_samples, down_samples: per-pulse changes used for each polarity.
    """

    device: PulsedDevice
    read_noise: float
    up_samples: int
    down_samples: int


def _changes(traces, half_width, g_min, span):
    """Return per-pulse samples of all traces, as fractions of the span.

    Returns the smoothed position u before each pulse, the raw change d, the change of the smoothed
    trace, whether that smoothed change has a full averaging window on both sides, and the trace number.
    """
    positions, changes, smooth_changes, interior, ids = [], [], [], [], []
    for number, trace in enumerate(traces):
        smooth = moving_average(trace, half_width)
        positions.append((smooth[:-1] - g_min) / span)
        changes.append(np.diff(trace) / span)
        smooth_changes.append(np.diff(smooth) / span)
        index = np.arange(len(trace) - 1)
        interior.append((index >= half_width) & (index + 1 + half_width < len(trace)))
        ids.append(np.full(len(trace) - 1, number))
    return tuple(np.concatenate(part) for part in (positions, changes, smooth_changes, interior, ids))


def _variogram(residual, ids, max_lag):
    """Return lags 1..max_lag and the pooled mean squared change of the cumulative residual over each lag."""
    lags = np.arange(1, max_lag + 1)
    sums = np.zeros(max_lag)
    counts = np.zeros(max_lag)
    for number in np.unique(ids):
        walk = np.concatenate([[0.0], np.cumsum(residual[ids == number])])
        for index, lag in enumerate(lags):
            if lag < len(walk):
                change = walk[lag:] - walk[:-lag]
                sums[index] += np.sum(change**2)
                counts[index] += len(change)
    used = counts > 0
    return lags[used], sums[used] / counts[used]


def _read_variance(variograms) -> float:
    """Return the read-noise variance from the variograms of both polarities.

    Each polarity p follows V_p(L) = 2 s_read^2 + s_p^2 L + c_p L^2: the read noise is shared, the step
    variance s_p^2 is the polarity's own, and the quadratic term takes up the error e of the fitted mean
    step, which adds (e L)^2. One least-squares fit gives all terms; the result is at most V_p(1) / 2.
    """
    rows, values = [], []
    for index, (lags, variogram) in enumerate(variograms):
        for lag, value in zip(lags, variogram):
            row = np.zeros(1 + 2 * len(variograms))
            row[0] = 1.0
            row[1 + 2 * index] = lag
            row[2 + 2 * index] = lag * lag
            rows.append(row)
            values.append(value)
    if any(len(lags) < 3 for lags, _ in variograms):
        return 0.0
    # Overlapping windows make the standard error of V(L) grow about as V(L) sqrt(L); weighting by its
    # inverse keeps the noisy long lags from setting the intercept.
    lags = np.concatenate([lags for lags, _ in variograms])
    weights = 1.0 / (np.maximum(np.array(values), 1e-300) * np.sqrt(lags))
    coefficients, *_ = np.linalg.lstsq(np.array(rows) * weights[:, None], np.array(values) * weights, rcond=None)
    first = min(float(variogram[0]) for _, variogram in variograms)
    return float(np.clip(coefficients[0], 0.0, first)) / 2.0


def fit_pulse_response(
    up_traces,
    down_traces,
    *,
    g_min: float | None = None,
    g_max: float | None = None,
    nodes: int = 9,
    half_width: int = 10,
    read_noise: bool = True,
    margin: float = 0.05,
    nonnegative: bool = True,
) -> PulseFit:
    """Fit mean step and step noise of both polarities, and read noise, to measured traces.

    Args:
        up_traces: potentiation traces, conductance in S read after each identical pulse (a 1-D array,
            a 2-D array with one trace per column and NaN after its end, or a list of 1-D arrays).
        down_traces: depression traces, same forms.
        g_min, g_max: conductance range of the device, S; None takes the smallest and largest smoothed
            conductance of all traces, widened by `margin` times their difference on each side (g_min not
            below 0), because a measured ramp that stops at a target has not reached the device's bound.
        nodes: number of nodes of the piecewise tables (>= 2).
        half_width: half width of the moving average that places each pulse on the conductance axis
            (0 uses the raw reads).
        read_noise: whether to split off read noise (False attributes all spread to the steps).
        margin: widening of the default range, as a fraction of the measured extent (>= 0).
        nonnegative: constrain the mean steps to move towards each pulse's bound (a negative fitted mean
            would trap simulated devices where noise in the data made it negative).

    Returns:
        the fitted device with its read noise and the number of changes per polarity.

    Raises:
        ValueError: for traces without enough finite reads, a bad range, or bad settings.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes must be an integer >= 2, got {nodes!r}")
    if isinstance(half_width, bool) or not isinstance(half_width, int) or half_width < 0:
        raise ValueError(f"half_width must be an integer >= 0, got {half_width!r}")
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite fraction >= 0, got {margin!r}")
    up = _as_traces(up_traces, "up_traces")
    down = _as_traces(down_traces, "down_traces")

    smoothed = np.concatenate([moving_average(trace, half_width) for trace in up + down])
    extent = float(np.max(smoothed) - np.min(smoothed))
    low = max(float(np.min(smoothed)) - margin * extent, 0.0) if g_min is None else float(g_min)
    high = float(np.max(smoothed)) + margin * extent if g_max is None else float(g_max)
    if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low < high):
        raise ValueError(f"the conductance range must satisfy 0 <= g_min < g_max, got g_min {low} S and g_max {high} S; "
                         "pass g_min and g_max explicitly")
    span = high - low

    # The lag range of the variogram: a tenth of the median trace length, so that each lag has many
    # independent windows, and at least the 3 lags that the quadratic fit needs.
    max_lag = max(3, int(np.median([len(trace) for trace in up + down])) // 10)
    fitted = {}
    variograms = []
    for name, traces, sign in (("up", up, 1.0), ("down", down, -1.0)):
        u, d, smooth_d, interior, ids = _changes(traces, half_width, low, span)
        # The smoothed changes carry far less read noise than the raw ones and sum to the same
        # displacement. Near the ends of a trace the shortened window biases them, so only interior
        # changes are used, or the raw changes when there are too few interior ones.
        if interior.sum() >= nodes:
            mean_nodes = _fit_nodes(u[interior], sign * smooth_d[interior], nodes, nonnegative=nonnegative)
        else:
            mean_nodes = _fit_nodes(u, sign * d, nodes, nonnegative=nonnegative)
        residual = sign * d - _hat_basis(u, nodes) @ mean_nodes
        variograms.append(_variogram(residual, ids, max_lag))
        fitted[name] = (u, residual, mean_nodes)

    read_variance = _read_variance(variograms) if read_noise else 0.0

    steps = {}
    for name, (u, residual, mean_nodes) in fitted.items():
        variance_nodes = np.maximum(_fit_nodes(u, residual**2, nodes), 0.0)
        # Share of this polarity's change variance that read noise leaves to the steps.
        pooled = float(np.mean(residual**2))
        step_share = max(1.0 - 2.0 * read_variance / pooled, 0.0) if pooled > 0 else 0.0
        std_nodes = np.sqrt(variance_nodes * step_share)
        steps[name] = PiecewiseStep(jnp.asarray(mean_nodes, jnp.float32), jnp.asarray(std_nodes, jnp.float32))

    read_std = float(np.sqrt(read_variance)) * span
    logger.info("fitted pulse response: range %.4g to %.4g S, read noise %.3g S, %d nodes", low, high, read_std, nodes)
    device = PulsedDevice(up=steps["up"], down=steps["down"], g_min=low, g_max=high, read_noise=read_std)
    return PulseFit(device=device, read_noise=read_std, up_samples=sum(len(t) - 1 for t in up),
                    down_samples=sum(len(t) - 1 for t in down))


def simulate_reads(device: PulsedDevice, g_start, n_pulses: int, *, key, potentiate: bool = True) -> jax.Array:
    """Return reads (S) before and after each of `n_pulses` pulses, shape (n_pulses + 1, *shape of g_start).

    Each read adds fresh read noise to the stored conductance, as a measurement of a pulse train does.
    """
    key_pulses, key_reads = jax.random.split(key)
    path = pulse_trajectory(device, g_start, n_pulses, key=key_pulses, potentiate=potentiate)
    xi = _random.normal(key_reads, path.shape, path.dtype)
    return jnp.maximum(path + device.read_noise * xi, 0.0)


@dataclass(frozen=True)
class TraceComparison:
    """Simulated versus measured traces of one polarity.

    Attributes:
        pulse: pulse index of each mean-trajectory point.
        measured_mean, simulated_mean: smoothed mean read (S) over traces at each pulse index.
        trajectory_error: max |simulated - measured| mean, as a fraction of the conductance range.
        bin_centers: conductance (S) at the centre of each compared bin.
        measured_std, simulated_std: standard deviation of the per-pulse change in each bin, S.
        std_error: max |simulated - measured| / measured std over bins with enough changes.
    """

    pulse: np.ndarray
    measured_mean: np.ndarray
    simulated_mean: np.ndarray
    trajectory_error: float
    bin_centers: np.ndarray
    measured_std: np.ndarray
    simulated_std: np.ndarray
    std_error: float


def _mean_trajectory(traces, length, half_width):
    table = np.full((length, len(traces)), np.nan)
    for column, trace in enumerate(traces):
        table[: len(trace), column] = trace[:length]
    present = np.sum(np.isfinite(table), axis=1)
    mean = np.nanmean(np.where(present[:, None] > 0, table, 0.0), axis=1)
    return moving_average(mean, half_width), present


def _binned_std(traces, half_width, edges):
    positions, changes = [], []
    for trace in traces:
        positions.append(moving_average(trace, half_width)[:-1])
        changes.append(np.diff(trace))
    position, change = np.concatenate(positions), np.concatenate(changes)
    inside = (position >= edges[0]) & (position <= edges[-1])
    position, change = position[inside], change[inside]
    which = np.clip(np.digitize(position, edges) - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    stds = np.array([np.std(change[which == b]) if counts[b] > 1 else np.nan for b in range(len(edges) - 1)])
    return stds, counts


def compare_traces(
    device: PulsedDevice,
    traces,
    *,
    key,
    potentiate: bool = True,
    repeats: int = 200,
    bins: int = 8,
    min_count: int = 100,
    half_width: int = 10,
    trajectory_half_width: int | None = None,
) -> TraceComparison:
    """Simulate `repeats` copies of every measured trace and compare mean trajectory and change spread.

    Each simulated copy starts at the trace's smoothed first read and receives as many pulses as the
    trace. Mean trajectories are compared at pulse indices where at least half of the measured traces
    still have reads, after the same moving average as the fit; the spread of per-pulse changes is
    compared in `bins` equal conductance bins over the measured extent that hold at least `min_count`
    measured changes. `half_width` sets the moving average that places changes in bins;
    `trajectory_half_width` (default: `half_width`) the one applied to both mean trajectories, which
    for a single measured trace is the estimate of its mean.
    """
    measured = _as_traces(traces, "traces")
    g_min, g_max = float(device.g_min), float(device.g_max)
    span = g_max - g_min
    longest = max(len(trace) for trace in measured)

    starts = np.array([moving_average(trace, half_width)[0] for trace in measured])
    reads = simulate_reads(device, jnp.broadcast_to(jnp.asarray(starts, jnp.float32)[:, None], (len(measured), repeats)),
                           longest - 1, key=key, potentiate=potentiate)
    reads = np.asarray(reads, dtype=np.float64)  # (pulses + 1, traces, repeats)
    simulated = [reads[: len(trace), number, copy] for number, trace in enumerate(measured) for copy in range(repeats)]

    window = half_width if trajectory_half_width is None else trajectory_half_width
    measured_mean, present = _mean_trajectory(measured, longest, window)
    simulated_mean, _ = _mean_trajectory(simulated, longest, window)
    keep = present >= max(1, len(measured) / 2)
    trajectory_error = float(np.max(np.abs(simulated_mean[keep] - measured_mean[keep])) / span)

    # Bins span the measured (smoothed) extent: simulated changes beyond it have no measured counterpart.
    smoothed = np.concatenate([moving_average(trace, half_width) for trace in measured])
    edges = np.linspace(float(np.min(smoothed)), float(np.max(smoothed)), bins + 1)
    measured_std, counts = _binned_std(measured, half_width, edges)
    simulated_std, _ = _binned_std(simulated, half_width, edges)
    used = counts >= min_count
    if not used.any():
        raise ValueError(f"no conductance bin contains {min_count} measured changes; lower min_count or bins")
    std_error = float(np.max(np.abs(simulated_std[used] - measured_std[used]) / measured_std[used]))

    return TraceComparison(
        pulse=np.flatnonzero(keep), measured_mean=measured_mean[keep], simulated_mean=simulated_mean[keep],
        trajectory_error=trajectory_error, bin_centers=0.5 * (edges[:-1] + edges[1:])[used],
        measured_std=measured_std[used], simulated_std=simulated_std[used], std_error=std_error,
    )
