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

import dataclasses
import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .config import ConfigError, StudyConfig, build_tile, uses_core
from .crossbar import Tile
from .crossbar.layers import Conv2D
from .learning import AnalogConv2D, AnalogDense, AnalogNetwork, LogUniformReadTime, train
from .studies import Workload, _calibrated_adc_range, load_digits_split

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


@dataclasses.dataclass(frozen=True)
class _Mapped:
    """A trained network and the training-set ranges that map it onto tiles."""

    params: tuple[dict, ...]
    input_ranges: tuple[float, ...]  # largest |input| of each layer
    product_ranges: tuple[float, ...]  # largest |x @ W| of each layer, in weight units
    float_accuracy: float  # test accuracy in float32, without tiles


@dataclasses.dataclass(frozen=True)
class _Trained:
    """The two trainings of one network, with its test data."""

    settings: dict
    x_test: jax.Array
    y_test: jax.Array
    software: _Mapped
    hardware_aware: _Mapped


def build_workload(config: StudyConfig) -> Workload:
    """Train both networks of every swept training setting, then return the sweep's workload."""
    _check_settings(config)
    combinations = _training_combinations(config)
    trained = {_settings_key(settings): _train_both(config, settings) for settings in combinations}

    def simulate(sections, key, data):
        del data
        result = trained[_settings_key(sections["workload"])]
        t = sections["read"]["time"]
        accuracies = {}
        for metric, mapped in zip(METRICS, (result.software, result.hardware_aware)):
            network = _build_network(result.settings, _mapping_tiles(sections, mapped))
            # One key for both networks: the same device draws, so the paired difference has less spread.
            logits = network(mapped.params, result.x_test, key=key, read_time=t)
            accuracies[metric] = jnp.mean(jnp.argmax(logits, axis=1) == result.y_test)
        return accuracies

    extra, extra_attrs = _float_accuracies(config, [trained[_settings_key(s)] for s in combinations])
    point_bytes = max(_point_bytes(result) for result in trained.values())
    return Workload(simulate, None, {metric: "1" for metric in METRICS}, extra, extra_attrs, point_bytes)


def _check_settings(config: StudyConfig) -> None:
    source = config.source
    swept = {key: axis.values for axis in config.axes for key in axis.keys}
    if any(value != "write" for value in swept.get("array.programming", (config.get("array.programming"),))):
        raise ConfigError(
            f"{source}: hwa_digits trains through the tile, and pulse programming is not differentiable; "
            'set array.programming = "write"'
        )
    swept_sections = {key.split(".", 1)[0] for axis in config.axes for key in axis.keys}
    if uses_core(config.sections) or {"core", "slicing"} & swept_sections:
        raise ConfigError(
            f"{source}: hwa_digits maps each layer onto one tile of its own size; remove the [core] and [slicing] "
            "settings"
        )
    workload = config.sections["workload"]
    low = swept.get("workload.horizon_min", (workload["horizon_min"],))
    high = swept.get("workload.horizon_max", (workload["horizon_max"],))
    if max(low) > min(high):
        raise ConfigError(
            f"{source}: workload.horizon_min ({max(low)} s) exceeds workload.horizon_max ({min(high)} s); "
            "swap them"
        )


def _training_combinations(config: StudyConfig) -> list[dict]:
    """List the [workload] settings of every swept combination of training keys, in axis order."""
    combinations = [{}]
    for axis in _training_axes(config):
        names = [key.split(".", 1)[1] for key in axis.keys if key.startswith("workload.")]
        combinations = [
            {**combination, **{name: value for name in names}} for combination in combinations for value in axis.values
        ]
    return [{**config.sections["workload"], **combination} for combination in combinations]


def _training_axes(config: StudyConfig) -> list:
    training_keys = {f"workload.{name}" for name in _TRAINING_KEYS}
    return [axis for axis in config.axes if training_keys & set(axis.keys)]


def _settings_key(workload: dict) -> tuple:
    return tuple(workload[name] for name in _TRAINING_KEYS)


# Training.


def _train_both(config: StudyConfig, settings: dict) -> _Trained:
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
    pretrained = train(
        software_loss, float_network.init(key_init), data, optimizer=optimizer, steps=settings["train_steps"],
        key=key_pretrain,
    ).params
    software = train(software_loss, pretrained, data, optimizer=optimizer, steps=settings["hwa_steps"], key=key_software)
    software_mapped = _mapped(float_network, software.params, x_train, x_test, y_test)

    # Each layer's clipping range: weight_clip standard deviations of its pre-trained weights, never beyond
    # their max|W|, so that clipping only narrows the range that the tile maps onto g_max.
    clip_ranges = [
        min(settings["weight_clip"] * float(jnp.std(layer["weights"])), float(jnp.max(jnp.abs(layer["weights"]))))
        for layer in pretrained
    ]
    tiles = _tiles(config.sections, _mapped(float_network, pretrained, x_train, x_test, y_test), clip_ranges)
    horizon = LogUniformReadTime(settings["horizon_min"], settings["horizon_max"])
    aware_network = AnalogNetwork(_build_network(settings, tiles).layers, read_time=horizon)

    def hardware_loss(params, batch, key):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(aware_network(params, x, key=key), y).mean()

    hardware_aware = train(
        hardware_loss, aware_network.clip_weights(pretrained), data, optimizer=optimizer,
        steps=settings["hwa_steps"], key=key_hardware, project=aware_network.clip_weights,
    ).params
    aware_mapped = _mapped(float_network, hardware_aware, x_train, x_test, y_test)
    logger.info(
        "hwa_digits %s: float test accuracy %.4f after software training, %.4f after hardware-aware training",
        kind, software_mapped.float_accuracy, aware_mapped.float_accuracy,
    )
    return _Trained(settings, x_test, y_test, software_mapped, aware_mapped)


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


