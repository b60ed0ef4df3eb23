"""A layer of CMOS spiking neurons driven through a plastic crossbar, simulated with a fixed time step.

Each step of `run`, at time t = step * dt:

1. the presynaptic spikes of the step are read from the input (a `PoissonStream` or a spike raster);
2. the neurons integrate over dt, with the synaptic input that arrived in the previous step, and spike;
3. the tile is read at t (drift and read noise of the device model). It multiplies the presynaptic spike
   vector through its periphery (DAC, ADC, short-term noise, wire resistance when configured), and the
   product, in weight units, is the synaptic increment that reaches the neurons in the next step;
4. the plasticity rule turns the pre- and postsynaptic spikes of the step into requested weight changes,
   which the synapses apply as device pulses (`STDP`), or integrates the device state over the overlap of
   the spike waveforms of each pair it completes (`WaveformSTDP`).

The one-step transmission delay follows Brian2's default schedule (state update, threshold, then synaptic
events). A presynaptic spike can therefore cause a postsynaptic one a step later at the earliest, and both
sides of a pair are timed by the step in which they occur.

The whole run is one `jax.lax.scan`, so a network compiles once and `jax.vmap` runs independent networks
(seeds, parameters) together. Driven by a `SpikeEvents` list, a run is event-driven (`_events.py`): each step
reads and changes only the rows of the inputs that spike and the columns of the neurons that spike. Device drift is measured from the start of the run for every device.
NOTE: PCM devices restart their drift clock when pulsed; a per-device clock is not modelled yet.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive, is_concrete
from ..crossbar import TileState, put_devices, take_devices
from ..devices import CompactDevice, CompactState, wear_state
from .neurons import LIF, LIFState
from ._events import _COLUMN_SLOTS, _batched_cond, _take_static, default_event_slots, first_of_step, read_step
from .spikes import PoissonStream, SpikeEvents
from .stdp import STDP, STDPState
from .synapses import SynapseUpdate, Synapses
from .waveform import ThresholdMemristor, WaveformSTDP

__all__ = ["Network", "NetworkState", "RunStats", "run", "run_clamped", "run_metrics"]


class NetworkState(eqx.Module):
    """State of a network between runs.

    Attributes:
        synapses: the programmed tile (device states of both devices of each pair).
        neurons: membrane state of the neurons.
        traces: synaptic traces of the plasticity rule.
        step: steps simulated so far (int32); the next step starts at t = step * dt.
        arriving: synaptic increment of each neuron from the last step's presynaptic spikes, delivered
            at the start of the next step.
    """

    synapses: TileState
    neurons: LIFState
    traces: STDPState
    step: jax.Array
    arriving: jax.Array


class RunStats(eqx.Module):
    """Totals of one run, from which `run_metrics` derives rates.

    Attributes:
        steps: steps simulated.
        input_spikes: spikes of each input, shape (n_pre,).
        output_spikes: spikes of each neuron, shape (n_post,).
        potentiation_pulses, depression_pulses: device pulses applied (with `WaveformSTDP`: synapses whose
            state rose or fell, summed over the steps).
        updated_synapses: synapse updates (a synapse receiving pulses in one step counts once).
        refreshed_pairs: PCM pairs refreshed.
        programming_energy: energy of the pulses applied, J (see `SynapseUpdate.energy`).
        worn_devices, stuck_devices: devices of the tile (both of each pair) worn or stuck at the end of
            the run (`xbar.devices.wear_state`; 0 for models without endurance).
        devices: number of devices of the tile (2 n_pre n_post).
    """

    steps: jax.Array
    input_spikes: jax.Array
    output_spikes: jax.Array
    potentiation_pulses: jax.Array
    depression_pulses: jax.Array
    updated_synapses: jax.Array
    refreshed_pairs: jax.Array
    programming_energy: jax.Array
    worn_devices: jax.Array
    stuck_devices: jax.Array
    devices: jax.Array

    @classmethod
    def zeros(cls, n_pre: int, n_post: int, dtype) -> RunStats:
        """Return the totals of a run that has not started."""
        zero = jnp.zeros((), dtype)
        return cls(
            steps=jnp.zeros((), jnp.int32),
            input_spikes=jnp.zeros((n_pre,), dtype),
            output_spikes=jnp.zeros((n_post,), dtype),
            potentiation_pulses=zero,
            depression_pulses=zero,
            updated_synapses=zero,
            refreshed_pairs=zero,
            programming_energy=zero,
            worn_devices=zero,
            stuck_devices=zero,
            devices=jnp.asarray(2.0 * n_pre * n_post, dtype),
        )

    def add_step(self, pre, post, counts) -> RunStats:
        """Return the totals after one more step with these spikes and pulse counts (None: no plasticity)."""
        dtype = self.input_spikes.dtype
        totals = eqx.tree_at(
            lambda s: (s.steps, s.input_spikes, s.output_spikes),
            self,
            (self.steps + 1, self.input_spikes + pre.astype(dtype), self.output_spikes + post.astype(dtype)),
        )
        if counts is None:
            return totals
        return eqx.tree_at(
            lambda s: (s.potentiation_pulses, s.depression_pulses, s.updated_synapses, s.refreshed_pairs,
                       s.programming_energy),
            totals,
            (
                totals.potentiation_pulses + counts.potentiation,
                totals.depression_pulses + counts.depression,
                totals.updated_synapses + counts.updated,
                totals.refreshed_pairs + counts.refreshed,
                totals.programming_energy + counts.energy,
            ),
        )

    def with_wear(self, device, state: TileState) -> RunStats:
        """Return the totals with the worn and stuck devices of the tile state at the end of the run."""
        counts = []
        for side in (state.g_pos, state.g_neg):
            worn, stuck = wear_state(device, side)
            counts.append((jnp.sum(worn), jnp.sum(stuck)))
        dtype = self.programming_energy.dtype
        return eqx.tree_at(
            lambda s: (s.worn_devices, s.stuck_devices),
            self,
            ((counts[0][0] + counts[1][0]).astype(dtype), (counts[0][1] + counts[1][1]).astype(dtype)),
        )


class Network(eqx.Module):
    """n_pre inputs onto n_post neurons through a plastic crossbar.

    Attributes:
        synapses: the crossbar synapses (tile and pulse delivery).
        neurons: the neuron model (default: conductance-based LIF with the constants of Song, Miller and
            Abbott, Nature Neuroscience 3, 919 (2000)).
        plasticity: the learning rule, or None for a fixed network: `STDP` (trace-based, its changes
            delivered as device pulses) or `WaveformSTDP` (waveform overlap on a threshold memristor: the
            tile's device must be a `CompactDevice` around a `ThresholdMemristor`, whose state the rule
            integrates directly; the weight is held in the positive device of each pair).
        dt: time step, s (default 0.1 ms).
    """

    synapses: Synapses
    neurons: LIF = LIF()
    plasticity: STDP | WaveformSTDP | None = STDP()
    dt: float = 1e-4

    def __check_init__(self):
        if not isinstance(self.synapses, Synapses):
            raise ValueError(f"Network synapses must be a Synapses instance, got {self.synapses!r}")
        if not isinstance(self.neurons, LIF):
            raise ValueError(f"Network neurons must be a LIF instance, got {self.neurons!r}")
        if self.plasticity is not None and not isinstance(self.plasticity, (STDP, WaveformSTDP)):
            raise ValueError(f"Network plasticity must be an STDP or WaveformSTDP rule or None, got {self.plasticity!r}")
        if isinstance(self.plasticity, WaveformSTDP):
            device = self.synapses.tile.device
            if not (isinstance(device, CompactDevice) and isinstance(device.model, ThresholdMemristor)):
                raise ValueError(
                    "WaveformSTDP changes the state of a threshold memristor: use Tile(device=CompactDevice("
                    f"ThresholdMemristor(), ...)), got a tile device {type(device).__name__}"
                )
        check_positive("dt", self.dt, "s")

    def init(self, weights, *, key: jax.Array) -> NetworkState:
        """Program the initial weights (n_pre x n_post) and set the neurons at rest."""
        weights = jnp.asarray(weights, jnp.result_type(float))
        if weights.ndim != 2:
            raise ValueError(f"weights must be an (n_pre, n_post) matrix, got shape {weights.shape}")
        n_pre, n_post = weights.shape
        rule = self.plasticity if self.plasticity is not None else STDP()
        return NetworkState(
            synapses=self.synapses.init(weights, key=key),
            neurons=self.neurons.init(n_post),
            traces=rule.init(n_pre, n_post),
            step=jnp.zeros((), jnp.int32),
            arriving=jnp.zeros((n_post,), weights.dtype),
        )

    def weights(self, state: NetworkState, *, key: jax.Array):
        """Return the weights read at the current time of the network (weight units)."""
        return self.synapses.weights(state.synapses, state.step * self.dt, key=key)


def run(network: Network, state: NetworkState, inputs, steps: int, *, key: jax.Array, learn: bool = True,
        record: bool = False, event_slots: int | None = None):
    """Simulate `steps` time steps from `state`.

    Args:
        network: the network.
        state: its state (from `Network.init` or a previous run).
        inputs: the presynaptic spikes, timed from the start of this run: a `SpikeEvents` list (fastest),
            a `PoissonStream` (read from its start: pass one stream per run) or a bool raster of shape
            (steps, n_pre).
        steps: number of steps (a Python int): the simulated duration divided by `network.dt`.
        key: PRNG key of the run (read noise, product noise, pulse rounding and device pulses).
        learn: apply the plasticity rule (static). With False, or with no rule, the weights stay.
        record: also return the output spike raster, bool (steps, n_post).
        event_slots: events read at once in a step when `inputs` is a `SpikeEvents` list (static; None
            sizes it from the mean rate of the events, see `default_event_slots`). Any value gives the
            same result; more events in a step take more rounds.

    With `SpikeEvents` and a tile that reads its rows independently (no wire resistance, no drift
    compensation), each step costs in proportion to its spikes: only the rows of the spiking inputs are
    read and changed, and the columns of the spiking neurons (event-driven simulation, as in Brian2).
    Other inputs or tiles read and change the whole array each step; both give the same weight changes.

    Speed on a CPU: an event-driven step is many small XLA kernels, and XLA splits some of them across
    the cores, which costs more than it saves at this size. On a 2-core machine the Song-Miller-Abbott
    network ran 1.5 to 2 times faster in a process pinned to one core (`taskset -c 0 python ...`) than in
    an unpinned one (benchmarks/stdp_sma.py). Run one pinned process per core to use them all.

    Returns:
        (final state, RunStats), plus the output raster when `record`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a Python int >= 1, got {steps!r}")
    n_pre = state.synapses.shape[0]
    learn = learn and network.plasticity is not None
    if isinstance(inputs, SpikeEvents):
        if inputs.n_inputs != n_pre:
            raise ValueError(f"the input events have {inputs.n_inputs} inputs but the network has {n_pre}")
        if event_slots is None:
            event_slots = default_event_slots(inputs, network.dt, steps)
        if isinstance(event_slots, bool) or not isinstance(event_slots, int) or event_slots < 1:
            raise ValueError(f"event_slots must be a Python int >= 1, got {event_slots!r}")
        event_slots = min(event_slots, n_pre)
        if network.synapses.tile.reads_rows_independently and not isinstance(network.plasticity, WaveformSTDP):
            return _run_events(network, state, inputs, steps, key, learn, record, event_slots)
        stream, raster = _EventReader(inputs, event_slots), None
    elif isinstance(inputs, PoissonStream):
        if inputs.times.shape[0] != n_pre:
            raise ValueError(f"the input stream has {inputs.times.shape[0]} inputs but the network has {n_pre}")
        stream, raster = inputs, None
    else:
        raster = jnp.asarray(inputs)
        if raster.shape != (steps, n_pre):
            raise ValueError(f"the input raster must have shape (steps, n_pre) = {(steps, n_pre)}, got {raster.shape}")
        stream = None
    return _run(network, state, stream, raster, steps, key, learn, record)


