"""The `hwa_digits` workload of `xbar sweep`: hardware-aware training against software training on PCM.

Joshi et al. (Nature Communications 11, 2473 (2020)) show that a network trained with the noise of the
hardware in the loop keeps more of its accuracy after mapping onto PCM than the same network trained in
software. Global drift compensation then keeps that accuracy over time. This workload repeats that
comparison on the scikit-learn digits (8 x 8 images) with a multilayer perceptron (64-hidden-10, ReLU) or
a small convolutional network (3 x 3 convolution with `channels` output channels and ReLU, then a dense
layer).

Before the sweep, for each network (and each combination of swept [workload] keys), the float network
is trained with full-batch Adam for `train_steps` steps from one seed. Two networks continue from it with
`hwa_steps` more steps each, so that they differ only in those steps:
    - software-trained: the steps run on the float network;
    - hardware-aware: every product of the steps runs through the PCM tile model of the study
      (`xbar.learning.AnalogNetwork`). The model adds programming noise, and drift and read noise at a
      read time drawn log-uniformly between `horizon_min` and `horizon_max`. It applies global drift
      compensation when `read.drift_compensation` is set, and DAC and ADC rounding with straight-through
      gradients. The weights of each layer are clipped after every update to `weight_clip` standard
      deviations of its pre-trained weights (at most their max|W|), which is also the weight that the
      training tile maps onto g_max.

Each grid point then maps both networks the same way, one tile per layer: `array.weight_range` (0 maps
max|W| onto g_max), the first layer's DAC range from `dac.input_range`, later layers' from the largest
activation on the training set, and each calibrated ADC range from the largest ideal product on the
training set. Both are programmed with the same PRNG key and read at `read.time`. Metrics: the test
accuracy of each, `accuracy_software_trained` and `accuracy_hardware_aware`. The float accuracies of both
networks are stored beside them.

NOTE: training uses the values of the file for every key outside [workload]. A swept device, converter
or drift-compensation setting changes the mapping only, not the training.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from . import _paired_digits as paired
from .config import ConfigError, StudyConfig
from .crossbar import Tile
from .learning import AnalogConv2D, AnalogDense, AnalogNetwork, LogUniformReadTime, train
from .studies import Workload, load_digits_split

__all__ = ["METRICS", "NETWORKS", "plot_hwa_digits"]

logger = logging.getLogger(__name__)

NETWORKS = ("mlp", "cnn")
"""Values of `workload.network`: a multilayer perceptron or a small convolutional network."""

METRICS = ("accuracy_software_trained", "accuracy_hardware_aware")
"""Test accuracy of the software-trained and of the hardware-aware network, both mapped onto tiles."""

# [workload] keys that change what is trained. The workload trains once per swept combination of them.
_TRAINING_KEYS = (
    "network", "hidden", "channels", "train_steps", "hwa_steps", "learning_rate", "weight_clip", "horizon_min",
    "horizon_max", "test_fraction", "training_seed",
)
_IMAGE_SIDE = 8
_KERNEL_SIZE = 3
_CLASSES = 10


def build_workload(config: StudyConfig) -> Workload:
    """Train both networks of every swept training setting, then return the sweep's workload."""
    _check_settings(config)

    def evaluate(result, sections, key):
        t = sections["read"]["time"]
        accuracies = {}
        for metric, mapped in zip(METRICS, result.networks):
            network = _build_network(result.settings, paired.mapping_tiles(sections, mapped))
            # One key for both networks: the same device draws, so the paired difference has less spread.
            logits = network(mapped.params, result.x_test, key=key, read_time=t)
            accuracies[metric] = jnp.mean(jnp.argmax(logits, axis=1) == result.y_test)
        return accuracies

    return paired.workload(
        config, _TRAINING_KEYS, _train_both, evaluate, metrics=METRICS,
        float_names=("float_accuracy_software_trained", "float_accuracy_hardware_aware"),
        labels=("software-trained", "hardware-aware"), point_bytes=_point_bytes,
    )


def _check_settings(config: StudyConfig) -> None:
    source = config.source
    swept = paired.check_tile_per_layer(config, "hwa_digits")
    workload = config.sections["workload"]
    low = swept.get("workload.horizon_min", (workload["horizon_min"],))
    high = swept.get("workload.horizon_max", (workload["horizon_max"],))
    if max(low) > min(high):
        raise ConfigError(
            f"{source}: workload.horizon_min ({max(low)} s) exceeds workload.horizon_max ({min(high)} s); "
            "swap them"
        )


# Training.


