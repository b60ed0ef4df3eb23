"""Event-driven simulation of a network: per step, work in proportion to the spikes, not to the synapses.

`run` uses this path when the input is a `SpikeEvents` list and the tile reads its rows independently
(`Tile.reads_rows_independently`). It computes what the dense path computes, in the same order, but touches
only the rows of the inputs that spike and the columns of the neurons that spike:

- the synaptic input of the step is read from the spiking rows only (`Tile.row_currents`);
- a presynaptic spike changes its row, by the depression of the step plus the potentiation of any neuron
  that spikes in the same step;
- a postsynaptic spike changes its column, for every row that did not spike in the step;
- the presynaptic traces are kept lazily, as the value at the last spike and the step of that spike. They
  are decayed when needed by exp(-elapsed dt / tau), which equals the product of per-step factors up to
  float rounding.

Each synapse thus receives the same requested change in a step as in the dense path, and with
deterministic devices and rounding the two paths agree to float rounding. With random rounding or noisy
devices they agree in distribution: the random numbers are drawn for the touched devices only.

Under `jax.vmap` the column update is batched by `_batched_cond`: of the networks in a batch, only those
in which a neuron spiked have their columns updated, instead of every network in every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from ..crossbar import put_devices, take_devices
from .spikes import SpikeEvents

# Columns taken at once in the column update; more spikes in one step take more rounds of a loop.
_COLUMN_SLOTS = 4


def default_event_slots(events: SpikeEvents, dt, steps: int) -> int:
    """Return the events read at once per step: enough for the busiest steps of a Poisson input.

    With mu events per step on average, mu + 4 sqrt(mu) + 1 slots (a power of 2, at least 4) take all the
    events of a step in all but about 1e-4 of the steps. The other steps take a second round of the loop.
    """
    finite = jnp.sum(jnp.isfinite(events.times))
    span = jnp.minimum(jnp.max(jnp.where(jnp.isfinite(events.times), events.times, 0.0)) / dt + 1.0, steps)
    try:
        mean = float(finite) / max(float(span), 1.0)
    except jax.errors.ConcretizationTypeError:
        return 8
    needed = mean + 4.0 * mean**0.5 + 1.0
    slots = 4
    while slots < needed:
        slots *= 2
    return min(slots, events.n_inputs)


def _take_static(x, index):
    """x[index] for a per-input or per-neuron array, or x itself for a scalar parameter."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else jnp.take(x, jnp.clip(index, 0, x.shape[-1] - 1), axis=-1)


def _batched_cond(pred, update, state, *operands):
    """Return `update(state, *operands)` where `pred` is True and `state` otherwise; sparse under `jax.vmap`.

    `jax.vmap` turns a `cond` with a batched predicate into both branches for every member of the batch.
    Here the batched form runs `update` only on the members whose predicate holds, a few at a time, and
    leaves the state of the others in place (no copy). `update` may use only its arguments, so that
    nothing batched is closed over, and returns a state of the same structure.
    """

    @custom_vmap
    def cond(pred, state, *operands):
        return jax.lax.cond(pred, update, lambda state, *_: state, state, *operands)

    @cond.def_vmap
    def rule(axis_size, in_batched, pred, state, *operands):
        pred_batched, state_batched, *operands_batched = in_batched
        pred = pred if pred_batched else jnp.broadcast_to(pred, (axis_size,))
        state = jax.tree_util.tree_map(
            lambda leaf, b: leaf if b else jnp.broadcast_to(leaf, (axis_size, *jnp.shape(leaf))), state, state_batched
        )
        axes = tuple(jax.tree_util.tree_map(lambda b: 0 if b else None, batched) for batched in operands_batched)

        # One member per round: in a batch of seed runs usually a single network has a post spike in a step.
        # The loop runs only while a member is left, so `member` is always in range, and the member's slice
        # is read and written in place (dynamic slices, no gather or scatter).
        def pick(leaf, member):
            return jax.lax.dynamic_index_in_dim(leaf, member, 0, keepdims=False)

        def body(carry):
            remaining, state = carry
            member = jnp.argmax(remaining)
            picked = [
                operand if axis is None else jax.tree_util.tree_map(
                    lambda leaf, a: leaf if a is None else pick(leaf, member), operand, axis
                )
                for operand, axis in zip(operands, axes)
            ]
            updated = update(jax.tree_util.tree_map(lambda leaf: pick(leaf, member), state), *picked)
            state = jax.tree_util.tree_map(
                lambda old, new: jax.lax.dynamic_update_index_in_dim(old, new.astype(old.dtype), member, 0),
                state, updated,
            )
            return remaining.at[member].set(False), state

        _, state = jax.lax.while_loop(lambda carry: jnp.any(carry[0]), body, (pred, state))
        return state, jax.tree_util.tree_map(lambda _: True, state)

    return cond(pred, state, *operands)


def read_step(table, pointer, local, slots: int):
    """Read `slots` events from row `pointer` of the event table; return their inputs, which are due in step `local`, and the new pointer.

    `table` contains int32 rows (step, input) in time order, with at least `slots` unused rows at the end.
    """
    window = jax.lax.dynamic_slice(table, (pointer, 0), (slots, 2))
    due = window[:, 0] <= local
    return window[:, 1], due, pointer + jnp.sum(due).astype(pointer.dtype)


def first_of_step(rows, due, last_step, local):
    """Mask the due events that are the first of their input in this step (repeats count as one spike)."""
    same = (rows[:, None] == rows[None, :]) & due[None, :]
    earlier = jnp.tril(same, k=-1)
    return due & ~jnp.any(earlier, axis=1) & (jnp.take(last_step, jnp.clip(rows, 0, last_step.shape[0] - 1)) != local)
