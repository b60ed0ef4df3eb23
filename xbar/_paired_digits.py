"""Helpers shared by the digits workloads that train two networks and map both onto tiles.

`hwa_digits` (software against hardware-aware training) and `faults_digits` (standard against
variability-aware training) follow one pattern. Before the sweep, each swept combination of training keys
trains a pair of networks from one pre-trained start. Every grid point then maps both networks onto tiles
in the same way and measures their test accuracies. This module contains the parts of that pattern: the
training combinations, the ranges measured on the training set, the tiles built from them, the float
accuracies stored beside the sweep and the plot of both accuracies.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .config import ConfigError, StudyConfig, build_tile, uses_core
from .crossbar import Tile
from .crossbar.layers import Conv2D
from .learning import AnalogConv2D, AnalogNetwork
from .studies import Workload, _calibrated_adc_range


@dataclasses.dataclass(frozen=True)
class Mapped:
    """A trained network and the training-set ranges that map it onto tiles."""

    params: tuple[dict, ...]
    input_ranges: tuple[float, ...]  # largest |input| of each layer
    product_ranges: tuple[float, ...]  # largest |x @ W| of each layer, in weight units
    float_accuracy: float  # test accuracy in float32, without tiles


@dataclasses.dataclass(frozen=True)
class TrainedPair:
    """The two trainings of one setting, in the order of the workload's metrics, with the test data."""

    settings: dict
    x_test: jax.Array
    y_test: jax.Array
    networks: tuple[Mapped, Mapped]


# Swept training settings.


def training_axes(config: StudyConfig, training_keys: Sequence[str]) -> list:
    """Return the sweep axes that set at least one of the [workload] keys `training_keys`."""
    dotted = {f"workload.{name}" for name in training_keys}
    return [axis for axis in config.axes if dotted & set(axis.keys)]


def training_combinations(config: StudyConfig, training_keys: Sequence[str]) -> list[dict]:
    """List the [workload] settings of every swept combination of training keys, in axis order."""
    combinations = [{}]
    for axis in training_axes(config, training_keys):
        names = [key.split(".", 1)[1] for key in axis.keys if key.startswith("workload.")]
        combinations = [
            {**combination, **{name: value for name in names}} for combination in combinations for value in axis.values
        ]
    return [{**config.sections["workload"], **combination} for combination in combinations]


def settings_key(workload: dict, training_keys: Sequence[str]) -> tuple:
    """Return the values of the training keys, which identify one training."""
    return tuple(workload[name] for name in training_keys)


def workload(config: StudyConfig, training_keys: Sequence[str], train_pair: Callable, evaluate: Callable, *,
             metrics: Sequence[str], float_names: Sequence[str], labels: Sequence[str], point_bytes: Callable) -> Workload:
    """Train the pair of every swept combination of training keys, then return the sweep's workload.

    `train_pair(config, settings)` returns the `TrainedPair` of one combination's [workload] settings, and
    `evaluate(pair, sections, key)` the metrics of one grid point (a dict of the names in `metrics`).
    `float_names` and `labels` name the float accuracies stored beside the sweep (see `float_accuracies`),
    and `point_bytes(pair)` estimates the working memory of one grid point.
    """
    results = [train_pair(config, settings) for settings in training_combinations(config, training_keys)]
    by_key = {settings_key(result.settings, training_keys): result for result in results}

    def simulate(sections, key, data):
        del data
        return evaluate(by_key[settings_key(sections["workload"], training_keys)], sections, key)

    extra, extra_attrs = float_accuracies(config, training_keys, results, float_names, labels)
    units = {metric: "1" for metric in metrics}
    return Workload(simulate, None, units, extra, extra_attrs, max(point_bytes(result) for result in results))