class _EventReader(eqx.Module):
    """Reads a `SpikeEvents` list as one spike vector per step, for the dense path (same interface as PoissonStream)."""

    events: SpikeEvents
    slots: int = eqx.field(static=True)

    def init(self):
        return jnp.zeros((), jnp.int32)

    def advance(self, pointer, t, dt):
        table = _event_table(self.events, dt, self.slots)
        local = jnp.round(t / dt).astype(jnp.int32)
        n = self.events.n_inputs

        def chunk(carry):
            pointer, spikes, _ = carry
            rows, due, pointer = read_step(table, pointer, local, self.slots)
            spikes = spikes.at[jnp.where(due, rows, n)].set(True, mode="drop")
            return pointer, spikes, jnp.all(due)

        carry = chunk((pointer, jnp.zeros((n,), bool), jnp.zeros((), bool)))
        pointer, spikes, _ = jax.lax.while_loop(lambda carry: carry[2], chunk, carry)
        return spikes, pointer


def _event_table(events: SpikeEvents, dt, slots: int):
    """Return the events as int32 rows (step, input), with `slots` unused rows appended.

    The step of an event is round(t / dt), the grid convention of `spikes_from_times`. Unused events get
    the largest int32. The appended rows keep a window of `slots` rows from running off the end.
    """
    times = jnp.asarray(events.times)
    grid = jnp.round(times / dt)
    never = jnp.iinfo(jnp.int32).max
    steps = jnp.where(grid < never, grid, never).astype(jnp.int32)
    table = jnp.stack([steps, jnp.asarray(events.inputs, jnp.int32)], axis=1)
    return jnp.concatenate([table, jnp.tile(jnp.array([[never, 0]], jnp.int32), (slots, 1))])


