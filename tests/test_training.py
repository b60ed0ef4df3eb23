"""Hardware-aware training: the tile forward model in the loop, its gradients, and the training loop.

Gradient checks against central finite differences run in float64, switched on inside each of those tests
only (`jax.enable_x64(True)` as a context manager), so the other tests keep JAX's float32 default. Every
loss there uses fixed PRNG keys, so the +h and -h evaluations see identical noise.
"""

from __future__ import annotations

import math
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xbar.crossbar import ADC, DAC, Tile
from xbar.devices import PCM, ProgramVerify
from xbar.learning.training import (
    AnalogConv2D,
    AnalogDense,
    AnalogNetwork,
    LogUniformReadTime,
    analog_matmul,
    as_arrays,
    train,
    with_straight_through,
)

YEAR = 3.15e7  # s
HORIZON = LogUniformReadTime(1.0, YEAR)


def central_difference(function, value, step):
    return (function(value + step) - function(value - step)) / (2.0 * step)


def assert_trees_equal(a, b):
    """Assert that two pytrees have identical structure and bit-identical leaves."""
    leaves_a, structure_a = jax.tree_util.tree_flatten(a)
    leaves_b, structure_b = jax.tree_util.tree_flatten(b)
    assert structure_a == structure_b
    for leaf_a, leaf_b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


# Read times.


def test_log_uniform_read_time_spans_decades(key):
    horizon = LogUniformReadTime(1.0, 1e6)
    n = 4000
    samples = np.asarray(jax.vmap(horizon.sample)(jax.random.split(key, n)))

    assert samples.min() >= 1.0
    assert samples.max() <= 1e6
    # log10 of the samples is uniform on [0, 6]: mean 3, standard deviation 6 / sqrt(12). The mean of n
    # samples is within 5 standard errors, a bound that a correct sampler misses with probability 6e-7.
    log_samples = np.log10(samples)
    assert abs(log_samples.mean() - 3.0) < 5 * (6 / math.sqrt(12)) / math.sqrt(n)
    # Each decade contains a sixth of the samples, within 5 binomial standard deviations.
    counts = np.histogram(log_samples, bins=6, range=(0, 6))[0]
    assert np.all(np.abs(counts - n / 6) < 5 * math.sqrt(n * (1 / 6) * (5 / 6)))


def test_log_uniform_read_time_single_point(key):
    assert float(LogUniformReadTime(5.0, 5.0).sample(key)) == pytest.approx(5.0, rel=1e-6)


# The forward model of one product and its straight-through gradients.


def test_straight_through_flags_only_rounding():
    tile = Tile(dac=DAC(bits=4), adc=ADC(bits=6, current_range=1e-5))
    converted = with_straight_through(tile)

    assert converted.dac.straight_through
    assert converted.adc.straight_through
    assert converted.dac.bits == 4
    assert converted.adc.bits == 6
    ideal = with_straight_through(Tile())
    assert ideal.dac == DAC()
    assert ideal.adc == ADC()


def test_analog_matmul_ideal_tile_is_product(rng, key):
    weights = rng.uniform(-1, 1, size=(12, 5)).astype(np.float32)
    x = rng.uniform(-1, 1, size=(7, 12)).astype(np.float32)

    y = analog_matmul(Tile(), weights, x, key=key, read_time=HORIZON)

    np.testing.assert_allclose(y, x @ weights, rtol=1e-5, atol=1e-6)


def quantized_problem(rng):
    """An ideal-device tile with a 4-bit DAC and an 8-bit ADC whose range saturates about half the outputs."""
    weights = rng.uniform(-0.9, 0.9, size=(10, 6)).astype(np.float32)
    x = rng.uniform(-1.5, 1.5, size=(16, 10)).astype(np.float32)  # about a third beyond the DAC range
    cotangent = rng.normal(size=(16, 6)).astype(np.float32)
    dac = DAC(bits=4)
    g_max, read_voltage = 25e-6, 0.2
    currents = np.asarray(dac(x)) * read_voltage @ (weights * g_max)  # weight_range 1, g_min 0
    current_range = float(np.median(np.abs(currents)))
    tile = Tile(weight_range=1.0, read_voltage=read_voltage, dac=dac, adc=ADC(bits=8, current_range=current_range))
    return tile, weights, x, cotangent, currents, current_range


