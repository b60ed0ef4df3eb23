"""In-situ training with pulsed updates: a multilayer perceptron whose weights live on tiles and learn by pulses.

Every step of training runs on the tiles. The forward pass drives the rows (`Tile.matmul`), and the
backward pass drives the columns with the errors (`Tile.matmul_transposed`). The weight update sends
programming pulses to the devices (`apply_pulses`), so the devices' nonlinear, asymmetric, noisy and
bounded steps shape what the network learns. Two update schemes turn x (a layer's input) and d (the error
at its output) into pulse counts:

- `StochasticPulseUpdate`: the stochastic pulse-train outer product of T. Gokmen and Y. Vlasov, "Acceleration
  of deep neural network training with resistive cross-point devices: design considerations", Frontiers in
  Neuroscience 10, 333 (2016). Row i sends a Bernoulli pulse train of length BL with probability C |x_i| per
  slot, column j one with probability C |d_j|, and device (i, j) receives one pulse of sign -sign(x_i d_j) for
  every coincidence. The expected weight change is -BL C^2 dw_min x_i d_j, which is SGD with learning rate
  eta = BL C^2 dw_min. Optional update management scales the two probabilities by sqrt(max|d| / max|x|) and
  its inverse, which keeps their product and keeps both below 1 more often (T. Gokmen, M. Onen and
  W. Haensch, Frontiers in Neuroscience 11, 538 (2017)).
- `MixedPrecisionPulseUpdate`: the exact update -eta x d^T is added to a digital accumulator chi, and each device
  receives trunc(chi / epsilon) pulses, where epsilon is the weight change of one pulse
  (`xbar.crossbar.MixedPrecisionUpdate`; S. R. Nandakumar et al., Frontiers in Neuroscience 14, 406 (2020)).

Two ways of holding a weight on the differential pair of a tile (`PulsedMLP.pair`):

- "reference" (default): G- is a fixed reference at mid-range and every pulse goes to G+, potentiation for
  a positive count and depression for a negative one. The weight is (G+ - G-) mapped onto [-R, R], so
  up/down asymmetry of the device acts on the weight as in Gokmen and Vlasov's single-device model.
- "differential": the tile's usual mapping (one device of the pair at g_min). A positive count potentiates
  G+ and a negative count potentiates G-, for devices that only potentiate gradually (PCM). Without a
  refresh both devices drift upward until they saturate.

Training is not differentiable: pulse counts are random integers. Everything is a pure function of
explicit keys and works under `jax.jit` and `jax.vmap` (over device parameters, for example).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_finite, check_positive, is_concrete
from ..crossbar import MixedPrecisionUpdate, MultiMemristiveSynapse, Tile
from ..crossbar.tile import TileState, nominal_range, weights_to_conductances
from ..devices import PulsedDevice, SoftBoundsStep, StepNoise
from .synapses import mean_pulse_step

__all__ = [
    "MixedPrecisionPulseUpdate",
    "PulsedLayerState",
    "PulsedMLP",
    "PulsedMLPState",
    "StochasticPulseUpdate",
    "coincidence_counts",
    "init_weights",
    "pulse_granularity",
    "soft_bounds_device",
]

_PAIRS = ("reference", "differential")


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a Python integer >= {minimum}, got {value!r}")


def soft_bounds_device(
    step, *, nonlinearity=0.0, asymmetry=0.0, step_noise=0.0, g_min=0.0, g_max=25e-6
) -> PulsedDevice:
    """Build a pulse-update device with linearly falling (soft-bounds) steps, set by its mid-range behaviour.

    At the middle of the range (u = 0.5) the potentiation step is `step * (1 + asymmetry / 2)` and the
    depression step `step * (1 - asymmetry / 2)`, so `step` is their mean and `asymmetry` their relative
    difference, the up/down imbalance of Gokmen and Vlasov (2016). Each step falls linearly towards the
    bound it drives to, `SoftBoundsStep` with gamma = `nonlinearity`: 0 gives constant steps and 1 steps
    that vanish at the bound (soft bounds), so the step at the far bound is 1 / (1 - nonlinearity) times
    the step at the near bound.

    Args:
        step: mean step at mid-range, fraction of the conductance range (> 0).
        nonlinearity: fall of the step across the range, in [0, 1].
        asymmetry: (up - down) / step at mid-range, in (-2, 2).
        step_noise: cycle-to-cycle standard deviation of each step relative to its mean (>= 0).
        g_min, g_max: conductance range, S.

    All arguments may be traced (then they are not checked), so that a sweep can vectorize over them.
    """
    if is_concrete((step, nonlinearity, asymmetry, step_noise)):
        check_positive("step", step)
        if not 0.0 <= float(nonlinearity) <= 1.0:
            raise ValueError(f"nonlinearity must be in [0, 1] (0: constant steps, 1: soft bounds), got {nonlinearity}")
        if not -2.0 < float(asymmetry) < 2.0:
            raise ValueError(f"asymmetry must be in (-2, 2) so that both steps stay positive, got {asymmetry}")
        check_positive("step_noise", step_noise, allow_zero=True)
    # The step at progress p is scale * (1 - nonlinearity * p), so at p = 0.5 it is scale * (1 - nonlinearity / 2).
    mid_fraction = 1.0 - 0.5 * jnp.asarray(nonlinearity, jnp.float32)
    noise = StepNoise(relative=step_noise)
    up = SoftBoundsStep(step * (1.0 + 0.5 * asymmetry) / mid_fraction, nonlinearity, noise)
    down = SoftBoundsStep(step * (1.0 - 0.5 * asymmetry) / mid_fraction, nonlinearity, noise)
    return PulsedDevice(up=up, down=down, g_min=g_min, g_max=g_max)


def pulse_granularity(device) -> jax.Array:
    """Return the mean conductance change (S) of one pulse at mid-range.

    For a `PulsedDevice` this is the mean of its potentiation and depression steps at u = 0.5, so that
    changing only the asymmetry keeps it fixed. Other devices take `xbar.learning.mean_pulse_step`
    (the potentiation step). Raises ValueError for a device without a known nominal step.
    """
    if isinstance(device, PulsedDevice):
        g_min, g_max = nominal_range(device)
        middle = jnp.asarray(0.5)
        mean_step = 0.5 * (device.up.mean_step(middle, True) + device.down.mean_step(middle, False))
        return jnp.mean(mean_step) * (g_max - g_min)
    return mean_pulse_step(device)


def coincidence_counts(probability_rows, probability_cols, pulse_length: int, *, key: jax.Array) -> jax.Array:
    """Return the coincidences of independent Bernoulli pulse trains on rows and columns, shape (M, N).

    Row i fires in each of `pulse_length` slots with probability `probability_rows[i]` and column j with
    `probability_cols[j]`, both clipped to [0, 1]. Entry (i, j) counts the slots in which both fire, so its
    mean is pulse_length * p_i * q_j.
    """
    _check_count("pulse_length", pulse_length, 1)
    key_rows, key_cols = jax.random.split(key)
    p = jnp.clip(jnp.asarray(probability_rows, jnp.float32), 0.0, 1.0)
    q = jnp.clip(jnp.asarray(probability_cols, jnp.float32), 0.0, 1.0)
    rows = jax.random.uniform(key_rows, (pulse_length, p.shape[-1])) < p
    cols = jax.random.uniform(key_cols, (pulse_length, q.shape[-1])) < q
    # Products of 0/1 values summed over at most pulse_length slots are exact in float32.
    return rows.astype(jnp.float32).T @ cols.astype(jnp.float32)


class StochasticPulseUpdate(eqx.Module):
    """The stochastic pulse-train update of Gokmen and Vlasov (2016); see the module docstring.

    The pulse probability scale C follows from the learning rate: C = sqrt(eta / (BL epsilon)), where
    epsilon is the weight change of one pulse. Probabilities above 1 are clipped, which shortens the
    update. Gokmen and Vlasov use BL = 10.

    Attributes:
        learning_rate: eta, the SGD learning rate that the mean update equals (> 0).
        pulse_length: BL, slots of each pulse train and the most pulses a device gets per update (static).
        update_management: balance the row and column probabilities (Gokmen, Onen and Haensch 2017;
            static, default True).
    """

    learning_rate: float
    pulse_length: int = eqx.field(static=True, default=10)
    update_management: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_positive("learning_rate", self.learning_rate)
        _check_count("pulse_length", self.pulse_length, 1)

    @property
    def max_pulses(self) -> int:
        return self.pulse_length

    def init_accumulator(self, shape) -> jax.Array:
        """Return the per-device memory of the update: none, an empty array."""
        del shape
        return jnp.zeros((0,), jnp.float32)

    def pulse_counts(self, accumulator, x, d, granularity, *, key: jax.Array):
        """Return (accumulator, signed pulse counts (M, N)) for one update from input x (M,) and error d (N,)."""
        x = jnp.asarray(x, jnp.float32)
        d = jnp.asarray(d, jnp.float32)
        scale = jnp.sqrt(self.learning_rate / (self.pulse_length * granularity))
        scale_rows = scale_cols = scale
        if self.update_management:
            x_max = jnp.max(jnp.abs(x))
            d_max = jnp.max(jnp.abs(d))
            active = (x_max > 0) & (d_max > 0)
            # m = sqrt(max|d| / max|x|) scales the rows up and the columns down by the same factor.
            balance = jnp.where(active, jnp.sqrt(jnp.where(active, d_max, 1.0) / jnp.where(active, x_max, 1.0)), 1.0)
            scale_rows = scale * balance
            scale_cols = scale / balance
        counts = coincidence_counts(scale_rows * jnp.abs(x), scale_cols * jnp.abs(d), self.pulse_length, key=key)
        sign = -jnp.sign(x)[:, None] * jnp.sign(d)[None, :]
        return accumulator, sign * counts


class MixedPrecisionPulseUpdate(eqx.Module):
    """The mixed-precision update: the exact SGD step accumulates digitally and moves as whole pulses.

    Each update adds -eta x d^T to the accumulator chi, and every device with |chi| >= epsilon receives
    trunc(chi / epsilon) pulses (at most `max_pulses`), as `xbar.crossbar.MixedPrecisionUpdate` computes
    it. chi keeps the remainder, so |chi| < epsilon after every update unless the cap binds.

    Attributes:
        learning_rate: eta (> 0).
        max_pulses: most pulses a device receives per update (static, default 10).
    """

    learning_rate: float
    max_pulses: int = eqx.field(static=True, default=10)

    def __check_init__(self):
        check_positive("learning_rate", self.learning_rate)
        _check_count("max_pulses", self.max_pulses, 1)

    def init_accumulator(self, shape) -> jax.Array:
        """Return an empty accumulator chi (weight units) of the layer's shape."""
        return jnp.zeros(shape, jnp.float32)

    def pulse_counts(self, accumulator, x, d, granularity, *, key: jax.Array):
        """Return (new chi, signed pulse counts (M, N)) for one update from input x (M,) and error d (N,)."""
        del key
        delta_w = -self.learning_rate * jnp.outer(jnp.asarray(x, jnp.float32), jnp.asarray(d, jnp.float32))
        # Only the accumulate step of MixedPrecisionUpdate is used, so its synapse is a placeholder.
        digital = MixedPrecisionUpdate(
            MultiMemristiveSynapse(PulsedDevice(), n_devices=1), epsilon=granularity,
            max_pulses_per_update=self.max_pulses,
        )
        return digital.accumulate(accumulator, delta_w)