def _plasticity_step(network, traces, synapses: TileState, pre, post, t, key):
    """Apply the rule of one step: the traces, the tile state and the counts after it."""
    rule = network.plasticity
    if isinstance(rule, STDP):
        traces, dw = rule.step(traces, pre, post, network.dt)
        synapses, counts = network.synapses.update(synapses, dw, key=key)
        return traces, synapses, counts
    device = network.synapses.tile.device
    old = synapses.g_pos
    traces, x = rule.step(traces, pre, post, t, network.dt, device.model, old.x)
    new = CompactState(g=device.conductance(x), iterations=old.iterations, x=x)
    dtype = old.g.dtype
    counts = SynapseUpdate(
        potentiation=jnp.sum(x > old.x).astype(dtype),
        depression=jnp.sum(x < old.x).astype(dtype),
        updated=jnp.sum(x != old.x).astype(dtype),
        refreshed=jnp.zeros((), dtype),
        # NOTE: the energy of overlapping spike waveforms is not computed.
        energy=jnp.zeros((), dtype),
    )
    return traces, eqx.tree_at(lambda s: s.g_pos, synapses, new), counts


@eqx.filter_jit
def _run(network, state, stream, raster, steps, key, learn, record):
    dt = network.dt
    tile = network.synapses.tile
    dtype = state.neurons.v.dtype
    n_pre, n_post = state.synapses.shape
    totals = RunStats.zeros(n_pre, n_post, dtype)
    index = stream.init() if stream is not None else None

    def body(carry, local):
        state, totals, index = carry
        step = state.step
        t = step * dt
        key_read, key_product, key_update = jax.random.split(jax.random.fold_in(key, step), 3)
        if stream is not None:
            pre, index = stream.advance(index, local * dt, dt)
        else:
            pre = raster[local]
        pre_values = pre.astype(dtype)

        neurons, post = network.neurons.step(state.neurons, state.arriving, dt)
        read = tile.read(state.synapses, t, key=key_read)
        increment = tile.matmul(read, pre_values, key=key_product)
        if network.neurons.synapse == "conductance":
            increment = jnp.maximum(increment, 0.0)

        synapses, traces = state.synapses, state.traces
        counts = None
        if learn:
            traces, synapses, counts = _plasticity_step(network, traces, synapses, pre, post, t, key_update)

        totals = totals.add_step(pre, post, counts)
        new_state = NetworkState(synapses=synapses, neurons=neurons, traces=traces, step=step + 1, arriving=increment)
        return (new_state, totals, index), (post if record else None)

    (state, totals, _), raster_out = jax.lax.scan(body, (state, totals, index), jnp.arange(steps))
    totals = totals.with_wear(tile.device, state.synapses)
    if record:
        return state, totals, raster_out
    return state, totals