def test_straight_through_input_gradient(rng, key):
    tile, weights, x, cotangent, currents, current_range = quantized_problem(rng)

    grad_x = jax.grad(lambda x: jnp.sum(cotangent * analog_matmul(tile, weights, x, key=key)))(x)

    # Inside both ranges the gradient is that of x @ W. Saturated outputs and inputs beyond the DAC range
    # pass none.
    adc_in_range = np.abs(currents) < current_range
    dac_in_range = np.abs(x) < 1.0
    expected = ((cotangent * adc_in_range) @ weights.T) * dac_in_range
    assert 0.2 < adc_in_range.mean() < 0.8
    assert 0.2 < dac_in_range.mean() < 0.9
    np.testing.assert_allclose(grad_x, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(grad_x)[~dac_in_range] == 0.0)
    assert np.all(np.asarray(grad_x)[dac_in_range] != 0.0)


def test_straight_through_weight_gradient(rng, key):
    tile, weights, x, cotangent, currents, current_range = quantized_problem(rng)
    weights = weights.copy()
    weights[0, :3] = [1.4, -1.2, 2.0]  # beyond weight_range 1: clipped when mapped

    grad_w = jax.grad(lambda w: jnp.sum(cotangent * analog_matmul(tile, w, x, key=key)))(weights)

    drive = np.asarray(tile.dac(x))  # the quantized drive, as in the forward pass
    currents = drive * tile.read_voltage @ (np.clip(weights, -1, 1) * 25e-6)
    expected = drive.T @ (cotangent * (np.abs(currents) < current_range)) * (np.abs(weights) < 1.0)
    np.testing.assert_allclose(grad_w, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(grad_w)[0, :3] == 0.0)


def test_straight_through_keeps_forward_values(rng, key):
    tile, weights, x, _, _, _ = quantized_problem(rng)

    np.testing.assert_array_equal(analog_matmul(tile, weights, x, key=key), tile.forward(weights, x, key=key))


# Networks.


def small_cnn(tile):
    return AnalogNetwork([
        AnalogConv2D(1, 3, 3, tile, padding="SAME"),
        AnalogConv2D(3, 4, 2, tile, stride=2, activation="tanh"),
        AnalogDense(4 * 4 * 4, 5, tile),
    ])


def test_ideal_network_matches_software(rng, key):
    mlp = AnalogNetwork.mlp((12, 8, 4), Tile(), read_time=HORIZON)
    cnn = small_cnn(Tile())
    x = rng.uniform(0, 1, size=(6, 12)).astype(np.float32)
    images = rng.uniform(0, 1, size=(3, 8, 8, 1)).astype(np.float32)
    key_mlp, key_cnn, key_call = jax.random.split(key, 3)
    mlp_params, cnn_params = mlp.init(key_mlp), cnn.init(key_cnn)

    # Jitted so that each network compiles once instead of op by op.
    hardware = eqx.filter_jit(lambda network, params, x: network(params, x, key=key_call))
    software = eqx.filter_jit(lambda network, params, x: network.software(params, x))

    np.testing.assert_allclose(hardware(mlp, mlp_params, x), software(mlp, mlp_params, x), rtol=1e-5, atol=1e-5)
    y = hardware(cnn, cnn_params, images)
    assert y.shape == (3, 5)
    np.testing.assert_allclose(y, software(cnn, cnn_params, images), rtol=1e-5, atol=1e-5)


