"""The `faults_digits` workload of `xbar sweep`: variability-aware against standard training under stuck-at faults.

A multilayer perceptron (64-hidden-10, ReLU) learns the scikit-learn digits (8 x 8 images). Before the
sweep, for each combination of swept training keys, the float network is trained with full-batch Adam
for `train_steps` steps from one seed. Two networks continue from it with `variability_steps` more steps
each, so that they differ only in those steps:
    - standard: the steps run on the float network, in software, with the weight clipping below;
    - variability-aware: every step minimizes the mean loss over `device_samples` Monte Carlo chips
      (`xbar.learning.variability_training`). Each chip runs the network through the tile model of the
      study, its devices stuck with probability `train_fault_rate` (a share `wear.sa1_share` of them at
      g_max, the rest at g_min) and their g_max spread lognormally with sigma `g_max_spread`. The weights
      of each layer are clipped after every update to `weight_clip` standard deviations of its pre-trained
      weights (at most their max|W|), which is also the weight that the training tile maps onto g_max.
      Chen et al. (DATE 2017) train against the known defect map of one chip. This training targets
      the expected loss over unknown defect maps instead.

Each grid point maps both networks the same way, one tile per layer: `array.weight_range` (0 maps max|W|
onto g_max), the first layer's DAC range from `dac.input_range`, the second layer's from the largest
hidden activation on the training set, and each calibrated ADC range from the largest ideal product on
the training set. Each seed then draws one chip: its devices' g_max (lognormal sigma `g_max_spread`) and
new stuck-at fault maps at `wear.fault_rate`. Both networks are programmed onto that chip with the same
key, so the same devices are stuck under both, and read at `read.time`. Metrics: the test accuracy of
each, `accuracy_standard` and `accuracy_variability_aware`. The float accuracies of both networks are
stored beside them.

NOTE: training uses the values of the file for every key outside [workload] except the fault rate, which
is `train_fault_rate`. A swept device or converter setting changes the mapping only, not the training.
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
from .learning import AnalogNetwork, train
from .learning.variability_training import DeviceVariation, sample_network, variability_aware_loss
from .studies import Workload, _calibrated_adc_range, load_digits_split
from .variability import LogNormal

__all__ = ["METRICS", "plot_faults_digits"]

logger = logging.getLogger(__name__)

METRICS = ("accuracy_standard", "accuracy_variability_aware")
"""Test accuracy of the standard and of the variability-aware network, both mapped onto the same faulty tiles."""

# [workload] keys that change what is trained. The workload trains once per swept combination of them.
_TRAINING_KEYS = (
    "hidden", "train_steps", "variability_steps", "learning_rate", "weight_clip", "train_fault_rate",
    "device_samples", "g_max_spread", "test_fraction", "training_seed",
)
_INPUTS = 64  # 8 x 8 pixels
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
    """The two trainings of one setting, with its test data."""

    settings: dict
    x_test: jax.Array
    y_test: jax.Array
    standard: _Mapped
    variability_aware: _Mapped


def build_workload(config: StudyConfig) -> Workload:
    """Train both networks of every swept training setting, then return the sweep's workload."""
    _check_settings(config)
    combinations = _training_combinations(config)
    trained = {_settings_key(settings): _train_both(config, settings) for settings in combinations}

    def simulate(sections, key, data):
        del data
        result = trained[_settings_key(sections["workload"])]
        wear = sections["wear"]
        variation = DeviceVariation(
            _g_max_distributions(result.settings), fault_rate=wear["fault_rate"], sa1_share=wear["sa1_share"]
        )
        key_device, key_noise = jax.random.split(key)
        accuracies = {}
        for metric, mapped in zip(METRICS, (result.standard, result.variability_aware)):
            network = _network(result.settings, _tiles(_without_faults(sections), mapped, None))
            # One chip and one noise key for both networks: the same devices are stuck under both, so the
            # paired difference measures the training alone.
            chip = sample_network(network, variation, key_device)
            logits = chip(mapped.params, result.x_test, key=key_noise, read_time=sections["read"]["time"])
            accuracies[metric] = jnp.mean(jnp.argmax(logits, axis=1) == result.y_test)
        return accuracies

    extra, extra_attrs = _float_accuracies(config, [trained[_settings_key(s)] for s in combinations])
    point_bytes = max(_point_bytes(result) for result in trained.values())
    return Workload(simulate, None, {metric: "1" for metric in METRICS}, extra, extra_attrs, point_bytes)