@eqx.filter_jit
def _run_events(network, state, events, steps, key, learn, record, slots):
    dt = network.dt
    synapses = network.synapses
    tile = synapses.tile
    rule = network.plasticity
    dtype = state.neurons.v.dtype
    n_pre, n_post = state.synapses.shape
    shape = (n_pre, n_post)
    table = _event_table(events, dt, slots)
    column_slots = 1 if (n_post == 1 or network.neurons.winner_take_all) else min(n_post, _COLUMN_SLOTS)
    conductance = network.neurons.synapse == "conductance"
    if learn:
        decay_post = jnp.exp(-dt / jnp.asarray(rule.tau_minus, dtype))

    def pre_trace_now(value, last, local, index=None):
        """Presynaptic traces at the end of step `local`, decayed from their last spike (no new spike)."""
        tau = jnp.asarray(rule.tau_plus, dtype) if index is None else _take_static(rule.tau_plus, index)
        return value * jnp.exp(-(local - last).astype(dtype) * dt / tau)

    def rows_of_step(carry, chunk_key, local, t, post, post_before):
        """Read, and with learning change, the rows of the next events of the step."""
        (pointer, g_pos, g_neg, pre_value, last, current, square, counts, input_spikes) = carry
        rows, due, pointer = read_step(table, pointer, local, slots)
        valid = first_of_step(rows, due, last, local)
        key_read, key_update = jax.random.split(chunk_key)
        read_state = TileState(g_pos=g_pos, g_neg=g_neg, weight_scale=state.synapses.weight_scale,
                               reference_current=state.synapses.reference_current)
        row_current, row_square = tile.row_currents(read_state, local * dt, rows, valid, key=key_read)
        current = current + row_current
        square = None if row_square is None else square + row_square
        target = jnp.where(valid, rows, n_pre)
        input_spikes = input_spikes.at[target].add(1.0, mode="drop")
        if learn:
            elapsed_value = pre_trace_now(jnp.take(pre_value, jnp.clip(rows, 0, n_pre - 1)),
                                          jnp.take(last, jnp.clip(rows, 0, n_pre - 1)), local, rows)
            a_plus = _take_static(rule.a_plus, rows).astype(dtype)
            new_value = elapsed_value + a_plus if rule.pairing == "all-to-all" else jnp.broadcast_to(a_plus, rows.shape)
            dw = valid[:, None] * (post_before[None, :] + new_value[:, None] * post.astype(dtype)[None, :])
            device = take_devices(tile.device, rows, shape, axis=0)
            part_pos = take_devices(g_pos, rows, shape, axis=0)
            part_neg = take_devices(g_neg, rows, shape, axis=0)
            new_pos, new_neg, update = synapses.update_devices(device, part_pos, part_neg, dw, key=key_update)
            g_pos = put_devices(g_pos, new_pos, rows, valid, shape, axis=0, taken=part_pos)
            g_neg = put_devices(g_neg, new_neg, rows, valid, shape, axis=0, taken=part_neg)
            counts = jax.tree_util.tree_map(jnp.add, counts, update)
            pre_value = pre_value.at[target].set(new_value, mode="drop")
        last = last.at[target].set(local, mode="drop")
        return (pointer, g_pos, g_neg, pre_value, last, current, square, counts, input_spikes), jnp.all(due)

    def columns_of_step(devices, synapses_, pre_value, last, local, post, column_key):
        """Potentiate the columns of the neurons that spiked, in every row that did not spike in the step."""
        g_pos, g_neg, counts = devices
        rule_ = synapses_.rule
        tau = jnp.asarray(rule_.tau_plus, dtype)
        pre_now = pre_value * jnp.exp(-(local - last).astype(dtype) * dt / tau)
        quiet = (last != local).astype(dtype)
        device_model = synapses_.synapses.tile.device

        if n_post <= column_slots:
            # All columns fit in one round: update the whole array in place, with no gather, scatter or loop.
            spiked = post.astype(dtype)[None, :]
            dw = quiet[:, None] * pre_now[:, None] * spiked
            new_pos, new_neg, update = synapses_.synapses.update_devices(
                device_model, g_pos, g_neg, dw, key=jax.random.fold_in(column_key, 0)
            )
            keep = (quiet[:, None] * spiked) > 0

            def merge_all(new, old):
                if new is old or not hasattr(new, "ndim") or jnp.shape(new)[-2:] != shape:
                    return new
                return jnp.where(keep, new, old)

            g_pos = jax.tree_util.tree_map(merge_all, new_pos, g_pos)
            g_neg = jax.tree_util.tree_map(merge_all, new_neg, g_neg)
            return g_pos, g_neg, jax.tree_util.tree_map(jnp.add, counts, update)

        def one_round(carry):
            remaining, g_pos, g_neg, counts, round_index = carry
            columns = jnp.nonzero(remaining, size=column_slots, fill_value=n_post)[0]
            valid = columns < n_post
            dw = quiet[:, None] * pre_now[:, None] * valid.astype(dtype)[None, :]
            device = take_devices(device_model, columns, shape, axis=1)
            part_pos = take_devices(g_pos, columns, shape, axis=1)
            part_neg = take_devices(g_neg, columns, shape, axis=1)
            new_pos, new_neg, update = synapses_.synapses.update_devices(
                device, part_pos, part_neg, dw, key=jax.random.fold_in(column_key, round_index)
            )
            # Rows that spiked in this step have their change already; keep them as they are.
            keep = (quiet > 0)[:, None]

            def merge(new, old):
                return new if new is old else jnp.where(keep, new, old)

            new_pos = jax.tree_util.tree_map(merge, new_pos, part_pos)
            new_neg = jax.tree_util.tree_map(merge, new_neg, part_neg)
            g_pos = put_devices(g_pos, new_pos, columns, valid, shape, axis=1, taken=part_pos)
            g_neg = put_devices(g_neg, new_neg, columns, valid, shape, axis=1, taken=part_neg)
            counts = jax.tree_util.tree_map(jnp.add, counts, update)
            remaining = remaining.at[columns].set(False, mode="drop")
            return remaining, g_pos, g_neg, counts, round_index + 1

        carry = (post, g_pos, g_neg, counts, jnp.zeros((), jnp.int32))
        _, g_pos, g_neg, counts, _ = jax.lax.while_loop(lambda c: jnp.any(c[0]), one_round, carry)
        return g_pos, g_neg, counts

    def body(carry, local):
        state_, totals, pointer, pre_value, last = carry
        step = state_.step
        t = step * dt
        key_step = jax.random.fold_in(key, step)
        key_rows, key_columns, key_product = jax.random.split(key_step, 3)

        neurons, post = network.neurons.step(state_.neurons, state_.arriving, dt)
        traces = state_.traces
        if learn:
            post_before = traces.post * decay_post
            if rule.pairing == "all-to-all":
                post_after = post_before + rule.a_minus * post
            else:
                post_after = jnp.where(post, jnp.asarray(rule.a_minus, dtype), post_before)
        else:
            post_before = post_after = traces.post

        zeros = jnp.zeros((n_post,), dtype)
        square = None if _is_zero(tile.short_term_noise) else zeros
        row_carry = (pointer, state_.synapses.g_pos, state_.synapses.g_neg, pre_value, last, zeros, square,
                     _zero_counts(dtype), totals.input_spikes)
        row_carry, more = rows_of_step(row_carry, jax.random.fold_in(key_rows, 0), local, t, post, post_before)

        def next_rows(carry):
            row_carry, _, round_index = carry
            row_carry, more = rows_of_step(row_carry, jax.random.fold_in(key_rows, round_index), local, t, post,
                                           post_before)
            return row_carry, more, round_index + 1

        row_carry, _, _ = jax.lax.while_loop(lambda c: c[1], next_rows, (row_carry, more, jnp.ones((), jnp.int32)))
        pointer, g_pos, g_neg, pre_value, last, current, square, counts, input_spikes = row_carry

        if learn:
            operands = (_ColumnParts(synapses=synapses, rule=rule), pre_value, last, local, post, key_columns)
            g_pos, g_neg, counts = _batched_cond(jnp.any(post), columns_of_step, (g_pos, g_neg, counts), *operands)
            traces = STDPState(pre=traces.pre, post=post_after.astype(dtype))

        increment = tile.finish_rows(state_.synapses, current, square, key=key_product)
        if conductance:
            increment = jnp.maximum(increment, 0.0)
        tile_state = eqx.tree_at(lambda s: (s.g_pos, s.g_neg), state_.synapses, (g_pos, g_neg))
        totals = RunStats(
            steps=totals.steps + 1,
            input_spikes=input_spikes,
            output_spikes=totals.output_spikes + post.astype(dtype),
            potentiation_pulses=totals.potentiation_pulses + counts.potentiation,
            depression_pulses=totals.depression_pulses + counts.depression,
            updated_synapses=totals.updated_synapses + counts.updated,
            refreshed_pairs=totals.refreshed_pairs + counts.refreshed,
            programming_energy=totals.programming_energy + counts.energy,
            worn_devices=totals.worn_devices,
            stuck_devices=totals.stuck_devices,
            devices=totals.devices,
        )
        new_state = NetworkState(synapses=tile_state, neurons=neurons, traces=traces, step=step + 1, arriving=increment)
        return (new_state, totals, pointer, pre_value, last), (post if record else None)

    totals = RunStats.zeros(n_pre, n_post, dtype)
    # The traces of the state are those at the end of the previous step, local step -1.
    start = (state, totals, jnp.zeros((), jnp.int32), state.traces.pre, jnp.full((n_pre,), -1, jnp.int32))
    (state, totals, _, pre_value, last), raster_out = jax.lax.scan(body, start, jnp.arange(steps))
    if learn:
        pre = pre_trace_now(pre_value, last, steps - 1)
        state = eqx.tree_at(lambda s: s.traces, state, STDPState(pre=pre.astype(dtype), post=state.traces.post))
    totals = totals.with_wear(tile.device, state.synapses)
    if record:
        return state, totals, raster_out
    return state, totals