def test_initial_weights_within_weight_range(key):
    network = AnalogNetwork.mlp((400, 2), Tile(weight_range=0.05))
    weights = np.asarray(network.init(key)[0]["weights"])

    assert np.abs(weights).max() <= 0.05
    # The output layer has no activation, so LeCun-normal weights of std 0.05: a third of them are clipped.
    assert np.any(np.abs(weights) == 0.05)


def test_clip_weights_projects_into_range(key):
    network = AnalogNetwork.mlp((3, 2, 2), [Tile(weight_range=0.5), Tile()])
    first, second = network.init(key)
    params = (
        {"weights": first["weights"] * 10, "bias": first["bias"] + 3.0},
        {"weights": second["weights"] * 10, "bias": second["bias"]},
    )

    clipped = network.clip_weights(params)

    np.testing.assert_array_equal(clipped[0]["weights"], np.clip(params[0]["weights"], -0.5, 0.5))
    np.testing.assert_array_equal(clipped[0]["bias"], params[0]["bias"])  # biases are digital
    np.testing.assert_array_equal(clipped[1]["weights"], params[1]["weights"])  # weight_range=None maps max|W|


def pcm_mlp(**tile_options):
    return AnalogNetwork.mlp((6, 4, 3), Tile(device=PCM(), weight_range=1.0, **tile_options), read_time=HORIZON)


def test_pcm_network_reproducible_per_key(rng, key):
    network = pcm_mlp()
    params = network.init(key)
    x = rng.uniform(0, 1, size=(5, 6)).astype(np.float32)
    key_a, key_b = jax.random.split(key)

    jitted = jax.jit(lambda p, x, k: network(p, x, key=k))

    np.testing.assert_array_equal(jitted(params, x, key_a), jitted(params, x, key_a))
    assert not np.allclose(jitted(params, x, key_a), jitted(params, x, key_b))
    np.testing.assert_allclose(jitted(params, x, key_a), network(params, x, key=key_a), rtol=1e-5, atol=1e-6)


def test_drift_shrinks_outputs_unless_compensated(rng, key):
    x = rng.uniform(0, 1, size=(32, 6)).astype(np.float32)
    ratios = {}
    for compensation in (False, True):
        network = AnalogNetwork.mlp((6, 3), Tile(device=PCM(), weight_range=1.0, drift_compensation=compensation))
        params = network.init(key)
        # The same key programs the same devices, read at the two times.
        early = network(params, x, key=key, read_time=1.0)
        late = network(params, x, key=key, read_time=YEAR)
        ratios[compensation] = float(jnp.linalg.norm(late) / jnp.linalg.norm(early))

    # The mean drift exponent of the PCM model lies in [0.049, 0.1], which over 1 year (t0 = 20 s)
    # shrinks conductances by factors 0.50 to 0.24. The margins allow for the device-to-device spread of
    # the exponent and for read noise. Global drift compensation restores the scale to within read noise.
    assert 0.2 < ratios[False] < 0.6
    assert 0.9 < ratios[True] < 1.1