def _mapped(network: AnalogNetwork, params, x_train, x_test, y_test) -> _Mapped:
    """Measure the ranges that mapping needs on the training set, and the float test accuracy."""
    input_ranges, product_ranges = [], []
    x = x_train
    previous = None
    for layer, layer_params in zip(network.layers, params):
        x = AnalogNetwork._layer_input(previous, layer, x)
        if isinstance(layer, AnalogConv2D):
            im2col = Conv2D(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding)
            product = im2col.patches(x) @ im2col.kernel_matrix(layer_params["weights"])
        else:
            product = x @ layer_params["weights"]
        input_ranges.append(float(jnp.max(jnp.abs(x))))
        product_ranges.append(float(jnp.max(jnp.abs(product))))
        x = layer.software(layer_params, x)
        previous = layer
    predicted = jnp.argmax(network.software(params, x_test), axis=1)
    return _Mapped(params, tuple(input_ranges), tuple(product_ranges), float(jnp.mean(predicted == y_test)))


# Mapping.


def _tiles(sections: dict, mapped: _Mapped, weight_ranges) -> list[Tile]:
    """Return one tile per layer, its DAC and ADC ranges set from the training-set ranges of `mapped`.

    `weight_ranges` gives each layer's `array.weight_range` (0 maps max|W| onto g_max). Values of
    `sections` may be traced.
    """
    tiles = []
    for index, (params, weight_range) in enumerate(zip(mapped.params, weight_ranges)):
        input_range = sections["dac"]["input_range"] if index == 0 else mapped.input_ranges[index]
        layer_sections = {
            **sections,
            "array": {**sections["array"], "weight_range": weight_range},
            "dac": {**sections["dac"], "input_range": input_range},
        }
        adc_range = _calibrated_adc_range(layer_sections, mapped.product_ranges[index], params["weights"])
        tiles.append(build_tile(layer_sections, adc_range=adc_range))
    return tiles


def _mapping_tiles(sections: dict, mapped: _Mapped) -> list[Tile]:
    return _tiles(sections, mapped, [sections["array"]["weight_range"]] * len(mapped.params))


# Results besides the sweep.


def _float_accuracies(config: StudyConfig, results: list[_Trained]):
    """Return the float test accuracies of both trainings, labeled by the swept training axes."""
    axes = _training_axes(config)
    shape = [len(axis.values) for axis in axes]
    dims = [axis.name for axis in axes]
    coords = {axis.name: list(axis.values) for axis in axes}
    extra, extra_attrs = {}, {}
    for name, attribute, training in (
        ("float_accuracy_software_trained", "software", "software-trained"),
        ("float_accuracy_hardware_aware", "hardware_aware", "hardware-aware"),
    ):
        values = np.reshape(np.asarray([getattr(result, attribute).float_accuracy for result in results]), shape)
        extra[name] = xr.DataArray(values, dims=dims, coords=coords) if dims else float(values)
        extra_attrs[name] = {"units": "1", "long_name": f"test accuracy of the {training} network in float32, without tiles"}
    return extra, extra_attrs


def _point_bytes(result: _Trained) -> int:
    """Estimate the working memory of one grid point: about eight float32 arrays per product, per network."""
    images = result.x_test.shape[0]
    per_image = 0
    for mapped in (result.software, result.hardware_aware):
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
    from .variability.output import plot_sweep
    from .variability.sweep import SEED_DIM

    missing = [name for name in METRICS if name not in ds.data_vars]
    if missing:
        raise ValueError(f"plot_hwa_digits needs the metrics {list(METRICS)} of an hwa_digits sweep; missing {missing}")
    axis_dims = [dim for dim in ds[METRICS[0]].dims if dim != SEED_DIM]
    if not axis_dims:
        raise ValueError("plot_hwa_digits needs a sweep axis, such as read.time, to plot against")
    training = xr.DataArray(["software", "hardware-aware"], dims="training", attrs={"long_name": "training"})
    accuracy = xr.concat([ds[name] for name in METRICS], dim=training)
    order = [axis_dims[0], "training", *axis_dims[1:], SEED_DIM]
    accuracy = accuracy.transpose(*[dim for dim in order if dim in accuracy.dims])
    accuracy.attrs = {"units": "1", "long_name": "test accuracy on PCM tiles"}
    return plot_sweep(xr.Dataset({"accuracy": accuracy}), path, "accuracy")
