"""Unsupervised digit learning with the network of Diehl and Cook on a crossbar, and its labeled readout.

A layer of excitatory LIF neurons with adaptive thresholds receives Poisson inputs whose rates follow the
pixel intensities, through synapses that learn by STDP. Lateral inhibition lets few neurons respond to each
image, so that each neuron learns a prototype. After training without labels, each neuron is assigned the
class to which it responded most on average, and an image is classified as the class whose assigned
neurons respond most on average.

Sources: Diehl and Cook, "Unsupervised learning of digit recognition using spike-timing-dependent
plasticity", Frontiers in Computational Neuroscience 9, 99 (2015), and the Brian simulation that the
authors published with it (github.com/peter-u-diehl/stdp-mnist), which gives the constants below.

Published values used here:

- Excitatory neurons: v_rest = v_reset = -65 mV, threshold -52 mV, membrane time constant 100 ms,
  refractory period 5 ms, conductance-based excitatory synapses with time constant 1 ms and reversal
  potential 0 V, weights in units of the leak conductance with w_max = 1.
- Adaptive threshold: theta grows by 0.05 mV per spike and decays with a time constant of 1e7 ms.
- STDP (nearest-spike traces with time constants of 20 ms): each postsynaptic spike adds
  nu_post = 0.01 times the presynaptic trace, and each presynaptic spike subtracts nu_pre = 0.0001 times
  the postsynaptic trace.
- Each image is shown for 350 ms as Poisson spike trains, with rates proportional to pixel intensity and
  63.75 Hz at full intensity, followed by 150 ms without input. When the layer fires fewer than 5 spikes,
  the maximum rate is raised by 32 Hz (31.875 Hz in the published code) and the image is shown again.
- Before each training image, the input weights of each neuron are scaled to a fixed sum (78 for 784
  inputs, 0.1 per input).
- Labels: each neuron takes the class with its highest mean spike count over the labeled images (class 0
  when it never fires), and an image takes the class whose neurons have the highest mean count.
- Time step 0.5 ms.

Where this implementation differs, and why:

- Lateral inhibition is a fixed voltage drop of every other excitatory neuron per spike (`LIF.inhibition`,
  optionally `winner_take_all`), not a population of inhibitory neurons. The drop that one inhibitory spike
  of Diehl and Cook causes near rest, w_ie tau_gi (v_rest - E_inh) / tau_m = 17 x 2 ms x 35 mV / 100 ms,
  is about 12 mV, the default.
- The STDP rule is pair-based (`STDP` with nearest pairing). The published code also multiplies the
  potentiation by a second, slower postsynaptic trace (a triplet rule), which `STDP` does not model.
- Input weights arrive without the published random delays of 0 to 10 ms.
- The normalisation happens on the array: the weights are read, and the change that scales each column
  to its target sum is requested from the devices as pulses (`normalize_weights`). The devices apply it
  with their own step size, nonlinearity and noise, where Diehl and Cook rescale exact weights in software.
- A shown image is repeated at most `Presentation.max_repeats` times, so that a silent network cannot
  stall the simulation.
- During readout the neurons keep the thresholds learned in training (theta is frozen, as in the
  published test mode), and all images are shown in parallel, each from the state at the end of training.
  The images of one batch share the read noise of each time step, because the tile is read once per step.

The caller chooses the sizes: 8 x 8 inputs instead of 28 x 28, tens of neurons instead of hundreds, and
hundreds of training images instead of 180,000 in `xbar sweep stdp_digits` (see `xbar.studies`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_positive, is_concrete
from .network import Network, NetworkState, RunStats, run
from .neurons import LIF
from .spikes import SpikeEvents, poisson_spikes
from .synapses import SynapseUpdate

__all__ = [
    "Presentation", "TrainingStats", "assign_labels", "classify", "diehl_cook_neurons", "normalize_weights",
    "spike_counts", "train_unsupervised", "training_rates",
]


def diehl_cook_neurons(*, theta_plus=0.05e-3, tau_theta=1e4, inhibition=12e-3, winner_take_all=False) -> LIF:
    """Return the excitatory neurons of Diehl and Cook (2015), with lateral inhibition as a voltage drop.

    Args:
        theta_plus: threshold increase per spike, V (0.05 mV in Diehl and Cook 2015).
        tau_theta: decay time constant of the threshold increase, s (1e7 ms in Diehl and Cook 2015).
        inhibition: drop of every other neuron's membrane potential per spike, V.
        winner_take_all: at most one neuron spikes per time step.
    """
    return LIF(
        tau_m=100e-3, v_rest=-65e-3, v_reset=-65e-3, v_threshold=-52e-3, refractory=5e-3, tau_syn=1e-3,
        e_syn=0.0, synapse="conductance", theta_plus=theta_plus, tau_theta=tau_theta, inhibition=inhibition,
        winner_take_all=winner_take_all,
    )


class Presentation(eqx.Module):
    """Input schedule of one image: Poisson input, then rest, repeated at raised rates while the layer is silent.

    Attributes:
        duration: time each image is shown, s.
        rest: time without input after each image, s.
        max_rate: input rate of a pixel at full intensity (1.0), Hz.
        rate_step: raise of `max_rate` for each repeat of an image, Hz.
        min_spikes: minimum number of spikes of the whole layer that ends the showing of an image (static).
        max_repeats: most repeats of one image at raised rates (static).
    """

    duration: float = 0.35
    rest: float = 0.15
    max_rate: float = 63.75
    rate_step: float = 32.0
    min_spikes: int = eqx.field(static=True, default=5)
    max_repeats: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        check_positive("duration", self.duration, "s")
        check_positive("rest", self.rest, "s", allow_zero=True)
        check_positive("max_rate", self.max_rate, "Hz")
        check_positive("rate_step", self.rate_step, "Hz", allow_zero=True)
        for name in ("min_spikes", "max_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")

    def steps(self, dt) -> tuple[int, int]:
        """Return the time steps of showing and of rest for a time step dt (s)."""
        return _step_count("duration", self.duration, dt), _step_count("rest", self.rest, dt)

    def max_events(self, n_inputs: int) -> int:
        """Return the event slots of one showing: n_inputs pixels at full intensity and the last repeat's rate.

        With mu = n_inputs x highest rate x duration expected events, mu + 10 sqrt(mu) + 10 slots truncate
        a showing with probability below 1e-19 (the bound of `poisson_spike_times`). Needs concrete rates.
        """
        if not is_concrete((self.max_rate, self.rate_step, self.duration)):
            raise ValueError("the event bound needs concrete rates; pass max_events when the rates are traced")
        expected = n_inputs * (float(self.max_rate) + self.max_repeats * float(self.rate_step)) * float(self.duration)
        return int(expected + 10.0 * np.sqrt(expected) + 10.0)


class TrainingStats(eqx.Module):
    """Totals of a training run, over all showings and rests.

    Attributes:
        steps: time steps simulated (int32).
        output_spikes: spikes of each neuron, shape (n_post,).
        potentiation_pulses, depression_pulses: device pulses of the STDP updates.
        refreshed_pairs: PCM pairs refreshed by the STDP updates.
        programming_energy: energy of the STDP pulses, J (0 for a device model without programming pulses).
        normalization: pulses, refreshes and energy of the weight normalisation (`SynapseUpdate`, summed).
        images: images trained on (int32).
        repeated_images: images shown again at raised rates (int32).
        repeats: extra showings of all images (int32).
    """

    steps: jax.Array
    output_spikes: jax.Array
    potentiation_pulses: jax.Array
    depression_pulses: jax.Array
    refreshed_pairs: jax.Array
    programming_energy: jax.Array
    normalization: SynapseUpdate
    images: jax.Array
    repeated_images: jax.Array
    repeats: jax.Array

    def add_run(self, stats: RunStats) -> TrainingStats:
        """Return the totals with those of one `run` added."""
        return eqx.tree_at(
            lambda t: (
                t.steps, t.output_spikes, t.potentiation_pulses, t.depression_pulses, t.refreshed_pairs,
                t.programming_energy,
            ),
            self,
            (
                self.steps + stats.steps, self.output_spikes + stats.output_spikes,
                self.potentiation_pulses + stats.potentiation_pulses, self.depression_pulses + stats.depression_pulses,
                self.refreshed_pairs + stats.refreshed_pairs, self.programming_energy + stats.programming_energy,
            ),
        )


def training_rates(network: Network, stats: TrainingStats) -> dict[str, jax.Array]:
    """Return the rates of a training run per second of simulated time, as traced scalars.

    Keys:
        output_rate_hz: spikes per neuron.
        pulses_per_s: STDP pulses of both signs on the whole array.
        normalization_pulses_per_s: pulses of the weight normalisation.
        refreshes_per_s: PCM pairs refreshed by either.
        programming_power_w: energy of all pulses per second, NaN for a device model without programming
            pulses (see `Synapses.has_pulse_energy`).
        repeated_share: share of the images shown again at raised rates.
    """
    normalization = stats.normalization
    seconds = stats.steps * network.dt
    power = (stats.programming_energy + normalization.energy) / seconds
    if not network.synapses.has_pulse_energy:
        power = jnp.full_like(power, jnp.nan)
    return {
        "output_rate_hz": jnp.mean(stats.output_spikes) / seconds,
        "pulses_per_s": (stats.potentiation_pulses + stats.depression_pulses) / seconds,
        "normalization_pulses_per_s": (normalization.potentiation + normalization.depression) / seconds,
        "refreshes_per_s": (stats.refreshed_pairs + normalization.refreshed) / seconds,
        "programming_power_w": power,
        "repeated_share": stats.repeated_images / jnp.maximum(stats.images, 1),
    }


def normalize_weights(network: Network, state: NetworkState, weight_sum, *, key: jax.Array):
    """Scale each neuron's input weights towards `weight_sum` by device pulses.

    The weights are read as the neurons receive them (read noise and drift included), and each weight w is
    asked to change by w (weight_sum / column sum - 1). A column whose sum reads zero or negative (possible
    on a differential pair) cannot be scaled, so each of its weights is asked to rise by an equal share of
    the missing sum instead. The synapses deliver the change as pulses, so the result carries the device's
    step size, nonlinearity and noise, and `Synapses.max_pulses` caps the pulses per device of one call.

    NOTE: the pulse counts assume the mean step of `Synapses.weight_per_pulse`. On the PCM model the first
    SET pulse from g_min is about 9 times larger, so a correction on G- overshoots and the next one undoes
    part of it (about 150 times as many pulses as STDP in examples/stdp_digits.toml).

    Returns:
        The state with the updated tile, and the pulse counts of the update.
    """
    key_read, key_update = jax.random.split(key)
    weights = network.weights(state, key=key_read)
    column_sums = jnp.sum(weights, axis=0, keepdims=True)
    positive = column_sums > 0
    scaled = weights * (weight_sum / jnp.where(positive, column_sums, 1.0) - 1.0)
    shared = jnp.broadcast_to((weight_sum - column_sums) / weights.shape[0], weights.shape)
    change = jnp.where(positive, scaled, shared)
    synapses, counts = network.synapses.update(state.synapses, change, key=key_update)
    return eqx.tree_at(lambda s: s.synapses, state, synapses), counts


def train_unsupervised(
    network: Network, state: NetworkState, images, presentation: Presentation, *, key: jax.Array,
    weight_sum=None, max_events: int | None = None,
) -> tuple[NetworkState, TrainingStats]:
    """Train the network on the images in order, without labels, as Diehl and Cook (2015) do.

    Before each image the input weights are normalised (when `weight_sum` is given). The image is then shown
    with plasticity on, followed by the rest. An image that draws fewer than `presentation.min_spikes`
    spikes from the layer is shown again, with its rest, at a maximum rate raised by
    `presentation.rate_step`, at most `presentation.max_repeats` times. The input spikes reach `run` as
    `SpikeEvents`, so each step reads and changes only the rows of the pixels that spike.

    Args:
        network: the network (its neurons should adapt their thresholds and inhibit each other).
        state: its state, from `Network.init`.
        images: pixel intensities in [0, 1], shape (n_images, n_pre).
        presentation: timing and input rates.
        key: PRNG key.
        weight_sum: target sum of each neuron's input weights, normalised before each image; None skips
            the normalisation.
        max_events: event slots of one showing (a Python int); None takes `presentation.max_events`,
            which needs concrete rates.

    Returns:
        The trained state and the totals of the run.
    """
    images = _check_images(images, state)
    _check_presentation(presentation)
    if network.plasticity is None:
        raise ValueError("train_unsupervised needs a plasticity rule: pass Network(plasticity=STDP(...))")
    if weight_sum is not None:
        check_positive("weight_sum", weight_sum)
    n_pre, n_post = images.shape[1], state.neurons.v.shape[0]
    if max_events is None:
        max_events = presentation.max_events(n_pre)
    if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 1:
        raise ValueError(f"max_events must be an integer >= 1, got {max_events!r}")
    dtype = state.neurons.v.dtype
    show_steps, rest_steps = presentation.steps(network.dt)
    # The rest has no input: one unused event slot.
    no_input = SpikeEvents(times=jnp.full((1,), jnp.inf, dtype), inputs=jnp.zeros((1,), jnp.int32), n_inputs=n_pre)
    zero, count = jnp.zeros((), dtype), jnp.zeros((), jnp.int32)
    empty = TrainingStats(
        steps=count, output_spikes=jnp.zeros((n_post,), dtype), potentiation_pulses=zero, depression_pulses=zero,
        refreshed_pairs=zero, programming_energy=zero, normalization=_zero_update(network, state), images=count,
        repeated_images=count, repeats=count,
    )

    def show(state, image, attempt, key):
        key_spikes, key_show, key_rest = jax.random.split(key, 3)
        rates = image * (presentation.max_rate + attempt * presentation.rate_step)
        events = SpikeEvents.poisson(key_spikes, rates, presentation.duration, max_events=int(max_events))
        state, stats, output = run(network, state, events, show_steps, key=key_show, record=True)
        totals = empty.add_run(stats)
        if rest_steps:
            # Plasticity stays on during the rest so that the traces decay; without spikes it requests no change.
            state, rest_stats = run(network, state, no_input, rest_steps, key=key_rest)
            totals = totals.add_run(rest_stats)
        return state, totals, jnp.sum(output)

    def train_one(carry, inputs):
        state, totals = carry
        image, key = inputs
        key_normalize, key_show = jax.random.split(key)
        if weight_sum is not None:
            state, normalization = normalize_weights(network, state, weight_sum, key=key_normalize)
            totals = eqx.tree_at(lambda t: t.normalization, totals, _add(totals.normalization, normalization))

        def repeat(loop):
            attempt, _, spikes, _ = loop
            return (attempt == 0) | ((spikes < presentation.min_spikes) & (attempt <= presentation.max_repeats))

        def show_again(loop):
            attempt, state, _, totals = loop
            state, shown, spikes = show(state, image, attempt, jax.random.fold_in(key_show, attempt))
            return attempt + 1, state, spikes, _add(totals, shown)

        start = (count, state, count, totals)
        attempts, state, _, totals = jax.lax.while_loop(repeat, show_again, start)
        repeated = (attempts > 1).astype(jnp.int32)
        totals = eqx.tree_at(
            lambda t: (t.images, t.repeated_images, t.repeats),
            totals,
            (totals.images + 1, totals.repeated_images + repeated, totals.repeats + attempts - 1),
        )
        return (state, totals), None

    keys = jax.random.split(key, images.shape[0])
    (state, totals), _ = jax.lax.scan(train_one, (state, empty), (images, keys))
    return state, totals


def spike_counts(
    network: Network, state: NetworkState, images, presentation: Presentation, *, key: jax.Array,
    batch_size: int = 256,
) -> jax.Array:
    """Count each neuron's spikes for each image, with plasticity and threshold adaptation off.

    Every image is shown from `state`, so the images do not influence each other and run in parallel in
    batches of `batch_size`. An image to which the layer fires fewer than `presentation.min_spikes` spikes is
    shown again, from `state`, at a maximum rate raised by `presentation.rate_step`, at most
    `presentation.max_repeats` times. Its counts are those of its last showing.

    Returns:
        Spike counts, float, shape (n_images, n_post).
    """
    images = _check_images(images, state)
    _check_presentation(presentation)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    frozen = Network(
        synapses=network.synapses, neurons=dataclasses.replace(network.neurons, theta_plus=0.0), plasticity=None,
        dt=network.dt,
    )
    show_steps, _ = presentation.steps(network.dt)
    n_images, n_post = images.shape[0], state.neurons.v.shape[0]
    key_spikes, key_run = jax.random.split(key)
    image_keys = jax.random.split(key_spikes, n_images)

    def count(attempt):
        # The run key is shared by all images of a showing, so the tile is read once per step for the batch.
        run_key = jax.random.fold_in(key_run, attempt)
        rate_scale = presentation.max_rate + attempt * presentation.rate_step

        def one(inputs):
            image, image_key = inputs
            raster = poisson_spikes(jax.random.fold_in(image_key, attempt), image * rate_scale, network.dt, show_steps)
            _, _, output = run(frozen, state, raster, show_steps, key=run_key, learn=False, record=True)
            return jnp.sum(output, axis=0, dtype=state.neurons.v.dtype)

        return jax.lax.map(one, (images, image_keys), batch_size=min(int(batch_size), n_images))

    def repeat(loop):
        attempt, counts, _ = loop
        silent = jnp.sum(counts, axis=1) < presentation.min_spikes
        return (attempt <= presentation.max_repeats) & jnp.any(silent)

    def show_again(loop):
        attempt, counts, _ = loop
        silent = jnp.sum(counts, axis=1) < presentation.min_spikes
        new = count(attempt)
        return attempt + 1, jnp.where(silent[:, None], new, counts), None

    first = count(jnp.zeros((), jnp.int32))
    _, counts, _ = jax.lax.while_loop(repeat, show_again, (jnp.ones((), jnp.int32), first, None))
    return counts


def assign_labels(counts, labels, num_classes: int) -> jax.Array:
    """Assign each neuron the class with the highest mean spike count over that class's images.

    Args:
        counts: spike counts, shape (n_images, n_post).
        labels: class of each image, integers in [0, num_classes), shape (n_images,).
        num_classes: number of classes.

    Returns:
        The class of each neuron, int32, shape (n_post,). A class without images has mean 0, and a neuron
        that never fires gets class 0.
    """
    counts, labels = jnp.asarray(counts), jnp.asarray(labels)
    _check_classes(num_classes)
    if counts.ndim != 2 or labels.shape != counts.shape[:1]:
        raise ValueError(
            f"counts must have shape (n_images, n_post) and labels shape (n_images,), got {counts.shape} and "
            f"{labels.shape}"
        )
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=counts.dtype)
    images_per_class = jnp.sum(one_hot, axis=0)
    mean_response = (one_hot.T @ counts) / jnp.maximum(images_per_class, 1.0)[:, None]
    return jnp.argmax(mean_response, axis=0).astype(jnp.int32)


def classify(counts, assignments, num_classes: int) -> jax.Array:
    """Classify each image as the class whose assigned neurons have the highest mean spike count.

    A class with no neuron scores 0. Returns int32 class indices, shape (n_images,).
    """
    counts, assignments = jnp.asarray(counts), jnp.asarray(assignments)
    _check_classes(num_classes)
    if counts.ndim != 2 or assignments.shape != counts.shape[1:]:
        raise ValueError(
            f"counts must have shape (n_images, n_post) and assignments shape (n_post,), got {counts.shape} and "
            f"{assignments.shape}"
        )
    members = jax.nn.one_hot(assignments, num_classes, dtype=counts.dtype)
    scores = (counts @ members) / jnp.maximum(jnp.sum(members, axis=0), 1.0)
    return jnp.argmax(scores, axis=1).astype(jnp.int32)


def _step_count(name, duration, dt) -> int:
    if not is_concrete((duration, dt)):
        raise ValueError(f"{name} and the network's dt must be concrete numbers, because they set the number of steps")
    steps = float(duration) / float(dt)
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise ValueError(f"{name} = {duration} s is not a whole number of time steps of {dt} s; pick a multiple of dt")
    return int(round(steps))


def _check_images(images, state):
    images = jnp.asarray(images, state.neurons.v.dtype)
    n_pre = state.synapses.shape[0]
    if images.ndim != 2 or images.shape[1] != n_pre:
        raise ValueError(f"images must have shape (n_images, {n_pre}), one intensity per input, got {images.shape}")
    if images.shape[0] < 1:
        raise ValueError("images is empty; pass at least one image")
    if is_concrete(images):
        # NumPy, because a jnp reduction inside `jit` returns a tracer even for a constant.
        values = np.asarray(images)
        low, high = float(values.min()), float(values.max())
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(f"image intensities must lie in [0, 1], got values from {low} to {high}; scale the pixels")
    return images


def _check_presentation(presentation):
    if not isinstance(presentation, Presentation):
        raise ValueError(f"presentation must be a Presentation, got {type(presentation).__name__}")


def _check_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def _add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def _zero_update(network: Network, state: NetworkState) -> SynapseUpdate:
    """Return a `SynapseUpdate` of zeros, shaped as the synapses return it."""
    weights = jax.ShapeDtypeStruct(state.synapses.shape, state.neurons.v.dtype)
    shapes = jax.eval_shape(
        lambda tile, dw: network.synapses.update(tile, dw, key=jax.random.key(0))[1], state.synapses, weights
    )
    return jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), shapes)
