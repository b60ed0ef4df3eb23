"""A layer of CMOS spiking neurons driven through a plastic crossbar, simulated with a fixed time step.

Each step of `run`, at time t = step * dt:

1. the presynaptic spikes of the step are read from the input (a `PoissonStream` or a spike raster);
2. the neurons integrate over dt, with the synaptic input that arrived in the previous step, and spike;
3. the tile is read at t (drift and read noise of the device model). It multiplies the presynaptic spike
   vector through its periphery (DAC, ADC, short-term noise, wire resistance when configured), and the
   product, in weight units, is the synaptic increment that reaches the neurons in the next step;
4. the plasticity rule turns the pre- and postsynaptic spikes of the step into requested weight changes,
   which the synapses apply as device pulses.

The one-step transmission delay follows Brian2's default schedule (state update, threshold, then synaptic
events). A presynaptic spike can therefore cause a postsynaptic one a step later at the earliest, and both
sides of a pair are timed by the step in which they occur.

The whole run is one `jax.lax.scan`, so a network compiles once and `jax.vmap` runs independent networks
(seeds, parameters) together. Device drift is measured from the start of the run for every device.
NOTE: PCM devices restart their drift clock when pulsed; a per-device clock is not modelled yet.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._validation import check_positive
from ..crossbar import TileState
from .neurons import LIF, LIFState
from .spikes import PoissonStream
from .stdp import STDP, STDPState
from .synapses import Synapses

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
        potentiation_pulses, depression_pulses: device pulses applied.
        updated_synapses: synapse updates (a synapse receiving pulses in one step counts once).
        refreshed_pairs: PCM pairs refreshed.
    """

    steps: jax.Array
    input_spikes: jax.Array
    output_spikes: jax.Array
    potentiation_pulses: jax.Array
    depression_pulses: jax.Array
    updated_synapses: jax.Array
    refreshed_pairs: jax.Array

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
            lambda s: (s.potentiation_pulses, s.depression_pulses, s.updated_synapses, s.refreshed_pairs),
            totals,
            (
                totals.potentiation_pulses + counts.potentiation,
                totals.depression_pulses + counts.depression,
                totals.updated_synapses + counts.updated,
                totals.refreshed_pairs + counts.refreshed,
            ),
        )


class Network(eqx.Module):
    """n_pre inputs onto n_post neurons through a plastic crossbar.

    Attributes:
        synapses: the crossbar synapses (tile and pulse delivery).
        neurons: the neuron model (default: conductance-based LIF with the constants of Song, Miller and
            Abbott, Nature Neuroscience 3, 919 (2000)).
        plasticity: the learning rule, or None for a fixed network.
        dt: time step, s (default 0.1 ms).
    """

    synapses: Synapses
    neurons: LIF = LIF()
    plasticity: STDP | None = STDP()
    dt: float = 1e-4

    def __check_init__(self):
        if not isinstance(self.synapses, Synapses):
            raise ValueError(f"Network synapses must be a Synapses instance, got {self.synapses!r}")
        if not isinstance(self.neurons, LIF):
            raise ValueError(f"Network neurons must be a LIF instance, got {self.neurons!r}")
        if self.plasticity is not None and not isinstance(self.plasticity, STDP):
            raise ValueError(f"Network plasticity must be an STDP rule or None, got {self.plasticity!r}")
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
        record: bool = False):
    """Simulate `steps` time steps from `state`.

    Args:
        network: the network.
        state: its state (from `Network.init` or a previous run).
        inputs: a `PoissonStream` (read from its start: pass one stream per run) or a bool raster of
            shape (steps, n_pre).
        steps: number of steps (a Python int): the simulated duration divided by `network.dt`.
        key: PRNG key of the run (read noise, product noise, pulse rounding and device pulses).
        learn: apply the plasticity rule (static). With False, or with no rule, the weights stay.
        record: also return the output spike raster, bool (steps, n_post).

    Returns:
        (final state, RunStats), plus the output raster when `record`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a Python int >= 1, got {steps!r}")
    n_pre = state.traces.pre.shape[0]
    if isinstance(inputs, PoissonStream):
        if inputs.times.shape[0] != n_pre:
            raise ValueError(f"the input stream has {inputs.times.shape[0]} inputs but the network has {n_pre}")
        stream, raster = inputs, None
    else:
        raster = jnp.asarray(inputs)
        if raster.shape != (steps, n_pre):
            raise ValueError(f"the input raster must have shape (steps, n_pre) = {(steps, n_pre)}, got {raster.shape}")
        stream = None
    return _run(network, state, stream, raster, steps, key, learn and network.plasticity is not None, record)


@eqx.filter_jit
def _run(network, state, stream, raster, steps, key, learn, record):
    dt = network.dt
    tile = network.synapses.tile
    dtype = state.neurons.v.dtype
    n_pre, n_post = state.traces.pre.shape[0], state.traces.post.shape[0]
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
            traces, dw = network.plasticity.step(traces, pre, post, dt)
            synapses, counts = network.synapses.update(synapses, dw, key=key_update)

        totals = totals.add_step(pre, post, counts)
        new_state = NetworkState(synapses=synapses, neurons=neurons, traces=traces, step=step + 1, arriving=increment)
        return (new_state, totals, index), (post if record else None)

    (state, totals, _), raster_out = jax.lax.scan(body, (state, totals, index), jnp.arange(steps))
    if record:
        return state, totals, raster_out
    return state, totals


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
    n_pre, n_post = state.traces.pre.shape[0], state.traces.post.shape[0]
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
        traces, dw = network.plasticity.step(state.traces, pre_spikes, post_spikes, network.dt)
        synapses, counts = network.synapses.update(state.synapses, dw, key=jax.random.fold_in(key, state.step))
        totals = totals.add_step(pre_spikes, post_spikes, counts)
        new_state = NetworkState(
            synapses=synapses, neurons=state.neurons, traces=traces, step=state.step + 1, arriving=state.arriving
        )
        return (new_state, totals), None

    totals = RunStats.zeros(pre.shape[1], post.shape[1], state.neurons.v.dtype)
    (state, totals), _ = jax.lax.scan(body, (state, totals), (pre, post))
    return state, totals


def run_metrics(network: Network, stats: RunStats) -> dict[str, float]:
    """Return the rates of a run (per second of simulated time), computed eagerly from its `RunStats`.

    Keys: `output_rate_hz` (spikes per neuron per second), `input_rate_hz` (spikes per input per
    second), `input_sparsity` (share of inputs silent in a step, on average), `updates_per_s` (synapse
    updates), `pulses_per_s` (device pulses of both signs), `potentiation_share` (share of the pulses
    that potentiate), `refreshes_per_s` (PCM pairs refreshed).
    """
    seconds = float(stats.steps) * network.dt
    if seconds <= 0:
        raise ValueError("the run has no steps; run_metrics needs the RunStats of a run")
    pulses = float(stats.potentiation_pulses) + float(stats.depression_pulses)
    input_rate = float(jnp.mean(stats.input_spikes)) / seconds
    return {
        "output_rate_hz": float(jnp.mean(stats.output_spikes)) / seconds,
        "input_rate_hz": input_rate,
        "input_sparsity": 1.0 - input_rate * network.dt,
        "updates_per_s": float(stats.updated_synapses) / seconds,
        "pulses_per_s": pulses / seconds,
        "potentiation_share": float(stats.potentiation_pulses) / pulses if pulses > 0 else float("nan"),
        "refreshes_per_s": float(stats.refreshed_pairs) / seconds,
    }
