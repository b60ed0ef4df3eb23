"""Poisson spike trains and their placement on the time grid of a simulation.

Two ways to drive a network with Poisson input:

- `poisson_spikes` draws one Bernoulli number per input and step. It is simple, but a long simulation
  then draws steps x n numbers.
- `poisson_spike_times` draws exponential inter-spike intervals once, about rate x duration numbers per
  input. `spikes_from_times` bins such times onto the grid in one go, and `advance` (or `PoissonStream`)
  reads them step by step inside a `jax.lax.scan`, so that a simulation of 100 s at dt = 0.1 ms with
  1000 inputs never draws a random number per step.

Grid convention: step i stands for the grid point t_i = i dt, and a spike at time t belongs to the step
round(t / dt), the nearest grid point. Several spikes of one input that fall into the same step count as
one, so dt must be small against the inter-spike intervals.
"""

from __future__ import annotations

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive, is_concrete

logger = logging.getLogger(__name__)


def poisson_spikes(key: jax.Array, rates, dt, steps: int) -> jax.Array:
    """Draw Poisson spike trains as one Bernoulli trial per input and step.

    Args:
        key: PRNG key.
        rates: firing rate of each input, Hz, any shape (usually (n,)).
        dt: time step, s. Each step spikes with probability rate * dt, which must not exceed 1.
        steps: number of time steps (a Python integer).

    Returns:
        Spikes, bool, shape (steps, *rates.shape).
    """
    _check_steps(steps)
    check_positive("dt", dt, "s")
    rates = jnp.asarray(rates, jnp.result_type(float))
    check_positive("rates", rates, "Hz", allow_zero=True)
    if is_concrete((rates, dt)) and rates.size:
        largest = float(jnp.max(rates)) * float(dt)
        if largest > 1.0:
            raise ValueError(
                f"rate * dt must be <= 1 for a Bernoulli spike per step, got {largest:.3g}; "
                "reduce dt below 1 / max(rates)"
            )
    probability = jnp.clip(rates * dt, 0.0, 1.0)
    return jax.random.bernoulli(key, probability, shape=(steps, *rates.shape))


def poisson_spike_times(key: jax.Array, rates, duration, max_spikes: int) -> jax.Array:
    """Draw Poisson spike times in [0, duration) from exponential inter-spike intervals.

    Each input gets exactly `max_spikes` intervals, so the cost is n x max_spikes numbers whatever the
    time step. Choose `max_spikes` well above the expected count mu = rate x duration: with
    mu + 10 sqrt(mu) + 10 slots a train is cut short with probability below 1e-19 for any mu up to 1e5
    (Poisson tail, computed with scipy.stats.poisson).
    A train that would hold more spikes is truncated. An eager call logs a warning when the last slot of
    some train is filled. That flags every truncated train, and rarely a train that contains exactly
    `max_spikes` spikes.

    Args:
        key: PRNG key.
        rates: firing rate of each input, Hz, shape (n,). A rate of 0 gives no spikes.
        duration: length of the trains, s.
        max_spikes: number of slots per input (a Python integer).

    Returns:
        Spike times in s, shape (n, max_spikes), increasing along each row; the unused slots are +inf.
    """
    if isinstance(max_spikes, bool) or not isinstance(max_spikes, (int, np.integer)) or max_spikes < 1:
        raise ValueError(f"max_spikes must be an integer >= 1, got {max_spikes!r}")
    check_positive("duration", duration, "s")
    rates = jnp.asarray(rates, jnp.result_type(float))
    if rates.ndim != 1:
        raise ValueError(f"rates must have shape (n,), one rate per input, got shape {rates.shape}")
    check_positive("rates", rates, "Hz", allow_zero=True)

    unit_intervals = jax.random.exponential(key, (rates.shape[0], int(max_spikes)), rates.dtype)
    positive = rates[:, None] > 0
    intervals = jnp.where(positive, unit_intervals / jnp.where(positive, rates[:, None], 1.0), jnp.inf)
    times = jnp.cumsum(intervals, axis=-1)
    times = jnp.where(times < duration, times, jnp.inf)

    if is_concrete(times):
        full = np.isfinite(np.asarray(times[:, -1]))
        if full.any():
            expected = float(jnp.max(rates)) * float(duration)
            logger.warning(
                "poisson_spike_times: %d of %d trains filled all max_spikes=%d slots and may be truncated; "
                "raise max_spikes to about %d (rate x duration + 10 sqrt(rate x duration) + 10)",
                int(full.sum()), full.size, max_spikes, int(expected + 10.0 * np.sqrt(expected) + 10.0),
            )
    return times