def _is_zero(value) -> bool:
    return is_concrete(value) and float(value) == 0.0


class _ColumnParts(eqx.Module):
    """The synapses and the rule, passed to the column update as an operand (they may be batched)."""

    synapses: Synapses
    rule: STDP


def _zero_counts(dtype) -> SynapseUpdate:
    zero = jnp.zeros((), dtype)
    return SynapseUpdate(potentiation=zero, depression=zero, updated=zero, refreshed=zero, energy=zero)


def run_clamped(network: Network, state: NetworkState, pre, post, *, key: jax.Array):
    """Apply the plasticity rule to given pre- and postsynaptic spike rasters, without the neurons.

    The protocol of STDP experiments (pairs of spikes at a set delay) clamps both sides: `pre` is a bool
    raster (steps, n_pre) and `post` one of shape (steps, n_post). Each step the rule receives the two
    spike vectors, and its requested changes reach the devices as pulses, exactly as in `run`.

    Returns:
        (final state, RunStats) with the neurons untouched.
    """
    if network.plasticity is None:
        raise ValueError("run_clamped needs a plasticity rule: pass Network(plasticity=STDP(...))")
    pre, post = jnp.asarray(pre), jnp.asarray(post)
    n_pre, n_post = state.synapses.shape
    if pre.ndim != 2 or pre.shape[1] != n_pre or post.shape != (pre.shape[0], n_post):
        raise ValueError(
            f"pre and post must be rasters of shapes (steps, {n_pre}) and (steps, {n_post}), got {pre.shape} and {post.shape}"
        )
    return _run_clamped(network, state, pre, post, key)