def test_weight_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        tile = Tile(device=PCM(), weight_range=1.0, short_term_noise=0.02, output_noise=1e-8, drift_compensation=True)
        network = AnalogNetwork.mlp((6, 4, 3), tile, activation="tanh", read_time=HORIZON)
        # Weights away from 0 and from the clip at +-1, where the mapping has kinks.
        params = tuple(
            {
                "weights": jnp.asarray(rng.choice([-1, 1], size=shape) * rng.uniform(0.1, 0.9, size=shape)),
                "bias": jnp.asarray(rng.normal(size=shape[1]) * 0.1),
            }
            for shape in ((6, 4), (4, 3))
        )
        x = jnp.asarray(rng.uniform(0, 1, size=(5, 6)))
        cotangent = jnp.asarray(rng.normal(size=(5, 3)))
        key = jax.random.key(11)

        # One compiled function gives both the loss at the shifted points and the gradient.
        @jax.jit
        @jax.value_and_grad
        def loss_and_gradient(p):
            return jnp.sum(cotangent * network(p, x, key=key))

        gradient = loss_and_gradient(params)[1]
        direction = jax.tree_util.tree_map(lambda leaf: jnp.asarray(rng.normal(size=leaf.shape)), params)

        def along(step):
            return loss_and_gradient(jax.tree_util.tree_map(lambda p, d: p + step * d, params, direction))[0]

        pairs = zip(jax.tree_util.tree_leaves(gradient), jax.tree_util.tree_leaves(direction))
        directional = sum(jnp.vdot(g, d) for g, d in pairs)
        # Central difference error: truncation h^2 |L'''| / 6 plus rounding eps64 |L| / h. For h = 1e-4 and
        # a loss whose derivatives are of order 1 (an estimate), both stay below 1e-7 relative.
        assert float(directional) == pytest.approx(float(central_difference(along, 0.0, 1e-4)), rel=1e-6)
        assert abs(float(directional)) > 1e-3


def test_device_parameter_gradients_match_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        weights = rng.choice([-1, 1], size=(6, 4)) * rng.uniform(0.1, 0.9, size=(6, 4))
        x = rng.uniform(0, 1, size=(8, 6))
        cotangent = rng.normal(size=(8, 4))
        # Ideal quantizers and no noise. The ADC only saturates, at the median ideal output current, so
        # the scale of the currents (read_voltage, g_max) reaches the loss. With g_min > 0 the relative
        # conductance g / g_max, and with it the drift exponent, also depends on g_max.
        device = PCM(g_min=2e-6, prog_noise_scale=0.0, read_noise_scale=0.0)
        currents = x * 0.2 @ (weights * (device.g_max - device.g_min))
        adc = ADC(current_range=float(np.median(np.abs(currents))))
        network = as_arrays(AnalogNetwork([AnalogDense(6, 4, Tile(device=device, weight_range=1.0, adc=adc))], HORIZON))
        params = ({"weights": jnp.asarray(weights), "bias": jnp.zeros(4)},)
        key = jax.random.key(2)

        # One compiled function gives both the loss at the shifted values and the gradients.
        @eqx.filter_jit
        @eqx.filter_value_and_grad
        def loss_and_gradients(net):
            return jnp.sum(cotangent * net(params, x, key=key))

        gradients = loss_and_gradients(network)[1]

        fields = {
            "g_max": lambda net: net.layers[0].tile.device.g_max,
            "read_voltage": lambda net: net.layers[0].tile.read_voltage,
            "ADC current_range": lambda net: net.layers[0].tile.adc.current_range,
        }
        for name, where in fields.items():
            value = float(where(network))

            def loss_at(v, where=where):
                return loss_and_gradients(eqx.tree_at(where, network, jnp.asarray(v, jnp.float64)))[0]

            derivative = float(where(gradients))
            expected = float(central_difference(loss_at, value, 1e-4 * value))
            assert derivative == pytest.approx(expected, rel=1e-6), name
            assert abs(derivative * value) > 1e-3, name  # the parameter matters


# The training loop.


def counting_loss(params, batch, key):
    """Loss whose gradient is -1 at each example index in the batch, so SGD(1) counts visits."""
    del key
    return -jnp.sum(params[batch["index"]])


def test_minibatches_cover_each_epoch(key):
    data = {"index": np.arange(14)}
    optimizer = optax.sgd(1.0)

    one_epoch = train(counting_loss, jnp.zeros(14), data, optimizer=optimizer, steps=3, key=key, batch_size=4).params
    two_epochs = train(counting_loss, jnp.zeros(14), data, optimizer=optimizer, steps=6, key=key, batch_size=4).params
    full_batch = train(counting_loss, jnp.zeros(14), data, optimizer=optimizer, steps=2, key=key).params

    # 14 examples in batches of 4: 12 used per epoch, 2 left out, in a new order each epoch.
    assert sorted(np.asarray(one_epoch).tolist()) == [0.0] * 2 + [1.0] * 12
    second_epoch = np.asarray(two_epochs - one_epoch)
    assert sorted(second_epoch.tolist()) == [0.0] * 2 + [1.0] * 12
    assert not np.array_equal(second_epoch, one_epoch)  # another two examples are left out
    np.testing.assert_array_equal(full_batch, np.full(14, 2.0))


