"""The `pulsed_digits` workload of `xbar sweep`: in-situ training with pulsed updates on the digits.

A ReLU perceptron (64-hidden-10, with one bias row per tile) learns the scikit-learn digits (8 x 8 images)
on one tile per layer, entirely in situ (`xbar.learning.PulsedMLP`). Forward and backward passes run
through the tiles, and each training example updates the devices by programming pulses. `workload.update`
selects the stochastic pulse-train update of T. Gokmen and Y. Vlasov (Frontiers in Neuroscience 10, 333
(2016)) or the mixed-precision update (S. R. Nandakumar et al., Frontiers in Neuroscience 14, 406 (2020)).
Training takes `epochs` passes of SGD with batch size 1 at `learning_rate`, and the metric is the test
accuracy of the trained tiles read at `read.time`. Training runs inside the sweep, so a vectorized axis
trains every value at once, and each seed draws its own programming noise, pulse trains and example order.

The device: with `device.model = "ideal"`, a soft-bounds pulse-update device
(`xbar.learning.soft_bounds_device`) with the ideal device's range and its `pulse_step` as the mean step
at mid-range, shaped by `workload.nonlinearity`, `workload.asymmetry` and `workload.step_noise` (with all
three 0 the steps are linear and symmetric). Any other model, such as a preset name, trains on that
device with its own steps. Sweeping the three keys measures how accuracy falls as the update grows
asymmetric, nonlinear and noisy, the device properties whose tolerances Gokmen and Vlasov (2016) derive.

At strong asymmetry a, the drift that the up/down imbalance causes matters more than the nonlinearity g.
With a > 0, constant steps (g = 0) drive the devices towards the upper bound. Soft-bounds steps balance
at the symmetry point u* = 1/2 + a (2 - g) / (4 g) of the normalized conductance, which lies inside the
range for g >= 2 |a| / (2 + |a|). In the example study at a = 0.6 (8 seeds, 2 epochs), the mean
accuracy is 0.21 at g = 0 and 0.42 to 0.44 at g = 0.5, 0.9 and 1.0, with a standard deviation of 0.16
to 0.17 over seeds. Every grid point of one seed shares its key and initial weights, so nearby
nonlinearities can give the same number of correct test digits by chance.

`array.weight_range` (> 0) is the largest weight magnitude. The initial weights are He-normal draws from
`training_seed`, the same for every grid point and seed. The float accuracy of the same SGD (batch
size 1, same learning rate, epochs and initial weights), averaged over one shuffle order per seed, is
stored as `float_sgd_accuracy`.

NOTE: the DAC and ADC of the tile serve both directions. With `dac.bits` set, hidden activations beyond
`dac.input_range` saturate, and errors far below it round to zero.
"""

from __future__ import annotations

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .config import ConfigError, StudyConfig, build_tile, uses_core
from .learning.pulsed_training import (
    MixedPrecisionPulseUpdate, PulsedMLP, StochasticPulseUpdate, init_weights, soft_bounds_device,
)
from .devices import IdealDevice
from .studies import Workload, load_digits_split

__all__ = ["build_workload", "float_sgd_accuracy"]

logger = logging.getLogger(__name__)

_IMAGE_PIXELS = 64
_CLASSES = 10
_DEVICE_KEYS = ("nonlinearity", "asymmetry", "step_noise")


def build_workload(config: StudyConfig) -> Workload:
    """Check the settings, load the digits and return the workload that trains at every grid point."""
    _check_settings(config)
    workload = config.sections["workload"]
    x_train, y_train, x_test, y_test = load_digits_split(workload["test_fraction"], workload["training_seed"])
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    sizes = (_IMAGE_PIXELS, workload["hidden"], _CLASSES)
    initial = init_weights(sizes, key=jax.random.key(workload["training_seed"]))

    def simulate(sections, key, data):
        del data
        network = build_network(sections)
        key_program, key_train, key_test = jax.random.split(key, 3)
        state = network.init(initial, key=key_program)
        state = network.fit(state, x_train, y_train, key=key_train, epochs=sections["workload"]["epochs"])
        accuracy = network.accuracy(state, x_test, y_test, key=key_test, t=sections["read"]["time"])
        return {"accuracy": accuracy}

    # One shuffle order per seed of the study, because the accuracy of a single order can differ from the
    # mean by several points.
    orders = len(config.seeds)
    shuffle_keys = jax.random.split(jax.random.key(workload["training_seed"]), orders)
    reference = float_sgd_accuracy(
        initial, x_train, y_train, x_test, y_test, learning_rate=workload["learning_rate"], epochs=workload["epochs"],
        key=shuffle_keys,
    )
    logger.info(
        "pulsed_digits: float test accuracy of the same SGD %.4f (mean of %d shuffle orders)", reference, orders
    )
    extra = {"float_sgd_accuracy": reference}
    extra_attrs = {
        "float_sgd_accuracy": {
            "units": "1",
            "long_name": f"test accuracy of the same SGD in float32 (batch size 1, same initial weights), without "
            f"tiles, mean of {orders} shuffle orders",
        }
    }
    # Per point: the training set's activations are shared, so a point stores a few copies of its device
    # states and the test batch's activations (about eight float32 arrays of each).
    devices = sum(int(np.prod(w.shape)) for w in initial)
    point_bytes = 4 * 8 * (4 * devices + len(y_test) * (sum(sizes) + workload["hidden"]))
    return Workload(simulate, None, {"accuracy": "1"}, extra, extra_attrs, point_bytes)


