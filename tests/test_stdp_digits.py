"""The stdp_digits workload: configuration checks, the Diehl and Cook readout, and learning on an ideal device."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from xbar import studies
from xbar.cli import bundled_configs
from xbar.config import ConfigError, build_tile, load_config, parse_config
from xbar.crossbar import Tile
from xbar.devices import PCM, IdealDevice
from xbar.learning import STDP, Network, Synapses
from xbar.learning.diehl_cook import (
    Presentation, assign_labels, classify, diehl_cook_neurons, normalize_weights, spike_counts, train_unsupervised,
)

TINY = """
[study]
workload = "stdp_digits"

[device]
model = "ideal"

[array]
weight_range = 4.0

[workload]
neurons = 4
train_images = 6
time_step = 1e-3
presentation_time = 0.1
rest_time = 0.05
max_repeats = 1

[sweep]
seeds = 2
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("weight_range = 4.0", "weight_range = 0.0"), "array.weight_range > 0"),
        (("neurons = 4", "neurons = 0"), "workload.neurons = 0: must be > 0"),
        (("train_images = 6", "train_images = -1"), "workload.train_images = -1: must be >= 0"),
        (("presentation_time = 0.1", "presentation_time = 0.1005"), "workload.presentation_time"),
        (("rest_time = 0.05", "rest_time = 0.0505"), "workload.rest_time"),
        (("max_repeats = 1", "max_repeats = 1\ninitial_weight = 1.5"), "workload.initial_weight"),
        (("max_repeats = 1", "max_repeats = 1\nweight_mean = 2.0"), "workload.weight_mean"),
        (("max_repeats = 1", "max_repeats = 1\nmax_rate = 1000.0"), "workload.max_rate"),
        (("max_repeats = 1", "max_repeats = 1\nwinner_take_all = 1"), "workload.winner_take_all"),
        (("max_repeats = 1", "max_repeats = 1\ntheta_plus = -1e-4"), "workload.theta_plus = -0.0001: must be >= 0 V"),
        (("[workload]", "[wear]\ncycles = 1e6\n[workload]"), "wear.cycles"),
        (("[workload]", "[adc]\nbits = 8\n[workload]"), "adc.current_range"),
    ],
)
def test_bad_settings_rejected(edit, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(TINY.replace(*edit), source="stdp.toml")
    assert expected in str(error.value)


def test_swept_rates_checked():
    text = TINY + '\n[[sweep.axes]]\nkey = "workload.max_rate"\nvalues = [63.75, 2000.0]\n'
    with pytest.raises(ConfigError, match="workload.max_rate"):
        parse_config(text)


def test_too_many_training_images_rejected():
    config = parse_config(TINY.replace("train_images = 6", "train_images = 5000"))
    with pytest.raises(ConfigError, match="workload.train_images = 5000"):
        studies.run_study(config)


def test_device_model_names_preset():
    config = parse_config('[device]\nmodel = "taox_hfox"\n')
    tile = build_tile(config.sections)

    assert config.get("device.model") == "taox_hfox"
    assert tile.device == build_tile(parse_config('[device]\nmodel = "preset"\npreset = "taox_hfox"\n').sections).device


def test_swept_device_model_builds_each_device():
    text = TINY + '\n[[sweep.axes]]\nkey = "device.model"\nname = "device"\nvalues = ["ideal", "pcm", "alox_hfo2"]\n'
    config = parse_config(text)

    axis = config.axes[0]
    assert not axis.vectorized
    devices = [build_tile(config.with_values({"device.model": value})).device for value in axis.values]
    assert isinstance(devices[0], IdealDevice)
    assert isinstance(devices[1], PCM)
    assert type(devices[2]).__name__ == "PulsedDevice"


def test_swept_device_model_rejects_device_parameters():
    text = TINY.replace('model = "ideal"', 'model = "ideal"\ng_max = 1e-5')
    text += '\n[[sweep.axes]]\nkey = "device.model"\nvalues = ["ideal", "pcm"]\n'
    with pytest.raises(ConfigError, match="device.g_max cannot be set while device.model is swept"):
        parse_config(text)


def test_unknown_device_model_lists_presets():
    with pytest.raises(ConfigError, match="taox_hfox"):
        parse_config('[device]\nmodel = "memristor"\n')


def test_example_sweeps_devices():
    config = load_config(bundled_configs()["stdp_digits"])

    assert config.get("study.workload") == "stdp_digits"
    assert [axis.key for axis in config.axes] == ["device.model"]
    assert {"ideal", "pcm", "taox_hfox"} <= set(config.axes[0].values)


def test_assign_labels_and_classify():
    # Neurons 0 and 1 respond to class 0 images, neuron 2 to class 1 images, and neuron 3 never fires.
    counts = jnp.array([[5.0, 3.0, 0.0, 0.0], [4.0, 1.0, 1.0, 0.0], [0.0, 0.0, 6.0, 0.0]])
    labels = jnp.array([0, 0, 1])

    assignments = assign_labels(counts, labels, 3)

    np.testing.assert_array_equal(np.asarray(assignments), [0, 0, 1, 0])
    # Class 0 scores the mean over neurons 0, 1 and 3; class 2 has no neuron and scores 0.
    test_counts = jnp.array([[3.0, 3.0, 0.0, 0.0], [0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(classify(test_counts, assignments, 3)), [0, 1, 0])


def _network(n_post=3, learn=True):
    return Network(
        synapses=Synapses(tile=Tile(device=IdealDevice(), weight_range=4.0), rounding="none"),
        neurons=diehl_cook_neurons(theta_plus=0.2e-3),
        plasticity=STDP(a_plus=0.04, a_minus=-4e-4, pairing="nearest") if learn else None,
        dt=1e-3,
    )


def test_normalize_weights_sets_column_sums():
    # Exact pulse counts on the ideal device; each change stays below the cap of 16 pulses (0.64) per call.
    # Column 2 starts at zero, so it cannot be scaled and each weight rises by an equal share instead.
    network = _network()
    key = jax.random.key(0)
    initial = jax.random.uniform(key, (8, 3), maxval=1.0).at[:, 2].set(0.0)
    state = network.init(initial, key=key)

    state, counts = normalize_weights(network, state, 3.0, key=key)

    sums = np.asarray(jnp.sum(network.weights(state, key=key), axis=0))
    np.testing.assert_allclose(sums, 3.0, rtol=1e-5)
    assert float(counts.potentiation + counts.depression) > 0


def test_silent_images_shown_again():
    # One input at a rate far too low to make the layer fire: every image is shown 1 + max_repeats times.
    network = _network()
    key = jax.random.key(1)
    state = network.init(jnp.full((2, 3), 0.1), key=key)
    presentation = Presentation(duration=0.02, rest=0.01, max_rate=1.0, rate_step=1.0, max_repeats=2)
    images = jnp.array([[1.0, 0.0], [0.0, 1.0]])

    _, stats = train_unsupervised(network, state, images, presentation, key=key)

    assert int(stats.images) == 2
    assert int(stats.repeated_images) == 2
    assert int(stats.repeats) == 4
    assert int(stats.steps) == 2 * 3 * 30


def test_spike_counts_shape_and_rejects_wrong_inputs():
    network = _network()
    key = jax.random.key(2)
    state = network.init(jnp.full((4, 3), 1.0), key=key)
    presentation = Presentation(duration=0.05, rest=0.0, max_repeats=0)

    counts = spike_counts(network, state, jnp.ones((5, 4)), presentation, key=key, batch_size=2)

    assert counts.shape == (5, 3)
    assert float(jnp.min(counts)) >= 0
    with pytest.raises(ValueError, match="images must have shape"):
        spike_counts(network, state, jnp.ones((5, 3)), presentation, key=key)


def test_tiny_study_runs():
    # A vectorized axis sends traced neuron parameters through training and readout.
    text = TINY + '\n[[sweep.axes]]\nkey = "workload.theta_plus"\nvalues = [1e-4, 2e-4]\n'

    ds = studies.run_study(parse_config(text))

    assert ds["accuracy"].dims == ("theta_plus", "seed")
    assert ds["accuracy"].attrs["units"] == "1"
    accuracy = ds["accuracy"].values
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    assert np.all(ds["output_rate_hz"].values >= 0)
    assert np.all(np.isfinite(ds["pulses_per_s"].values))


def test_learning_beats_untrained_network():
    """STDP training lifts the test accuracy well above that of the same network before training."""
    x_train, y_train, x_test, y_test = studies.load_digits_split(0.25, 0)
    network = Network(
        synapses=Synapses(tile=Tile(device=IdealDevice(), weight_range=4.0), rounding="none"),
        neurons=diehl_cook_neurons(theta_plus=0.2e-3),
        plasticity=STDP(a_plus=0.04, a_minus=-4e-4, pairing="nearest"),
        dt=5e-4,
    )
    presentation = Presentation()
    key_init, key_train, key_label, key_test = jax.random.split(jax.random.key(0), 4)
    initial = network.init(jax.random.uniform(key_init, (64, 30), maxval=1.2), key=key_init)
    images = jnp.asarray(x_train[:200])
    trained, _ = train_unsupervised(network, initial, images, presentation, key=key_train, weight_sum=30.0)

    def accuracy(state):
        labels = assign_labels(spike_counts(network, state, x_train, presentation, key=key_label), y_train, 10)
        predicted = classify(spike_counts(network, state, x_test, presentation, key=key_test), labels, 10)
        return float(jnp.mean(predicted == y_test))

    # Both accuracies come from the same 449 test images: the standard error of their difference is at most
    # sqrt(2 x 0.25 / 449) = 0.033, so a margin of 0.1 is three standard errors.
    assert accuracy(trained) > accuracy(initial) + 0.1


@pytest.mark.slow
def test_example_study(tmp_path):
    """The bundled example runs end to end, and the ideal device learns well above chance."""
    # In a process of its own, as a user runs it: the example compiles the largest programs of the suite.
    command = [sys.executable, "-m", "xbar.cli", "sweep", "stdp_digits", "--quiet", "--no-plot"]
    subprocess.run(command, cwd=tmp_path, check=True, stdout=subprocess.DEVNULL)

    with xr.open_dataset(tmp_path / "stdp_digits.nc") as ds:
        accuracy = ds["accuracy"].mean("seed")
        assert accuracy.sizes["device"] == 5
        assert np.all((accuracy.values >= 0) & (accuracy.values <= 1))
        # Chance is at most 0.12, the largest class share of the 449 test digits. The ideal device reached 0.71
        # when the example was written.
        assert float(accuracy.sel(device="ideal")) > 0.4