def spikes_from_times(times, dt, steps: int) -> jax.Array:
    """Place spike times onto the time grid.

    Args:
        times: spike times in s, shape (n, k), each >= 0 or +inf for an unused slot.
        dt: time step, s.
        steps: number of time steps (a Python integer).

    Returns:
        Spikes, bool, shape (steps, n): True at step round(t / dt) for every time t with that step in
        [0, steps). Later times are dropped.
    """
    _check_steps(steps)
    check_positive("dt", dt, "s")
    times = jnp.asarray(times, jnp.result_type(float))
    _check_times(times)

    grid_index = _grid_index(times, dt)
    inside = grid_index < steps
    rows = jnp.where(inside, grid_index, steps).astype(jnp.int32)
    columns = jnp.broadcast_to(jnp.arange(times.shape[0])[:, None], rows.shape)
    raster = jnp.zeros((steps, times.shape[0]), bool)
    return raster.at[rows, columns].set(True, mode="drop")


def advance(times, index, t, dt) -> tuple[jax.Array, jax.Array]:
    """Read the spikes of the step at time t from precomputed spike times.

    A pure function for the body of a `jax.lax.scan`, whose carry is `index`, the number of spikes of
    each input already read. A step reads the next unread time of each input and moves past every time
    whose step is at most the current one. Called for steps 0, 1, 2, ... in order, it therefore gives
    exactly the spikes of `spikes_from_times` on the same times.

    Args:
        times: spike times in s, shape (n, k), increasing along each row, +inf for unused slots (the
            output of `poisson_spike_times`).
        index: int32 array of shape (n,), zeros at the start of a simulation.
        t: time of this step, s. Compute it as step * dt from the integer step rather than by adding dt
            at each step, which accumulates rounding error in float32.
        dt: time step, s.

    Returns:
        Spikes of this step (bool, shape (n,)) and the updated index.
    """
    check_positive("dt", dt, "s")
    times = jnp.asarray(times, jnp.result_type(float))
    index = jnp.asarray(index)
    if times.ndim != 2 or index.shape != times.shape[:1]:
        raise ValueError(
            f"times must have shape (n, k) and index shape (n,), got {times.shape} and {index.shape}; "
            "start index at jnp.zeros(n, jnp.int32)"
        )
    if not jnp.issubdtype(index.dtype, jnp.integer):
        raise ValueError(f"index must be an integer array, got dtype {index.dtype}; use jnp.zeros(n, jnp.int32)")
    if is_concrete(t) and not np.isfinite(np.asarray(t, float)).all():
        raise ValueError(f"step time t must be finite, got {t} s")

    return _read_due_spikes(times, index, jnp.asarray(t, times.dtype), jnp.asarray(dt, times.dtype))


# Compiled once per shape, so that eager step-by-step calls do not retrace the while loop each step.
@jax.jit
def _read_due_spikes(times, index, t, dt):
    step = jnp.round(t / dt)
    slots = times.shape[1]

    def step_of_next(index):
        next_time = jnp.take_along_axis(times, jnp.clip(index, 0, slots - 1)[:, None], axis=1)[:, 0]
        return jnp.where(index < slots, _grid_index(next_time, dt), jnp.inf)

    def has_due(carry):
        index, _ = carry
        return jnp.any(step_of_next(index) <= step)

    def consume(carry):
        # Called step by step in order, this runs at most once unless one input has several spikes in the step.
        index, spikes = carry
        next_step = step_of_next(index)
        due = next_step <= step
        return index + due.astype(index.dtype), spikes | (due & (next_step == step))

    index, spikes = jax.lax.while_loop(has_due, consume, (index, jnp.zeros(times.shape[:1], bool)))
    return spikes, index


