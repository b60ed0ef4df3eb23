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

import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import xarray as xr

from . import _paired_digits as paired
from .config import ConfigError, StudyConfig
from .crossbar import Tile
from .learning import AnalogNetwork, train
from .learning.variability_training import DeviceVariation, sample_network, variability_aware_loss
from .studies import Workload, load_digits_split
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


def build_workload(config: StudyConfig) -> Workload:
    """Train both networks of every swept training setting, then return the sweep's workload."""
    _check_settings(config)

    def evaluate(result, sections, key):
        wear = sections["wear"]
        variation = DeviceVariation(
            _g_max_distributions(result.settings), fault_rate=wear["fault_rate"], sa1_share=wear["sa1_share"]
        )
        key_device, key_noise = jax.random.split(key)
        accuracies = {}
        for metric, mapped in zip(METRICS, result.networks):
            network = _network(result.settings, paired.mapping_tiles(_without_faults(sections), mapped))
            # One chip and one noise key for both networks: the same devices are stuck under both, so the
            # paired difference measures the training alone.
            chip = sample_network(network, variation, key_device)
            logits = chip(mapped.params, result.x_test, key=key_noise, read_time=sections["read"]["time"])
            accuracies[metric] = jnp.mean(jnp.argmax(logits, axis=1) == result.y_test)
        return accuracies

    return paired.workload(
        config, _TRAINING_KEYS, _train_both, evaluate, metrics=METRICS,
        float_names=("float_accuracy_standard", "float_accuracy_variability_aware"),
        labels=("standard", "variability-aware"), point_bytes=_point_bytes,
    )


def _check_settings(config: StudyConfig) -> None:
    source = config.source
    swept = paired.check_tile_per_layer(config, "faults_digits")

    def values(dotted):
        return swept.get(dotted, (config.get(dotted),))

    if any(value != 0 for value in values("wear.cycles")):
        raise ConfigError(
            f"{source}: faults_digits models defects as stuck-at faults (wear.fault_rate) only; set wear.cycles = 0"
        )
    rates = values("workload.train_fault_rate")
    if any(not 0 <= rate <= 1 for rate in rates):
        raise ConfigError(f"{source}: workload.train_fault_rate must be between 0 and 1, got {list(rates)}")


def _g_max_distributions(settings: dict) -> dict:
    spread = settings["g_max_spread"]
    return {"g_max": LogNormal(spread)} if spread > 0 else {}


def _without_faults(sections: dict) -> dict:
    """Return `sections` with wear.fault_rate = 0: `sample_network` adds the faults to the bare device."""
    return {**sections, "wear": {**sections["wear"], "fault_rate": 0.0}}


# Training.


def _train_both(config: StudyConfig, settings: dict) -> paired.TrainedPair:
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

    logger.info("faults_digits: pre-training in software")
    pretrained = train(
        software_loss, float_network.init(key_init), data, optimizer=optimizer, steps=settings["train_steps"],
        key=key_pretrain,
    ).params

    # Both trainings clip, so that the faults in the loss are their only difference.
    clip_ranges = paired.clip_ranges(pretrained, settings["weight_clip"])
    pretrained_mapped = paired.measure(float_network, pretrained, x_train, x_test, y_test)
    aware_tiles = paired.mapping_tiles(_without_faults(config.sections), pretrained_mapped, clip_ranges)
    aware_network = _network(settings, aware_tiles)
    logger.info("faults_digits: continuing in software with weight clipping (standard)")
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
    logger.info("faults_digits: continuing over %d sampled faulty chips per step (variability-aware)",
                settings["device_samples"])
    aware = train(
        aware_loss, aware_network.clip_weights(pretrained), data, optimizer=optimizer,
        steps=settings["variability_steps"], key=key_aware, project=aware_network.clip_weights,
    ).params

    standard_mapped = paired.measure(float_network, standard, x_train, x_test, y_test)
    aware_mapped = paired.measure(float_network, aware, x_train, x_test, y_test)
    logger.info(
        "faults_digits: float test accuracy %.4f after standard training, %.4f after variability-aware training",
        standard_mapped.float_accuracy, aware_mapped.float_accuracy,
    )
    return paired.TrainedPair(settings, x_test, y_test, (standard_mapped, aware_mapped))


def _network(settings: dict, tiles) -> AnalogNetwork:
    """Return the MLP (64, hidden, 10) with one tile per layer, its output the 10 logits."""
    return AnalogNetwork.mlp((_INPUTS, settings["hidden"], _CLASSES), tiles)


# Results besides the sweep.


def _point_bytes(result: paired.TrainedPair) -> int:
    """Estimate the working memory of one grid point: about eight float32 arrays per product, per network."""
    images = result.x_test.shape[0]
    per_image = 0
    for mapped in result.networks:
        for layer in mapped.params:
            rows, columns = layer["weights"].shape
            per_image += rows + columns
    devices = sum(layer["weights"].size for layer in result.networks[0].params)
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
    return paired.plot_pair(
        ds, path, metrics=METRICS, labels=("standard", "variability-aware"), workload="faults_digits",
        axis_example="wear.fault_rate", long_name="test accuracy on faulty tiles",
    )