def check_tile_per_layer(config: StudyConfig, workload: str) -> dict:
    """Reject pulse programming and cores for a workload that trains through one tile per layer.

    Returns the swept values of every swept key, for the workload's own checks.
    """
    source = config.source
    swept = {key: axis.values for axis in config.axes for key in axis.keys}
    if any(value != "write" for value in swept.get("array.programming", (config.get("array.programming"),))):
        raise ConfigError(
            f"{source}: {workload} trains through the tile, and pulse programming is not differentiable; "
            'set array.programming = "write"'
        )
    swept_sections = {key.split(".", 1)[0] for key in swept}
    if uses_core(config.sections) or {"core", "slicing"} & swept_sections:
        raise ConfigError(
            f"{source}: {workload} maps each layer onto one tile of its own size; remove the [core] and [slicing] "
            "settings"
        )
    return swept


# Mapping.


def clip_ranges(params, weight_clip: float) -> list[float]:
    """Return each layer's clipping range: `weight_clip` standard deviations of its weights, at most max|W|.

    Because of the bound by max|W|, clipping can only narrow the range that the tile maps onto g_max.
    """
    return [
        min(weight_clip * float(jnp.std(layer["weights"])), float(jnp.max(jnp.abs(layer["weights"]))))
        for layer in params
    ]


def measure(network: AnalogNetwork, params, x_train, x_test, y_test) -> Mapped:
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
    return Mapped(tuple(params), tuple(input_ranges), tuple(product_ranges), float(jnp.mean(predicted == y_test)))


def mapping_tiles(sections: dict, mapped: Mapped, weight_ranges=None) -> list[Tile]:
    """Return one tile per layer, its DAC and ADC ranges set from the training-set ranges of `mapped`.

    The first layer's DAC range is `dac.input_range`, and each later layer's is the largest activation it
    receives. Each ADC range is calibrated on the largest ideal product. `weight_ranges` gives each layer's
    `array.weight_range` (0 maps max|W| onto g_max), or None for the value of `sections`. Values of
    `sections` may be traced.
    """
    if weight_ranges is None:
        weight_ranges = [sections["array"]["weight_range"]] * len(mapped.params)
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


# Results besides the sweep, and the plot.


def float_accuracies(config: StudyConfig, training_keys: Sequence[str], results: list[TrainedPair], names, labels):
    """Return the float test accuracies of both trainings, labeled by the swept training axes.

    `names` are the two variable names and `labels` the two trainings as the long names call them.
    """
    axes = training_axes(config, training_keys)
    shape = [len(axis.values) for axis in axes]
    dims = [axis.name for axis in axes]
    coords = {axis.name: list(axis.values) for axis in axes}
    extra, extra_attrs = {}, {}
    for index, (name, label) in enumerate(zip(names, labels)):
        values = np.reshape(np.asarray([result.networks[index].float_accuracy for result in results]), shape)
        extra[name] = xr.DataArray(values, dims=dims, coords=coords) if dims else float(values)
        long_name = f"test accuracy of the {label} network in float32, without tiles"
        extra_attrs[name] = {"units": "1", "long_name": long_name}
    return extra, extra_attrs


def plot_pair(ds: xr.Dataset, path: str | os.PathLike, *, metrics, labels, workload: str, axis_example: str,
              long_name: str) -> Path:
    """Plot both accuracies of a paired sweep against its first axis (see `plot_hwa_digits`)."""
    from .variability.output import plot_sweep
    from .variability.sweep import SEED_DIM

    missing = [name for name in metrics if name not in ds.data_vars]
    if missing:
        raise ValueError(f"plot_{workload} needs the metrics {list(metrics)} of a {workload} sweep; missing {missing}")
    axis_dims = [dim for dim in ds[metrics[0]].dims if dim != SEED_DIM]
    if not axis_dims:
        raise ValueError(f"plot_{workload} needs a sweep axis, such as {axis_example}, to plot against")
    training = xr.DataArray(list(labels), dims="training", attrs={"long_name": "training"})
    accuracy = xr.concat([ds[name] for name in metrics], dim=training)
    order = [axis_dims[0], "training", *axis_dims[1:], SEED_DIM]
    accuracy = accuracy.transpose(*[dim for dim in order if dim in accuracy.dims])
    accuracy.attrs = {"units": "1", "long_name": long_name}
    return plot_sweep(xr.Dataset({"accuracy": accuracy}), path, "accuracy")