def build_network(sections) -> PulsedMLP:
    """Return the in-situ trained perceptron of a study's sections (values may be traced)."""
    settings = sections["workload"]
    tile = build_tile(sections)
    if sections["device"]["model"] == "ideal":
        # A swept device.model leaves the ideal device's keys out of [device], so they take its defaults.
        ideal = IdealDevice()
        device = {name: sections["device"].get(name, getattr(ideal, name)) for name in ("g_min", "g_max", "pulse_step")}
        span = device["g_max"] - device["g_min"]
        pulsed = soft_bounds_device(
            device["pulse_step"] / span, nonlinearity=settings["nonlinearity"], asymmetry=settings["asymmetry"],
            step_noise=settings["step_noise"], g_min=device["g_min"], g_max=device["g_max"],
        )
        tile = eqx.tree_at(lambda t: t.device, tile, pulsed)
    if settings["update"] == "stochastic":
        update = StochasticPulseUpdate(settings["learning_rate"], pulse_length=settings["pulse_length"])
    else:
        update = MixedPrecisionPulseUpdate(settings["learning_rate"], max_pulses=settings["pulse_length"])
    return PulsedMLP(
        tiles=(tile, tile), update=update, weight_range=sections["array"]["weight_range"], pair=settings["pair"],
    )


def _check_settings(config: StudyConfig) -> None:
    """Reject settings that pulsed_digits cannot simulate, for every swept value."""
    source = config.source
    sections = config.sections
    swept = {key: axis.values for axis in config.axes for key in axis.keys}

    def values(dotted):
        section, name = dotted.split(".", 1)
        return swept.get(dotted, (sections[section][name],))

    if any(value <= 0 for value in values("array.weight_range")):
        raise ConfigError(
            f"{source}: pulsed_digits needs array.weight_range > 0, the largest weight magnitude the devices hold "
            "(for example 1.0)"
        )
    if any(value != "write" for value in values("array.programming")):
        raise ConfigError(
            f"{source}: pulsed_digits writes the initial weights once and then trains by pulses; "
            'set array.programming = "write"'
        )
    swept_sections = {key.split(".", 1)[0] for key in swept}
    if uses_core(sections) or {"core", "slicing"} & swept_sections:
        raise ConfigError(f"{source}: pulsed_digits puts each layer on one tile; remove the [core] and [slicing] settings")
    for name in ("cycles", "fault_rate"):
        if any(value != 0 for value in values(f"wear.{name}")):
            raise ConfigError(f"{source}: pulsed_digits does not model wear; set wear.{name} = 0")
    if any(bits != "ideal" for bits in values("adc.bits")) and any(value == 0 for value in values("adc.current_range")):
        raise ConfigError(
            f"{source}: pulsed_digits does not calibrate the ADC; with adc.bits set, give adc.current_range in A"
        )
    if any(value > 1 for value in values("workload.nonlinearity")):
        raise ConfigError(
            f"{source}: workload.nonlinearity must be <= 1 (1 is soft bounds), got {list(values('workload.nonlinearity'))}"
        )
    if any(value >= 2 for value in values("workload.asymmetry")):
        raise ConfigError(
            f"{source}: workload.asymmetry must be below 2 so that the depression step stays positive, "
            f"got {list(values('workload.asymmetry'))}"
        )
    models = values("device.model")
    shaped = [name for name in _DEVICE_KEYS if any(value != 0 for value in values(f"workload.{name}"))]
    if shaped and any(model != "ideal" for model in models):
        raise ConfigError(
            f"{source}: workload.{shaped[0]} shapes the device built for device.model = \"ideal\" only, but the study "
            f"uses device.model {sorted(set(models) - {'ideal'})}; set it to 0 or sweep those models in another study"
        )


def float_sgd_accuracy(weights, x_train, y_train, x_test, y_test, *, learning_rate, epochs, key) -> float:
    """Return the test accuracy of the same perceptron trained by float32 SGD, batch size 1.

    `weights` are the initial (inputs + 1) x outputs matrices with the bias in the last row, as
    `xbar.learning.pulsed_training.init_weights` returns them. The examples are shuffled each epoch with
    orders drawn from `key`. With a 1-D array of keys, one training runs per key and the mean accuracy
    is returned.
    """

    def logits(params, x):
        for index, w in enumerate(params):
            x = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1) @ w
            if index < len(params) - 1:
                x = jax.nn.relu(x)
        return x

    def loss(params, x, label):
        return -jax.nn.log_softmax(logits(params, x))[label]

    def one_example(params, item):
        index = item
        grads = jax.grad(loss)(params, x_train[index], y_train[index])
        return [w - learning_rate * g for w, g in zip(params, grads)], None

    def one_epoch(params, epoch_key):
        params, _ = jax.lax.scan(one_example, params, jax.random.permutation(epoch_key, x_train.shape[0]))
        return params, None

    def accuracy(epochs_key):
        params, _ = jax.lax.scan(one_epoch, list(weights), jax.random.split(epochs_key, epochs))
        return jnp.mean(jnp.argmax(logits(params, x_test), axis=-1) == y_test)

    keys = jnp.reshape(key, (-1,))
    return float(jnp.mean(jax.jit(jax.vmap(accuracy))(keys)))