class PulsedLayerState(eqx.Module):
    """One layer of a `PulsedMLP` during training.

    Attributes:
        tile: the programmed tile; its rows are the layer's inputs plus one bias row (input 1).
        accumulator: digital memory of the update scheme (chi of the mixed-precision update, else empty).
        granularity: weight change of one pulse at mid-range, weight units (scalar).
    """

    tile: TileState
    accumulator: jax.Array
    granularity: jax.Array


class PulsedMLPState(eqx.Module):
    """A `PulsedMLP` during training: one `PulsedLayerState` per layer and the updates applied so far."""

    layers: tuple[PulsedLayerState, ...]
    updates: jax.Array


class PulsedMLP(eqx.Module):
    """A ReLU multilayer perceptron trained in situ: every product and every weight update on its tiles.

    Layer k computes y = [x, 1] @ W_k on `tiles[k]`, whose last row stores the bias. Hidden layers apply
    ReLU and the output gives logits for a softmax cross-entropy loss. `train_step` takes one example
    (batch size 1, as in Gokmen and Vlasov 2016): the forward pass reads every tile once, the errors run
    backward through `matmul_transposed` of the same reads, and `update` turns each layer's input and
    error into pulses for its devices. Weights span [-weight_range, weight_range]. Devices clip at their
    bounds, so stored weights do too.

    Not differentiable: the pulse counts are random integers.

    Attributes:
        tiles: one tile per layer, with the device, periphery and noise of that layer.
        update: `StochasticPulseUpdate` or `MixedPrecisionPulseUpdate`.
        weight_range: R, the largest weight magnitude the pair can hold (> 0).
        pair: "reference" or "differential" (static); see the module docstring.
        read_time: time after programming at which training reads the tiles, s (default 0).
    """

    tiles: tuple[Tile, ...]
    update: StochasticPulseUpdate | MixedPrecisionPulseUpdate
    weight_range: float = 1.0
    pair: str = eqx.field(static=True, default="reference")
    read_time: float = 0.0

    def __check_init__(self):
        if not self.tiles or not all(isinstance(tile, Tile) for tile in self.tiles):
            raise ValueError(f"tiles must be a non-empty sequence of Tile, got {self.tiles!r}")
        if not isinstance(self.update, (StochasticPulseUpdate, MixedPrecisionPulseUpdate)):
            raise ValueError(
                "update must be StochasticPulseUpdate(learning_rate=...) or MixedPrecisionPulseUpdate(learning_rate=...), "
                f"got {self.update!r}"
            )
        check_positive("weight_range", self.weight_range)
        if self.pair not in _PAIRS:
            raise ValueError(f"pair must be one of {', '.join(map(repr, _PAIRS))}, got {self.pair!r}")
        check_positive("read_time", self.read_time, "s", allow_zero=True)

    # Programming.

    def init(self, weights: Sequence[jax.Array], *, key: jax.Array) -> PulsedMLPState:
        """Program initial weights, one (inputs + 1) x outputs matrix per layer with the bias in the last row."""
        if len(weights) != len(self.tiles):
            raise ValueError(f"init needs one weight matrix per tile ({len(self.tiles)}), got {len(weights)}")
        layers = []
        for index, (tile, w, layer_key) in enumerate(zip(self.tiles, weights, jax.random.split(key, len(self.tiles)))):
            w = jnp.asarray(w, jnp.float32)
            if w.ndim != 2:
                raise ValueError(f"weights[{index}] must be a 2-D (inputs + 1) x outputs matrix, got shape {w.shape}")
            if index > 0 and w.shape[0] != layers[-1].tile.shape[1] + 1:
                raise ValueError(
                    f"weights[{index}] has {w.shape[0]} rows but layer {index - 1} has {layers[-1].tile.shape[1]} "
                    "outputs; each matrix needs one row per input plus one bias row"
                )
            check_finite(f"weights[{index}]", w, "remove NaN or infinite weights before programming")
            layers.append(self._program_layer(tile, w, layer_key))
        return PulsedMLPState(layers=tuple(layers), updates=jnp.zeros((), jnp.int32))

    def _program_layer(self, tile: Tile, w, key) -> PulsedLayerState:
        g_min, g_max = tile.nominal_range()
        span = g_max - g_min
        if self.pair == "reference":
            # G- = mid-range and G+ = mid-range + w span / (2 R), so the tile reads w with weight scale 2 R.
            middle = g_min + 0.5 * span
            target_pos = middle + jnp.clip(w / self.weight_range, -1.0, 1.0) * 0.5 * span
            target_neg = jnp.full_like(w, middle)
            weight_scale = 2.0 * jnp.asarray(self.weight_range, jnp.float32)
        else:
            target_pos, target_neg = weights_to_conductances(w, self.weight_range, g_min, g_max)
            weight_scale = jnp.asarray(self.weight_range, jnp.float32)
        key_pos, key_neg, key_reference = jax.random.split(key, 3)
        g_pos = tile.device.program(target_pos, key=key_pos, verify=tile.verify)
        g_neg = tile.device.program(target_neg, key=key_neg, verify=tile.verify)
        key_ref_pos, key_ref_neg = jax.random.split(key_reference)
        # The reference of global drift compensation, as `Tile.program` measures it.
        reference = jnp.sum(tile.device.read(g_pos, 0.0, key=key_ref_pos)) + jnp.sum(
            tile.device.read(g_neg, 0.0, key=key_ref_neg)
        )
        state = TileState(g_pos=g_pos, g_neg=g_neg, weight_scale=weight_scale, reference_current=reference)
        granularity = pulse_granularity(tile.device) * weight_scale / span
        return PulsedLayerState(state, self.update.init_accumulator(w.shape), granularity)

    def weights(self, state: PulsedMLPState) -> list[jax.Array]:
        """Return the weight matrices that the devices store (G+ - G- in weight units, without read noise)."""
        result = []
        for tile, layer in zip(self.tiles, state.layers):
            g_min, g_max = tile.nominal_range()
            g_diff = layer.tile.g_pos.g - layer.tile.g_neg.g
            result.append(g_diff * layer.tile.weight_scale / (g_max - g_min))
        return result

    # Inference.

    def logits(self, state: PulsedMLPState, x, *, key: jax.Array, t=None) -> jax.Array:
        """Return the logits of inputs x (..., n_inputs), each tile read once at time t (default `read_time`)."""
        t = self.read_time if t is None else t
        activations, _ = self._forward(state, x, key, t)
        return activations[-1]

    def accuracy(self, state: PulsedMLPState, x, labels, *, key: jax.Array, t=None) -> jax.Array:
        """Return the share of inputs x (B, n_inputs) whose largest logit is at their integer label."""
        predicted = jnp.argmax(self.logits(state, x, key=key, t=t), axis=-1)
        return jnp.mean(predicted == jnp.asarray(labels))

    def _forward(self, state, x, key, t):
        """Return the activations (input, hidden outputs after ReLU, logits) and each tile's read."""
        activations = [jnp.asarray(x, jnp.float32)]
        reads = []
        keys = jax.random.split(key, len(self.tiles))
        last = len(self.tiles) - 1
        for index, (tile, layer, layer_key) in enumerate(zip(self.tiles, state.layers, keys)):
            key_read, key_product = jax.random.split(layer_key)
            read = tile.read(layer.tile, t, key=key_read)
            y = tile.matmul(read, _with_bias(activations[-1]), key=key_product)
            activations.append(y if index == last else jax.nn.relu(y))
            reads.append(read)
        return activations, reads

    # Training.

    def train_step(self, state: PulsedMLPState, x, label, *, key: jax.Array) -> PulsedMLPState:
        """Train on one example: x (n_inputs,) and its integer label. Not differentiable."""
        key_forward, key_backward, key_update = jax.random.split(key, 3)
        activations, reads = self._forward(state, x, key_forward, self.read_time)
        logits = activations[-1]
        error = jax.nn.softmax(logits) - jax.nn.one_hot(label, logits.shape[-1], dtype=logits.dtype)

        # Errors at each layer's output, from the last layer back, through the transposed products.
        errors = [error]
        backward_keys = jax.random.split(key_backward, len(self.tiles))
        for index in range(len(self.tiles) - 1, 0, -1):
            through = self.tiles[index].matmul_transposed(reads[index], errors[0], key=backward_keys[index])
            # Drop the bias row and apply the ReLU derivative of the layer below.
            errors.insert(0, through[:-1] * (activations[index] > 0))

        layers = []
        update_keys = jax.random.split(key_update, len(self.tiles))
        for tile, layer, x_in, d, layer_key in zip(self.tiles, state.layers, activations, errors, update_keys):
            layers.append(self._update_layer(tile, layer, _with_bias(x_in), d, layer_key))
        return PulsedMLPState(layers=tuple(layers), updates=state.updates + 1)

    def _update_layer(self, tile: Tile, layer: PulsedLayerState, x, d, key) -> PulsedLayerState:
        key_counts, key_pos, key_neg = jax.random.split(key, 3)
        accumulator, counts = self.update.pulse_counts(layer.accumulator, x, d, layer.granularity, key=key_counts)
        max_pulses = self.update.max_pulses
        g_pos, g_neg = layer.tile.g_pos, layer.tile.g_neg
        if self.pair == "reference":
            g_pos = tile.device.apply_pulses(g_pos, counts, key=key_pos, max_pulses=max_pulses)
        else:
            g_pos = tile.device.apply_pulses(g_pos, jnp.maximum(counts, 0.0), key=key_pos, max_pulses=max_pulses)
            g_neg = tile.device.apply_pulses(g_neg, jnp.maximum(-counts, 0.0), key=key_neg, max_pulses=max_pulses)
        tile_state = TileState(
            g_pos=g_pos, g_neg=g_neg, weight_scale=layer.tile.weight_scale,
            reference_current=layer.tile.reference_current,
        )
        return PulsedLayerState(tile_state, accumulator, layer.granularity)

    def fit(self, state: PulsedMLPState, x, labels, *, key: jax.Array, epochs: int = 1) -> PulsedMLPState:
        """Train for `epochs` passes over x (B, n_inputs) and labels (B,), in a new random order each pass.

        Runs as `jax.lax.scan`, so it compiles once and works under `jit` and `vmap`. The result depends
        only on the inputs and `key`. Not differentiable.
        """
        _check_count("epochs", epochs, 1)
        x = jnp.asarray(x, jnp.float32)
        labels = jnp.asarray(labels)
        if x.ndim != 2 or labels.shape != x.shape[:1]:
            raise ValueError(
                f"fit needs x of shape (examples, inputs) and labels of shape (examples,), got {x.shape} and {labels.shape}"
            )
        check_finite("x", x, "remove NaN or infinite inputs")

        def one_example(state, item):
            index, step_key = item
            return self.train_step(state, x[index], labels[index], key=step_key), None

        def one_epoch(state, epoch_key):
            key_order, key_steps = jax.random.split(epoch_key)
            order = jax.random.permutation(key_order, x.shape[0])
            step_keys = jax.random.split(key_steps, x.shape[0])
            state, _ = jax.lax.scan(one_example, state, (order, step_keys))
            return state, None

        state, _ = jax.lax.scan(one_epoch, state, jax.random.split(key, epochs))
        return state


def _with_bias(x):
    """Append the constant input 1 of the bias row."""
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)


def init_weights(sizes: Sequence[int], *, key: jax.Array) -> list[jax.Array]:
    """Return He-normal weights of a ReLU perceptron with layer sizes `sizes`, each with a zero bias row."""
    weights = []
    for fan_in, fan_out, layer_key in zip(sizes[:-1], sizes[1:], jax.random.split(key, len(sizes) - 1)):
        w = jax.random.normal(layer_key, (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in)
        weights.append(jnp.concatenate([w, jnp.zeros((1, fan_out))], axis=0))
    return weights
