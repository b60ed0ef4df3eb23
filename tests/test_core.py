"""Multi-tile cores: exact in the ideal limit for any shape, independent tiles, noise and ADC per tile."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbar.crossbar import ADC, Core, Tile
from xbar.devices import PCM


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(1, 40), n=st.integers(1, 40), tile_rows=st.integers(1, 16), tile_columns=st.integers(1, 16),
    batch=st.integers(1, 3),
)
def test_ideal_core_equals_matmul(m, n, tile_rows, tile_columns, batch):
    key_w, key_x, key = jax.random.split(jax.random.key(m * 1000 + n), 3)
    weights = jax.random.normal(key_w, (m, n))
    x = jax.random.normal(key_x, (batch, m))
    core = Core(tile=Tile(), tile_shape=(tile_rows, tile_columns))
    # float32 products of up to 40 terms: relative error well below 1e-4 of the largest output.
    np.testing.assert_allclose(jax.jit(core.forward)(weights, x, key=key), x @ weights, rtol=1e-4, atol=1e-4)


def test_grid_counts_partial_tiles():
    core = Core(tile_shape=(256, 128))
    assert core.grid((256, 128)) == (1, 1)
    assert core.grid((257, 129)) == (2, 2)
    assert core.grid((1000, 10)) == (4, 1)


def test_single_tile_core_matches_tile():
    tile = Tile(device=PCM(), adc=ADC(bits=8, current_range=50e-6), weight_range=1.0)
    weights = jax.random.uniform(jax.random.key(0), (16, 8), minval=-1.0, maxval=1.0)
    x = jax.random.uniform(jax.random.key(1), (4, 16), minval=-1.0, maxval=1.0)
    core = Core(tile=tile, tile_shape=(16, 8))
    state = core.program(weights, key=jax.random.key(2))
    read = core.read(state, 10.0, key=jax.random.key(3))
    out = core.matmul(state, read, x, key=jax.random.key(4))
    # The core draws its read noise with keys of its own, so compare on the core's read: the tile's product
    # of that read must equal the core's output.
    tile_read = jax.tree_util.tree_map(lambda leaf: leaf[0, 0], read)
    expected = tile.matmul(tile_read, x)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_tiles_get_independent_noise():
    tile = Tile(device=PCM(), weight_range=1.0)
    core = Core(tile=tile, tile_shape=(8, 8))
    weights = jnp.full((16, 8), 0.5)
    state = core.program(weights, key=jax.random.key(5))
    g = state.tiles.g_pos.g
    assert g.shape == (2, 1, 8, 8)
    assert not np.allclose(g[0, 0], g[1, 0])


def test_core_rejects_bad_input():
    core = Core(tile_shape=(4, 4))
    state = core.program(jnp.ones((6, 5)), key=jax.random.key(0))
    read = core.read(state, 0.0, key=jax.random.key(1))
    with pytest.raises(ValueError, match="6 rows"):
        core.matmul(state, read, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="tile_shape"):
        Core(tile_shape=(0, 4))
    with pytest.raises(ValueError, match="2-D"):
        core.program(jnp.ones(3), key=jax.random.key(0))


def test_core_under_jit_and_grad():
    core = Core(tile=Tile(weight_range=2.0), tile_shape=(4, 3))
    x = jnp.ones((2, 10))

    def loss(weights):
        return jnp.sum(core.forward(weights, x, key=jax.random.key(0)) ** 2)

    # Weights inside the tile's range (2): beyond it the mapping clips and the gradient is 0.
    weights = jax.random.uniform(jax.random.key(1), (10, 7), minval=-1.5, maxval=1.5)
    gradient = jax.jit(jax.grad(loss))(weights)
    np.testing.assert_allclose(gradient, jax.grad(lambda w: jnp.sum((x @ w) ** 2))(weights), rtol=1e-4, atol=1e-4)


def test_calibration_corrects_pcm_drift():
    """A day of PCM drift shrinks the outputs; a per-column fit on 32 calibration inputs removes most of it."""
    from xbar.crossbar import Calibration

    core = Core(tile=Tile(device=PCM(), weight_range=1.0), tile_shape=(32, 16))
    weights = jax.random.uniform(jax.random.key(6), (64, 24), minval=-1.0, maxval=1.0)
    calibration_inputs = jax.random.uniform(jax.random.key(7), (32, 64), minval=-1.0, maxval=1.0)
    test_inputs = jax.random.uniform(jax.random.key(8), (64, 64), minval=-1.0, maxval=1.0)
    state = core.program(weights, key=jax.random.key(9))
    read = core.read(state, 86400.0, key=jax.random.key(10))
    fit = core.calibrate(state, read, weights, calibration_inputs)
    assert isinstance(fit, Calibration)
    assert fit.gain.shape == (24,)
    ideal = test_inputs @ weights
    raw_error = jnp.sqrt(jnp.mean((core.matmul(state, read, test_inputs) - ideal) ** 2))
    fixed_error = jnp.sqrt(jnp.mean((core.matmul(state, read, test_inputs, calibration=fit) - ideal) ** 2))
    assert float(jnp.mean(fit.gain)) > 1.0  # drift lowers the conductances, so the gains rise
    assert float(fixed_error) < 0.5 * float(raw_error)


def test_ideal_calibration_is_identity():
    core = Core(tile_shape=(8, 8))
    weights = jax.random.normal(jax.random.key(11), (12, 10))
    inputs = jax.random.normal(jax.random.key(12), (16, 12))
    state = core.program(weights, key=jax.random.key(13))
    fit = core.calibrate(state, core.read(state, 0.0, key=jax.random.key(14)), weights, inputs)
    np.testing.assert_allclose(fit.gain, 1.0, atol=1e-4)
    np.testing.assert_allclose(fit.offset, 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="K >= 2"):
        core.calibrate(state, core.read(state, 0.0, key=jax.random.key(14)), weights, inputs[:1])