def _check_settings(config: StudyConfig) -> None:
    source = config.source
    swept = {key: axis.values for axis in config.axes for key in axis.keys}

    def values(dotted):
        return swept.get(dotted, (config.get(dotted),))

    if any(value != "write" for value in values("array.programming")):
        raise ConfigError(
            f"{source}: faults_digits trains through the tile, and pulse programming is not differentiable; "
            'set array.programming = "write"'
        )
    swept_sections = {key.split(".", 1)[0] for key in swept}
    if uses_core(config.sections) or {"core", "slicing"} & swept_sections:
        raise ConfigError(
            f"{source}: faults_digits maps each layer onto one tile of its own size; remove the [core] and [slicing] "
            "settings"
        )
    if any(value != 0 for value in values("wear.cycles")):
        raise ConfigError(
            f"{source}: faults_digits models defects as stuck-at faults (wear.fault_rate) only; set wear.cycles = 0"
        )
    rates = values("workload.train_fault_rate")
    if any(not 0 <= rate <= 1 for rate in rates):
        raise ConfigError(f"{source}: workload.train_fault_rate must be between 0 and 1, got {list(rates)}")


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


def _g_max_distributions(settings: dict) -> dict:
    spread = settings["g_max_spread"]
    return {"g_max": LogNormal(spread)} if spread > 0 else {}


def _without_faults(sections: dict) -> dict:
    """Return `sections` with wear.fault_rate = 0: `sample_network` adds the faults to the bare device."""
    return {**sections, "wear": {**sections["wear"], "fault_rate": 0.0}}


# Training.


def _train_both(config: StudyConfig, settings: dict) -> _Trained:
    try:
        import optax
    except ImportError as error:
        raise ImportError('the faults_digits workload needs optax: pip install "xbar-sim[examples]"') from error

    x_train, y_train, x_test, y_test = load_digits_split(settings["test_fraction"], settings["training_seed"])
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    x_test, y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    key_init, key_pretrain, key_standard, key_aware = jax.random.split(jax.random.key(settings["training_seed"]), 4)
    optimizer = optax.adam(settings["learning_rate"])
    float_network = _network(settings, [Tile()] * 2)
    data = (x_train, y_train)

    def software_loss(params, batch, key):
        del key
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(float_network.software(params, x), y).mean()

    pretrained = train(
        software_loss, float_network.init(key_init), data, optimizer=optimizer, steps=settings["train_steps"],
        key=key_pretrain,
    ).params

    # Each layer's clipping range: weight_clip standard deviations of its pre-trained weights, never beyond
    # their max|W|, so that clipping only narrows the range that the tile maps onto g_max. Both trainings
    # clip, so that the faults in the loss are their only difference.
    clip_ranges = [
        min(settings["weight_clip"] * float(jnp.std(layer["weights"])), float(jnp.max(jnp.abs(layer["weights"]))))
        for layer in pretrained
    ]
    pretrained_mapped = _mapped(float_network, pretrained, x_train, x_test, y_test)
    aware_network = _network(settings, _tiles(_without_faults(config.sections), pretrained_mapped, clip_ranges))
    standard = train(
        software_loss, aware_network.clip_weights(pretrained), data, optimizer=optimizer,
        steps=settings["variability_steps"], key=key_standard, project=aware_network.clip_weights,
    ).params
    variation = DeviceVariation(
        _g_max_distributions(settings), fault_rate=settings["train_fault_rate"], sa1_share=config.get("wear.sa1_share")
    )

    def cross_entropy(chip, params, batch, key):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(chip(params, x, key=key), y).mean()

    aware_loss = variability_aware_loss(cross_entropy, aware_network, variation, samples=settings["device_samples"])
    aware = train(
        aware_loss, aware_network.clip_weights(pretrained), data, optimizer=optimizer,
        steps=settings["variability_steps"], key=key_aware, project=aware_network.clip_weights,
    ).params

    standard_mapped = _mapped(float_network, standard, x_train, x_test, y_test)
    aware_mapped = _mapped(float_network, aware, x_train, x_test, y_test)
    logger.info(
        "faults_digits: float test accuracy %.4f after standard training, %.4f after variability-aware training",
        standard_mapped.float_accuracy, aware_mapped.float_accuracy,
    )
    return _Trained(settings, x_test, y_test, standard_mapped, aware_mapped)