class PoissonStream(eqx.Module):
    """Precomputed Poisson spike times read step by step inside a scan.

    Attributes:
        times: spike times in s, shape (n, k), increasing along each row, +inf for unused slots.
    """

    times: jax.Array

    def __check_init__(self):
        times = jnp.asarray(self.times)
        if times.ndim != 2:
            raise ValueError(f"times must have shape (n, k), got shape {times.shape}")
        _check_times(times)

    @classmethod
    def sample(cls, key: jax.Array, rates, duration, max_spikes: int) -> PoissonStream:
        """Draw the spike times of `poisson_spike_times` (same arguments) into a stream."""
        return cls(times=poisson_spike_times(key, rates, duration, max_spikes))

    def init(self) -> jax.Array:
        """Return the read index of a fresh stream: int32 zeros, shape (n,)."""
        return jnp.zeros(self.times.shape[:1], jnp.int32)

    def advance(self, index, t, dt) -> tuple[jax.Array, jax.Array]:
        """Return the spikes of the step at time t (s) and the new index; see `advance`."""
        return advance(self.times, index, t, dt)

    def raster(self, dt, steps: int) -> jax.Array:
        """Return all spikes on the grid at once, bool (steps, n); see `spikes_from_times`."""
        return spikes_from_times(self.times, dt, steps)


def _grid_index(times, dt):
    """Return the nearest grid step of each time as a float, so that +inf stays +inf."""
    return jnp.round(times / dt)


def _check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")


def _check_times(times) -> None:
    if times.ndim != 2:
        raise ValueError(f"times must have shape (n, k), one row of spike times per input, got shape {times.shape}")
    if not is_concrete(times):
        return
    values = np.asarray(times)
    bad = np.isnan(values) | (values < 0)
    if bad.any():
        example = values[bad][0]
        raise ValueError(
            f"spike times must be >= 0 s or +inf for an unused slot, got {example} "
            f"({int(bad.sum())} of {values.size} invalid)"
        )