@pytest.fixture(scope="module")
def pcm_problem():
    """A one-layer PCM network on a small classification problem, and its uninterrupted training run."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 1, size=(24, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int32) + (x[:, 2] > 0.5)
    network = AnalogNetwork.mlp((6, 3), Tile(device=PCM(), weight_range=1.0, short_term_noise=0.02), read_time=HORIZON)

    def loss_fn(params, batch, key):
        inputs, labels = batch
        return optax.softmax_cross_entropy_with_integer_labels(network(params, inputs, key=key), labels).mean()

    settings = {
        "optimizer": optax.adam(0.05), "steps": 12, "batch_size": 8, "project": network.clip_weights,
    }
    params = network.init(jax.random.key(1))
    reference = train(loss_fn, params, (x, y), key=jax.random.key(7), **settings)
    return {"loss_fn": loss_fn, "params": params, "data": (x, y), "settings": settings, "reference": reference}


def test_training_lowers_loss(pcm_problem):
    losses = pcm_problem["reference"].losses

    assert losses.shape == (12,)
    assert np.all(np.isfinite(losses))
    assert losses[-4:].mean() < losses[:4].mean()


def test_training_reproducible_for_key(pcm_problem):
    problem = pcm_problem
    again = train(problem["loss_fn"], problem["params"], problem["data"], key=jax.random.key(7), **problem["settings"])
    other = train(problem["loss_fn"], problem["params"], problem["data"], key=jax.random.key(8), **problem["settings"])

    assert_trees_equal(again.params, problem["reference"].params)
    np.testing.assert_array_equal(again.losses, problem["reference"].losses)
    assert not np.array_equal(other.losses, problem["reference"].losses)


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted_run(pcm_problem, tmp_path):
    problem = pcm_problem
    path = tmp_path / "run" / "checkpoint.npz"

    def stop_after_step_5(step, steps, loss):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            problem["loss_fn"], problem["params"], problem["data"], key=jax.random.key(7), checkpoint=path,
            checkpoint_every=2, progress=stop_after_step_5, progress_every=1, **problem["settings"],
        )
    with np.load(path) as stored:
        assert int(stored["step"]) == 4

    resumed = train(
        problem["loss_fn"], problem["params"], problem["data"], key=jax.random.key(7), checkpoint=path,
        checkpoint_every=2, resume=True, **problem["settings"],
    )

    assert_trees_equal(resumed.params, problem["reference"].params)
    assert_trees_equal(resumed.opt_state, problem["reference"].opt_state)
    np.testing.assert_array_equal(resumed.losses, problem["reference"].losses)
    assert os.listdir(path.parent) == ["checkpoint.npz"]  # no temporary files left behind
    with np.load(path) as stored:
        assert int(stored["step"]) == 12


def test_progress_reports_steps_and_losses(key):
    calls = []
    result = train(
        counting_loss, jnp.zeros(6), {"index": np.arange(6)}, optimizer=optax.sgd(0.1), steps=5, key=key,
        batch_size=2, progress=lambda *args: calls.append(args), progress_every=2,
    )

    assert [call[:2] for call in calls] == [(2, 5), (4, 5), (5, 5)]
    assert [call[2] for call in calls] == [result.losses[1], result.losses[3], result.losses[4]]


def test_resume_missing_checkpoint_starts_fresh(key, tmp_path):
    path = tmp_path / "missing.npz"
    settings = {"optimizer": optax.sgd(1.0), "steps": 3, "key": key, "batch_size": 2}

    fresh = train(counting_loss, jnp.zeros(6), {"index": np.arange(6)}, **settings)
    resumed = train(counting_loss, jnp.zeros(6), {"index": np.arange(6)}, checkpoint=path, resume=True, **settings)

    np.testing.assert_array_equal(resumed.params, fresh.params)
    assert path.exists()


def test_existing_checkpoint_kept_without_overwrite(key, tmp_path):
    path = tmp_path / "checkpoint.npz"
    data = {"index": np.arange(6)}
    settings = {"optimizer": optax.sgd(1.0), "batch_size": 2, "key": key, "checkpoint": path}
    train(counting_loss, jnp.zeros(6), data, steps=3, **settings)
    before = path.read_bytes()

    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        train(counting_loss, jnp.zeros(6), data, steps=1, **settings)
    assert path.read_bytes() == before

    train(counting_loss, jnp.zeros(6), data, steps=1, overwrite=True, **settings)
    with np.load(path) as stored:
        assert int(stored["step"]) == 1


def test_resume_rejects_mismatched_run(key, tmp_path):
    path = tmp_path / "checkpoint.npz"
    data = {"index": np.arange(6)}
    settings = {"optimizer": optax.sgd(1.0), "batch_size": 2, "checkpoint": path, "resume": True}
    train(counting_loss, jnp.zeros(6), data, steps=3, key=key, **settings)

    with pytest.raises(ValueError, match="written by a run with another key"):
        train(counting_loss, jnp.zeros(6), data, steps=3, key=jax.random.key(99), **settings)
    with pytest.raises(ValueError, match=r"params array 0 is float32 \(6,\) but this run expects float32 \(7,\)"):
        train(counting_loss, jnp.zeros(7), data, steps=3, key=key, **settings)
    with pytest.raises(ValueError, match="written with batch_size=2 but this run has batch_size=3"):
        train(counting_loss, jnp.zeros(6), data, steps=3, key=key, **{**settings, "batch_size": 3})
    with pytest.raises(ValueError, match="is at step 3, beyond steps=2"):
        train(counting_loss, jnp.zeros(6), data, steps=2, key=key, **settings)
    with pytest.raises(ValueError, match="contains 0 opt_state arrays but this run has 3"):
        train(counting_loss, jnp.zeros(6), data, steps=3, key=key, **{**settings, "optimizer": optax.adam(0.1)})

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        train(counting_loss, jnp.zeros(6), data, steps=3, key=key, **settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"steps": 2.5}, "steps must be an integer >= 1, got 2.5"),
        ({"batch_size": 7}, "batch_size 7 exceeds the 6 examples in data"),
        ({"checkpoint_every": 2}, "checkpoint_every needs a checkpoint path"),
        ({"resume": True}, "resume=True needs a checkpoint path"),
        ({"optimizer": "adam"}, "optimizer must be an optax GradientTransformation"),
        ({"progress": 3}, r"progress must be a function progress\(step, steps, loss\)"),
        ({"project": "clip"}, "project must be a function of the parameters or None"),
        ({"key": 0}, r"key must be a PRNG key from jax.random.key\(seed\), got 0"),
        ({"data": {"index": np.arange(6), "label": np.arange(5)}}, "same leading number of examples"),
        ({"data": {}}, "data contains no arrays"),
    ],
)
def test_train_rejects_bad_arguments(change, message, key):
    arguments = {"data": {"index": np.arange(6)}, "optimizer": optax.sgd(1.0), "steps": 3, "key": key, **change}
    data = arguments.pop("data")

    with pytest.raises(ValueError, match=message):
        train(counting_loss, jnp.zeros(6), data, **arguments)


def test_train_accepts_raw_uint32_key():
    settings = {"optimizer": optax.sgd(1.0), "steps": 2, "batch_size": 2}

    raw = train(counting_loss, jnp.zeros(6), {"index": np.arange(6)}, key=jax.random.PRNGKey(3), **settings)
    typed = train(counting_loss, jnp.zeros(6), {"index": np.arange(6)}, key=jax.random.key(3), **settings)

    np.testing.assert_array_equal(raw.params, typed.params)


# Input checks of the network.


def test_network_rejects_bad_configuration():
    with pytest.raises(ValueError, match="layer 1 has 5 inputs but layer 0 has 4 outputs"):
        AnalogNetwork([AnalogDense(3, 4), AnalogDense(5, 2)])
    with pytest.raises(ValueError, match="layer 1 has 2 input channels but layer 0 has 3 output channels"):
        AnalogNetwork([AnalogConv2D(1, 3, 3), AnalogConv2D(2, 2, 3)])
    with pytest.raises(ValueError, match="convolution after a dense layer"):
        AnalogNetwork([AnalogDense(3, 4), AnalogConv2D(4, 2, 1)])
    with pytest.raises(ValueError, match="needs at least one layer"):
        AnalogNetwork([])
    with pytest.raises(ValueError, match="program-and-verify"):
        AnalogDense(3, 2, Tile(verify=ProgramVerify()))
    with pytest.raises(ValueError, match="activation 'gelu' is unknown"):
        AnalogDense(3, 2, activation="gelu")
    with pytest.raises(ValueError, match='padding must be "VALID" or "SAME", got \'FULL\''):
        AnalogConv2D(1, 2, 3, padding="FULL")
    with pytest.raises(ValueError, match=r"kernel_size must be an integer or a pair \(height, width\)"):
        AnalogConv2D(1, 2, (3, 3, 3))
    with pytest.raises(ValueError, match="AnalogDense inputs must be an integer >= 1, got 0"):
        AnalogDense(0, 2)
    with pytest.raises(ValueError, match="read_time must be a finite time >= 0 s after programming, got -1.0 s"):
        AnalogNetwork.mlp((3, 2), read_time=-1.0)
    with pytest.raises(ValueError, match=r"t_max \(1.0 s\) must be >= t_min \(10.0 s\)"):
        LogUniformReadTime(10.0, 1.0)
    with pytest.raises(ValueError, match="LogUniformReadTime t_min must be finite and > 0, got 0.0 s"):
        LogUniformReadTime(0.0, 1.0)
    with pytest.raises(ValueError, match="mlp with 2 layers needs one tile or 2 tiles, got 3"):
        AnalogNetwork.mlp((3, 2, 2), [Tile()] * 3)


def test_network_rejects_bad_inputs(key):
    network = AnalogNetwork.mlp((3, 4, 2), Tile())
    params = network.init(key)

    with pytest.raises(ValueError, match=r"layer 1 weights must have shape \(4, 2\), got \(4, 3\)"):
        network(({**params[0]}, {"weights": jnp.zeros((4, 3)), "bias": jnp.zeros(2)}), jnp.ones((1, 3)), key=key)
    with pytest.raises(ValueError, match="params must be a sequence of 2 dicts"):
        network(params[:1], jnp.ones((1, 3)), key=key)
    with pytest.raises(ValueError, match=r"AnalogDense input has shape \(1, 5\) but the layer has 3 inputs"):
        network(params, jnp.ones((1, 5)), key=key)
    with pytest.raises(ValueError, match="network input x contains non-finite values"):
        network(params, jnp.array([[1.0, jnp.nan, 0.0]]), key=key)
    with pytest.raises(ValueError, match=r"AnalogConv2D input must have shape \(images, height, width, 1\)"):
        small_cnn(Tile())(small_cnn(Tile()).init(key), jnp.ones((2, 8, 8)), key=key)
    with pytest.raises(ValueError, match=r"AnalogDense input has shape \(2, 36\) but the layer has 64 inputs"):
        small_cnn(Tile())(small_cnn(Tile()).init(key), jnp.ones((2, 6, 6, 1)), key=key)
