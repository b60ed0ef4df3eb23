"""Bit slicing: bit-serial inputs, weights sliced over devices, differential and offset signed weights."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.crossbar import ADC, DAC, Core, Tile, quantize_symmetric
from xbar.crossbar.slicing import Slicing, slicing_error
from xbar.devices import PCM


def _uniform(seed, shape, bound=1.0):
    return jax.random.uniform(jax.random.key(seed), shape, minval=-bound, maxval=bound)


def _forward(core: Core, weights, x, t=0.0, seed=0):
    """Run `core.forward` under jit: one compilation costs less than running the vmapped tiles op by op."""
    return jax.jit(lambda w, v: core.forward(w, v, t, key=jax.random.key(seed)))(weights, x)


def _error(core: Core, weights, x, t=0.0, seed=0, reference="exact"):
    return float(jax.jit(lambda w, v: slicing_error(core, w, v, t, key=jax.random.key(seed), reference=reference))(weights, x))


def _weight_grid_bits(slicing: Slicing) -> int:
    """Bits (sign included) of the symmetric grid the scheme stores: the pair adds a sign bit to S*p."""
    return slicing.weight_bits + (1 if slicing.negative == "differential" else 0)


@st.composite
def slicings(draw):
    input_bits = draw(st.one_of(st.none(), st.integers(1, 6)))
    negative = draw(st.sampled_from(["differential", "offset"]))
    bits_per_slice = draw(st.one_of(st.none(), st.integers(1, 3)))
    weight_slices = 1 if bits_per_slice is None else draw(st.integers(1, 3))
    if negative == "offset" and bits_per_slice == 1 and weight_slices == 1:
        weight_slices = 2  # offset weights need a sign bit and at least one magnitude bit
    return Slicing(input_bits=input_bits, weight_slices=weight_slices, bits_per_slice=bits_per_slice, negative=negative)


@settings(max_examples=10, deadline=None)
@given(
    slicing=slicings(), m=st.integers(1, 20), n=st.integers(1, 20), tile_rows=st.integers(1, 8),
    tile_columns=st.integers(1, 8),
)
def test_ideal_sliced_core_is_exact(slicing, m, n, tile_rows, tile_columns):
    """Ideal devices and ADC: the core computes the product of the rounded inputs and rounded weights."""
    weights = _uniform(m * 100 + n, (m, n))
    x = _uniform(m * 100 + n + 1, (3, m), bound=1.2)  # some inputs saturate
    core = Core(tile=Tile(weight_range=1.0), tile_shape=(tile_rows, tile_columns), slicing=slicing)
    out = _forward(core, weights, x)

    # The reference rounds with the periphery's symmetric quantizer, not with the slicing code under test.
    if slicing.input_bits is None:
        x_stored = x
    else:
        x_stored = quantize_symmetric(x, 1.0, slicing.input_bits + 1)
    if slicing.bits_per_slice is None:
        w_stored = weights
    else:
        w_stored = quantize_symmetric(weights, 1.0, _weight_grid_bits(slicing))
    # float32 sums of at most 20 products of magnitude <= 1.2, through at most 3 slices: errors stay below
    # 1e-5, while one weight level off would move an output by at least 1/(2^9 - 1) times an input.
    np.testing.assert_allclose(out, x_stored @ w_stored, rtol=0, atol=2e-5)
    np.testing.assert_allclose(core.quantize_inputs(x) @ core.quantize_weights(weights), x_stored @ w_stored, atol=2e-5)


def test_ideal_blockwise_scales_are_exact():
    """Without a weight range every block is rounded on the grid of its own max|W|."""
    weights = _uniform(1, (9, 7)).at[:4, :3].multiply(0.1)  # one block much smaller than the others
    x = _uniform(2, (5, 9))
    core = Core(tile_shape=(4, 3), slicing=Slicing(weight_slices=2, bits_per_slice=2))
    stored = core.quantize_weights(weights)
    block = weights[:4, :3]
    expected_block = quantize_symmetric(block, jnp.max(jnp.abs(block)), 5)
    np.testing.assert_allclose(stored[:4, :3], expected_block, atol=1e-7)
    np.testing.assert_allclose(_forward(core, weights, x), x @ stored, atol=1e-5)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_bit_serial_error_within_half_lsb(bits):
    """Each input is off by at most half an input LSB, so each output by at most that times sum_i |W_ij|."""
    weights = _uniform(3, (24, 6), bound=2.0)
    x = _uniform(4, (32, 24))
    core = Core(tile=Tile(), tile_shape=(8, 4), slicing=Slicing(input_bits=bits))
    out = _forward(core, weights, x)
    half_lsb = 0.5 / (2**bits - 1)
    bound = half_lsb * jnp.sum(jnp.abs(weights), axis=0)
    # 1e-5 covers float32 rounding of 24-term sums.
    assert bool(jnp.all(jnp.abs(out - x @ weights) <= bound + 1e-5))
    # The bound is not vacuous: a quarter of it is exceeded somewhere.
    assert bool(jnp.any(jnp.abs(out - x @ weights) > 0.25 * bound))


def test_offset_matches_differential_analog():
    weights = _uniform(5, (13, 10))
    x = _uniform(6, (4, 13))
    outputs = {}
    for negative in ("differential", "offset"):
        core = Core(tile_shape=(5, 4), slicing=Slicing(negative=negative))
        outputs[negative] = _forward(core, weights, x)
    np.testing.assert_allclose(outputs["offset"], outputs["differential"], atol=1e-5)
    np.testing.assert_allclose(outputs["offset"], x @ weights, atol=1e-5)


def test_offset_matches_differential_on_same_grid():
    """Offset weights of n bits and differential weights of n - 1 bits share one grid of 2^n - 1 levels."""
    weights = _uniform(7, (11, 6))
    x = _uniform(8, (4, 11))
    offset = Core(tile_shape=(4, 4), slicing=Slicing(weight_slices=2, bits_per_slice=2, negative="offset"))
    differential = Core(tile_shape=(4, 4), slicing=Slicing(weight_slices=3, bits_per_slice=1))
    np.testing.assert_allclose(offset.quantize_weights(weights), differential.quantize_weights(weights), atol=1e-7)
    np.testing.assert_allclose(_forward(offset, weights, x), _forward(differential, weights, x, seed=1), atol=1e-5)


def test_default_slicing_matches_tile_by_tile():
    """The default core is the sum of its tiles' products, with one key per tile split from each step's key."""
    tile = Tile(device=PCM(), adc=ADC(bits=8, current_range=30e-6), output_noise=0.1e-6, short_term_noise=0.01)
    core = Core(tile=tile, tile_shape=(6, 4), slicing=Slicing())
    weights = _uniform(9, (12, 8))
    x = _uniform(10, (3, 12))
    key_program, key_read, key_product = jax.random.split(jax.random.key(11), 3)
    out = _forward(core, weights, x, 60.0, seed=11)

    expected = jnp.zeros((3, 8))
    program_keys = jax.random.split(key_program, 4).reshape(2, 2)
    read_keys = jax.random.split(key_read, 4).reshape(2, 2)
    product_keys = jax.random.split(key_product, 4).reshape(2, 2)
    for i in range(2):
        for j in range(2):
            state = tile.program(weights[6 * i : 6 * i + 6, 4 * j : 4 * j + 4], key=program_keys[i, j])
            read = tile.read(state, 60.0, key=read_keys[i, j])
            partial = tile.matmul(read, x[:, 6 * i : 6 * i + 6], key=product_keys[i, j])
            expected = expected.at[:, 4 * j : 4 * j + 4].add(partial)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_state_layout_per_scheme():
    weights = _uniform(12, (10, 5))
    cases = [
        (Slicing(), (2, 2, 8, 4)),
        (Slicing(negative="offset"), (2, 2, 8, 5)),  # one reference column per tile
        (Slicing(weight_slices=3, bits_per_slice=2), (3, 2, 2, 8, 4)),
        (Slicing(weight_slices=2, bits_per_slice=2, negative="offset"), (2, 2, 2, 8, 5)),
    ]
    for slicing, shape in cases:
        core = Core(tile_shape=(8, 4), slicing=slicing)
        state = jax.eval_shape(lambda w, c=core: c.program(w, key=jax.random.key(0)), weights)  # shapes only
        assert state.tiles.g_pos.g.shape == shape, slicing
        assert (state.weight_scale is None) == (not slicing.stores_levels), slicing


def test_offset_reference_column_holds_mid_range():
    core = Core(tile=Tile(), tile_shape=(4, 3), slicing=Slicing(negative="offset"))
    state = core.program(_uniform(13, (4, 3)), key=jax.random.key(0))
    g_max = Tile().device.g_max
    np.testing.assert_allclose(state.tiles.g_pos.g[0, 0, :, -1], 0.5 * g_max, rtol=1e-6)


def test_slices_are_independent_devices():
    core = Core(tile=Tile(device=PCM(), weight_range=1.0), tile_shape=(8, 8),
                slicing=Slicing(weight_slices=2, bits_per_slice=2))
    # 0.34 has the 4-bit code round(0.34 * 15) = 5 = 0b0101: digit 1 in both slices, so both store one level.
    state = core.program(jnp.full((8, 8), 0.34), key=jax.random.key(1))
    g = state.tiles.g_pos.g
    assert not np.allclose(g[0], g[1])
    np.testing.assert_allclose(jnp.mean(g[0]), jnp.mean(g[1]), rtol=0.1)


@pytest.mark.parametrize(
    ("slicing", "variance_factor"),
    [
        # Four input bits, each read with its own noise: sum_k (2^k / 15)^2 = 85 / 225.
        (Slicing(input_bits=4), 85 / 225),
        # Two 2-bit slices with significance 3/15 and 12/15: (3/15)^2 + (12/15)^2 = 153 / 225.
        (Slicing(weight_slices=2, bits_per_slice=2), 153 / 225),
    ],
)
def test_each_read_has_independent_noise(slicing, variance_factor):
    """Output noise of independent reads adds in variance; shared noise would give a factor of 1."""
    output_noise = 1e-6
    tile = Tile(output_noise=output_noise)
    core = Core(tile=tile, tile_shape=(4, 50), slicing=slicing)
    # Zero weights (so each block's scale is 1) and full-scale inputs, whose input bits are all 1.
    x = jnp.ones((40, 4))
    out = _forward(core, jnp.zeros((4, 50)), x, seed=2)
    g_min, g_max = tile.nominal_range()
    sigma = output_noise / (tile.read_voltage * (g_max - g_min))  # one read's noise in weight units
    expected = variance_factor * sigma**2
    # 2000 samples: the sample variance has relative standard deviation sqrt(2 / 2000) = 3.2 %; allow 5 of them.
    np.testing.assert_allclose(jnp.var(out), expected, rtol=5 * math.sqrt(2 / out.size))


def test_slicing_error_falls_with_bits():
    weights = _uniform(14, (16, 12))
    x = _uniform(15, (32, 16))
    errors = [_error(Core(tile_shape=(8, 8), slicing=Slicing(weight_slices=2, bits_per_slice=p)), weights, x) for p in (1, 2, 4)]
    assert errors[0] > errors[1] > errors[2] > 0
    ideal = Core(tile_shape=(8, 8), slicing=Slicing(input_bits=3, weight_slices=2, bits_per_slice=2))
    assert _error(ideal, weights, x, reference="quantized") < 1e-5


def test_slicing_error_with_device_noise():
    """Under PCM noise, the error against the rounded product is the noise alone and is well above float error."""
    tile = Tile(device=PCM(), weight_range=1.0, adc=ADC(bits=8, current_range=40e-6))
    weights = _uniform(16, (16, 12))
    x = _uniform(17, (32, 16))
    for slicing in (Slicing(), Slicing(input_bits=6, weight_slices=2, bits_per_slice=3, negative="offset")):
        core = Core(tile=tile, tile_shape=(8, 8), slicing=slicing)
        error = _error(core, weights, x, seed=3, reference="quantized")
        assert 0.01 < error < 1.0, slicing


def test_drift_compensation_in_offset_mode():
    weights = _uniform(18, (16, 16))
    x = _uniform(19, (32, 16))
    errors = {}
    for compensate in (False, True):
        tile = Tile(device=PCM(), weight_range=1.0, drift_compensation=compensate)
        core = Core(tile=tile, tile_shape=(8, 8), slicing=Slicing(negative="offset"))
        errors[compensate] = _error(core, weights, x, 86400.0, seed=4)
    assert errors[True] < 0.8 * errors[False]


def test_sliced_core_under_jit_and_vmap():
    core = Core(tile=Tile(weight_range=1.0, output_noise=0.1e-6), tile_shape=(4, 3),
                slicing=Slicing(input_bits=3, weight_slices=2, bits_per_slice=2, negative="offset"))
    weights = _uniform(20, (7, 5))
    x = _uniform(21, (2, 7))
    state = jax.jit(lambda w: core.program(w, key=jax.random.key(0)))(weights)
    read = jax.jit(lambda s: core.read(s, 1.0, key=jax.random.key(1)))(state)
    key = jax.random.key(3)
    single = jax.jit(lambda v: core.matmul(state, read, v, key=key))
    per_vector = jax.jit(jax.vmap(single))(x)
    for i in range(x.shape[0]):
        np.testing.assert_allclose(per_vector[i], single(x[i]), rtol=1e-5, atol=1e-6)
    keys = jax.random.split(jax.random.key(2), 3)
    outputs = jax.jit(jax.vmap(lambda k: core.forward(weights, x, key=k)))(keys)
    assert outputs.shape == (3, 2, 5)
    assert not np.allclose(outputs[0], outputs[1])  # each key draws new noise


def test_offset_weights_are_differentiable():
    core = Core(tile=Tile(weight_range=2.0), tile_shape=(4, 3), slicing=Slicing(negative="offset"))
    x = _uniform(22, (3, 10))
    weights = _uniform(23, (10, 7), bound=1.5)

    def loss(w):
        return jnp.sum(core.forward(w, x, key=jax.random.key(0)) ** 2)

    gradient = jax.jit(jax.grad(loss))(weights)
    np.testing.assert_allclose(gradient, jax.grad(lambda w: jnp.sum((x @ w) ** 2))(weights), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("straight_through", [False, True])
def test_bit_serial_input_gradient(straight_through):
    """Rounding inputs to bits has zero gradient, unless the DAC sets the straight-through estimator."""
    tile = Tile(weight_range=1.0, dac=DAC(straight_through=straight_through))
    core = Core(tile=tile, tile_shape=(4, 3), slicing=Slicing(input_bits=4, weight_slices=2, bits_per_slice=3))
    weights = _uniform(24, (6, 5))
    x = _uniform(25, (2, 6))

    def loss(w, v):
        return jnp.sum(core.forward(w, v, key=jax.random.key(0)) ** 2)

    grad_w, grad_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, x)
    np.testing.assert_array_equal(grad_w, 0.0)  # weights rounded to 6-bit codes: no gradient
    out = _forward(core, weights, x)
    if straight_through:
        stored = core.quantize_weights(weights)
        np.testing.assert_allclose(grad_x, 2 * out @ stored.T, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_array_equal(grad_x, 0.0)


def test_slicing_counts():
    assert Slicing().reads_per_product == 1
    assert Slicing(input_bits=8).reads_per_product == 8
    assert Slicing().devices_per_weight == 2
    assert Slicing(weight_slices=4, bits_per_slice=2).devices_per_weight == 8
    assert Slicing(weight_slices=4, bits_per_slice=2, negative="offset").devices_per_weight == 4
    assert Slicing().reference_columns == 0
    assert Slicing(negative="offset").reference_columns == 1


def test_input_planes_add_up():
    slicing = Slicing(input_bits=5)
    x = _uniform(26, (3, 7), bound=2.0)
    planes, significance = slicing.input_planes(x, 2.0)
    assert planes.shape == (5, 3, 7)
    assert set(np.unique(np.asarray(planes)).tolist()) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(jnp.tensordot(significance, planes, axes=1) * 2.0, slicing.quantize_inputs(x, 2.0), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_bits": 0}, "input_bits must be an integer >= 1"),
        ({"input_bits": 2.0}, "input_bits must be an integer >= 1"),
        ({"input_bits": 25}, "beyond float32"),
        ({"weight_slices": 0}, "weight_slices must be an integer >= 1"),
        ({"weight_slices": 2}, "needs bits_per_slice"),
        ({"bits_per_slice": True}, "bits_per_slice must be an integer >= 1"),
        ({"weight_slices": 5, "bits_per_slice": 5}, "beyond float32"),
        ({"negative": "twos_complement"}, "negative must be one of"),
        ({"bits_per_slice": 1, "negative": "offset"}, "at least 2 bits"),
    ],
)
def test_slicing_rejects_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Slicing(**kwargs)


def test_core_rejects_mismatched_state():
    weights = jnp.ones((4, 4))
    analog = Core(tile_shape=(4, 4))
    sliced = Core(tile_shape=(4, 4), slicing=Slicing(weight_slices=2, bits_per_slice=2))
    with pytest.raises(ValueError, match="Slicing instance"):
        Core(slicing="offset")
    state = analog.program(weights, key=jax.random.key(0))
    with pytest.raises(ValueError, match="program it with this core"):
        sliced.read(state, 0.0, key=jax.random.key(1))
    sliced_state = sliced.program(weights, key=jax.random.key(0))
    with pytest.raises(ValueError, match="program it with this core"):
        analog.read(sliced_state, 0.0, key=jax.random.key(1))
    with pytest.raises(ValueError, match="non-finite"):
        sliced.program(weights.at[0, 0].set(jnp.nan), key=jax.random.key(0))
    with pytest.raises(ValueError, match="reference must be"):
        slicing_error(sliced, weights, jnp.ones((2, 4)), key=jax.random.key(0), reference="ideal")
    with pytest.raises(ValueError, match="all zero"):
        slicing_error(sliced, weights, jnp.zeros((2, 4)), key=jax.random.key(0))