class SpikeEvents(eqx.Module):
    """The spikes of n inputs as one time-ordered list of events, for event-driven simulation.

    A `run` driven by events reads, in each step, only the events of that step: its cost per step
    grows with the number of spikes, not with the number of inputs. Events in the same step of the same
    input count as one spike, as in `spikes_from_times`.

    Attributes:
        times: event times in s, shape (E,), non-decreasing, +inf for unused slots at the end.
        inputs: input index of each event, int32, shape (E,), in [0, n_inputs).
        n_inputs: number of inputs (static).
    """

    times: jax.Array
    inputs: jax.Array
    n_inputs: int = eqx.field(static=True)

    def __check_init__(self):
        if isinstance(self.n_inputs, bool) or not isinstance(self.n_inputs, (int, np.integer)) or self.n_inputs < 1:
            raise ValueError(f"n_inputs must be an integer >= 1, got {self.n_inputs!r}")
        times, inputs = jnp.asarray(self.times), jnp.asarray(self.inputs)
        if times.ndim != 1 or inputs.shape != times.shape:
            raise ValueError(
                f"times and inputs must be 1-D arrays of one length, got shapes {times.shape} and {inputs.shape}"
            )
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError(f"inputs must hold integer input indices, got dtype {inputs.dtype}")
        if is_concrete((times, inputs)) and times.size:
            values, index = np.asarray(times), np.asarray(inputs)
            if np.isnan(values).any() or (values < 0).any():
                raise ValueError("event times must be >= 0 s or +inf for an unused slot; found NaN or a negative time")
            finite = np.isfinite(values)
            if (np.diff(values[finite]) < 0).any() or (finite[1:] & ~finite[:-1]).any():
                raise ValueError("event times must be sorted in time; build the list with SpikeEvents.from_times")
            if ((index[finite] < 0) | (index[finite] >= self.n_inputs)).any():
                raise ValueError(f"event inputs must lie in [0, {self.n_inputs}), the inputs of the network")

    @classmethod
    def poisson(cls, key: jax.Array, rates, duration, max_events: int | None = None, *,
                n_inputs: int | None = None) -> SpikeEvents:
        """Draw independent Poisson trains of the given rates (Hz, shape (n,)) over [0, duration) s.

        A scalar rate with `n_inputs` gives n_inputs trains of that one rate, whose events pick their input
        with one random integer each (cheaper than the general case).

        The trains are drawn as one Poisson process of the summed rate R whose events are assigned to
        input i with probability rate_i / R (the superposition theorem of Poisson processes). The cost is
        therefore about R x duration numbers, and the events come out in time order without sorting.
        `max_events` defaults to R T + 10 sqrt(R T) + 10 (with T = duration), which truncates the list
        with probability below 1e-19 (see `poisson_spike_times`); pass it explicitly under `jit` or
        `vmap`. An eager call logs a warning when every slot is used. Times are summed in float32 by
        default, which places an event at 100 s within about 1e-5 s.
        """
        check_positive("duration", duration, "s")
        rates = jnp.asarray(rates, jnp.result_type(float))
        equal = n_inputs is not None
        if equal:
            if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
                raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
            if rates.ndim != 0:
                raise ValueError(f"with n_inputs, pass one rate for all inputs, got shape {rates.shape}")
            rates = jnp.full((int(n_inputs),), rates)
        if rates.ndim != 1 or rates.shape[0] < 1:
            raise ValueError(
                f"rates must have shape (n,), one rate per input, got shape {rates.shape}; "
                "for one rate shared by n inputs pass n_inputs=n"
            )
        check_positive("rates", rates, "Hz", allow_zero=True)
        total = jnp.sum(rates)
        if max_events is None:
            if not is_concrete((rates, duration)):
                raise ValueError("pass max_events (a Python int) when rates or duration are traced")
            expected = float(total) * float(duration)
            max_events = int(expected + 10.0 * np.sqrt(expected) + 10.0)
        if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 1:
            raise ValueError(f"max_events must be an integer >= 1, got {max_events!r}")

        key_times, key_inputs = jax.random.split(key)
        intervals = jax.random.exponential(key_times, (int(max_events),), rates.dtype)
        # XLA sums in a tree order, whose rounding can put a sum a few ulp below its predecessor;
        # the running maximum restores the order.
        times = jax.lax.cummax(jnp.cumsum(intervals)) / jnp.where(total > 0, total, 1.0)
        times = jnp.where((times < duration) & (total > 0), times, jnp.inf)
        if equal:
            inputs = jax.random.randint(key_inputs, (int(max_events),), 0, rates.shape[0], jnp.int32)
        else:
            # Input i owns the share rate_i / R of [0, 1); a uniform number picks the share it falls into.
            edges = jnp.cumsum(rates) / jnp.where(total > 0, total, 1.0)
            draws = jax.random.uniform(key_inputs, (int(max_events),), rates.dtype)
            inputs = jnp.clip(jnp.searchsorted(edges, draws, side="right"), 0, rates.shape[0] - 1).astype(jnp.int32)
        if is_concrete(times) and np.isfinite(np.asarray(times[-1])):
            logger.warning(
                "SpikeEvents.poisson: all %d slots are used and the trains may be truncated; raise max_events",
                max_events,
            )
        return cls(times=times, inputs=inputs, n_inputs=int(rates.shape[0]))

    @classmethod
    def from_times(cls, times) -> SpikeEvents:
        """Merge per-input spike times (shape (n, k), +inf for unused slots, as from `poisson_spike_times`)."""
        times = jnp.asarray(times, jnp.result_type(float))
        _check_times(times)
        n, k = times.shape
        flat = times.reshape(-1)
        order = jnp.argsort(flat, stable=True)
        inputs = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], (n, k)).reshape(-1)
        return cls(times=flat[order], inputs=inputs[order], n_inputs=n)

    @classmethod
    def from_raster(cls, raster, dt) -> SpikeEvents:
        """Turn a bool raster (steps, n) into events at the grid times step * dt (eager only)."""
        check_positive("dt", dt, "s")
        raster = np.asarray(raster)
        if raster.ndim != 2:
            raise ValueError(f"raster must have shape (steps, n), got shape {raster.shape}")
        steps, inputs = np.nonzero(raster)
        dtype = jnp.result_type(float)
        if steps.size == 0:
            return cls(times=jnp.full((1,), jnp.inf, dtype), inputs=jnp.zeros((1,), jnp.int32), n_inputs=raster.shape[1])
        return cls(times=jnp.asarray(steps * float(dt), dtype), inputs=jnp.asarray(inputs, jnp.int32),
                   n_inputs=raster.shape[1])

    def raster(self, dt, steps: int) -> jax.Array:
        """Return the events on the grid, bool (steps, n_inputs): True at step round(t / dt)."""
        _check_steps(steps)
        check_positive("dt", dt, "s")
        grid = _grid_index(jnp.asarray(self.times), dt)
        rows = jnp.where(grid < steps, grid, steps).astype(jnp.int32)
        return jnp.zeros((steps, self.n_inputs), bool).at[rows, self.inputs].set(True, mode="drop")
