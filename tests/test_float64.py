"""Gradients through the tile against central finite differences, in float64.

float64 is switched on only inside each test of this module: the `x64` fixture enters the
`jax.enable_x64(True)` context manager and leaves it when the test ends, so every other test keeps JAX's
float32 default. Every loss uses fixed PRNG keys, so the +h and -h evaluations see identical noise.

Error budget of a central difference with step h: truncation h^2 |L'''| / 6 plus rounding about
eps64 |L| / h. With relative steps of 1e-4 both stay below 1e-7 relative, so the checks use rtol = 1e-6.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xbar.crossbar import Tile
from xbar.devices import PCM

DAY = 86400.0  # s
RTOL = 1e-6
RELATIVE_STEP = 1e-4


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def central_difference(function, value, step):
    return (function(value + step) - function(value - step)) / (2.0 * step)


def make_problem():
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(10, 6))
    inputs = rng.normal(size=(4, 10))
    cotangent = rng.normal(size=(4, 6))
    return jnp.asarray(weights), jnp.asarray(inputs), jnp.asarray(cotangent)


def make_loss(weights, inputs, cotangent, key, t=3600.0):
    """Return loss(weights, drift_scale, g_max, read_voltage) of a PCM tile with every noise source on.

    The quantizers are ideal. Write noise, drift, read noise, short-term and output noise and global drift
    compensation are all active, so every parameter reaches the loss through the noise terms too.
    """
    base = Tile(device=PCM(), short_term_noise=0.03, output_noise=1e-8, drift_compensation=True)

    def loss(w, drift_scale, g_max, read_voltage):
        tile = eqx.tree_at(
            lambda t: (t.device.drift_scale, t.device.g_max, t.read_voltage), base, (drift_scale, g_max, read_voltage)
        )
        return jnp.sum(tile.forward(w, inputs, t, key=key) * cotangent)

    return loss


def test_float64_is_local(x64):
    assert jnp.ones(1).dtype == jnp.float64


def test_float32_outside_fixture():
    assert jnp.ones(1).dtype == jnp.float32


@pytest.mark.parametrize("index, name, value", [(1, "drift_scale", 1.0), (2, "g_max", 25e-6), (3, "read_voltage", 0.2)])
def test_parameter_gradient_matches_finite_difference(index, name, value, x64, key):
    weights, inputs, cotangent = make_problem()
    loss = make_loss(weights, inputs, cotangent, key)
    params = [weights, 1.0, 25e-6, 0.2]

    def along(v):
        changed = list(params)
        changed[index] = v
        return loss(*changed)

    grad = jax.grad(loss, argnums=index)(*params)
    numeric = central_difference(along, value, RELATIVE_STEP * value)

    assert jnp.result_type(grad) == jnp.float64
    assert np.isfinite(float(grad)), name
    assert float(grad) != 0.0, name
    assert float(grad) == pytest.approx(float(numeric), rel=RTOL), name


def test_weight_gradient_matches_finite_difference(x64, key):
    weights, inputs, cotangent = make_problem()
    loss = make_loss(weights, inputs, cotangent, key)
    grad = jax.grad(loss)(weights, 1.0, 25e-6, 0.2)

    assert np.all(np.isfinite(np.asarray(grad)))
    # A random direction covers every weight at once, and three single weights check the elementwise layout.
    direction = jnp.asarray(np.random.default_rng(3).normal(size=weights.shape))
    directional = central_difference(lambda s: loss(weights + s * direction, 1.0, 25e-6, 0.2), 0.0, RELATIVE_STEP)
    assert float(jnp.sum(grad * direction)) == pytest.approx(float(directional), rel=RTOL)

    for index in [(0, 0), (3, 2), (9, 5)]:
        unit = jnp.zeros_like(weights).at[index].set(1.0)
        numeric = central_difference(lambda s: loss(weights + s * unit, 1.0, 25e-6, 0.2), 0.0, RELATIVE_STEP)
        assert float(grad[index]) == pytest.approx(float(numeric), rel=RTOL, abs=1e-9), index


def test_gradient_at_time_zero_and_one_day(x64, key):
    weights, inputs, cotangent = make_problem()

    for t in (0.0, DAY):
        loss = make_loss(weights, inputs, cotangent, key, t=t)
        grad = jax.grad(loss, argnums=1)(weights, 1.0, 25e-6, 0.2)
        numeric = central_difference(lambda v: loss(weights, v, 25e-6, 0.2), 1.0, RELATIVE_STEP)
        assert np.isfinite(float(grad))
        assert float(grad) == pytest.approx(float(numeric), rel=RTOL, abs=1e-12), t


def test_device_read_gradient_matches_finite_difference(x64, key):
    base = PCM()
    # Targets stay clear of the kinks of the model (the clip at g_max, the clip breakpoints of mu_nu at
    # x = 0.2046 and of sigma_nu at x = 0.0171 and 0.329), where a central difference averages two slopes.
    target = jnp.array([0.0, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 0.95]) * 25e-6

    def total(drift_scale, g_max):
        device = eqx.tree_at(lambda d: (d.drift_scale, d.g_max), base, (drift_scale, g_max))
        state = device.program(target, key=key)
        return jnp.sum(device.read(state, DAY, key=key)) / g_max

    grad = jax.grad(total, argnums=(0, 1))(1.0, 25e-6)
    numeric_scale = central_difference(lambda v: total(v, 25e-6), 1.0, RELATIVE_STEP)
    numeric_g_max = central_difference(lambda v: total(1.0, v), 25e-6, RELATIVE_STEP * 25e-6)

    assert float(grad[0]) == pytest.approx(float(numeric_scale), rel=RTOL)
    assert float(grad[1]) == pytest.approx(float(numeric_g_max), rel=RTOL, abs=1e-9 / 25e-6)
