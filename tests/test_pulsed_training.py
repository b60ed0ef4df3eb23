"""In-situ training with pulsed updates: pulse-train statistics, the SGD limit, mixed precision, the workload."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.config import ConfigError, parse_config
from xbar.crossbar import Tile
from xbar.devices import IdealDevice
from xbar.learning.pulsed_training import (
    MixedPrecisionPulseUpdate, PulsedMLP, StochasticPulseUpdate, coincidence_counts, init_weights, pulse_granularity,
    soft_bounds_device,
)
from xbar.pulsed_digits import build_network
from xbar.studies import load_digits_split, run_study


def test_coincidence_counts_mean():
    p = jnp.array([0.1, 0.5, 0.9, 1.0])
    q = jnp.array([0.2, 0.7, 1.0])
    pulse_length, samples = 10, 4000
    counts = jax.vmap(lambda k: coincidence_counts(p, q, pulse_length, key=k))(jax.random.split(jax.random.key(0), samples))
    expected = pulse_length * np.outer(p, q)
    # Each count is binomial(BL, p q), so its sample mean has standard error sqrt(BL pq (1 - pq) / samples);
    # 5 standard errors (plus float slack where pq = 1 and the variance is 0) bound a false failure below 1e-6.
    tolerance = 5 * np.sqrt(pulse_length * np.outer(p, q) * (1 - np.outer(p, q)) / samples) + 1e-6
    np.testing.assert_array_less(np.abs(np.mean(counts, axis=0) - expected), tolerance)
    assert float(jnp.max(counts)) <= pulse_length


def test_coincidence_counts_rejects_bad_length():
    with pytest.raises(ValueError, match="pulse_length"):
        coincidence_counts(jnp.ones(2), jnp.ones(2), 0, key=jax.random.key(0))


def test_stochastic_counts_mean_is_sgd():
    update = StochasticPulseUpdate(learning_rate=0.02, pulse_length=10)
    x = jnp.array([0.9, -0.4, 0.1, 0.0])
    d = jnp.array([0.05, -0.2, 0.3])
    granularity = 0.002
    samples = 4000
    counts = jax.vmap(lambda k: update.pulse_counts(update.init_accumulator((4, 3)), x, d, granularity, key=k)[1])(
        jax.random.split(jax.random.key(1), samples)
    )
    # Mean weight change = -eta x d^T. Every count is a sign times binomial(BL, p q) with BL p q = eta |x d| / eps
    # (no probability exceeds 1 here), so the variance is at most that mean; 5 standard errors as above.
    expected = -update.learning_rate * np.outer(x, d) / granularity
    tolerance = 5 * np.sqrt(np.abs(expected) / samples) + 1e-6
    np.testing.assert_array_less(np.abs(np.mean(counts, axis=0) - expected), tolerance)
    assert float(jnp.max(jnp.abs(counts[:, 3, :]))) == 0.0, "a zero input must draw no pulses"


def test_update_management_avoids_clipping():
    # C = sqrt(0.05 / (10 * 0.001)) = 2.2, so without management the row probabilities C |x| clip at 1 and the
    # mean update falls short; balancing by sqrt(max|d| / max|x|) brings both below 1.
    x = jnp.array([1.0, 0.5])
    d = jnp.array([0.01, -0.02])
    samples = 8000
    keys = jax.random.split(jax.random.key(2), samples)
    means = {}
    for managed in (False, True):
        update = StochasticPulseUpdate(learning_rate=0.05, pulse_length=10, update_management=managed)
        counts = jax.vmap(lambda k: update.pulse_counts(update.init_accumulator(()), x, d, 0.001, key=k)[1])(keys)
        means[managed] = np.mean(np.asarray(counts), axis=0)
    expected = -0.05 * np.outer(x, d) / 0.001
    # Variance at most the mean count (|expected|); 5 standard errors.
    tolerance = 5 * np.sqrt(np.abs(expected) / samples)
    np.testing.assert_array_less(np.abs(means[True] - expected), tolerance)
    assert abs(means[False][0, 1]) < 0.5 * abs(expected[0, 1])


def test_ideal_device_large_bl_approximates_sgd():
    # One layer on a linear symmetric device with fine steps and long pulse trains: one train_step must
    # move the weights by about -eta [x, 1] (softmax - onehot)^T, the SGD step.
    device = soft_bounds_device(1e-4)
    learning_rate = 0.1
    network = PulsedMLP(tiles=(Tile(device=device),), update=StochasticPulseUpdate(learning_rate, pulse_length=1000))
    weights = [0.1 * jax.random.normal(jax.random.key(3), (6, 4))]
    state = network.init(weights, key=jax.random.key(4))
    before = network.weights(state)[0]
    x = jnp.array([0.8, 0.2, 0.0, 0.5, 1.0])
    label = 2
    after = network.weights(network.train_step(state, x, label, key=jax.random.key(5)))[0]

    logits = jnp.concatenate([x, jnp.ones(1)]) @ before
    error = jax.nn.softmax(logits) - jax.nn.one_hot(label, 4)
    sgd = -learning_rate * np.outer(np.append(x, 1.0), error)
    # Expected counts are eta |x d| / eps = 500 |x d| per device (eps = 2 R step = 2e-4) with variance at most
    # that, so the relative error of the whole update is about 1 / sqrt(total counts), a few percent here.
    relative = np.linalg.norm(np.asarray(after - before) - sgd) / np.linalg.norm(sgd)
    assert relative < 0.1


def test_mixed_precision_residual_below_epsilon():
    update = MixedPrecisionPulseUpdate(learning_rate=0.05, max_pulses=1000)
    epsilon = 0.003
    chi = update.init_accumulator((5, 3))
    requested = jnp.zeros((5, 3))
    applied = jnp.zeros((5, 3))
    for step, key in enumerate(jax.random.split(jax.random.key(6), 30)):
        key_x, key_d = jax.random.split(key)
        x = jax.random.uniform(key_x, (5,))
        d = jax.random.normal(key_d, (3,)) * 0.1
        chi, counts = update.pulse_counts(chi, x, d, epsilon, key=key)
        requested = requested - 0.05 * jnp.outer(x, d)
        applied = applied + counts * epsilon
        assert float(jnp.max(jnp.abs(chi))) < epsilon, f"|chi| reached epsilon at update {step}"
        np.testing.assert_array_equal(np.asarray(counts), np.round(np.asarray(counts)))
    np.testing.assert_allclose(np.asarray(applied + chi), np.asarray(requested), atol=1e-5)


def test_mixed_precision_cap_keeps_remainder():
    update = MixedPrecisionPulseUpdate(learning_rate=1.0, max_pulses=2)
    chi, counts = update.pulse_counts(update.init_accumulator((1, 1)), jnp.array([1.0]), jnp.array([-1.0]), 0.1, key=None)
    assert float(counts[0, 0]) == 2.0
    assert float(chi[0, 0]) == pytest.approx(0.8, abs=1e-5)


def test_pulse_granularity_is_mid_range_mean():
    device = soft_bounds_device(0.002, nonlinearity=0.7, asymmetry=0.4, g_max=20e-6)
    assert float(pulse_granularity(device)) == pytest.approx(0.002 * 20e-6, rel=1e-5)
    assert float(pulse_granularity(IdealDevice(pulse_step=1e-7))) == pytest.approx(1e-7)


def test_soft_bounds_device_steps():
    device = soft_bounds_device(0.01, nonlinearity=1.0, asymmetry=0.5)
    assert float(device.up.mean_step(0.5, True)) == pytest.approx(0.0125)
    assert float(device.down.mean_step(0.5, False)) == pytest.approx(0.0075)
    assert float(device.up.mean_step(1.0, True)) == pytest.approx(0.0, abs=1e-9)


def test_soft_bounds_symmetry_point():
    # Alternating up and down pulses settle where the two mean steps are equal, (2 + a)(1 - g u) =
    # (2 - a)(1 - g (1 - u)), so u* = 1/2 + a (2 - g) / (4 g). Below g = 2 a / (2 + a) (0.46 at a = 0.6) u*
    # lies above 1, and the device ends at the upper bound as with constant steps (g = 0).
    asymmetry = 0.6
    gammas = np.array([0.0, 0.3, 0.5, 0.9, 1.0])

    def settle(gamma):
        device = soft_bounds_device(0.001, nonlinearity=gamma, asymmetry=asymmetry)

        def up_then_down(_, u):
            return device.step(device.step(u, True, 0.0), False, 0.0)

        return jax.lax.fori_loop(0, 20_000, up_then_down, jnp.float32(0.5))

    settled = np.asarray(jax.jit(jax.vmap(settle))(jnp.asarray(gammas, jnp.float32)))
    with np.errstate(divide="ignore"):
        expected = np.minimum(0.5 + asymmetry * (2 - gammas) / (4 * gammas), 1.0)
    # The steps are noise-free, so after each down pulse the device sits within one step (below 0.0013
    # near u*) of u*. 20,000 pairs exceed 25 relaxation times (750 pairs at g = 0.5) and the 2,000 pairs
    # that g = 0.3 needs to reach the bound.
    np.testing.assert_allclose(settled, expected, atol=0.002)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"nonlinearity": 1.5}, "nonlinearity"), ({"asymmetry": 2.0}, "asymmetry"), ({"step_noise": -0.1}, "step_noise")],
)
def test_soft_bounds_device_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        soft_bounds_device(0.01, **kwargs)


def test_constructors_reject_bad_values():
    tile = Tile(device=soft_bounds_device(0.01))
    with pytest.raises(ValueError, match="learning_rate"):
        StochasticPulseUpdate(learning_rate=0.0)
    with pytest.raises(ValueError, match="pulse_length"):
        StochasticPulseUpdate(learning_rate=0.1, pulse_length=0)
    with pytest.raises(ValueError, match="max_pulses"):
        MixedPrecisionPulseUpdate(learning_rate=0.1, max_pulses=0)
    with pytest.raises(ValueError, match="pair"):
        PulsedMLP(tiles=(tile,), update=StochasticPulseUpdate(0.1), pair="single")
    with pytest.raises(ValueError, match="weight_range"):
        PulsedMLP(tiles=(tile,), update=StochasticPulseUpdate(0.1), weight_range=0.0)
    with pytest.raises(ValueError, match="update"):
        PulsedMLP(tiles=(tile,), update=0.1)
    network = PulsedMLP(tiles=(tile, tile), update=StochasticPulseUpdate(0.1))
    with pytest.raises(ValueError, match="one weight matrix per tile"):
        network.init([jnp.zeros((3, 2))], key=jax.random.key(0))
    with pytest.raises(ValueError, match="bias row"):
        network.init([jnp.zeros((3, 2)), jnp.zeros((2, 2))], key=jax.random.key(0))
    state = network.init(init_weights((2, 2, 2), key=jax.random.key(0)), key=jax.random.key(1))
    with pytest.raises(ValueError, match="epochs"):
        network.fit(state, jnp.zeros((4, 2)), jnp.zeros(4, jnp.int32), key=jax.random.key(0), epochs=0)
    with pytest.raises(ValueError, match="labels"):
        network.fit(state, jnp.zeros((4, 2)), jnp.zeros(3, jnp.int32), key=jax.random.key(0))


def test_differential_pair_potentiates_only():
    network = PulsedMLP(tiles=(Tile(device=soft_bounds_device(0.01)),), update=StochasticPulseUpdate(1.0), pair="differential")
    state = network.init([jnp.zeros((3, 2))], key=jax.random.key(0))
    trained = network.fit(state, jnp.ones((20, 2)), jnp.zeros(20, jnp.int32), key=jax.random.key(1))
    layer, before = trained.layers[0].tile, state.layers[0].tile
    assert bool(jnp.all(layer.g_pos.g >= before.g_pos.g))
    assert bool(jnp.all(layer.g_neg.g >= before.g_neg.g))
    assert float(jnp.sum(layer.g_pos.g - before.g_pos.g)) > 0


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = load_digits_split(0.25, 0)
    return jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_test), jnp.asarray(y_test)


def _train(asymmetry, key, digits):
    x_train, y_train, x_test, y_test = digits
    device = soft_bounds_device(0.001, asymmetry=asymmetry)
    network = PulsedMLP(tiles=(Tile(device=device),) * 2, update=StochasticPulseUpdate(0.03))
    state = network.init(init_weights((64, 32, 10), key=jax.random.key(0)), key=key)
    state = network.fit(state, x_train, y_train, key=key)
    return network.accuracy(state, x_test, y_test, key=key), network.weights(state)[0]


def test_ideal_device_beats_asymmetric(digits):
    # Vectorized over the asymmetry, so one compilation serves both devices.
    accuracy, _ = jax.jit(jax.vmap(lambda a: _train(a, jax.random.key(7), digits)))(jnp.array([0.0, 1.0]))
    ideal, asymmetric = (float(value) for value in accuracy)
    # 449 test digits: a gap of 0.2 is many standard errors (at most 0.024 each) of either accuracy.
    assert ideal > 0.75
    assert ideal > asymmetric + 0.2


def test_fit_reproducible_under_jit(digits):
    small = tuple(array[:40] for array in digits[:2]) + digits[2:]
    train = jax.jit(lambda key: _train(0.1, key, small))
    first, weights_first = train(jax.random.key(8))
    second, weights_second = train(jax.random.key(8))
    _, weights_other = train(jax.random.key(9))
    np.testing.assert_array_equal(np.asarray(weights_first), np.asarray(weights_second))
    assert float(first) == float(second)
    assert not np.array_equal(np.asarray(weights_first), np.asarray(weights_other))


_STUDY = """
[study]
workload = "pulsed_digits"
[device]
model = "ideal"
pulse_step = 0.025e-6
[array]
weight_range = 1.0
[workload]
hidden = 8
epochs = 1
learning_rate = 0.03
test_fraction = 0.8
[sweep]
seeds = 1
[[sweep.axes]]
key = "workload.asymmetry"
values = [0.0, 1.2]
"""


def test_pulsed_digits_study():
    ds = run_study(parse_config(_STUDY))
    accuracy = ds["accuracy"].squeeze("seed").values
    assert accuracy.shape == (2,)
    assert math.isfinite(float(ds["float_sgd_accuracy"]))
    # About 1440 test digits: a gap of 0.1 is many standard errors (at most 0.013) of either accuracy.
    assert accuracy[0] > accuracy[1] + 0.1


def test_pulsed_digits_traced_nonlinearity(digits):
    # A vectorized sweep passes traced values: nearby nonlinearities must still build different devices
    # and train to different weights from the same key and initial weights.
    config = parse_config(_STUDY)
    weights = init_weights((64, 8, 10), key=jax.random.key(0))
    # A training digit that activates hidden units, so that both layers receive pulses.
    x, label = digits[0][0], digits[1][0]

    def one_step(nonlinearity):
        network = build_network(config.with_values({"workload.nonlinearity": nonlinearity, "workload.asymmetry": 0.6}))
        state = network.init(weights, key=jax.random.key(1))
        state = network.train_step(state, x, label, key=jax.random.key(2))
        return network.tiles[0].device.up, network.weights(state)

    up, trained = jax.jit(jax.vmap(one_step))(jnp.array([0.9, 1.0]))
    np.testing.assert_allclose(np.asarray(up.gamma), [0.9, 1.0])
    # pulse_step / range = 0.001 is the mean step at mid-range, so the up step at u = 0 is 0.001 (1 + a/2) / (1 - g/2).
    np.testing.assert_allclose(np.asarray(up.step), [0.0013 / 0.55, 0.0013 / 0.5], rtol=1e-5)
    for layer in range(2):
        assert not np.array_equal(np.asarray(trained[layer][0]), np.asarray(trained[layer][1])), f"layer {layer}"


@pytest.mark.parametrize(
    "edit, match",
    [
        (("weight_range = 1.0", "weight_range = 0.0"), "weight_range > 0"),
        (('model = "ideal"\npulse_step = 0.025e-6', 'model = "taox_hfox"'), "workload.asymmetry shapes"),
        (("values = [0.0, 1.2]", "values = [0.0, 2.5]"), "below 2"),
        (("hidden = 8", 'hidden = 8\nupdate = "sgd"'), "update"),
    ],
)
def test_pulsed_digits_config_errors(edit, match):
    text = _STUDY.replace(*edit)
    with pytest.raises(ConfigError, match=match):
        config = parse_config(text)
        run_study(config)
