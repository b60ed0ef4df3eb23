"""Tests of the crossbar tile: mapping, products, noise, drift compensation, keys, transformations and input checks.

Sample statistics are checked at five standard errors. The sample mean of n draws of standard deviation sigma
has standard error sigma / sqrt(n). The sample variance of n normal draws has relative standard error
sqrt(2 / (n - 1)).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from xbar.crossbar import ADC, DAC, Parasitics, Tile, weights_to_conductances
from xbar.devices import PCM, IdealDevice, ProgramVerify

DAY = 86400.0  # s
Z = 5.0  # standard errors allowed in every statistical check
EPS32 = float(np.finfo(np.float32).eps)


def random_problem(rng, rows=12, columns=7, batch=5):
    weights = rng.normal(size=(rows, columns)).astype(np.float32)
    inputs = rng.normal(size=(batch, rows)).astype(np.float32)
    return weights, inputs


def product_bound(x, w):
    """Elementwise float32 error bound of a tile product: (M + 8) eps32 (|x| @ |W|), M the summed length.

    First-order rounding analysis: the M-term sum contributes M - 1 roundings, the DAC scaling, the weight
    mapping, the device product and the output gain about seven more, each relative to |x_i| |W_ij|.
    """
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    return (w64.shape[0] + 8) * EPS32 * (np.abs(x64) @ np.abs(w64))


# Mapping and ideal products.


def test_weights_to_conductances_mapping():
    weights = jnp.array([[1.0, -0.5], [0.0, 2.0], [-2.0, 3.0]])
    g_pos, g_neg = weights_to_conductances(weights, 2.0, 1e-6, 21e-6)

    # Two float32 roundings (product and sum) allow 2.5 ulps of relative error.
    np.testing.assert_allclose(g_pos, [[11e-6, 1e-6], [1e-6, 21e-6], [1e-6, 21e-6]], rtol=2.5 * EPS32)
    np.testing.assert_allclose(g_neg, [[1e-6, 6e-6], [1e-6, 1e-6], [21e-6, 1e-6]], rtol=2.5 * EPS32)


def test_ideal_tile_reproduces_products(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile()
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    deltas = rng.normal(size=(5, 7)).astype(np.float32)

    y = tile.matmul(read, inputs)
    y_t = tile.matmul_transposed(read, deltas)

    assert np.all(np.abs(y - inputs.astype(np.float64) @ weights) <= product_bound(inputs, weights))
    assert np.all(np.abs(y_t - deltas.astype(np.float64) @ weights.T) <= product_bound(deltas, weights.T))


def test_forward_equals_program_read_matmul(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile(device=PCM(), short_term_noise=0.02)
    key_program, key_read, key_product = jax.random.split(key, 3)
    state = tile.program(weights, key=key_program)
    steps = tile.matmul(tile.read(state, 60.0, key=key_read), inputs, key=key_product)

    np.testing.assert_array_equal(tile.forward(weights, inputs, 60.0, key=key), steps)


def test_weight_range_clips_weights(key):
    tile = Tile(weight_range=1.0)
    state = tile.program(jnp.array([[0.5, 3.0], [-4.0, -0.25]]), key=key)
    read = tile.read(state, 0.0, key=key)

    np.testing.assert_allclose(tile.matmul(read, jnp.eye(2)), [[0.5, 1.0], [-1.0, -0.25]], rtol=1e-6)


def test_ideal_tile_gradient_wrt_weights_and_inputs(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile()
    cotangent = rng.normal(size=(5, 7)).astype(np.float32)

    def loss(w, x):
        return jnp.sum(tile.forward(w, x, key=key) * cotangent)

    grad_w, grad_x = jax.grad(loss, argnums=(0, 1))(weights, inputs)

    np.testing.assert_allclose(grad_w, inputs.T @ cotangent, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_x, cotangent @ weights.T, rtol=1e-4, atol=1e-5)


# Noise in each product.


def per_device_reference(weights, x, device, read_voltage, relative_noise, n_products, seed):
    """Draw tile outputs with one Gaussian per device and product, in NumPy float64.

    I_j = sum_i V_i (G+_ij (1 + s xi_ij) - G-_ij (1 + s xi'_ij)), scaled back to weight units.
    Returns the outputs (n_products, N), the noise-free mean (N,) and the predicted standard deviation (N,).
    """
    w = np.asarray(weights, np.float64)
    weight_scale = np.abs(w).max()
    span = device.g_max - device.g_min
    g_pos = device.g_min + np.maximum(w / weight_scale, 0.0) * span
    g_neg = device.g_min + np.maximum(-w / weight_scale, 0.0) * span
    volts = np.asarray(x, np.float64) * read_voltage
    gain = weight_scale / (read_voltage * span)

    generator = np.random.default_rng(seed)
    xi_pos = generator.standard_normal((n_products, *w.shape))
    xi_neg = generator.standard_normal((n_products, *w.shape))
    current = np.einsum("i,kij->kj", volts, g_pos * (1 + relative_noise * xi_pos) - g_neg * (1 + relative_noise * xi_neg))

    mean = volts @ (g_pos - g_neg) * gain
    std = relative_noise * np.sqrt((volts**2) @ (g_pos**2 + g_neg**2)) * gain
    return current * gain, mean, std


@pytest.mark.parametrize("transposed", [False, True], ids=["matmul", "matmul_transposed"])
def test_short_term_noise_matches_per_device_sampling(transposed, rng, key):
    # g_min > 0 puts current on both devices of every pair, so both variance terms G+^2 and G-^2 count.
    device = IdealDevice(g_min=2e-6, g_max=20e-6)
    relative_noise = 0.05
    tile = Tile(device=device, short_term_noise=relative_noise)
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    n_products = 4000

    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    if transposed:
        x = rng.normal(size=8).astype(np.float32)
        y = tile.matmul_transposed(read, jnp.broadcast_to(x, (n_products, 8)), key=jax.random.key(11))
        reference, mean, std = per_device_reference(weights.T, x, device, tile.read_voltage, relative_noise, n_products, 12)
    else:
        x = rng.normal(size=16).astype(np.float32)
        y = tile.matmul(read, jnp.broadcast_to(x, (n_products, 16)), key=jax.random.key(11))
        reference, mean, std = per_device_reference(weights, x, device, tile.read_voltage, relative_noise, n_products, 12)

    z_tile = ((np.asarray(y, np.float64) - mean) / std).ravel()
    z_reference = ((reference - mean) / std).ravel()
    n = z_tile.size  # each output of each product is an independent draw

    assert stats.ks_2samp(z_tile, z_reference).pvalue > 1e-3
    # The ratio of two independent sample variances has relative standard error sqrt(2/(n-1) + 2/(n-1)).
    assert np.var(z_tile) / np.var(z_reference) == pytest.approx(1.0, abs=Z * np.sqrt(4.0 / (n - 1)))
    assert np.var(z_tile) == pytest.approx(1.0, abs=Z * np.sqrt(2.0 / (n - 1)))
    assert abs(np.mean(z_tile)) <= Z / np.sqrt(n)


def test_output_noise_matches_sigma(rng, key):
    output_noise = 2e-8  # A
    tile = Tile(output_noise=output_noise)
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    x = rng.normal(size=16).astype(np.float32)
    n_products = 5000

    state = tile.program(weights, key=key)
    y = tile.matmul(tile.read(state, 0.0, key=key), jnp.broadcast_to(x, (n_products, 16)), key=jax.random.key(5))
    gain = float(state.weight_scale) / (tile.read_voltage * (tile.device.g_max - tile.device.g_min))
    residual = (np.asarray(y, np.float64) - x.astype(np.float64) @ weights).ravel() / (output_noise * gain)
    n = residual.size

    assert abs(residual.mean()) <= Z / np.sqrt(n)
    assert residual.var(ddof=1) == pytest.approx(1.0, abs=Z * np.sqrt(2.0 / (n - 1)))


def test_noise_sources_add_independently(rng, key):
    # Short-term and output noise are independent, so their variances add. The two standard deviations are of
    # similar size here (about 0.4 uA each before the output gain), so a correlation between them would show.
    relative_noise, output_noise = 0.05, 4e-7
    tile = Tile(short_term_noise=relative_noise, output_noise=output_noise)
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    x = rng.normal(size=16).astype(np.float32)
    n_products = 5000

    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    y = tile.matmul(read, jnp.broadcast_to(x, (n_products, 16)), key=jax.random.key(5))
    _, mean, short_std = per_device_reference(weights, x, tile.device, tile.read_voltage, relative_noise, 1, 0)
    gain = np.abs(weights).max() / (tile.read_voltage * (tile.device.g_max - tile.device.g_min))
    total_std = np.sqrt(short_std**2 + (output_noise * gain) ** 2)
    z = ((np.asarray(y, np.float64) - mean) / total_std).ravel()

    assert abs(z.mean()) <= Z / np.sqrt(z.size)
    assert z.var(ddof=1) == pytest.approx(1.0, abs=Z * np.sqrt(2.0 / (z.size - 1)))


def test_noisy_products_are_independent_across_batch(rng, key):
    tile = Tile(short_term_noise=0.05)
    weights = rng.normal(size=(16, 8)).astype(np.float32)
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    y = np.asarray(tile.matmul(read, jnp.ones((2000, 16)), key=key))
    centered = y - y.mean(axis=0)

    # Correlation of two independent columns of n draws has standard error 1/sqrt(n).
    correlation = np.corrcoef(centered[:-1, 0], centered[1:, 0])[0, 1]
    assert abs(correlation) <= Z / np.sqrt(y.shape[0])


# Periphery in the tile.


def test_batch_vectors_digitized_independently(rng, key):
    weights, inputs = random_problem(rng, batch=6)
    tile = Tile(dac=DAC(bits=4, input_range=2.0), adc=ADC(bits=6, current_range=2e-6))
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    changed = inputs.copy()
    changed[1:] = rng.normal(size=(5, 12)) * 50

    y = tile.matmul(read, inputs)

    np.testing.assert_array_equal(tile.matmul(read, changed)[0], y[0])
    np.testing.assert_array_equal(tile.matmul(read, inputs[0]), y[0])


def test_one_bit_dac_drives_full_scale(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile(dac=DAC(bits=1, input_range=0.5))
    read = tile.read(tile.program(weights, key=key), 0.0, key=key)
    signs = np.where(inputs >= 0, 0.5, -0.5).astype(np.float32)

    y = tile.matmul(read, inputs)

    assert np.all(np.abs(y - signs.astype(np.float64) @ weights) <= product_bound(signs, weights))


def test_adc_saturation_bounds_outputs(rng, key):
    weights, inputs = random_problem(rng)
    current_range = 1e-6
    tile = Tile(adc=ADC(current_range=current_range))
    state = tile.program(weights, key=key)
    y = tile.matmul(tile.read(state, 0.0, key=key), inputs * 100)
    gain = float(state.weight_scale) / (tile.read_voltage * (tile.device.g_max - tile.device.g_min))

    assert np.abs(np.asarray(y)).max() == pytest.approx(current_range * gain, rel=1e-6)


def test_adc_quantization_error_within_half_step(rng, key):
    weights, inputs = random_problem(rng, batch=64)
    current_range, bits = 5e-6, 8
    tile = Tile(adc=ADC(bits=bits, current_range=current_range))
    state = tile.program(weights, key=key)
    y = tile.matmul(tile.read(state, 0.0, key=key), inputs * 0.2)
    gain = float(state.weight_scale) / (tile.read_voltage * (tile.device.g_max - tile.device.g_min))
    half_step = 0.5 * current_range / (2 ** (bits - 1) - 1) * gain
    exact = (inputs * 0.2).astype(np.float64) @ weights

    assert np.abs(exact).max() < current_range * gain  # inside the range, so only rounding applies
    assert np.abs(np.asarray(y) - exact).max() <= half_step * (1 + 1e-4)


# Drift compensation.


def test_compensation_exact_for_identical_drift(rng, key):
    # Identical nu for every device, no write or read noise: every conductance decays by the same factor,
    # so the compensated product at 1 day equals the product at t = 0.
    device = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, mu_nu_bounds=(0.06, 0.06), sigma_nu_bounds=(0.0, 0.0))
    tile = Tile(device=device, drift_compensation=True)
    weights, inputs = random_problem(rng, rows=64, columns=32, batch=16)
    state = tile.program(weights, key=key)

    y0 = np.asarray(tile.matmul(tile.read(state, 0.0, key=key), inputs), np.float64)
    y_day = np.asarray(tile.matmul(tile.read(state, DAY, key=key), inputs), np.float64)
    plain = Tile(device=device)
    uncompensated = np.asarray(plain.matmul(plain.read(state, DAY, key=key), inputs))

    # The gain divides two float32 sums over 2 M N = 4096 devices. A bound of 1e-5 relative to |x| @ |W|
    # (about 80 float32 ulps) covers their rounding and that of the M-term product.
    scale = np.abs(inputs.astype(np.float64)) @ np.abs(weights)
    assert np.all(np.abs(y_day - y0) <= 1e-5 * scale)
    assert np.all(np.abs(y0 - inputs.astype(np.float64) @ weights) <= product_bound(inputs, weights))
    # Without compensation the output is smaller by the drift factor ((t + t0)/t0)^-0.06.
    np.testing.assert_allclose(uncompensated, y0 * (1 + DAY / 20.0) ** -0.06, rtol=1e-4, atol=1e-5 * scale.max())


def test_compensation_reduces_error_at_one_day(rng, key):
    weights, inputs = random_problem(rng, rows=64, columns=32, batch=16)
    exact = inputs.astype(np.float64) @ weights

    def relative_error(compensate):
        tile = Tile(device=PCM(), drift_compensation=compensate)
        state = tile.program(weights, key=key)
        y = tile.matmul(tile.read(state, DAY, key=jax.random.key(1)), inputs)
        return np.sqrt(np.mean((np.asarray(y) - exact) ** 2) / np.mean(exact**2))

    uncompensated, compensated = relative_error(False), relative_error(True)

    # The mean drift factor at 1 day is about 0.66, so the uncompensated error is dominated by a 34 % gain loss.
    assert uncompensated > 0.25
    assert compensated < 0.7 * uncompensated


def test_compensation_gain_is_one_without_drift(rng, key):
    weights, _ = random_problem(rng)
    tile = Tile(device=IdealDevice(), drift_compensation=True)
    read = tile.read(tile.program(weights, key=key), DAY, key=key)

    assert float(read.drift_gain) == pytest.approx(1.0, rel=1e-6)


# Program-and-verify in the tile.


def test_tile_verify_records_iterations(rng, key):
    weights, _ = random_problem(rng)
    verify = ProgramVerify(max_iterations=5, tolerance=0.5e-6)
    state = Tile(device=PCM(), verify=verify).program(weights, key=key)

    assert state.shape == weights.shape
    for side in (state.g_pos, state.g_neg):
        iterations = np.asarray(side.iterations)
        assert iterations.shape == weights.shape
        assert iterations.min() >= 1
        assert iterations.max() <= verify.max_iterations
    assert np.asarray(state.g_pos.iterations).max() > 1


# Keys.


def tile_draws(tile, weights, inputs, key_program, key_read, key_product):
    state = tile.program(weights, key=key_program)
    read = tile.read(state, DAY, key=key_read)
    return state.g_pos.g, read.g_diff, tile.matmul(read, inputs, key=key_product)


def test_each_array_draws_its_own_noise(key):
    """A PCM tile draws G+ and G- noise in one call per programming or read, and no two quantities share it.

    With all weights zero both arrays target g_min, so their write noise, drift exponents and read noise
    follow the same distribution. Over n devices the sample correlation of independent quantities has
    standard error about 1 / sqrt(n). A slice of the draw used twice would give a correlation of 1. The
    wire resistance only makes the read return G+ and G- apart.
    """
    rows, columns = 64, 64
    tile = Tile(device=PCM(), weight_range=1.0, drift_compensation=True, parasitics=Parasitics(word_line=1.0))
    state = tile.program(jnp.zeros((rows, columns)), key=key)
    read = tile.read(state, DAY, key=jax.random.fold_in(key, 1))
    # Relative read noise of each device: read / drifted - 1 where the device is not at 0 S.
    noise_pos = read.g_pos / tile.device.drift(state.g_pos, DAY) - 1
    noise_neg = read.g_neg / tile.device.drift(state.g_neg, DAY) - 1
    both = (state.g_pos.g > 0) & (state.g_neg.g > 0)
    pairs = {
        "write noise of G+ and G-": (state.g_pos.g, state.g_neg.g),
        "drift exponents of G+ and G-": (state.g_pos.nu, state.g_neg.nu),
        "write noise and drift exponent of G+": (state.g_pos.g, state.g_pos.nu),
        "read noise of G+ and G-": (noise_pos[both], noise_neg[both]),
        "write and read noise of G+": (state.g_pos.g[both], noise_pos[both]),
    }
    for name, (a, b) in pairs.items():
        r = np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]
        assert abs(r) < Z / np.sqrt(np.size(a)), (name, r)


def test_same_key_same_tile_results(rng):
    weights, inputs = random_problem(rng)
    tile = Tile(device=PCM(), short_term_noise=0.02, output_noise=1e-8)
    keys = [jax.random.key(i) for i in (1, 2, 3)]

    for first, second in zip(tile_draws(tile, weights, inputs, *keys), tile_draws(tile, weights, inputs, *keys)):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("step", ["program", "read", "matmul"])
def test_different_key_changes_tile_results(step, rng):
    weights, inputs = random_problem(rng)
    tile = Tile(device=PCM(), short_term_noise=0.02, output_noise=1e-8)
    keys = [jax.random.key(i) for i in (1, 2, 3)]
    changed = list(keys)
    changed[["program", "read", "matmul"].index(step)] = jax.random.key(99)

    base = tile_draws(tile, weights, inputs, *keys)
    other = tile_draws(tile, weights, inputs, *changed)
    output = np.asarray(base[2])

    assert np.all(output != np.asarray(other[2]))
    if step != "matmul":
        assert np.any(np.asarray(base[1]) != np.asarray(other[1]))
    else:
        np.testing.assert_array_equal(base[1], other[1])


# Transformations.


def test_tile_functions_under_jit(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile(device=PCM(), short_term_noise=0.02, output_noise=1e-8, drift_compensation=True)
    state = tile.program(weights, key=key)
    read = tile.read(state, DAY, key=key)

    jit_state = jax.jit(lambda w, k: tile.program(w, key=k))(weights, key)
    jit_read = jax.jit(lambda s, t, k: tile.read(s, t, key=k))(state, DAY, key)
    jit_y = jax.jit(lambda r, x, k: tile.matmul(r, x, key=k))(read, inputs, key)
    jit_y_t = jax.jit(lambda r, d, k: tile.matmul_transposed(r, d, key=k))(read, inputs[:, :7], key)
    jit_forward = jax.jit(lambda w, x, t, k: tile.forward(w, x, t, key=k))(weights, inputs, DAY, key)

    np.testing.assert_allclose(jit_state.g_pos.g, state.g_pos.g, rtol=1e-5)
    np.testing.assert_allclose(jit_read.g_diff, read.g_diff, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(jit_y, tile.matmul(read, inputs, key=key), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jit_y_t, tile.matmul_transposed(read, inputs[:, :7], key=key), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jit_forward, tile.forward(weights, inputs, DAY, key=key), rtol=1e-4, atol=1e-5)


def test_tile_vmap_over_read_time(rng, key):
    weights, inputs = random_problem(rng)
    tile = Tile(device=PCM())
    state = tile.program(weights, key=key)
    times = jnp.array([0.0, 60.0, DAY])

    batched = jax.vmap(lambda t: tile.matmul(tile.read(state, t, key=key), inputs))(times)

    for i, t in enumerate(np.asarray(times)):
        np.testing.assert_allclose(batched[i], tile.matmul(tile.read(state, float(t), key=key), inputs), rtol=1e-4, atol=1e-5)


def test_tile_vmap_over_parameters(rng, key):
    weights, inputs = random_problem(rng)
    base = Tile(device=PCM(), output_noise=1e-8)

    cases = {
        "drift_scale": (lambda t: t.device.drift_scale, jnp.array([0.0, 1.0, 2.0])),
        "g_max": (lambda t: t.device.g_max, jnp.array([10e-6, 25e-6])),
        "read_voltage": (lambda t: t.read_voltage, jnp.array([0.1, 0.3])),
    }
    for name, (where, values) in cases.items():
        batched = jax.vmap(lambda v: eqx.tree_at(where, base, v).forward(weights, inputs, DAY, key=key))(values)
        for i, value in enumerate(np.asarray(values)):
            single = eqx.tree_at(where, base, float(value)).forward(weights, inputs, DAY, key=key)
            np.testing.assert_allclose(batched[i], single, rtol=1e-4, atol=1e-5, err_msg=name)


def test_tile_vmap_over_weights_and_keys(rng, key):
    tile = Tile(device=PCM(), short_term_noise=0.02)
    weights = rng.normal(size=(3, 12, 7)).astype(np.float32)
    inputs = rng.normal(size=(5, 12)).astype(np.float32)
    keys = jax.random.split(key, 3)

    batched = jax.vmap(lambda w, k: tile.forward(w, inputs, DAY, key=k))(weights, keys)

    for i in range(3):
        np.testing.assert_allclose(batched[i], tile.forward(weights[i], inputs, DAY, key=keys[i]), rtol=1e-4, atol=1e-5)


def test_tile_gradients_finite(rng, key):
    weights, inputs = random_problem(rng)
    base = Tile(device=PCM(), short_term_noise=0.02, output_noise=1e-8, drift_compensation=True)

    def loss(w, drift_scale, g_max, read_voltage):
        tile = eqx.tree_at(lambda t: (t.device.drift_scale, t.device.g_max, t.read_voltage), base,
                           (drift_scale, g_max, read_voltage))
        return jnp.sum(tile.forward(w, inputs, DAY, key=key) ** 2)

    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(weights, 1.0, 25e-6, 0.2)

    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    assert np.any(np.asarray(grads[0]) != 0)


# Input checks.


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_reject_non_finite_weights(bad, key):
    with pytest.raises(ValueError, match=rf"weights contains non-finite values \(1 of 4, e\.g\. {bad} at index \[0, 1\]\)"):
        Tile().program(jnp.array([[1.0, bad], [0.5, 0.2]]), key=key)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_reject_non_finite_inputs(bad, key):
    tile = Tile()
    read = tile.read(tile.program(jnp.eye(3), key=key), 0.0, key=key)

    with pytest.raises(ValueError, match=rf"input x contains non-finite values .*{bad}"):
        tile.matmul(read, jnp.array([1.0, bad, 0.0]))
    with pytest.raises(ValueError, match=rf"input x contains non-finite values .*{bad}"):
        tile.matmul_transposed(read, jnp.array([[1.0, 0.0, bad]]))


def test_reject_bad_shapes(key):
    tile = Tile()
    read = tile.read(tile.program(jnp.ones((4, 3)), key=key), 0.0, key=key)

    with pytest.raises(ValueError, match=r"weights must be a 2-D .* got shape \(5,\)"):
        tile.program(jnp.ones(5), key=key)
    with pytest.raises(ValueError, match=r"weights must be a 2-D .* got shape \(2, 3, 4\)"):
        tile.program(jnp.ones((2, 3, 4)), key=key)
    with pytest.raises(ValueError, match=r"input has shape \(2, 3\) but the tile has 4 rows"):
        tile.matmul(read, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"input has shape \(4,\) but the tile has 3 columns"):
        tile.matmul_transposed(read, jnp.ones(4))
    with pytest.raises(ValueError, match=r"input has shape \(\) but the tile has 4 rows"):
        tile.matmul(read, 1.0)


def test_reject_bad_read_time(key):
    tile = Tile(device=PCM())
    state = tile.program(jnp.eye(3), key=key)

    with pytest.raises(ValueError, match=r"read time t must be a finite time >= 0 s .*got -1.0 s"):
        tile.read(state, -1.0, key=key)
    with pytest.raises(ValueError, match=r"read time t .*got inf s"):
        tile.read(state, float("inf"), key=key)
    with pytest.raises(ValueError, match=r"read time t .*got -3.0 s"):
        tile.forward(jnp.eye(3), jnp.ones(3), -3.0, key=key)


@pytest.mark.parametrize("noise", [{"short_term_noise": 0.01}, {"output_noise": 1e-8}])
def test_noisy_tile_needs_key(noise, key):
    tile = Tile(**noise)
    read = tile.read(tile.program(jnp.eye(3), key=key), 0.0, key=key)

    with pytest.raises(ValueError, match="needs a PRNG key: pass key="):
        tile.matmul(read, jnp.ones(3))
    with pytest.raises(ValueError, match="needs a PRNG key: pass key="):
        tile.matmul_transposed(read, jnp.ones(3))


def test_reject_bad_tile_parameters():
    with pytest.raises(ValueError, match=r"read_voltage must be finite and > 0, got -0.2 V"):
        Tile(read_voltage=-0.2)
    with pytest.raises(ValueError, match="weight_range must be finite and > 0, got 0.0"):
        Tile(weight_range=0.0)
    with pytest.raises(ValueError, match="short_term_noise must be finite and >= 0, got -0.1"):
        Tile(short_term_noise=-0.1)
    with pytest.raises(ValueError, match=r"output_noise must be finite and >= 0, got nan A"):
        Tile(output_noise=float("nan"))


def test_straight_through_gradient_follows_ideal(key):
    key_w, key_x, key_tile = jax.random.split(key, 3)
    weights = jax.random.uniform(key_w, (32, 16), minval=-1.0, maxval=1.0)
    x = jax.random.uniform(key_x, (8, 32), minval=-1.0, maxval=1.0)
    converters = {"dac": DAC(bits=6, straight_through=True), "adc": ADC(bits=6, current_range=1e-4, straight_through=True)}

    def loss(w, tile):
        return jnp.sum(tile.forward(w, x, 3600.0, key=key_tile) ** 2)

    quantized = jax.grad(loss)(weights, Tile(device=PCM(), weight_range=1.0, **converters))
    ideal = jax.grad(loss)(weights, Tile(device=PCM(), weight_range=1.0))

    # 6-bit rounding perturbs the gradient only slightly; a hard quantizer would give zero.
    correlation = np.corrcoef(np.ravel(quantized), np.ravel(ideal))[0, 1]
    assert correlation > 0.99


def test_tile_rejects_non_device():
    with pytest.raises(ValueError, match="device must be a Device"):
        Tile(device="pcm")


def test_read_time_must_be_scalar(key):
    tile = Tile(device=PCM())
    state = tile.program(jnp.ones((4, 3)), key=key)

    with pytest.raises(ValueError, match="jax.vmap"):
        tile.read(state, jnp.array([1.0, 2.0]), key=key)


def test_tile_with_per_device_g_max(key):
    from xbar.variability import Normal, sample_parameters

    rows, cols = 24, 16
    device = sample_parameters(PCM(), (rows, cols), key, {"g_max": Normal(0.1, relative=True)})
    weights = jax.random.uniform(key, (rows, cols), minval=-1.0, maxval=1.0)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (rows, rows), minval=-1.0, maxval=1.0)

    y = Tile(device=device).forward(weights, x, 60.0, key=key)

    # A batch as long as the rows once hid a wrong broadcast of per-device ranges in the output scale.
    assert y.shape == (rows, cols)
    error = jnp.linalg.norm(y - x @ weights) / jnp.linalg.norm(x @ weights)
    assert float(error) < 0.3


def test_program_by_pulses_needs_verify():
    with pytest.raises(ValueError, match="program_by_pulses"):
        Tile(device=IdealDevice(), program_by_pulses=True)


def test_tile_programmed_by_pulses(key):
    device = IdealDevice(pulse_step=0.05e-6)
    tile = Tile(device=device, program_by_pulses=True, verify=ProgramVerify(max_iterations=600, tolerance=0.03e-6))
    weights = jax.random.uniform(key, (6, 5), minval=-1.0, maxval=1.0)
    x = jnp.eye(6)

    y = tile.forward(weights, x, key=key)

    # Each device lands within the tolerance, so each weight within 2 tolerances of the range per max|W|.
    bound = 2 * 0.03e-6 / 25e-6 * float(jnp.max(jnp.abs(weights)))
    assert float(jnp.max(jnp.abs(y - weights))) <= bound * 1.001