@eqx.filter_jit
def _run_clamped(network, state, pre, post, key):
    def body(carry, spikes):
        state, totals = carry
        pre_spikes, post_spikes = spikes
        traces, synapses, counts = _plasticity_step(
            network, state.traces, state.synapses, pre_spikes, post_spikes, state.step * network.dt,
            jax.random.fold_in(key, state.step),
        )
        totals = totals.add_step(pre_spikes, post_spikes, counts)
        new_state = NetworkState(
            synapses=synapses, neurons=state.neurons, traces=traces, step=state.step + 1, arriving=state.arriving
        )
        return (new_state, totals), None

    totals = RunStats.zeros(pre.shape[1], post.shape[1], state.neurons.v.dtype)
    (state, totals), _ = jax.lax.scan(body, (state, totals), (pre, post))
    return state, totals.with_wear(network.synapses.tile.device, state.synapses)


def run_metrics(network: Network, stats: RunStats) -> dict:
    """Return the rates of a run (per second of simulated time), computed eagerly from its `RunStats`.

    Keys: `output_rate_hz` (spikes per neuron per second), `input_rate_hz` (spikes per input per
    second), `input_sparsity` (share of inputs silent in a step, on average), `updates_per_s` (synapse
    updates), `pulses_per_s` (device pulses of both signs), `potentiation_share` (share of the pulses
    that potentiate), `refreshes_per_s` (PCM pairs refreshed), `worn_fraction` and `stuck_fraction`.
    The last two count both devices of every pair at the end of the run. Bidirectional devices pulse only
    the positive device of a pair, so at most half of their devices wear out.
    With a device model that states its programming pulses (`Synapses.has_pulse_energy`) and the `STDP`
    rule, the keys also include `programming_energy_j` (the whole run), `programming_power_w` (energy per
    second of simulated time) and `energy_per_pulse_j`. With `WaveformSTDP` there are no discrete pulses:
    the pulse counts are the synapses whose state rose or fell in a step, and no energy is reported.

    The stats of a batch of runs (from `jax.vmap`) give an array per key, one value per run.
    """
    steps = np.asarray(stats.steps, np.float64)
    seconds = steps * network.dt
    if np.any(seconds <= 0):
        raise ValueError("the run has no steps; run_metrics needs the RunStats of a run")
    potentiation = np.asarray(stats.potentiation_pulses, np.float64)
    pulses = potentiation + np.asarray(stats.depression_pulses, np.float64)
    input_rate = np.mean(np.asarray(stats.input_spikes, np.float64), axis=-1) / seconds
    devices = np.asarray(stats.devices, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        metrics = {
            "output_rate_hz": np.mean(np.asarray(stats.output_spikes, np.float64), axis=-1) / seconds,
            "input_rate_hz": input_rate,
            "input_sparsity": 1.0 - input_rate * network.dt,
            "updates_per_s": np.asarray(stats.updated_synapses, np.float64) / seconds,
            "pulses_per_s": pulses / seconds,
            "potentiation_share": np.where(pulses > 0, potentiation / pulses, np.nan),
            "refreshes_per_s": np.asarray(stats.refreshed_pairs, np.float64) / seconds,
            "worn_fraction": np.asarray(stats.worn_devices, np.float64) / devices,
            "stuck_fraction": np.asarray(stats.stuck_devices, np.float64) / devices,
        }
        if network.synapses.has_pulse_energy and not isinstance(network.plasticity, WaveformSTDP):
            energy = np.asarray(stats.programming_energy, np.float64)
            metrics["programming_energy_j"] = energy
            metrics["programming_power_w"] = energy / seconds
            metrics["energy_per_pulse_j"] = np.where(pulses > 0, energy / pulses, np.nan)
    return {name: float(value) if np.ndim(value) == 0 else value for name, value in metrics.items()}