def _train_both(config: StudyConfig, settings: dict) -> paired.TrainedPair:
    try:
        import optax
    except ImportError as error:
        raise ImportError('the hwa_digits workload needs optax: pip install "xbar-sim[examples]"') from error

    kind = settings["network"]
    x_train, y_train, x_test, y_test = load_digits_split(settings["test_fraction"], settings["training_seed"])
    if kind == "cnn":
        x_train = x_train.reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE, 1)
        x_test = x_test.reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE, 1)
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    keys = jax.random.split(jax.random.key(settings["training_seed"]), 4)
    key_init, key_pretrain, key_software, key_hardware = keys
    optimizer = optax.adam(settings["learning_rate"])

    float_network = _build_network(settings, [Tile()] * 2)

    def software_loss(params, batch, key):
        del key
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(float_network.software(params, x), y).mean()

    data = (x_train, y_train)
    logger.info("hwa_digits %s: pre-training in software", kind)
    pretrained = train(
        software_loss, float_network.init(key_init), data, optimizer=optimizer, steps=settings["train_steps"],
        key=key_pretrain,
    ).params
    logger.info("hwa_digits %s: continuing in software", kind)
    software = train(software_loss, pretrained, data, optimizer=optimizer, steps=settings["hwa_steps"], key=key_software)
    software_mapped = paired.measure(float_network, software.params, x_train, x_test, y_test)

    clip_ranges = paired.clip_ranges(pretrained, settings["weight_clip"])
    pretrained_mapped = paired.measure(float_network, pretrained, x_train, x_test, y_test)
    tiles = paired.mapping_tiles(config.sections, pretrained_mapped, clip_ranges)
    horizon = LogUniformReadTime(settings["horizon_min"], settings["horizon_max"])
    aware_network = AnalogNetwork(_build_network(settings, tiles).layers, read_time=horizon)

    def hardware_loss(params, batch, key):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(aware_network(params, x, key=key), y).mean()

    logger.info("hwa_digits %s: continuing with the PCM tiles in the loop (hardware-aware)", kind)
    hardware_aware = train(
        hardware_loss, aware_network.clip_weights(pretrained), data, optimizer=optimizer,
        steps=settings["hwa_steps"], key=key_hardware, project=aware_network.clip_weights,
    ).params
    aware_mapped = paired.measure(float_network, hardware_aware, x_train, x_test, y_test)
    logger.info(
        "hwa_digits %s: float test accuracy %.4f after software training, %.4f after hardware-aware training",
        kind, software_mapped.float_accuracy, aware_mapped.float_accuracy,
    )
    return paired.TrainedPair(settings, x_test, y_test, (software_mapped, aware_mapped))


def _build_network(settings: dict, tiles) -> AnalogNetwork:
    """Return the network of `settings["network"]` with one tile per layer, its output the 10 logits."""
    if settings["network"] == "mlp":
        return AnalogNetwork.mlp((_IMAGE_SIDE * _IMAGE_SIDE, settings["hidden"], _CLASSES), tiles)
    channels = settings["channels"]
    side = _IMAGE_SIDE - _KERNEL_SIZE + 1  # "VALID" padding
    return AnalogNetwork([
        AnalogConv2D(1, channels, _KERNEL_SIZE, tiles[0], activation="relu"),
        AnalogDense(side * side * channels, _CLASSES, tiles[1]),
    ])


def _point_bytes(result: paired.TrainedPair) -> int:
    """Estimate the working memory of one grid point: about eight float32 arrays per product, per network."""
    images = result.x_test.shape[0]
    per_image = 0
    for mapped in result.networks:
        for layer in mapped.params:
            rows = int(np.prod(layer["weights"].shape[:-1]))
            columns = layer["weights"].shape[-1]
            # A convolution takes one product per output pixel.
            products = 1 if layer["weights"].ndim == 2 else (_IMAGE_SIDE - _KERNEL_SIZE + 1) ** 2
            per_image += products * (rows + columns)
    return 4 * 8 * images * per_image


# Plot.


def plot_hwa_digits(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Plot the test accuracy of both trainings against the first sweep axis and write the figure to `path`.

    Each training (software-trained, hardware-aware) gets one line, the mean over seeds, with a band from
    the minimum to the maximum over seeds. Each value of a further axis (the network, say) gets one panel.
    `xbar.variability.output.plot_sweep` writes the figure atomically and needs matplotlib (pip install
    "xbar-sim[plot]"). `ds` is the Dataset of an hwa_digits sweep, or its NetCDF file read back with
    `xarray.open_dataset`.

    Raises:
        ValueError: when `ds` lacks either accuracy or has no sweep axis.
    """
    return paired.plot_pair(
        ds, path, metrics=METRICS, labels=("software", "hardware-aware"), workload="hwa_digits",
        axis_example="read.time", long_name="test accuracy on PCM tiles",
    )