def _network(settings: dict, tiles) -> AnalogNetwork:
    """Return the MLP (64, hidden, 10) with one tile per layer, its output the 10 logits."""
    return AnalogNetwork.mlp((_INPUTS, settings["hidden"], _CLASSES), tiles)


def _mapped(network: AnalogNetwork, params, x_train, x_test, y_test) -> _Mapped:
    """Measure the ranges that mapping needs on the training set, and the float test accuracy."""
    input_ranges, product_ranges = [], []
    x = x_train
    for layer, layer_params in zip(network.layers, params):
        input_ranges.append(float(jnp.max(jnp.abs(x))))
        product_ranges.append(float(jnp.max(jnp.abs(x @ layer_params["weights"]))))
        x = layer.software(layer_params, x)
    predicted = jnp.argmax(network.software(params, x_test), axis=1)
    return _Mapped(tuple(params), tuple(input_ranges), tuple(product_ranges), float(jnp.mean(predicted == y_test)))


# Mapping.


def _tiles(sections: dict, mapped: _Mapped, weight_ranges) -> list[Tile]:
    """Return one tile per layer, its DAC and ADC ranges set from the training-set ranges of `mapped`.

    `weight_ranges` gives each layer's `array.weight_range` (0 maps max|W| onto g_max), or None for the
    value of `sections`. Values of `sections` may be traced.
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


# Results besides the sweep.


def _float_accuracies(config: StudyConfig, results: list[_Trained]):
    """Return the float test accuracies of both trainings, labeled by the swept training axes."""
    axes = _training_axes(config)
    shape = [len(axis.values) for axis in axes]
    dims = [axis.name for axis in axes]
    coords = {axis.name: list(axis.values) for axis in axes}
    extra, extra_attrs = {}, {}
    for name, attribute, training in (
        ("float_accuracy_standard", "standard", "standard"),
        ("float_accuracy_variability_aware", "variability_aware", "variability-aware"),
    ):
        values = np.reshape(np.asarray([getattr(result, attribute).float_accuracy for result in results]), shape)
        extra[name] = xr.DataArray(values, dims=dims, coords=coords) if dims else float(values)
        extra_attrs[name] = {"units": "1", "long_name": f"test accuracy of the {training} network in float32, without tiles"}
    return extra, extra_attrs


def _point_bytes(result: _Trained) -> int:
    """Estimate the working memory of one grid point: about eight float32 arrays per product, per network."""
    images = result.x_test.shape[0]
    per_image = 0
    for mapped in (result.standard, result.variability_aware):
        for layer in mapped.params:
            rows, columns = layer["weights"].shape
            per_image += rows + columns
    devices = sum(layer["weights"].size for layer in result.standard.params)
    # Per device: two states, two fault maps and the sampled g_max, for each network.
    return 4 * 8 * images * per_image + 4 * 16 * devices


# Plot.


def plot_faults_digits(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Plot the test accuracy of both trainings against the first sweep axis and write the figure to `path`.

    Each training (standard, variability-aware) gets one line, the mean over seeds, with a band from the
    minimum to the maximum over seeds. Each value of a further axis gets one panel.
    `xbar.variability.output.plot_sweep` writes the figure atomically and needs matplotlib (pip install
    "xbar-sim[plot]"). `ds` is the Dataset of a faults_digits sweep, or its NetCDF file read back with
    `xarray.open_dataset`.

    Raises:
        ValueError: when `ds` lacks either accuracy or has no sweep axis.
    """
    from .variability.output import plot_sweep
    from .variability.sweep import SEED_DIM

    missing = [name for name in METRICS if name not in ds.data_vars]
    if missing:
        raise ValueError(f"plot_faults_digits needs the metrics {list(METRICS)} of a faults_digits sweep; missing {missing}")
    axis_dims = [dim for dim in ds[METRICS[0]].dims if dim != SEED_DIM]
    if not axis_dims:
        raise ValueError("plot_faults_digits needs a sweep axis, such as wear.fault_rate, to plot against")
    training = xr.DataArray(["standard", "variability-aware"], dims="training", attrs={"long_name": "training"})
    accuracy = xr.concat([ds[name] for name in METRICS], dim=training)
    order = [axis_dims[0], "training", *axis_dims[1:], SEED_DIM]
    accuracy = accuracy.transpose(*[dim for dim in order if dim in accuracy.dims])
    accuracy.attrs = {"units": "1", "long_name": "test accuracy on faulty tiles"}
    return plot_sweep(xr.Dataset({"accuracy": accuracy}), path, "accuracy")
